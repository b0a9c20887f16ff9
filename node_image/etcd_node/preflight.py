"""Gather what the checks need (data dir, DNS, discovery registry, member list, certificate files).

This is the agent's only I/O before exec; every decision is made by the pure
modules it calls, so each can be tested without a network.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from . import checks, datadir, discovery, join
from .findings import Finding, error, warning
from .flags import split_list
from .httpjson import HTTPError, TLSClient
from .urls import UrlError, parse_urls


@dataclass
class Plan:
    """Final etcd options and everything the checks found on the way."""

    options: dict[str, str]
    findings: list[Finding] = field(default_factory=list)
    restarting: bool = False


def etcd_version(etcd_bin: str) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run([etcd_bin, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"etcd Version: (\d+)\.(\d+)\.(\d+)", out)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def prepare(
    options: dict[str, str],
    agent: Mapping[str, str],
    etcd_bin: str,
    now: datetime,
    in_pod: bool = False,
    dry_run: bool = False,
) -> Plan:
    plan = Plan(options=dict(options), restarting=datadir.has_member_data(options))
    opts = plan.options
    if in_pod and plan.restarting:
        stale, findings = _pod_restart_state(opts, agent, now, dry_run)
        plan.findings += findings
        plan.restarting = not stale
    if in_pod and not plan.restarting and opts.get("initial-cluster-state", "new") == "new":
        plan.findings += _pod_bootstrap_state(opts, agent)
    if not plan.restarting and opts.get("initial-cluster-state") == "existing" and not opts.get("initial-cluster"):
        plan.findings += _join(opts, agent)
    resolver_cache: dict[str, list[str]] = {}

    def resolve(host: str) -> list[str]:
        from . import srv  # dnspython loads only when a name must be resolved

        if host not in resolver_cache:
            resolver_cache[host] = srv.resolve_host(host)
        return resolver_cache[host]

    plan.findings += checks.check_flags(opts, plan.restarting, resolve)
    srv_domain = opts.get("discovery-srv") or None
    if not plan.restarting:
        plan.findings += _bootstrap_sources(opts, etcd_bin, resolve)
    sides = _tls_sides(opts)
    if sides:
        from . import tls  # cryptography loads only when there are certificates to check

    for side in sides:
        hosts = tls.hosts_needed(opts, side.side, srv_domain)
        plan.findings += tls.check(tls.load(side), hosts, now, srv_domain)
    return plan


def _tls_sides(opts: Mapping[str, str]) -> list:
    if not any(opts.get(f"{prefix}cert-file") for prefix in ("", "peer-")):
        return []
    from . import tls

    return tls.configured_sides(opts)


def _pod_members(opts: Mapping[str, str], agent: Mapping[str, str]) -> list[join.Member] | None:
    """The live member list through the client Service, or None when nobody answers (quickly)."""
    endpoints = split_list(agent.get("join-endpoints"))
    if not endpoints:
        return None
    try:
        return join.member_list(endpoints, _join_tls(opts, agent), timeout=2.0)
    except HTTPError:
        return None


def _pod_restart_state(
    opts: dict[str, str], agent: Mapping[str, str], now: datetime, dry_run: bool
) -> tuple[bool, list[Finding]]:
    """A pod's volume holds a member: is it still this member, or a removed incarnation's leftovers?"""
    members = _pod_members(opts, agent)
    state, findings = join.restart_state(
        checks.name_of(opts), split_list(opts.get("initial-advertise-peer-urls")), members
    )
    if state != "stale":
        return False, findings
    # Never delete data: the old incarnation's files are kept next to the fresh data dir (not in a dry run).
    kept = datadir.aside_path(opts, now) if dry_run else datadir.set_aside(opts, now)
    findings.append(
        warning(
            "StaleDataSetAside",
            f"{checks.name_of(opts)} was re-added to the cluster as a new member; the previous member's data "
            f"{'would be' if dry_run else 'was'} moved to {kept} and the member joins with a fresh data dir",
            f"delete {kept} once you no longer need it",
        )
    )
    return True, findings


def _pod_bootstrap_state(opts: dict[str, str], agent: Mapping[str, str]) -> list[Finding]:
    """An initial member's pod with an empty volume: new cluster, or rejoin a running one?"""
    if not split_list(agent.get("join-endpoints")):
        return []
    members = _pod_members(opts, agent)  # None: nobody answers yet, the cluster is being bootstrapped
    state, findings = join.bootstrap_state(
        checks.name_of(opts), split_list(opts.get("initial-advertise-peer-urls")), members
    )
    if state == "existing":
        opts["initial-cluster-state"] = "existing"
        for flag in ("initial-cluster", "discovery-srv", "discovery-srv-name", "discovery"):
            opts.pop(flag, None)
        return findings + _join(opts, agent)
    return findings


def _join_tls(opts: Mapping[str, str], agent: Mapping[str, str]) -> TLSClient:
    return TLSClient(
        ca_file=agent.get("join-ca-file") or opts.get("trusted-ca-file", ""),
        cert_file=agent.get("join-cert-file") or opts.get("cert-file", ""),
        key_file=agent.get("join-key-file") or opts.get("key-file", ""),
    )


def _join(opts: dict[str, str], agent: Mapping[str, str]) -> list[Finding]:
    endpoints = split_list(agent.get("join-endpoints"))
    if not endpoints:
        return [
            error(
                "JoinEndpointsMissing",
                "--initial-cluster-state existing needs --initial-cluster, or --join-endpoints so etcd-node can "
                "build it from the live member list",
                "give --join-endpoints=http://10.0.1.10:2379 (any running member's client URL)",
            )
        ]
    try:
        members = join.member_list(endpoints, _join_tls(opts, agent))
    except HTTPError as exc:
        return [
            error(
                "JoinEndpointsUnreachable",
                f"cannot read the member list from --join-endpoints {','.join(endpoints)}: {exc}",
                "check that the cluster is up and reachable from here, and the client certificate it needs",
            )
        ]
    advertised = split_list(opts.get("initial-advertise-peer-urls"))
    initial, findings = join.initial_cluster(checks.name_of(opts), advertised, members)
    if initial:
        opts["initial-cluster"] = initial
    return findings


def _bootstrap_sources(opts: dict[str, str], etcd_bin: str, resolve: checks.Resolve) -> list[Finding]:
    findings: list[Finding] = []
    name = checks.name_of(opts)
    advertised = split_list(opts.get("initial-advertise-peer-urls"))
    if opts.get("discovery-srv"):
        from . import srv

        answer = srv.lookup(opts["discovery-srv"], opts.get("discovery-srv-name", ""))
        try:
            hosts = [u.host for u in parse_urls(opts.get("initial-advertise-peer-urls"), "initial-advertise-peer-urls")]
        except UrlError:
            hosts = []
        own = {h: resolve(h) for h in hosts}
        findings += srv.check(opts, answer, own)
    if opts.get("discovery"):
        proxy = opts.get("discovery-proxy", "")
        findings += discovery.check(name, advertised, discovery.fetch_v2(opts["discovery"], proxy))
    if opts.get("discovery-endpoints") and opts.get("discovery-token"):
        version = etcd_version(etcd_bin)
        if version is not None and version < (3, 6, 0):
            findings.append(
                error(
                    "DiscoveryV3Unsupported",
                    f"--discovery-endpoints (v3 discovery) needs etcd 3.6 or later; {etcd_bin} is "
                    f"{'.'.join(map(str, version))}",
                    "use etcd >= 3.6, or a v2 --discovery URL with etcd 3.5",
                )
            )
        else:
            findings += discovery.check(name, advertised, discovery.fetch_v3(opts))
    return findings
