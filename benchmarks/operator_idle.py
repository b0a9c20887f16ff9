"""Benchmark: what idle clusters cost the operator, for 1, 10 and 50 clusters.

Each cluster is settled first, then left idle for one simulated minute (the
pass runs every ETCD_OPERATOR_IDLE_INTERVAL, 10 s: six passes). The passes are
the operator's own (controller.reconcile_once) against the in-memory API server
and etcd of the unit tests, so the request and call counts are exactly what
the real operator sends per idle pass; the CPU time is that of the planning
and status code. Prints, per N: Kubernetes API requests and etcd calls per
minute (total and per cluster), object writes (should be 0), CPU ms per pass,
and the process's peak RSS; the ratio column is the per-cluster cost against
N=1 measured in the same run (1.00: linear). Asserts nothing.

    python benchmarks/operator_idle.py [--clusters 1,10,50]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.unit.operator.test_pass import Cluster  # noqa: E402

PASSES_PER_MINUTE = 6  # ETCD_OPERATOR_IDLE_INTERVAL = 10 s


def idle_minute(count: int) -> dict[str, float]:
    # Each cluster has an API server and etcd of its own (the fakes), so one name serves them all.
    clusters = []
    for _ in range(count):
        cluster = Cluster({"replicas": 3})
        cluster.converge()
        clusters.append(cluster)
    requests = sum(c.kube.requests for c in clusters)
    calls = sum(c.etcd.calls for c in clusters)
    writes = sum(len(c.kube.writes) for c in clusters)
    cpu = time.process_time()
    for _ in range(PASSES_PER_MINUTE):
        for cluster in clusters:
            cluster.once()
    cpu = time.process_time() - cpu
    return {
        "requests": sum(c.kube.requests for c in clusters) - requests,
        "calls": sum(c.etcd.calls for c in clusters) - calls,
        "writes": sum(len(c.kube.writes) for c in clusters) - writes,
        "cpu_ms_per_pass": 1000 * cpu / (PASSES_PER_MINUTE * count),
        "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clusters", default="1,10,50")
    args = parser.parse_args()
    counts = [int(n) for n in args.clusters.split(",")]
    print(f"{'clusters':>8} {'API req/min':>12} {'per cluster':>12} {'etcd calls/min':>15} {'per cluster':>12} "
          f"{'writes':>7} {'CPU ms/pass':>12} {'peak RSS MiB':>13} {'ratio vs 1':>11}")  # fmt: skip
    baseline = None
    for count in counts:
        r = idle_minute(count)
        per_cluster = (r["requests"] + r["calls"]) / count
        baseline = baseline or per_cluster
        print(f"{count:>8} {r['requests']:>12.0f} {r['requests'] / count:>12.1f} {r['calls']:>15.0f} "
              f"{r['calls'] / count:>12.1f} {r['writes']:>7.0f} {r['cpu_ms_per_pass']:>12.2f} {r['rss_mib']:>13.0f} "
              f"{per_cluster / baseline:>11.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
