"""`etcd-node gateway`: etcd's TCP gateway in front of a cluster found by a list or by SRV records."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .findings import Finding, error
from .flags import split_list

if TYPE_CHECKING:
    from .srv import SrvAnswer

GATEWAY_FLAGS = ("listen-addr", "retry-delay", "trusted-ca-file", "insecure-discovery")


def strip_scheme(endpoint: str) -> str:
    """The gateway proxies TCP: it wants host:port, whatever the scheme."""
    if "://" in endpoint:
        parts = urlsplit(endpoint)
        return parts.netloc
    return endpoint


def endpoints_from_srv(answer: SrvAnswer) -> list[str]:
    """Client endpoints from `_etcd-client-ssl` / `_etcd-client` records (either may exist)."""
    return [f"{t.host}:{t.port}" for t in (*answer.plain_targets, *answer.tls_targets)]


def gateway_args(options: Mapping[str, str], endpoints: list[str]) -> tuple[list[str], list[Finding]]:
    """Pure: the argv after `etcd` for `etcd gateway start`."""
    if not endpoints:
        return [], [
            error(
                "GatewayNoEndpoints",
                "the gateway has no cluster endpoints",
                "give --endpoints=10.0.1.10:2379,10.0.1.11:2379 or --discovery-srv=example.com "
                "with _etcd-client._tcp SRV records published",
            )
        ]
    args = ["gateway", "start", f"--endpoints={','.join(strip_scheme(e) for e in endpoints)}"]
    args += [f"--{flag}={options[flag]}" for flag in GATEWAY_FLAGS if flag in options]
    unknown = sorted(set(options) - set(GATEWAY_FLAGS) - {"endpoints", "discovery-srv", "discovery-srv-name"})
    if unknown:
        return [], [
            error(
                "GatewayUnknownFlag",
                f"unknown gateway flag(s): {', '.join('--' + f for f in unknown)}",
                "etcd gateway start takes --endpoints, --discovery-srv, --discovery-srv-name, --listen-addr, "
                "--retry-delay, --trusted-ca-file and --insecure-discovery",
            )
        ]
    return args, []


def static_endpoints(options: Mapping[str, str]) -> list[str]:
    return split_list(options.get("endpoints"))
