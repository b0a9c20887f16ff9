"""Operator-issued certificates: renewed in place, and their CAs rolled over, under a writer.

etcd reads its certificate files on every new connection and the kubelet rewrites a mounted Secret in
place, so a renewal must reach clients with the same containers, under a writer that sees no failure.
A CA rollover restarts every member twice (etcd reads trusted CAs only at start) and must lose no
acknowledged write.
"""

from __future__ import annotations

import base64
import time

import pytest

from e2e.support import (
    CLIENT_POD,
    Kube,
    condition,
    containers,
    etcd_cluster,
    etcdctl,
    patch_spec,
    restart_member_pod,
    served_serials,
    start_client_pod,
    wait_settled,
    wait_until,
)
from e2e.writer import acked_writes, assert_no_acknowledged_write_lost, run_under_writer
from etcd_operator.pki import certs

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

NAME = "short"
# Two-minute leaves renewed one minute before their end: a renewal every minute, each with a minute for
# the kubelet to deliver it before the old one ends (the local cluster's kubelet syncs pods every 10 s).
LIFETIME = {"validity": "2m", "renewBefore": "1m"}
RUN = 300  # seconds under the writer


def test_short_lived_certificates_are_renewed_twice_with_no_restart_and_no_failed_write(
    kube: Kube, namespace: str
) -> None:
    run_under_writer(kube, namespace, etcd_cluster(NAME, replicas=3, tls={"certificates": LIFETIME}))
    before = containers(kube, namespace, NAME)
    assert all(restarts == 0 for _, restarts in before.values()), before

    served: list[list[int]] = [[serial] for serial in served_serials(kube, namespace, NAME, 3)]
    started = time.monotonic()

    def five_minutes_with_two_renewals_on_every_member() -> bool:
        for history, serial in zip(served, served_serials(kube, namespace, NAME, 3), strict=True):
            if serial != history[-1]:
                history.append(serial)
        return time.monotonic() - started >= RUN and all(len(history) >= 3 for history in served)

    wait_until(f"{RUN}s under the writer, every member serving two renewed certificates (seen: {served})",
               five_minutes_with_two_renewals_on_every_member, timeout=RUN + 180, interval=10)  # fmt: skip
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


def secret_data(kube: Kube, namespace: str, name: str) -> dict[str, bytes]:
    found = kube.get(namespace, "secret", name) or {}
    return {k: base64.b64decode(v) for k, v in (found.get("data") or {}).items()}


def test_a_ca_rollover_on_request_restarts_members_twice_and_loses_no_acknowledged_write(
    kube: Kube, namespace: str
) -> None:
    name = "roll"
    run_under_writer(kube, namespace, etcd_cluster(name, replicas=3))
    old = {side: secret_data(kube, namespace, f"{name}-{side}-ca")["tls.crt"] for side in ("peer", "client")}
    pods_before = {uid for uid, _ in containers(kube, namespace, name).values()}
    kube.run("-n", namespace, "annotate", "etcdcluster", name, "etcd.operator.dev/rotate-ca=e2e-1")
    reasons: set[str] = set()

    def rolled_over() -> bool:
        cluster = kube.get(namespace, "etcdcluster", name) or {}
        reasons.add((condition(cluster, "Progressing") or {}).get("reason", ""))
        for side in ("peer", "client"):
            data = secret_data(kube, namespace, f"{name}-{side}-ca")
            if data["tls.crt"] == old[side] or {"next.crt", "previous.crt", "restarting"} & set(data):
                return False
        return (condition(cluster, "Progressing") or {}).get("status") == "False"

    wait_until("both CAs rolled over", rolled_over, timeout=600, interval=3)
    assert "CARollover" in reasons, reasons
    status = wait_settled(kube, namespace, name, replicas=3)
    cas = {c["secret"]: c for c in status["certificates"] if c["kind"] == "ca"}
    assert cas[f"{name}-peer-ca"]["generation"] == cas[f"{name}-client-ca"]["generation"] == 2
    assert not [c for c in status["certificates"] if c["kind"] in ("next-ca", "previous-ca")]
    # Every member was restarted (new containers), and serves a certificate from the new client CA only.
    assert not pods_before & {uid for uid, _ in containers(kube, namespace, name).values()}
    server = secret_data(kube, namespace, f"{name}-server-tls")
    new_ca = certs.load_cert(secret_data(kube, namespace, f"{name}-client-ca")["tls.crt"])
    assert server["ca.crt"] == certs.cert_pem(new_ca)
    issued = {certs.load_cert(server[f"{name}-{o}.crt"]).serial_number: o for o in range(3)}
    assert all(certs.issued_by(certs.load_cert(server[f"{name}-{o}.crt"]), new_ca) for o in range(3))
    wait_until("every member serving its certificate from the new CA",
               lambda: [issued.get(s) for s in served_serials(kube, namespace, name, 3)] == [0, 1, 2],
               timeout=150, interval=5)  # fmt: skip
    total = assert_no_acknowledged_write_lost(kube, namespace, name)
    print(f"CA rollover: 2 CAs at generation 2, every member restarted, {total} writes acknowledged, 0 lost")


