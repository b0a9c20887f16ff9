"""kubectl-driven helpers for the e2e suite: polling with deadlines, a client pod, etcdctl."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

T = TypeVar("T")

NODE_IMAGE = "etcd-node:3.6.16"
CLIENT_POD = "etcd-client"
IDLE_INTERVAL = 10  # the operator's pass interval when nothing is in flight (ETCD_OPERATOR_IDLE_INTERVAL)


@dataclass(frozen=True)
class Kube:
    kubectl: str
    kubeconfig: Path

    def run(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 90
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.kubectl, "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True, text=True, input=input, timeout=timeout,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed (exit {proc.returncode}):\n{proc.stderr}", pytrace=False)
        return proc

    def get(self, namespace: str, kind: str, name: str) -> dict[str, Any] | None:
        proc = self.run("-n", namespace, "get", kind, name, "-o", "json", check=False)
        if proc.returncode != 0:
            if "NotFound" in proc.stderr:
                return None
            pytest.fail(f"kubectl get {kind} {name}: {proc.stderr}", pytrace=False)
        return json.loads(proc.stdout)

    def items(self, namespace: str, kind: str, selector: str | None = None) -> list[dict[str, Any]]:
        args = ["-n", namespace, "get", kind, "-o", "json"]
        if selector:
            args += ["-l", selector]
        return json.loads(self.run(*args).stdout)["items"]

    def apply(self, namespace: str, obj: dict[str, Any]) -> None:
        self.run("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(obj))

    def diagnostics(self, namespace: str, operator_namespace: str) -> str:
        """What a failed test leaves behind: objects, events and the operator's log tail."""
        parts = []
        for args in (
            ("-n", namespace, "get", "etcdclusters,statefulsets,pods,pvc,svc", "-o", "wide"),
            ("-n", namespace, "get", "etcdclusters", "-o", "yaml"),
            ("-n", namespace, "get", "events", "--sort-by=.lastTimestamp"),
            ("-n", operator_namespace, "logs", "deploy/etcd-operator", "--tail=1000"),
        ):
            proc = self.run(*args, check=False)
            out = proc.stdout
            if "logs" in args:  # the operator's own lines, without probes and timer chatter
                lines = [x for x in out.splitlines() if "/healthz" not in x and "Timer 'observe'" not in x]
                out = "\n".join(lines[-60:]) + "\n"
            parts.append(f"$ kubectl {' '.join(args)}\n{out}{proc.stderr}")
        return "\n".join(parts)


# Every test namespace enforces the restricted Pod Security Standard: what the operator creates must pass it.
POD_SECURITY = {"pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest"}


def create_namespace(kube: Kube, name: str) -> None:
    kube.run("create", "namespace", name)
    kube.run("label", "namespace", name, *(f"{k}={v}" for k, v in POD_SECURITY.items()), "--overwrite")


def restricted(container: dict[str, Any]) -> dict[str, Any]:
    """A container spec that the restricted Pod Security Standard admits (the test's own pods)."""
    return {**container, "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                                             "runAsNonRoot": True, "runAsUser": 65532,
                                             "seccompProfile": {"type": "RuntimeDefault"}}}  # fmt: skip


def wait_until(what: str, probe: Callable[[], T | None], timeout: float = 300, interval: float = 2) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after the deadline."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})", pytrace=False)


def etcd_cluster(name: str, replicas: int = 3, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "etcd.operator.dev/v1alpha1",
        "kind": "EtcdCluster",
        "metadata": {"name": name},
        "spec": {"replicas": replicas, "version": "3.6.16", "storage": {"size": "1Gi"}, **spec},
    }


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return c
    return None


