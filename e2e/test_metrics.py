"""The operator's /metrics on a real cluster, scraped from inside the operator's pod and parsed with prometheus_client.

Checks that the series say what status says for a running cluster, and prints
what an idle cluster costs: Kubernetes API requests and etcd calls per minute,
and the operator's resident memory.
"""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from e2e.support import Kube, etcd_cluster, wait_settled, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

OPERATOR_NAMESPACE = "etcd-operator-system"
SCRAPE = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8081/metrics', timeout=10).read().decode())"


def scrape(kube: Kube) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = kube.run("-n", OPERATOR_NAMESPACE, "exec", "deploy/etcd-operator", "--", "python3", "-c", SCRAPE).stdout
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text)
            for s in f.samples}  # fmt: skip


def value(samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_describe_a_running_cluster_and_an_idle_one_costs_little(kube: Kube, namespace: str) -> None:
    kube.apply(namespace, etcd_cluster("watched", replicas=3))
    status = wait_settled(kube, namespace, "watched", replicas=3)
    who = {"namespace": namespace, "cluster": "watched"}
    # At least one whole pass after settling, so the series are the settled ones.
    settled = value(scrape(kube), "etcd_operator_reconcile_duration_seconds_count", **who) or 0
    wait_until("an idle pass after settling", lambda: (value(scrape(kube), "etcd_operator_reconcile_duration_seconds_count",
                                                              **who) or 0) >= settled + 2, timeout=60)  # fmt: skip
    first, started = scrape(kube), time.monotonic()
    assert value(first, "etcd_operator_cluster_members", **who, role="voting") == 3
    assert value(first, "etcd_operator_cluster_members", **who, role="learner") == 0
    assert value(first, "etcd_operator_cluster_healthy_members", **who) == 3
    assert value(first, "etcd_operator_cluster_has_leader", **who) == 1
    assert value(first, "etcd_operator_cluster_phase", **who, phase="Running") == 1
    assert value(first, "etcd_operator_cluster_database_full", **who) == 0
    leader = status["leader"]
    for member in status["members"]:
        pod = {**who, "member": member["name"]}
        assert value(first, "etcd_operator_member_healthy", **pod) == 1
        assert value(first, "etcd_operator_member_is_leader", **pod) == float(member["name"] == leader)
        assert (value(first, "etcd_operator_member_db_size_bytes", **pod) or 0) > 0
    assert value(first, "etcd_operator_certificate_not_after_timestamp_seconds", **who, secret="watched-peer-ca",
                 kind="ca") > time.time()  # fmt: skip
    time.sleep(48)  # the measurement window itself, not a wait for a state
    second, elapsed = scrape(kube), time.monotonic() - started
    per_minute = 60 / elapsed
    kube_rate = (value(second, "etcd_operator_kube_requests_total") - value(first, "etcd_operator_kube_requests_total")) * per_minute
    etcd_rate = (value(second, "etcd_operator_etcd_calls_total") - value(first, "etcd_operator_etcd_calls_total")) * per_minute
    passes = (value(second, "etcd_operator_reconcile_duration_seconds_count", **who)
              - value(first, "etcd_operator_reconcile_duration_seconds_count", **who)) * per_minute  # fmt: skip
    rss = value(second, "process_resident_memory_bytes") / 2**20
    clusters = len({labels for name, labels in second if name == "etcd_operator_cluster_desired_members"})
    print(f"idle: {passes:.1f} passes/min for this cluster; operator-wide with {clusters} cluster(s): "
          f"{kube_rate:.0f} API requests/min, {etcd_rate:.0f} etcd calls/min, RSS {rss:.0f} MiB")
    assert 4 <= passes <= 8  # the idle interval is 10 s: about 6 passes a minute, not the busy 60
    assert value(second, "etcd_operator_reconcile_errors_total", **who) == 0
