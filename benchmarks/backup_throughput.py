"""Benchmark: backup and restore throughput of etcd-node against the plain tools, same store, same machine.

A 3-member TLS cluster on loopback is filled with about 500 MiB (1 MiB values),
then, against a real S3 store (versitygw, TLS) on loopback:

- backup: `etcd-node backup` (member choice, snapshot, etcdutl status, sha256,
  upload with its record) versus the baseline `etcdctl snapshot save` plus a
  boto3 `upload_file` of the same file (the same client library);
- restore: `etcd-node restore` (download, sha256, version check, restore,
  rename) versus boto3 `download_file` plus `etcdutl snapshot restore`.

Prints MB/s of each and the ratio etcd-node / baseline (aim: >= 0.9). Asserts nothing.

    python benchmarks/backup_throughput.py [--mib 500] [--runs 3]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.loopback import LoopbackCluster, LoopbackPKI  # noqa: E402
from tests.support.objectstore import S3Server  # noqa: E402
from tests.support.snapshot_cli import agent, backup_args  # noqa: E402

OPS = ("backup", "backup_base", "restore", "restore_base")


def fill(cluster: LoopbackCluster, mib: int) -> None:
    """mib puts of 1 MiB random values through the gRPC gateway (one TLS connection per put is fine here)."""
    context = ssl.create_default_context(cafile=str(cluster.pki.ca))
    context.load_cert_chain(str(cluster.pki.client_cert), str(cluster.pki.client_key))
    for i in range(mib):
        body = json.dumps({"key": base64.b64encode(f"/bench/{i:05d}".encode()).decode(),
                           "value": base64.b64encode(os.urandom(1 << 20)).decode()}).encode()  # fmt: skip
        request = urllib.request.Request(f"{cluster.endpoints[i % 3]}/v3/kv/put", data=body, method="POST")
        with urllib.request.urlopen(request, context=context, timeout=60) as response:
            response.read()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed: {done.stderr[-1500:]}")


@dataclass
class Bench:
    work: Path
    cluster: LoopbackCluster
    store: S3Server
    results: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in OPS})

    def one_run(self, run_no: int) -> int:
        """One backup and restore each way; returns the snapshot's size."""
        cluster, store, client = self.cluster, self.store, self.store.client()
        etcdctl, etcdutl = str(cluster.bin_dir / "etcdctl"), str(cluster.bin_dir / "etcdutl")
        env = {**os.environ, **store.env(), "PATH": f"{cluster.bin_dir}:{os.environ['PATH']}"}
        scratch = self.work / f"scratch-{run_no}"
        scratch.mkdir()
        base_file, fetched = scratch / "base.db", scratch / "fetched.db"
        member = [f"--initial-cluster=m0={cluster.peer_url(0)}", f"--initial-advertise-peer-urls={cluster.peer_url(0)}"]

        def baseline_backup() -> None:
            run([etcdctl, f"--endpoints={cluster.endpoints[1]}", *cluster.pki.etcdctl_flags(), "snapshot", "save",
                 str(base_file)])  # fmt: skip
            client.upload_file(str(base_file), "bench", f"base-{run_no}.db")

        def ours_backup() -> None:
            done, _ = agent("backup", [*backup_args(cluster, scratch / "ours"), *store.flags("bench", f"ours-{run_no}.db")],
                            self.work, env=store.env())  # fmt: skip
            if done.returncode != 0:
                raise SystemExit(done.stderr[-1500:])

        def baseline_restore() -> None:
            client.download_file("bench", f"base-{run_no}.db", str(fetched))
            run([etcdutl, "snapshot", "restore", str(fetched), f"--data-dir={scratch / 'base-data'}", "--name=m0", *member])

        def ours_restore() -> None:
            run([sys.executable, "-m", "etcd_node", "restore", f"--data-dir={scratch / 'ours-data'}", "--name=m0", *member,
                 "--initial-cluster-token=bench-restore", *store.flags("bench", f"ours-{run_no}.db")], env=env)  # fmt: skip

        self.results["backup_base"].append(timed(baseline_backup))
        size = base_file.stat().st_size
        self.results["backup"].append(timed(ours_backup))
        self.results["restore_base"].append(timed(baseline_restore))
        self.results["restore"].append(timed(ours_restore))
        shutil.rmtree(scratch)
        return size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="backup-bench-"))
    pki = LoopbackPKI.make(work / "pki")
    cluster = LoopbackCluster(work / "cluster", pki, token="bench",
                              extra_flags=("--quota-backend-bytes=4294967296",)).start_all()  # fmt: skip
    store = S3Server(work / "s3", tls=True).start()
    store.bucket("bench")
    try:
        started = time.perf_counter()
        fill(cluster, args.mib)
        print(f"filled {args.mib} MiB in {time.perf_counter() - started:.1f}s")
        bench = Bench(work, cluster, store)
        size = max(bench.one_run(n) for n in range(args.runs))
        mb = size / 1e6
        print(f"snapshot size: {mb:.0f} MB; {args.runs} runs each, median")
        for op in ("backup", "restore"):
            ours, base = statistics.median(bench.results[op]), statistics.median(bench.results[f"{op}_base"])
            print(f"{op:8s} etcd-node {mb / ours:7.1f} MB/s ({ours:5.2f}s)   baseline {mb / base:7.1f} MB/s "
                  f"({base:5.2f}s)   ratio {base / ours:.2f}")  # fmt: skip
    finally:
        store.stop()
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