def available_status(kube: Kube, namespace: str, name: str, members: int) -> dict[str, Any] | None:
    """The cluster's status once it is Available with `members` healthy voting members and a leader."""
    obj = kube.get(namespace, "etcdcluster", name)
    if not obj:
        return None
    status = obj.get("status") or {}
    listed = status.get("members") or []
    available = (condition(obj, "Available") or {}).get("status") == "True"
    healthy_voters = [m for m in listed if m.get("healthy") and not m.get("isLearner")]
    if available and len(listed) == members and len(healthy_voters) == members and status.get("leader"):
        return status
    return None


def patch_spec(kube: Kube, namespace: str, name: str, **fields: Any) -> None:
    """A merge patch of the EtcdCluster's spec, as a user would `kubectl patch` it."""
    patch = json.dumps({"spec": fields})
    kube.run("-n", namespace, "patch", "etcdcluster", name, "--type=merge", "-p", patch)


def pdb_min_available(replicas: int) -> int:
    """The voting members' quorum; a single member has none to protect, so its eviction is not blocked."""
    return 0 if replicas <= 1 else replicas // 2 + 1


def unsettled(kube: Kube, namespace: str, name: str, replicas: int) -> list[str]:
    """Why the cluster is not yet what a user expects after any change: empty once it is.

    The whole outcome, not only what the change touched: stale conditions or
    a stale PodDisruptionBudget once slipped through scenarios that checked
    only the member count.
    """
    obj = kube.get(namespace, "etcdcluster", name)
    if not obj:
        return [f"EtcdCluster {namespace}/{name} not found"]
    problems = []
    for kind, want in (("Available", "True"), ("Progressing", "False"), ("Degraded", "False")):
        c = condition(obj, kind) or {}
        if c.get("status") != want:
            problems.append(f"{kind}={c.get('status')} ({c.get('reason')}: {c.get('message')})")
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"]["generation"]:
        problems.append(f"observedGeneration {status.get('observedGeneration')} != {obj['metadata']['generation']}")
    if status.get("phase") != "Running":
        problems.append(f"phase {status.get('phase')}")
    members = status.get("members") or []
    if len(members) != replicas:
        problems.append(f"{len(members)} members listed, want {replicas}")
    if learners := [m.get("name") for m in members if m.get("isLearner")]:
        problems.append(f"learners: {learners}")
    if sick := [m.get("name") for m in members if not m.get("healthy")]:
        problems.append(f"unhealthy: {sick}")
    if not status.get("leader"):
        problems.append("no leader")
    pdb = kube.get(namespace, "poddisruptionbudget", name)
    if not pdb:
        problems.append(f"PodDisruptionBudget {name} missing")
    elif (got := pdb["spec"].get("minAvailable")) != pdb_min_available(replicas):
        problems.append(f"PodDisruptionBudget minAvailable {got}, want {pdb_min_available(replicas)}")
    return problems


def wait_settled(kube: Kube, namespace: str, name: str, replicas: int, timeout: float = 300) -> dict[str, Any]:
    """Poll until `unsettled` has nothing left to say (status converges over a few passes); the status."""
    deadline = time.monotonic() + timeout
    while problems := unsettled(kube, namespace, name, replicas):
        if time.monotonic() >= deadline:
            pytest.fail(
                f"EtcdCluster {namespace}/{name} not settled at {replicas} members after {timeout:.0f}s: "
                + "; ".join(problems), pytrace=False,
            )
        time.sleep(2)
    return kube.get(namespace, "etcdcluster", name)["status"]


