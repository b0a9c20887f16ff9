"""Main job (`make demo`): a TLS-secured 3-member etcd cluster bootstrapped by etcd-node.

Rebuilds etcd's clustering-guide topology (infra0..2 at 10.0.1.10-12, DNS for
example.com) in network namespaces, bootstraps it through DNS SRV discovery
with certificates issued on the spot, and shows members, leader and a write.
Until the local Kubernetes cluster lands, this is the product end to end on
plain hosts. `--keep` leaves it running until Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.etcdlab import ClientTLS, EtcdLab, endpoints  # noqa: E402
from tests.integration.netlab import NetLab, require_netlab  # noqa: E402
from tests.support.binaries import bin_dir, versions  # noqa: E402
from tests.support.pki import make_ca, make_cert  # noqa: E402


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep the cluster running until Ctrl-C")
    args = parser.parse_args()
    etcd_dir = bin_dir() / f"etcd-{versions()['ETCD_VERSION']}"
    with NetLab(keep_tmpdir=args.keep) as net:
        lab = EtcdLab(net, etcd_dir)
        say("hosts infra0..2 (10.0.1.10-12) in network namespaces; dnsmasq serves example.com with TLS SRV records")
        hosts = lab.add_guide_hosts(srv="https")
        now = datetime.now(UTC)
        pki = net.tmpdir / "pki"
        ca = make_ca(now, "demo etcd CA")
        ca_file, _ = ca.write(pki, "ca")
        say(f"certificates (CA, one per member with the SRV domain as SAN, a user cert) in {pki}")
        for host in hosts.values():
            cert, key = make_cert(ca, host.name, [host.hostname, "example.com", host.ip], now).write(pki, host.name)
            flags = [
                "--name", host.name, "--discovery-srv", "example.com", "--initial-cluster-token", "demo-cluster",
                "--initial-advertise-peer-urls", f"https://{host.hostname}:2380",
                "--advertise-client-urls", f"https://{host.hostname}:2379",
                "--listen-peer-urls", "https://0.0.0.0:2380", "--listen-client-urls", "https://0.0.0.0:2379",
                f"--cert-file={cert}", f"--key-file={key}", f"--trusted-ca-file={ca_file}", "--client-cert-auth",
                f"--peer-cert-file={cert}", f"--peer-key-file={key}", f"--peer-trusted-ca-file={ca_file}",
                "--peer-client-cert-auth", "--data-dir", str(lab.data_dir(host.name)),
            ]  # fmt: skip
            say(f"{host.name}: etcd-node " + " ".join(flags[:4]) + " ...")
            lab.start(host, flags)
        user_cert, user_key = make_cert(ca, "demo user", [], now).write(pki, "user")
        tls = ClientTLS(str(ca_file), str(user_cert), str(user_key))
        eps = endpoints("https")
        client = hosts["infra0"]
        start = time.perf_counter()
        lab.wait_healthy(client, eps, tls, timeout=90)
        say(f"healthy after {time.perf_counter() - start:.2f}s")
        for title, argv in (
            ("member list", ["member", "list", "-w", "table"]),
            ("endpoint status", ["endpoint", "status", "-w", "table"]),
        ):
            say(title)
            print(lab.etcdctl(client, eps, *argv, tls=tls).stdout, end="", flush=True)
        put = lab.etcdctl(client, eps, "put", "/demo/greeting", "hello from etcd-node", tls=tls)
        got = lab.etcdctl(hosts["infra2"], eps, "get", "/demo/greeting", "--print-value-only", tls=tls)
        say(f"put via infra0: {put.stdout.strip()}; get via infra2: {got.stdout.strip()}")
        if args.keep:
            say(f"running; logs in {net.tmpdir}. Reach it with: ip netns exec {client.ns} "
                f"{etcd_dir}/etcdctl --endpoints={eps} --cacert={ca_file} --cert={user_cert} --key={user_key} "
                "member list   (Ctrl-C stops everything)")  # fmt: skip
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        say("tearing down")
    return 0 if got.stdout.strip() == "hello from etcd-node" else 1


if __name__ == "__main__":
    try:
        require_netlab()
    except BaseException as exc:  # pytest's skip/fail outcomes carry the reason
        print(f"demo needs: {exc}", file=sys.stderr)
        sys.exit(2)
    sys.exit(main())
