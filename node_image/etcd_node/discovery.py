"""Discovery-service bootstrap (v2 `--discovery URL`, v3 `--discovery-endpoints` + token).

etcd reports a discovery URL without a size only after contacting it, and a
duplicate name or a full cluster as a terse "discovery failed". Reading the
registry first explains each case with the command that fixes it.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from .findings import Finding, error
from .flags import split_list, truthy
from .httpjson import HTTPError, TLSClient, call


@dataclass(frozen=True)
class Registration:
    """A member that registered itself with the discovery service: `name=peer-url,...`."""

    key: str
    name: str
    peer_urls: tuple[str, ...]


@dataclass(frozen=True)
class DiscoveryState:
    where: str  # what the messages call the service: URL, or endpoints + token
    size_key: str  # where the size lives, for messages
    create_size_hint: str  # the command that creates it
    size: int | None = None
    registered: tuple[Registration, ...] = ()
    failure: str = ""


def parse_registration(key: str, value: str) -> Registration:
    pairs = [item.partition("=") for item in value.split(",") if "=" in item]
    name = pairs[0][0] if pairs else ""
    return Registration(key=key, name=name, peer_urls=tuple(url for _, _, url in pairs))


def fetch_v2(url: str, proxy: str = "") -> DiscoveryState:
    """Read size and registrations from a v2 discovery URL (private etcd or discovery.etcd.io)."""
    url = url.rstrip("/")
    state = DiscoveryState(
        where=url,
        size_key=f"{url}/_config",
        create_size_hint=f"curl -X PUT {url}/_config/size -d value=3",
    )
    try:
        size_answer = call(f"{url}/_config/size", proxy=proxy)
    except HTTPError as exc:
        if exc.status == 404:
            size_answer = None
        else:
            return replace(state, failure=str(exc))
    size = _int((size_answer or {}).get("node", {}).get("value"))
    try:
        listing = call(url, proxy=proxy)
    except HTTPError as exc:
        if exc.status != 404:
            return replace(state, size=size, failure=str(exc))
        listing = {}
    nodes = (listing or {}).get("node", {}).get("nodes", []) or []
    registered = tuple(
        parse_registration(node["key"], node.get("value", ""))
        for node in nodes
        if not node.get("dir") and "value" in node
    )
    return replace(state, size=size, registered=registered)


def v3_endpoint_urls(options: Mapping[str, str]) -> list[str]:
    scheme = "http" if truthy(options.get("discovery-insecure-transport", "true")) else "https"
    return [ep if "://" in ep else f"{scheme}://{ep}" for ep in split_list(options.get("discovery-endpoints"))]


def fetch_v3(options: Mapping[str, str]) -> DiscoveryState:
    """Read size and registrations under `/_etcd/registry/<token>` through the v3 JSON gateway."""
    token = options.get("discovery-token", "")
    endpoints = v3_endpoint_urls(options)
    prefix = f"/_etcd/registry/{token}"
    tls = TLSClient(
        ca_file=options.get("discovery-cacert", ""),
        cert_file=options.get("discovery-cert", ""),
        key_file=options.get("discovery-key", ""),
    )
    state = DiscoveryState(
        where=f"{','.join(endpoints)} (token {token})",
        size_key=f"{prefix}/_config/size",
        create_size_hint=f"etcdctl --endpoints={','.join(endpoints)} put {prefix}/_config/size 3",
    )
    failure = ""
    for endpoint in endpoints:
        try:
            size_kvs = _range(endpoint, f"{prefix}/_config/size", tls)
            members = _range(endpoint, f"{prefix}/members/", tls, prefix=True)
        except HTTPError as exc:
            failure = str(exc)
            continue
        size = _int(size_kvs[0][1]) if size_kvs else None
        return replace(state, size=size, registered=tuple(parse_registration(k, v) for k, v in members))
    return replace(state, failure=failure or "no --discovery-endpoints given")


def _range(endpoint: str, key: str, tls: TLSClient, prefix: bool = False) -> list[tuple[str, str]]:
    body = {"key": _b64(key)}
    if prefix:
        body["range_end"] = _b64(key[:-1] + chr(ord(key[-1]) + 1))
    answer = call(f"{endpoint.rstrip('/')}/v3/kv/range", body, tls=tls)
    return [(_unb64(kv["key"]), _unb64(kv.get("value", ""))) for kv in answer.get("kvs", [])]


def check(name: str, advertised: Sequence[str], state: DiscoveryState) -> list[Finding]:
    """Pure: the size exists, the name is free, and the cluster is not already full."""
    if state.failure:
        return [
            error(
                "DiscoveryUnreachable",
                f"cannot read the discovery service {state.where}: {state.failure}",
                "check the URL and that this host can reach it; behind an HTTP proxy set ETCD_DISCOVERY_PROXY",
            )
        ]
    if state.size is None:
        return [
            error(
                "DiscoverySizeMissing",
                f"error: the cluster doesn’t have a size configuration value in {state.size_key}",
                f"create it before starting the members: {state.create_size_hint} "
                "(or ask the public service for a new URL with /new?size=3)",
            )
        ]
    mine = set(advertised)
    same_name = [r for r in state.registered if r.name == name]
    if any(set(r.peer_urls) != mine for r in same_name):
        other = next(r for r in same_name if set(r.peer_urls) != mine)
        return [
            error(
                "DuplicateMemberName",
                f"discovery: the name {name} is already registered by another member "
                f"({','.join(other.peer_urls)}); discovery would fail due to duplicated names",
                "give every member a different --name (the host name or machine id is a good choice)",
            )
        ]
    if not same_name and len(state.registered) >= state.size:
        return [
            error(
                "DiscoveryFull",
                f"discovery: cluster is full: {len(state.registered)} of {state.size} members already "
                f"registered at {state.where}",
                "use a fresh discovery URL for a new cluster; to grow a running cluster use runtime "
                "reconfiguration (etcdctl member add, then --initial-cluster-state existing)",
            )
        ]
    return []


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode(errors="replace")


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None