def restart_member_pod(kube: Kube, namespace: str, name: str, pod: str, replicas: int) -> dict[str, Any]:
    """Delete a member pod, wait for its replacement to be Ready and the cluster settled again; the status.

    The operator sees a pod only from its passes (every IDLE_INTERVAL when idle), so a status read
    right after the pod comes back may predate the restart: settled is only believed once it has
    held, unchanged, for longer than one idle pass.
    """
    old_uid = kube.get(namespace, "pod", pod)["metadata"]["uid"]
    kube.run("-n", namespace, "delete", "pod", pod, "--wait=true", "--timeout=120s", timeout=150)
    wait_until(f"pod {pod} recreated and Ready", lambda: (p := kube.get(namespace, "pod", pod))
               and p["metadata"]["uid"] != old_uid
               and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", [])),
               timeout=180)  # fmt: skip
    deadline = time.monotonic() + 300
    while True:
        status = wait_settled(kube, namespace, name, replicas, timeout=max(deadline - time.monotonic(), 1))
        transitions = {c["type"]: c.get("lastTransitionTime") for c in status.get("conditions") or []}
        time.sleep(IDLE_INTERVAL + 2)
        again = (kube.get(namespace, "etcdcluster", name) or {}).get("status") or {}
        if not unsettled(kube, namespace, name, replicas) and transitions == {
                c["type"]: c.get("lastTransitionTime") for c in again.get("conditions") or []}:  # fmt: skip
            return again
        if time.monotonic() >= deadline:
            pytest.fail(f"EtcdCluster {namespace}/{name} did not stay settled after {pod} restarted", pytrace=False)


def assert_stays_settled(
    kube: Kube, namespace: str, name: str, replicas: int, seconds: float, tls: str = "cert"
) -> None:
    """Settled for the whole window with the same members: nothing flips back, nobody is removed again.

    Polls could miss a flip between two of them; an unchanged
    lastTransitionTime on every condition cannot.
    """
    def snapshot() -> dict[str, Any]:
        status = (kube.get(namespace, "etcdcluster", name) or {}).get("status") or {}
        return {
            "etcd members": member_ids(kube, namespace, name, tls=tls),
            "status.members": {m["name"]: m["id"] for m in status.get("members") or []},
            "lastTransitionTime": {c["type"]: c.get("lastTransitionTime") for c in status.get("conditions") or []},
        }

    before = snapshot()
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        time.sleep(2)
        elapsed = time.monotonic() - start
        problems = unsettled(kube, namespace, name, replicas)
        assert not problems, f"no longer settled {elapsed:.0f}s into the window: {problems}"
        now = snapshot()
        assert now == before, f"changed {elapsed:.0f}s into the window: {before} -> {now}"


def start_client_pod(
    kube: Kube, namespace: str, cluster: str, client_tls: bool = True, users: Sequence[str] = ()
) -> None:
    """A pod with etcdctl and the cluster's client certificate at /tls (and each user's at /users/<user>)."""
    volumes, mounts = [], []
    if client_tls:
        volumes = [{"name": "tls", "secret": {"secretName": f"{cluster}-client-tls"}}]
        mounts = [{"name": "tls", "mountPath": "/tls", "readOnly": True}]
    for user in users:
        volumes.append({"name": f"user-{user}", "secret": {"secretName": f"{cluster}-user-{user}"}})
        mounts.append({"name": f"user-{user}", "mountPath": f"/users/{user}", "readOnly": True})
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": CLIENT_POD},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [restricted({
                "name": "client", "image": NODE_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sleep", "infinity"], "volumeMounts": mounts,
            })],
            "volumes": volumes,
        },
    }
    kube.apply(namespace, pod)
    kube.run("-n", namespace, "wait", "--for=condition=Ready", f"pod/{CLIENT_POD}", "--timeout=120s", timeout=150)


