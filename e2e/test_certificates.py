"""Operator-issued certificates with short lifetimes: renewed by the pass, served by every member without a restart.

etcd reads its certificate files on every new connection and the kubelet rewrites a mounted Secret in
place, so a renewal must reach clients with the same containers, under a writer that sees no failure.
"""

from __future__ import annotations

import pytest

from e2e.support import (
    Kube,
    containers,
    etcd_cluster,
    served_serials,
    start_client_pod,
    wait_settled,
    wait_until,
)
from e2e.writer import acked_writes, assert_no_acknowledged_write_lost, start_writer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

NAME = "short"
# Five-minute leaves renewed four minutes before their end: a renewal every minute of a leaf's life,
# each with four minutes for the kubelet (at most 90 s) to deliver it before the old one ends.
LIFETIME = {"validity": "5m", "renewBefore": "4m"}


def test_short_lived_certificates_are_renewed_twice_with_no_restart_and_no_failed_write(
    kube: Kube, namespace: str
) -> None:
    kube.apply(namespace, etcd_cluster(NAME, replicas=3, tls={"certificates": LIFETIME}))
    wait_settled(kube, namespace, NAME, replicas=3)
    start_client_pod(kube, namespace, NAME)
    start_writer(kube, namespace, NAME)
    before = containers(kube, namespace, NAME)
    assert all(restarts == 0 for _, restarts in before.values()), before

    served: list[list[int]] = [[serial] for serial in served_serials(kube, namespace, NAME, 3)]

    def renewed_twice_on_every_member() -> bool:
        for history, serial in zip(served, served_serials(kube, namespace, NAME, 3), strict=True):
            if serial != history[-1]:
                history.append(serial)
        return all(len(history) >= 3 for history in served)

    wait_until(f"every member serving two renewed certificates (seen: {served})", renewed_twice_on_every_member,
               timeout=420, interval=10)  # fmt: skip
    assert containers(kube, namespace, NAME) == before  # the same containers: no restart

    status = wait_settled(kube, namespace, NAME, replicas=3)
    ends = {c["secret"]: c["notAfter"] for c in status["certificates"]}
    assert {f"{NAME}-peer-tls", f"{NAME}-server-tls", f"{NAME}-client-tls", f"{NAME}-peer-ca"} <= set(ends)
    assert ends[f"{NAME}-server-tls"] < ends[f"{NAME}-peer-ca"]
    acked = acked_writes(kube, namespace)
    failed = sorted(set(range(max(acked) + 1)) - set(acked))
    assert not failed, f"{len(failed)} writes failed while certificates were renewed, first: {failed[:10]}"
    total = assert_no_acknowledged_write_lost(kube, namespace, NAME)
    renewals = [len(history) - 1 for history in served]
    print(f"renewals served per member: {renewals}; 0 restarts; {total} writes acknowledged, 0 failed, 0 lost")
