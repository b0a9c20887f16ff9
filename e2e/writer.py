"""A writer in the client pod: one put per key through the client Service, each key recorded once etcd acknowledged it.

Scenario tests start it before a change and check at the end that every
acknowledged write is still readable.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from e2e.support import CLIENT_POD, Kube, etcdctl, start_client_pod, wait_settled, wait_until


def start_writer(kube: Kube, namespace: str, cluster: str) -> None:
    loop = (
        "i=0; while [ ! -e /tmp/stop ]; do "
        f"if etcdctl --endpoints https://{cluster}-client.{namespace}.svc.cluster.local:2379 "
        "--cacert /tls/ca.crt --cert /tls/tls.crt --key /tls/tls.key --command-timeout=5s "
        "put w/$i $i >/dev/null 2>&1; then echo $i >>/tmp/acked; fi; i=$((i+1)); sleep 0.05; done; "
        "touch /tmp/stopped"
    )
    kube.run("-n", namespace, "exec", CLIENT_POD, "--", "sh", "-c", f"nohup sh -c '{loop}' >/dev/null 2>&1 &")


def acked_writes(kube: Kube, namespace: str) -> list[int]:
    out = kube.run("-n", namespace, "exec", CLIENT_POD, "--", "sh", "-c", "cat /tmp/acked 2>/dev/null || true").stdout
    return [int(x) for x in out.split()]


def assert_no_acknowledged_write_lost(kube: Kube, namespace: str, cluster: str) -> int:
    """Every acknowledged write readable with its value; returns how many there were."""
    acked = acked_writes(kube, namespace)
    assert acked, "the writer acknowledged nothing"
    stored = etcdctl(kube, namespace, cluster, "get", "w/", "--prefix", "-w", "json", timeout=60).stdout
    values = {
        base64.b64decode(kv["key"]).decode(): base64.b64decode(kv["value"]).decode()
        for kv in json.loads(stored).get("kvs", [])
    }
    lost = [i for i in acked if values.get(f"w/{i}") != str(i)]
    assert not lost, f"{len(lost)} of {len(acked)} acknowledged writes missing, first: {lost[:10]}"
    return len(acked)


def run_under_writer(kube: Kube, namespace: str, cluster: dict[str, Any], acked: int = 0) -> str:
    """Apply `cluster`, wait until it is settled, start the client pod and the writer, and wait for `acked`
    acknowledged writes: how every scenario with a writer begins. Returns the cluster's name."""
    name, replicas = cluster["metadata"]["name"], cluster["spec"]["replicas"]
    kube.apply(namespace, cluster)
    wait_settled(kube, namespace, name, replicas=replicas)
    start_client_pod(kube, namespace, name)
    start_writer(kube, namespace, name)
    if acked:
        wait_until("the writer's first acknowledged writes", lambda: len(acked_writes(kube, namespace)) >= acked,
                   timeout=120)  # fmt: skip
    return name