def served_certificates(kube: Kube, namespace: str, cluster: str, replicas: int) -> list[dict[str, Any]]:
    """What each member's client port presents on a new connection (member 0 first), read from the client pod:
    its serial, the sha256 of its public key (PKIX DER), its DNS names, its issuer and the issuer's key ID."""
    code = (
        "import socket, ssl, json, hashlib\n"
        "from cryptography import x509\n"
        "from cryptography.hazmat.primitives import serialization\n"
        "ctx = ssl.create_default_context(cafile='/tls/ca.crt'); ctx.load_cert_chain('/tls/tls.crt', '/tls/tls.key')\n"
        f"hosts = ['{cluster}-%d.{cluster}.{namespace}.svc.cluster.local' % i for i in range({replicas})]\n"
        "out = []\n"
        "for h in hosts:\n"
        "    with socket.create_connection((h, 2379), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname=h) as s:\n"
        "        c = x509.load_der_x509_certificate(s.getpeercert(True))\n"
        "    der = c.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)\n"
        "    ext = {type(e.value).__name__: e.value for e in c.extensions}\n"  # a user's certificate may lack either
        "    sans, aki = ext.get('SubjectAlternativeName'), ext.get('AuthorityKeyIdentifier')\n"
        "    out.append({'serial': c.serial_number, 'key': hashlib.sha256(der).hexdigest(),\n"
        "                'sans': sans.get_values_for_type(x509.DNSName) if sans else [],\n"
        "                'issuer': c.issuer.rfc4514_string(),\n"
        "                'issuer_key_id': aki.key_identifier.hex() if aki and aki.key_identifier else None})\n"
        "print(json.dumps(out))\n"
    )
    out = kube.run("-n", namespace, "exec", CLIENT_POD, "--", "python3", "-c", code, timeout=60).stdout
    return list(json.loads(out))


def served_serials(kube: Kube, namespace: str, cluster: str, replicas: int) -> list[int]:
    """The serial each member's client port presents on a new connection (member 0 first)."""
    return [int(c["serial"]) for c in served_certificates(kube, namespace, cluster, replicas)]


def containers(kube: Kube, namespace: str, cluster: str) -> dict[str, tuple[str, int]]:
    """pod -> (container ID, restart count) of each member."""
    pods = kube.items(namespace, "pods", f"app.kubernetes.io/instance={cluster},app.kubernetes.io/component=member")
    return {p["metadata"]["name"]: (p["status"]["containerStatuses"][0]["containerID"],
                                    p["status"]["containerStatuses"][0]["restartCount"]) for p in pods}  # fmt: skip


FAILPOINT_EXIT = 86  # the operator's exit code at an ETCD_OPERATOR_FAILPOINT


def operator_crashed_at_failpoint(kube: Kube, operator: str) -> bool:
    """The operator's container last ended with the failpoint's exit code."""
    for pod in kube.items(operator, "pod", "app.kubernetes.io/name=etcd-operator"):
        for status in pod["status"].get("containerStatuses", []):
            if ((status.get("lastState") or {}).get("terminated") or {}).get("exitCode") == FAILPOINT_EXIT:
                return True
    return False


def etcdctl(
    kube: Kube, namespace: str, cluster: str, *args: str, tls: str = "cert", check: bool = True, timeout: float = 30,
    cert_dir: str = "/tls",
) -> subprocess.CompletedProcess[str]:
    """etcdctl in the client pod against the client Service. tls: cert (client cert auth from `cert_dir`),
    server-only, none."""
    scheme = "http" if tls == "none" else "https"
    endpoint = f"{scheme}://{cluster}-client.{namespace}.svc.cluster.local:2379"
    flags = ["--endpoints", endpoint, "--command-timeout=10s"]
    if tls == "cert":
        flags += ["--cacert", f"{cert_dir}/ca.crt", "--cert", f"{cert_dir}/tls.crt", "--key", f"{cert_dir}/tls.key"]
    elif tls == "server-only":
        flags += ["--insecure-skip-tls-verify"]
    return kube.run("-n", namespace, "exec", CLIENT_POD, "--", "etcdctl", *flags, *args, check=check, timeout=timeout)


def member_ids(kube: Kube, namespace: str, cluster: str, tls: str = "cert") -> dict[str, str]:
    """name -> hex member ID, from etcd's own member list."""
    out = etcdctl(kube, namespace, cluster, "member", "list", "-w", "json", tls=tls).stdout
    return {m.get("name", ""): format(m["ID"], "x") for m in json.loads(out)["members"]}
