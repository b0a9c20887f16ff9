"""Benchmark: bootstrap and scale-out on a real Kubernetes node, against etcd's own view and the node's pod start.

On the local cluster (e2e/local/up.sh) with the operator installed by its chart:

1. the node's pod start time: a bare pod of the node image until Ready (the floor for any member);
2. `kubectl apply` of a 3-member cluster: when etcd's own member list first shows 3 started voting
   members, and when the EtcdCluster says Available=True (the ratio of the two is what the operator adds);
3. 3 -> 5: when etcd lists 5 started voting members, and when status is settled (Available=True,
   Progressing=False, 5 healthy voting members), per added member;
4. a rollout (a resources change) of the 5 members, per member, against the baseline of one member
   restarted by hand (its pod deleted) until it is ready and etcd calls it healthy again.

Prints figures and ratios; asserts nothing.

    python benchmarks/kube_scaling.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from e2e.support import NODE_IMAGE, Kube, condition, etcd_cluster  # noqa: E402
from tests.support.binaries import bin_dir  # noqa: E402

OPERATOR_NAMESPACE = "etcd-operator-system"
RELEASE = "etcd-operator"
POLL = 0.25


def local_cluster() -> Kube:
    up = subprocess.run(["bash", str(ROOT / "e2e" / "local" / "up.sh")], cwd=ROOT, stdout=subprocess.PIPE,
                        text=True, check=True)  # fmt: skip
    kubeconfig = Path(up.stdout.strip().splitlines()[-1].removeprefix("KUBECONFIG="))
    kube = Kube(kubectl=str(bin_dir() / "kubectl"), kubeconfig=kubeconfig)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    kube.run("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "charts" / "etcd-operator" / "crds"))
    subprocess.run([str(bin_dir() / "helm"), "upgrade", "--install", RELEASE, str(ROOT / "charts" / "etcd-operator"),
                    "--namespace", OPERATOR_NAMESPACE, "--create-namespace", "--wait", "--timeout", "180s",
                    "--set", "image.pullPolicy=IfNotPresent", "--set", "logFormat=json"],
                   env=env, check=True, capture_output=True)  # fmt: skip
    kube.run("-n", OPERATOR_NAMESPACE, "rollout", "restart", f"deploy/{RELEASE}")
    kube.run("-n", OPERATOR_NAMESPACE, "rollout", "status", f"deploy/{RELEASE}", "--timeout=180s", timeout=200)
    return kube


def pod_start(kube: Kube, namespace: str) -> float:
    name = f"bare-{uuid.uuid4().hex[:6]}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
           "spec": {"terminationGracePeriodSeconds": 0, "containers": [
               {"name": "c", "image": NODE_IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "infinity"],
                "readinessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1}}]}}  # fmt: skip
    start = time.monotonic()
    kube.apply(namespace, pod)
    kube.run("-n", namespace, "wait", "--for=condition=Ready", f"pod/{name}", "--timeout=120s", timeout=150)
    elapsed = time.monotonic() - start
    kube.run("-n", namespace, "delete", "pod", name, "--wait=false")
    return elapsed


def started_voting(kube: Kube, namespace: str, cluster: str) -> int:
    """Started voting members in etcd's own member list, asked inside member 0 (its server pair is also a client pair)."""
    pod, tls = f"{cluster}-0", "/etc/etcd/server-tls"
    proc = kube.run("-n", namespace, "exec", pod, "--", "etcdctl", "--endpoints", "https://127.0.0.1:2379",
                    "--cacert", f"{tls}/ca.crt", "--cert", f"{tls}/{pod}.crt", "--key", f"{tls}/{pod}.key",
                    "--command-timeout=2s", "member", "list", "-w", "json", check=False, timeout=10)  # fmt: skip
    if proc.returncode != 0:
        return 0
    members = json.loads(proc.stdout).get("members", [])
    return sum(1 for m in members if m.get("clientURLs") and not m.get("isLearner"))


def settled(kube: Kube, namespace: str, cluster: str, members: int) -> bool:
    obj = kube.get(namespace, "etcdcluster", cluster) or {}
    listed = (obj.get("status") or {}).get("members") or []
    return (
        (condition(obj, "Available") or {}).get("status") == "True"
        and (condition(obj, "Progressing") or {}).get("status") == "False"
        and len(listed) == members
        and all(m.get("healthy") and not m.get("isLearner") for m in listed)
    )


def available(kube: Kube, namespace: str, cluster: str) -> bool:
    obj = kube.get(namespace, "etcdcluster", cluster) or {}
    return (condition(obj, "Available") or {}).get("status") == "True"


