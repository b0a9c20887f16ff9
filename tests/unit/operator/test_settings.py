"""kopf settings: peering priorities, and what --namespace turns off."""

from __future__ import annotations

import argparse

import kopf
import pytest

from etcd_operator.__main__ import namespace_name
from etcd_operator.handlers.settings import configure, peering_priority


def settings_for(
    monkeypatch: pytest.MonkeyPatch, namespaces: tuple[str, ...], peering: str = ""
) -> kopf.OperatorSettings:
    monkeypatch.setenv("ETCD_OPERATOR_PEERING", peering)
    settings = kopf.OperatorSettings()
    configure(settings=settings, memo=kopf.Memo(namespaces=namespaces))
    return settings


def test_the_oldest_replica_has_the_highest_priority() -> None:
    started = 1_800_000_000.0
    older, newer = peering_priority(started, 999), peering_priority(started + 0.001, 0)
    assert older > newer
    # Same millisecond: the tiebreak orders them; kopf pauses both only on equal priorities.
    assert peering_priority(started, 1) != peering_priority(started, 2)
    # kopf sends the priority as a JSON integer; the API server keeps 64 bits.
    assert -(2**63) < peering_priority(4_102_444_800.0, 999) < 0  # the year 2100


def test_standalone_without_a_peering_name(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(monkeypatch, ())
    assert settings.peering.standalone and not settings.peering.mandatory


def test_peering_is_mandatory_and_ranked_by_age(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("time.time", lambda: 1_800_000_000.0)
    settings = settings_for(monkeypatch, (), peering="etcd-operator")
    assert not settings.peering.standalone and settings.peering.mandatory
    assert settings.peering.name == "etcd-operator"
    assert peering_priority(1_800_000_000.0, 999) <= settings.peering.priority <= peering_priority(1_800_000_000.0, 0)


@pytest.mark.parametrize(("namespaces", "scanning_disabled"), [((), False), (("a", "b"), True)])
def test_namespaces_turn_cluster_scanning_off(monkeypatch: pytest.MonkeyPatch, namespaces, scanning_disabled) -> None:
    """With --namespace kopf neither lists namespaces nor watches CRDs: the chart grants nothing cluster-wide."""
    assert settings_for(monkeypatch, namespaces).scanning.disabled is scanning_disabled


@pytest.mark.parametrize("value", ["team-a", "a", "x" * 63])
def test_namespace_names(value: str) -> None:
    assert namespace_name(value) == value


@pytest.mark.parametrize("value", ["team-*", "!kube-system", "Team", "a.b", "-a", "x" * 64, ""])
def test_namespace_patterns_are_refused(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not a namespace name"):
        namespace_name(value)
