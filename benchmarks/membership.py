"""Benchmark: time per scale-out and scale-in step through etcd's runtime API, with real members.

Walks 1 -> 3 -> 5 -> 3 -> 1 with the operator's planner and executor (the same
driver as tests/integration/test_membership.py) while a writer runs, and prints
the time each transition took and its per-member step; then times the healing
of a member whose data dir is wiped. Asserts nothing.

    python benchmarks/membership.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.etcdlab import EtcdLab, add_walk_hosts, run_walk  # noqa: E402
from tests.integration.netlab import NetLab  # noqa: E402
from tests.support.binaries import bin_dir, versions  # noqa: E402

SIZES = [3, 5, 3, 1]


def walk_once(etcd_dir: Path, sizes: list) -> dict:
    with NetLab() as net:
        lab = EtcdLab(net, etcd_dir)
        hosts, ctl, workdir = add_walk_hosts(lab)
        config = {"hosts": hosts, "python": sys.executable, "etcd": lab.etcd, "workdir": str(workdir), "sizes": sizes}
        result = run_walk(ctl, config, workdir, lab.env(PYTHONPATH=str(ROOT)), timeout=600)
        if result.returncode != 0:
            raise SystemExit(result.stderr[-2000:])
        return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    etcd_dir = bin_dir() / f"etcd-{versions()['ETCD_VERSION']}"
    per_transition: dict[str, list[float]] = {}
    retries, writes, lost = [], [], []
    heals: list[float] = []
    for _ in range(args.runs):
        healed = walk_once(etcd_dir, [3, "lose:2"])
        heals += [r["t"] for r in healed["steps"] if r["step"] == "Reached" and r["to"] == "lose:2"]
        summary = walk_once(etcd_dir, SIZES)
        previous = 1
        for record in summary["steps"]:
            if record["step"] == "Reached":
                label = f"{previous}->{record['to']}"
                per_transition.setdefault(label, []).append(record["t"])
                previous = record["to"]
        retries.append(sum(1 for r in summary["steps"] if r.get("ok") is False))
        writes.append(summary["acked"])
        lost.append(summary["lost"])
    print(f"etcd {versions()['ETCD_VERSION']}, {args.runs} runs of 1->3->5->3->1 with a writer")
    print(f"{'transition':<11} {'median s':>9} {'per member s':>13} {'min s':>7} {'max s':>7}")
    for label, samples in per_transition.items():
        a, b = (int(x) for x in label.split("->"))
        med = statistics.median(samples)
        print(f"{label:<11} {med:>9.2f} {med / abs(b - a):>13.2f} {min(samples):>7.2f} {max(samples):>7.2f}")
    print(f"heal a member that lost its volume (remove, re-add as learner, restart, promote): median "
          f"{statistics.median(heals):.2f} s, min {min(heals):.2f} s, max {max(heals):.2f} s")  # fmt: skip
    print(f"refused attempts retried per walk (etcd 'unhealthy cluster' / learner not in sync): {retries}")
    print(f"acknowledged writes per walk: {writes}; lost: {lost}")


if __name__ == "__main__":
    main()