def test_a_user_removed_from_tls_clients_is_refused_while_the_others_and_the_operator_are_served(
    kube: Kube, namespace: str
) -> None:
    name = "users"
    kube.apply(namespace, etcd_cluster(name, replicas=3, tls={"clients": [{"name": "alice"}, {"name": "bob"}]}))
    wait_settled(kube, namespace, name, replicas=3)
    start_client_pod(kube, namespace, name, users=["alice", "bob"])
    for user in ("alice", "bob"):
        etcdctl(kube, namespace, name, "put", f"/{user}/before", "v", cert_dir=f"/users/{user}")
    before = containers(kube, namespace, name)
    patch_spec(kube, namespace, name, tls={"clients": [{"name": "alice"}]})

    def bob_refused() -> bool:
        """bob's read refused by every member, each asked directly (a Service would pick one at random)."""
        for ordinal in range(3):
            member = f"https://{name}-{ordinal}.{name}.{namespace}.svc.cluster.local:2379"
            done = kube.run("-n", namespace, "exec", CLIENT_POD, "--", "etcdctl", "--endpoints", member,
                            "--command-timeout=5s", "--cacert", "/users/bob/ca.crt", "--cert", "/users/bob/tls.crt",
                            "--key", "/users/bob/tls.key", "get", "/bob/before", check=False)  # fmt: skip
            if done.returncode == 0:
                return False
        return True

    # The list reaches the members' files at the kubelet's next sync of each pod (up to 90 s).
    wait_until("bob's certificate refused by every member", bob_refused, timeout=180, interval=5)
    etcdctl(kube, namespace, name, "put", "/alice/after", "v", cert_dir="/users/alice")
    wait_until("bob's Secret deleted", lambda: kube.get(namespace, "secret", f"{name}-user-bob") is None, timeout=60)
    status = wait_settled(kube, namespace, name, replicas=3)  # the operator's own certificate still works
    assert containers(kube, namespace, name) == before  # revocation restarted nothing
    assert {c["secret"] for c in status["certificates"]} >= {f"{name}-user-alice"}
    assert f"{name}-user-bob" not in {c["secret"] for c in status["certificates"]}
    keys = etcdctl(kube, namespace, name, "get", "/", "--prefix", "--keys-only").stdout.split()
    assert sorted(keys) == ["/alice/after", "/alice/before", "/bob/before"]

    # alice limited to /alice/ (etcd auth on): her prefix only; the operator and its backup certificate keep all.
    patch_spec(kube, namespace, name, tls={"clients": [{"name": "alice", "access": [
        {"prefix": "/alice/", "permission": "readwrite"}]}]})  # fmt: skip

    def access_applied() -> bool:
        applied = condition(kube.get(namespace, "etcdcluster", name), "AccessApplied") or {}
        return applied.get("status") == "True" and applied.get("reason") == "AccessApplied"

    wait_until("AccessApplied=True", access_applied, timeout=120, interval=2)
    status = wait_settled(kube, namespace, name, replicas=3)
    assert status["access"]["enabled"] is True and status["access"]["authRevision"] > 0
    etcdctl(kube, namespace, name, "put", "/alice/limited", "v", cert_dir="/users/alice")
    refused = etcdctl(kube, namespace, name, "put", "/elsewhere", "v", cert_dir="/users/alice", check=False)
    assert refused.returncode != 0 and "permission denied" in refused.stderr, refused.stderr
    keys = etcdctl(kube, namespace, name, "get", "/", "--prefix", "--keys-only").stdout.split()  # as etcd-operator
    assert sorted(keys) == ["/alice/after", "/alice/before", "/alice/limited", "/bob/before"]
    # A member restarted with auth on is Ready again (its probes and pre-start check are not refused), and a
    # new member joins and leaves: the operator adds, promotes and removes it with its token, and the new
    # pod reads the member list over gRPC, as the gateway refuses its certificate.
    restart_member_pod(kube, namespace, name, f"{name}-1", replicas=3)
    patch_spec(kube, namespace, name, replicas=4)
    wait_settled(kube, namespace, name, replicas=4)
    patch_spec(kube, namespace, name, replicas=3)
    wait_settled(kube, namespace, name, replicas=3)
    assert etcdctl(kube, namespace, name, "get", "/alice/limited", "--print-value-only",
                   cert_dir="/users/alice").stdout.strip() == "v"  # fmt: skip

    # No access list left: auth off again, alice has full access, the operator's users and roles are gone.
    patch_spec(kube, namespace, name, tls={"clients": [{"name": "alice"}]})
    wait_until("status.access gone", lambda: "access" not in (kube.get(namespace, "etcdcluster", name) or {}).get(
        "status", {}), timeout=120, interval=2)  # fmt: skip
    status = wait_settled(kube, namespace, name, replicas=3)
    assert condition(kube.get(namespace, "etcdcluster", name), "AccessApplied") is None
    etcdctl(kube, namespace, name, "put", "/elsewhere", "v", cert_dir="/users/alice")
    assert etcdctl(kube, namespace, name, "user", "list").stdout.split() == []
