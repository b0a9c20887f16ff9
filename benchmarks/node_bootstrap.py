"""Benchmark: the node agent's own overhead, and time to a healthy 3-member cluster per bootstrap mode.

Prints figures; asserts nothing. Needs root (network namespaces), dnsmasq and
the pinned etcd builds (`make etcd`). Run: `make bench`.

    python benchmarks/node_bootstrap.py [--runs N] [--overhead-runs N]
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.etcdlab import GUIDE_IPS, ClientTLS, EtcdLab, endpoints, guide_static_flags  # noqa: E402
from tests.integration.netlab import NetLab, wait_until  # noqa: E402
from tests.support.binaries import bin_dir, versions  # noqa: E402
from tests.support.pki import make_ca, make_cert  # noqa: E402

Mode = Callable[[EtcdLab], tuple[str, ClientTLS | None]]


def overhead_ms(runs: int, extra: list[str]) -> list[float]:
    """Wall time of `etcd-node ... --etcd-bin /bin/true` minus `/bin/true` alone: start to exec."""
    argv = [sys.executable, "-m", "etcd_node", *guide_static_flags(0), *extra, "--etcd-bin", "/bin/true"]
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        agent = time.perf_counter() - start
        start = time.perf_counter()
        subprocess.run(["/bin/true"], check=True)
        samples.append((agent - (time.perf_counter() - start)) * 1000)
    return samples


def static(lab: EtcdLab) -> tuple[str, ClientTLS | None]:
    for i, host in enumerate(lab.add_guide_hosts(srv=None).values()):
        lab.start(host, guide_static_flags(i, data_dir=lab.data_dir(host.name)))
    return endpoints(), None


def static_tls(lab: EtcdLab) -> tuple[str, ClientTLS | None]:
    now = datetime.now(UTC)
    ca = make_ca(now)
    certs = lab.net.tmpdir / "pki"
    ca_file, _ = ca.write(certs, "ca")
    for i, host in enumerate(lab.add_guide_hosts(srv=None).values()):
        cert, key = make_cert(ca, host.name, [host.ip, "127.0.0.1"], now).write(certs, host.name)
        tls = [f"--cert-file={cert}", f"--key-file={key}", f"--trusted-ca-file={ca_file}", "--client-cert-auth",
               f"--peer-cert-file={cert}", f"--peer-key-file={key}", f"--peer-trusted-ca-file={ca_file}",
               "--peer-client-cert-auth"]  # fmt: skip
        lab.start(host, [*guide_static_flags(i, "https", lab.data_dir(host.name)), *tls])
    user = make_cert(ca, "user", [], now).write(certs, "user")
    return endpoints("https"), ClientTLS(str(ca_file), str(user[0]), str(user[1]))


def auto_tls(lab: EtcdLab) -> tuple[str, ClientTLS | None]:
    for i, host in enumerate(lab.add_guide_hosts(srv=None).values()):
        lab.start(host, [*guide_static_flags(i, "https", lab.data_dir(host.name)), "--auto-tls", "--peer-auto-tls"])
    return endpoints("https"), ClientTLS(insecure_skip_verify=True)


def dns_srv(lab: EtcdLab) -> tuple[str, ClientTLS | None]:
    for host in lab.add_guide_hosts(srv="http").values():
        lab.start(host, [
            "--name", host.name, "--discovery-srv", "example.com",
            "--initial-advertise-peer-urls", f"http://{host.hostname}:2380", "--initial-cluster-token", "bench",
            "--advertise-client-urls", f"http://{host.hostname}:2379",
            "--listen-client-urls", "http://0.0.0.0:2379", "--listen-peer-urls", "http://0.0.0.0:2380",
            "--data-dir", str(lab.data_dir(host.name)),
        ])  # fmt: skip
    return endpoints(), None


def v3_discovery(lab: EtcdLab) -> tuple[str, ClientTLS | None]:
    disco = lab.net.add_host("disco", "10.0.1.9")
    disco.spawn([lab.etcd, "--name", "disco", "--data-dir", str(lab.data_dir("disco")),
                 "--listen-client-urls", "http://10.0.1.9:2379", "--advertise-client-urls", "http://10.0.1.9:2379",
                 "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls",
                 "http://127.0.0.1:2380", "--initial-cluster", "disco=http://127.0.0.1:2380"], env=lab.env())  # fmt: skip
    token = secrets.token_hex(8)
    wait_until(lambda: lab.etcdctl(disco, "http://10.0.1.9:2379", "put", f"/_etcd/registry/{token}/_config/size",
                                   "3").returncode == 0, 30)  # fmt: skip
    for _i, host in enumerate(lab.add_guide_hosts(srv=None).values()):
        ip = GUIDE_IPS[host.name]
        lab.start(host, [
            "--name", host.name, "--initial-advertise-peer-urls", f"http://{ip}:2380",
            "--listen-peer-urls", f"http://{ip}:2380", "--listen-client-urls", f"http://{ip}:2379",
            "--advertise-client-urls", f"http://{ip}:2379", "--discovery-endpoints", "http://10.0.1.9:2379",
            "--discovery-token", token, "--data-dir", str(lab.data_dir(host.name)),
        ])  # fmt: skip
    return endpoints(), None


MODES: dict[str, Mode] = {
    "static": static,
    "static+TLS": static_tls,
    "auto-TLS": auto_tls,
    "dns-srv": dns_srv,
    "v3-discovery": v3_discovery,
}


def healthy_after(mode: Mode, etcd_dir: Path) -> float:
    with NetLab() as net:
        lab = EtcdLab(net, etcd_dir)
        start = time.perf_counter()
        eps, tls = mode(lab)
        client = lab.hosts["infra0"]

        def healthy() -> bool:
            result = lab.etcdctl(client, eps, "endpoint", "health", tls=tls)
            return result.returncode == 0 and result.stdout.count("is healthy") + result.stderr.count("is healthy") >= 3

        wait_until(healthy, 90, interval=0.05, message="cluster never became healthy")
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--overhead-runs", type=int, default=20)
    args = parser.parse_args()
    etcd_dir = bin_dir() / f"etcd-{versions()['ETCD_VERSION']}"
    print(f"etcd {versions()['ETCD_VERSION']} from {etcd_dir}; {args.runs} runs per mode")
    for label, extra in (("static flags", []), ("auto TLS flags", ["--auto-tls", "--peer-auto-tls"])):
        samples = overhead_ms(args.overhead_runs, extra)
        print(f"agent overhead, start to exec ({label}): median {statistics.median(samples):.1f} ms, "
              f"min {min(samples):.1f} ms, max {max(samples):.1f} ms over {len(samples)} runs")  # fmt: skip
    print(f"{'mode':<14} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, mode in MODES.items():
        samples = [healthy_after(mode, etcd_dir) for _ in range(args.runs)]
        print(f"{name:<14} {statistics.median(samples):>9.2f} {min(samples):>7.2f} {max(samples):>7.2f}")


if __name__ == "__main__":
    main()