def until(members: int, kube: Kube, namespace: str, cluster: str, start: float, timeout: float = 600) -> dict[str, float]:
    """Seconds until etcd lists `members` started voting members, until Available=True, until settled."""
    at: dict[str, float] = {}
    while time.monotonic() - start < timeout and len(at) < 3:
        now = time.monotonic() - start
        if "etcd" not in at and started_voting(kube, namespace, cluster) >= members:
            at["etcd"] = now
        if "available" not in at and "etcd" in at and available(kube, namespace, cluster):
            at["available"] = now
        if "settled" not in at and "available" in at and settled(kube, namespace, cluster, members):
            at["settled"] = now
        time.sleep(POLL)
    if len(at) < 3:
        raise SystemExit(f"{cluster}: not {members} members within {timeout}s ({at})")
    return at


def pod_uid(kube: Kube, namespace: str, pod: str) -> str:
    return ((kube.get(namespace, "pod", pod) or {}).get("metadata") or {}).get("uid", "")


def member_restart(kube: Kube, namespace: str, cluster: str, members: int) -> float:
    """One member's pod deleted by hand, until its replacement runs and the cluster is settled again."""
    pod = f"{cluster}-{members - 1}"
    old = pod_uid(kube, namespace, pod)
    start = time.monotonic()
    kube.run("-n", namespace, "delete", "pod", pod, "--wait=false")
    while pod_uid(kube, namespace, pod) in ("", old) or not settled(kube, namespace, cluster, members):
        time.sleep(POLL)
    return time.monotonic() - start


def rollout_done(kube: Kube, namespace: str, cluster: str, members: int, start: float, before: str) -> float:
    """Seconds until every member pod carries the new update revision (not `before`) and status is settled."""
    while time.monotonic() - start < 900:
        sts = kube.get(namespace, "statefulset", cluster) or {}
        revision = (sts.get("status") or {}).get("updateRevision")
        pods = kube.items(namespace, "pods", f"app.kubernetes.io/instance={cluster}")
        current = [p for p in pods if p["metadata"]["labels"].get("controller-revision-hash") == revision]
        if revision and revision != before and len(current) == members and settled(kube, namespace, cluster, members):
            return time.monotonic() - start
        time.sleep(POLL)
    raise SystemExit(f"{cluster}: rollout not done within 900s")


def run_once(kube: Kube) -> dict[str, float]:
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    kube.run("create", "namespace", namespace)
    try:
        baseline = statistics.median(pod_start(kube, namespace) for _ in range(3))
        cluster = "bench"
        start = time.monotonic()
        kube.apply(namespace, etcd_cluster(cluster, 3))
        three = until(3, kube, namespace, cluster, start)
        start = time.monotonic()
        kube.run("-n", namespace, "patch", "etcdcluster", cluster, "--type=merge", "-p", '{"spec":{"replicas":5}}')
        five = until(5, kube, namespace, cluster, start)
        restart = member_restart(kube, namespace, cluster, 5)
        before = ((kube.get(namespace, "statefulset", cluster) or {}).get("status") or {}).get("updateRevision", "")
        start = time.monotonic()
        kube.run("-n", namespace, "patch", "etcdcluster", cluster, "--type=merge", "-p",
                 '{"spec":{"resources":{"requests":{"cpu":"20m"}}}}')  # fmt: skip
        rolled = rollout_done(kube, namespace, cluster, 5, start, before)
        return {"pod_start": baseline, "etcd3": three["etcd"], "available3": three["available"],
                "settled3": three["settled"], "etcd5": five["etcd"], "settled5": five["settled"],
                "member_restart": restart, "rollout5": rolled}  # fmt: skip
    finally:
        kube.run("delete", "namespace", namespace, "--wait=false", check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    kube = local_cluster()
    runs = [run_once(kube) for _ in range(args.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    print(f"runs: {args.runs} (medians; min-max in brackets)")

    def row(label: str, key: str) -> None:
        values = [r[key] for r in runs]
        print(f"  {label:<58} {med[key]:6.1f} s  [{min(values):.1f}-{max(values):.1f}]")

    row("pod start on this node (node image, until Ready)", "pod_start")
    row("apply -> etcd lists 3 started voting members", "etcd3")
    row("apply -> EtcdCluster Available=True", "available3")
    row("apply -> status settled (Progressing=False, 3 ready)", "settled3")
    row("3 -> 5: etcd lists 5 started voting members", "etcd5")
    row("3 -> 5: status settled (Available, Progressing=False, 5 healthy)", "settled5")
    print(f"  Available / etcd all started (target <= 1.2):              {med['available3'] / med['etcd3']:.2f}")
    print(f"  3 -> 5 per added member (etcd):                            {med['etcd5'] / 2:6.1f} s"
          f"  = {med['etcd5'] / 2 / med['pod_start']:.1f} x pod start")  # fmt: skip
    row("one member restarted by hand until settled (baseline)", "member_restart")
    row("rollout of 5 members (resources change) until settled", "rollout5")
    per_member = med["rollout5"] / 5
    print(f"  rollout per member:                                        {per_member:6.1f} s"
          f"  = {per_member / med['member_restart']:.2f} x a hand restart")  # fmt: skip


if __name__ == "__main__":
    main()
