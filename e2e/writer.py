"""A writer in the client pod: one put per key through the client Service, each key recorded once etcd acknowledged it.

Scenario tests start it before a change and check at the end that every
acknowledged write is still readable.
"""

from __future__ import annotations

import base64
import json

from e2e.support import CLIENT_POD, Kube, etcdctl


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
