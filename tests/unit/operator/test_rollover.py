"""The CA rollover's stages, each resumed from what the CA Secret says, with a fixed clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from etcd_operator.models.cluster import EtcdClusterSpec
from etcd_operator.pki import bundles, certs
from etcd_operator.reconcile import rollover
from etcd_operator.reconcile.desired import ClusterIdentity
from etcd_operator.reconcile.secrets import tls_secrets

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SERIALS = count(100)
LIFETIME = certs.Lifetime()


def authority(name: str = "peer CA") -> bundles.Authority:
    return bundles.new_authority(name, NOW, certs.new_key(), next(SERIALS))


def step(ca: bundles.CASet, *, now: datetime = NOW, requested: str = "", restarted: bool = False,
         current: bool = True) -> rollover.Stage:  # fmt: skip
    return rollover.advance(ca, now, side="peer", requested=requested, restarted=restarted,
                            leaves_current=lambda _: current, lifetime=LIFETIME, new_authority=authority)  # fmt: skip


def test_a_request_starts_a_rollover_once_and_a_ca_far_from_its_end_stays():
    ca = bundles.CASet(authority(), request="r1")
    assert step(ca, requested="r1") == rollover.Stage(ca)  # carried out before
    assert step(ca) == rollover.Stage(ca)
    started = step(ca, requested="r2")
    assert started.ca.next is not None and started.ca.generation == 2 and started.ca.request == "r2"
    assert started.ca.signer == ca.signer and "rollover started" in started.doing


def test_trusting_waits_for_the_restart_then_the_new_ca_signs():
    old, new = authority(), authority()
    trusting = bundles.CASet(old, next=new, generation=2, request="r")
    assert step(trusting).ca == trusting and "trust the old and the new" in step(trusting).doing
    signing = step(trusting, restarted=True).ca
    assert signing == bundles.CASet(new, previous=old.cert, signing_since=NOW, generation=2, request="r")
    # The trusted set, and so the pod template's digest, does not change when the new CA takes over.
    assert signing.bundle() == trusting.bundle()
    assert rollover.trust_digest([signing]) == rollover.trust_digest([trusting]) != ""


@pytest.mark.parametrize(("elapsed", "current", "drops"), [
    (rollover.DELIVERY - timedelta(seconds=1), True, False),  # the kubelet may not have delivered yet
    (rollover.DELIVERY, False, False),  # a leaf still comes from the old CA
    (rollover.DELIVERY, True, True),
])  # fmt: skip
def test_the_old_ca_is_dropped_only_once_every_leaf_is_new_and_delivered(elapsed, current, drops):
    old, new = authority(), authority()
    signing = bundles.CASet(new, previous=old.cert, signing_since=NOW, generation=2)
    after = step(signing, now=NOW + elapsed, current=current, restarted=True).ca
    if drops:
        assert after == bundles.CASet(new, generation=2, restarting=True)
        assert after.bundle() == certs.cert_pem(new.cert)
        assert rollover.trust_digest([after]) != rollover.trust_digest([signing])  # a second rolling restart
    else:
        assert after == signing


def test_dropping_ends_when_every_member_runs_the_template_that_trusts_only_the_new_ca():
    dropping = bundles.CASet(authority(), generation=2, restarting=True)
    assert step(dropping).ca == dropping and "trust only the new CA" in step(dropping).doing
    done = step(dropping, restarted=True)
    assert done == rollover.Stage(replace(dropping, restarting=False))


def test_a_never_rolled_cluster_has_no_digest_so_existing_templates_stay_as_they_are():
    assert rollover.trust_digest([bundles.CASet(authority()), bundles.CASet(authority("client CA"))]) == ""


def test_the_ca_secret_round_trips_every_stage():
    old, new = authority(), authority()
    for ca in (bundles.CASet(old), bundles.CASet(old, next=new, generation=2, request="r"),
               bundles.CASet(new, previous=old.cert, signing_since=NOW, generation=2, request="r"),
               bundles.CASet(new, generation=3, restarting=True)):  # fmt: skip
        assert bundles.CASet.from_secret_data(ca.secret_data()).secret_data() == ca.secret_data()


IDENTITY = ClusterIdentity.of("main", "db", "6f1c2d3e-0000-4000-8000-000000000000")
PEER_ONLY = EtcdClusterSpec.model_validate({"replicas": 3, "tls": {"client": {"mode": "none"}}})


def secrets_of(plan) -> dict[str, dict[str, bytes]]:
    import base64

    return {s["metadata"]["name"]: {k: base64.b64decode(v) for k, v in s["data"].items()} for s in plan.secrets}


def test_a_pass_killed_after_the_leaves_but_before_the_ca_secret_resumes_without_reissuing_them():
    first = secrets_of(tls_secrets(IDENTITY, PEER_ONLY, 3, {}, NOW))
    trusting = bundles.CASet.from_secret_data(first["main-peer-ca"])
    trusting = replace(trusting, next=authority(), generation=2, request="r")
    existing = {**first, "main-peer-ca": trusting.secret_data()}
    existing["main-peer-tls"] = secrets_of(tls_secrets(IDENTITY, PEER_ONLY, 3, existing, NOW))["main-peer-tls"]
    digest = rollover.trust_digest([trusting])
    swap = secrets_of(tls_secrets(IDENTITY, PEER_ONLY, 3, existing, NOW, rotate_ca="r", trusted_ca_live=digest))
    assert trusting.next is not None
    assert bundles.CASet.from_secret_data(swap["main-peer-ca"]).signer.secret_data() == trusting.next.secret_data()
    # The CA Secret's write is lost: the next pass swaps again, and the leaves issued by the new CA stay.
    again = secrets_of(tls_secrets(IDENTITY, PEER_ONLY, 3, {**existing, "main-peer-tls": swap["main-peer-tls"]},
                                   NOW + timedelta(seconds=5), rotate_ca="r", trusted_ca_live=digest))  # fmt: skip
    assert "main-peer-tls" not in again and bundles.CASet.from_secret_data(again["main-peer-ca"]).previous is not None
