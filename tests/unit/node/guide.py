"""Commands from etcd's clustering guide, verbatim, as shell text (`etcd` replaced by `etcd-node` in tests)."""

import shlex

STATIC = [
    """etcd --name infra0 --initial-advertise-peer-urls http://10.0.1.10:2380 \\
  --listen-peer-urls http://10.0.1.10:2380 \\
  --listen-client-urls http://10.0.1.10:2379,http://127.0.0.1:2379 \\
  --advertise-client-urls http://10.0.1.10:2379 \\
  --initial-cluster-token etcd-cluster-1 \\
  --initial-cluster infra0=http://10.0.1.10:2380,infra1=http://10.0.1.11:2380,infra2=http://10.0.1.12:2380 \\
  --initial-cluster-state new""",
    """etcd --name infra1 --initial-advertise-peer-urls http://10.0.1.11:2380 \\
  --listen-peer-urls http://10.0.1.11:2380 \\
  --listen-client-urls http://10.0.1.11:2379,http://127.0.0.1:2379 \\
  --advertise-client-urls http://10.0.1.11:2379 \\
  --initial-cluster-token etcd-cluster-1 \\
  --initial-cluster infra0=http://10.0.1.10:2380,infra1=http://10.0.1.11:2380,infra2=http://10.0.1.12:2380 \\
  --initial-cluster-state new""",
    """etcd --name infra2 --initial-advertise-peer-urls http://10.0.1.12:2380 \\
  --listen-peer-urls http://10.0.1.12:2380 \\
  --listen-client-urls http://10.0.1.12:2379,http://127.0.0.1:2379 \\
  --advertise-client-urls http://10.0.1.12:2379 \\
  --initial-cluster-token etcd-cluster-1 \\
  --initial-cluster infra0=http://10.0.1.10:2380,infra1=http://10.0.1.11:2380,infra2=http://10.0.1.12:2380 \\
  --initial-cluster-state new""",
]

TLS_SELF_SIGNED = [
    f"""etcd --name infra{i} --initial-advertise-peer-urls https://10.0.1.1{i}:2380 \\
  --listen-peer-urls https://10.0.1.1{i}:2380 \\
  --listen-client-urls https://10.0.1.1{i}:2379,https://127.0.0.1:2379 \\
  --advertise-client-urls https://10.0.1.1{i}:2379 \\
  --initial-cluster-token etcd-cluster-1 \\
  --initial-cluster infra0=https://10.0.1.10:2380,infra1=https://10.0.1.11:2380,infra2=https://10.0.1.12:2380 \\
  --initial-cluster-state new \\
  --client-cert-auth --trusted-ca-file=/path/to/ca-client.crt \\
  --cert-file=/path/to/infra{i}-client.crt --key-file=/path/to/infra{i}-client.key \\
  --peer-client-cert-auth --peer-trusted-ca-file=ca-peer.crt \\
  --peer-cert-file=/path/to/infra{i}-peer.crt --peer-key-file=/path/to/infra{i}-peer.key"""
    for i in range(3)
]

AUTO_TLS = [
    f"""etcd --name infra{i} --initial-advertise-peer-urls https://10.0.1.1{i}:2380 \\
  --listen-peer-urls https://10.0.1.1{i}:2380 \\
  --listen-client-urls https://10.0.1.1{i}:2379,https://127.0.0.1:2379 \\
  --advertise-client-urls https://10.0.1.1{i}:2379 \\
  --initial-cluster-token etcd-cluster-1 \\
  --initial-cluster infra0=https://10.0.1.10:2380,infra1=https://10.0.1.11:2380,infra2=https://10.0.1.12:2380 \\
  --initial-cluster-state new \\
  --auto-tls \\
  --peer-auto-tls"""
    for i in range(3)
]

NOT_LISTED = """etcd --name infra1 --initial-advertise-peer-urls http://10.0.1.11:2380 \\
  --listen-peer-urls https://10.0.1.11:2380 \\
  --listen-client-urls http://10.0.1.11:2379,http://127.0.0.1:2379 \\
  --advertise-client-urls http://10.0.1.11:2379 \\
  --initial-cluster infra0=http://10.0.1.10:2380 \\
  --initial-cluster-state new"""

URL_MISMATCH = """etcd --name infra0 --initial-advertise-peer-urls http://127.0.0.1:2380 \\
  --listen-peer-urls http://10.0.1.10:2380 \\
  --listen-client-urls http://10.0.1.10:2379,http://127.0.0.1:2379 \\
  --advertise-client-urls http://10.0.1.10:2379 \\
  --initial-cluster infra0=http://10.0.1.10:2380,infra1=http://10.0.1.11:2380,infra2=http://10.0.1.12:2380 \\
  --initial-cluster-state=new"""

CLUSTER_ID_MISMATCH = """etcd --name infra3 --initial-advertise-peer-urls http://10.0.1.13:2380 \\
  --listen-peer-urls http://10.0.1.13:2380 \\
  --listen-client-urls http://10.0.1.13:2379,http://127.0.0.1:2379 \\
  --advertise-client-urls http://10.0.1.13:2379 \\
  --initial-cluster infra0=http://10.0.1.10:2380,infra1=http://10.0.1.11:2380,infra3=http://10.0.1.13:2380 \\
  --initial-cluster-state=new"""

DISCOVERY = [
    f"""etcd --name infra{i} --initial-advertise-peer-urls http://10.0.1.1{i}:2380 \\
  --listen-peer-urls http://10.0.1.1{i}:2380 \\
  --listen-client-urls http://10.0.1.1{i}:2379,http://127.0.0.1:2379 \\
  --advertise-client-urls http://10.0.1.1{i}:2379 \\
  --discovery https://myetcd.local/v2/keys/discovery/6c007a14875d53d9bf0ef5a6fc0257c817f0fb83"""
    for i in range(3)
]

DNS_SRV_NAMES = [
    f"""etcd --name infra{i} \\
--discovery-srv example.com \\
--initial-advertise-peer-urls http://infra{i}.example.com:2380 \\
--initial-cluster-token etcd-cluster-1 \\
--initial-cluster-state new \\
--advertise-client-urls http://infra{i}.example.com:2379 \\
--listen-client-urls http://0.0.0.0:2379 \\
--listen-peer-urls http://0.0.0.0:2380"""
    for i in range(3)
]

DNS_SRV_IPS = [
    f"""etcd --name infra{i} \\
--discovery-srv example.com \\
--initial-advertise-peer-urls http://10.0.1.1{i}:2380 \\
--initial-cluster-token etcd-cluster-1 \\
--initial-cluster-state new \\
--advertise-client-urls http://10.0.1.1{i}:2379 \\
--listen-client-urls http://10.0.1.1{i}:2379 \\
--listen-peer-urls http://10.0.1.1{i}:2380"""
    for i in range(3)
]


def args(command: str) -> list[str]:
    """The flags of a guide command, without the leading `etcd`."""
    words = shlex.split(command.replace("\\\n", " "))
    assert words[0] == "etcd"
    return words[1:]
