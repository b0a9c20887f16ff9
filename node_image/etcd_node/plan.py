"""From what a member was asked to be and what is true around it to etcd's final argv: pure.

The agent works in three steps: `preflight.gather` reads the world (the data
dir, the live member list, DNS, the discovery registry, etcd's version, the
certificate files) into one `Facts`; `decide(options, facts)` makes every
decision from those two values alone; `cli` reports, moves a stale data dir
aside if told to, and execs. Because nothing here touches the network or the
disk, each row of the README's "data dir × member list" table, and each
clustering-guide case, is a unit test.

The decision is made in the order a member meets it:

1. membership: restart from the data dir, bootstrap, or join a running cluster
   (in a pod the live member list tells a lost volume or a removed-and-re-added
   member from a normal start; joining builds `--initial-cluster` from it);
2. the flag checks, then the bootstrap source's own checks (SRV records, the
   discovery registry), then the certificates.

`wanted()` tells the I/O layer which facts step 2 will use, so it reads nothing
the decision ignores (no DNS query for a member whose URLs need none).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from . import checks, datadir, discovery, join
from .findings import Finding, error, warning
from .flags import FlagError, render, split_list, truthy
from .httpjson import TLSClient
from .urls import UrlError, is_ip, parse_urls

if TYPE_CHECKING:
    from .discovery import DiscoveryState
    from .srv import SrvAnswer
    from .tls import LoadedCert

# Waiting for the member list: a pod's check treats silence as "the cluster is being created", so it
# must not hold a bootstrap up for long; a join cannot go on without the list, so it waits longer.
POD_CHECK_TIMEOUT = 2.0
JOIN_TIMEOUT = 5.0
ID_MISMATCH_GRACE = 10.0
# Flags that point etcd at a way to bootstrap; a member that joins a running cluster uses none of them.
_BOOTSTRAP_FLAGS = ("initial-cluster", "discovery-srv", "discovery-srv-name", "discovery")
_DISCOVERY_FLAGS = ("discovery", "discovery-endpoints", "discovery-token")  # v2 and v3 discovery services


@dataclass(frozen=True)
class Options:
    """What the member was asked to be: etcd's options and the agent's own."""

    etcd: Mapping[str, str]  # flags, then ETCD_* variables, then what the pod identity implies
    etcd_bin: str = "etcd"
    in_pod: bool = False
    dry_run: bool = False
    join_endpoints: tuple[str, ...] = ()
    join_tls: TLSClient = TLSClient()
    id_mismatch_grace: float = ID_MISMATCH_GRACE

    @classmethod
    def from_args(
        cls, etcd: Mapping[str, str], agent: Mapping[str, str], etcd_bin: str, in_pod: bool = False
    ) -> Options:
        """The agent's flags read into types; raises FlagError for a value etcd-node cannot use."""
        return cls(
            etcd=dict(etcd),
            etcd_bin=etcd_bin,
            in_pod=in_pod,
            dry_run=truthy(agent.get("dry-run")),
            join_endpoints=tuple(split_list(agent.get("join-endpoints"))),
            # The member-list call defaults to the member's own client TLS files: its CA signs the servers.
            join_tls=TLSClient(
                ca_file=agent.get("join-ca-file") or etcd.get("trusted-ca-file", ""),
                cert_file=agent.get("join-cert-file") or etcd.get("cert-file", ""),
                key_file=agent.get("join-key-file") or etcd.get("key-file", ""),
            ),
            id_mismatch_grace=_seconds("id-mismatch-grace", agent.get("id-mismatch-grace"), ID_MISMATCH_GRACE),
        )


def _seconds(flag: str, raw: str | None, default: float) -> float:
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw.strip().removesuffix("s"))
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        raise FlagError(f"--{flag}={raw!r}: give a number of seconds, e.g. --{flag}=10")
    return value


@dataclass(frozen=True)
class Facts:
    """Everything the decision reads from the world, read once before it is made."""

    now: datetime
    member_data: bool = False  # a WAL exists: etcd restarts from the data dir and ignores bootstrap flags
    members: tuple[join.Member, ...] | None = None  # the live member list; None: not asked, or nobody answered
    members_failure: str = ""  # why nobody answered
    addresses: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # host name -> its A/AAAA addresses
    srv: SrvAnswer | None = None
    discovery_v2: DiscoveryState | None = None
    discovery_v3: DiscoveryState | None = None
    etcd_version: tuple[int, int, int] | None = None
    certificates: tuple[LoadedCert, ...] = ()


@dataclass(frozen=True)
class Plan:
    """The decision: etcd's argv and what was found on the way, plus what to do to the data dir first."""

    argv: list[str]
    findings: list[Finding]
    options: dict[str, str]  # etcd's final options (argv[1:] as a mapping)
    restarting: bool  # etcd starts from data this member already had
    set_aside: Path | None = None  # a removed incarnation's data dir, to be moved here before exec


@dataclass(frozen=True)
class Membership:
    options: dict[str, str]
    restarting: bool
    set_aside: Path | None
    findings: list[Finding]


@dataclass(frozen=True)
class Wanted:
    """The facts past the member list that the checks for these options read."""

    hosts: tuple[str, ...] = ()
    srv: tuple[str, str] | None = None  # (domain, --discovery-srv-name)
    discovery_v2: tuple[str, str] | None = None  # (URL, proxy)
    discovery_v3: Mapping[str, str] | None = None  # the options fetch_v3 reads
    etcd_version: bool = False
    certificates: bool = False


def etcd_args(options: Options, facts: Facts) -> tuple[list[str], list[Finding]]:
    """etcd's argv (the binary first) and the findings; any error finding means: do not start."""
    decided = decide(options, facts)
    return decided.argv, decided.findings


def decide(options: Options, facts: Facts) -> Plan:
    step = membership(options, facts)
    opts, restarting = step.options, step.restarting
    findings = list(step.findings)
    findings += checks.check_flags(opts, restarting, lambda host: facts.addresses.get(host, ()))
    if not restarting:
        findings += _bootstrap_source_checks(opts, options.etcd_bin, facts)
    findings += _certificate_checks(opts, facts)
    return Plan([options.etcd_bin, *render(opts)], findings, opts, restarting, step.set_aside)


def member_list_timeout(options: Options, member_data: bool) -> float | None:
    """How long to wait for the live member list, or None when the decision does not read it."""
    if not options.join_endpoints:
        return None
    if _joins_by_flags(options.etcd, member_data):
        return JOIN_TIMEOUT
    if options.in_pod and (member_data or options.etcd.get("initial-cluster-state", "new") == "new"):
        return POD_CHECK_TIMEOUT
    return None


def membership(options: Options, facts: Facts) -> Membership:
    """Restart, bootstrap or join; in a pod, the member list decides which (README: data dir × member list)."""
    opts = dict(options.etcd)
    name, advertised = checks.name_of(opts), split_list(opts.get("initial-advertise-peer-urls"))
    members = facts.members if options.join_endpoints else None
    findings: list[Finding] = []
    restarting, set_aside = facts.member_data, None
    if options.in_pod and restarting:
        state, findings = join.restart_state(name, advertised, members)
        if state == "stale":
            # Never delete data: the old incarnation's files are kept next to the fresh data dir.
            restarting, set_aside = False, datadir.aside_path(opts, facts.now)
            findings.append(
                warning(
                    "StaleDataSetAside",
                    f"{name} was re-added to the cluster as a new member; the previous member's data "
                    f"{'would be' if options.dry_run else 'was'} moved to {set_aside} and the member joins "
                    "with a fresh data dir",
                    f"delete {set_aside} once you no longer need it",
                )
            )
    if options.in_pod and not restarting and options.join_endpoints and opts.get("initial-cluster-state", "new") == "new":
        state, found = join.bootstrap_state(name, advertised, members)
        findings += found
        if state == "existing":
            opts["initial-cluster-state"] = "existing"
            for flag in _BOOTSTRAP_FLAGS:
                opts.pop(flag, None)
    if _joins_by_flags(opts, restarting):
        # The live member list is where a joining member learns its cluster: a discovery service the pod
        # template names for the initial members would be a second bootstrap source, which etcd refuses.
        for flag in _DISCOVERY_FLAGS:
            opts.pop(flag, None)
        findings += _join(opts, options, facts)
    return Membership(opts, restarting, set_aside, findings)


def _joins_by_flags(opts: Mapping[str, str], restarting: bool) -> bool:
    """Joining a running cluster without --initial-cluster: etcd-node builds it from the member list."""
    return not restarting and opts.get("initial-cluster-state") == "existing" and not opts.get("initial-cluster")


def _join(opts: dict[str, str], options: Options, facts: Facts) -> list[Finding]:
    endpoints = ",".join(options.join_endpoints)
    if not endpoints:
        return [
            error(
                "JoinEndpointsMissing",
                "--initial-cluster-state existing needs --initial-cluster, or --join-endpoints so etcd-node can "
                "build it from the live member list",
                "give --join-endpoints=http://10.0.1.10:2379 (any running member's client URL)",
            )
        ]
    if facts.members is None:
        return [
            error(
                "JoinEndpointsUnreachable",
                f"cannot read the member list from --join-endpoints {endpoints}: "
                f"{facts.members_failure or 'no member answered'}",
                "check that the cluster is up and reachable from here, and the client certificate it needs "
                "(--join-cert-file, --join-key-file, --join-ca-file)",
            )
        ]
    advertised = split_list(opts.get("initial-advertise-peer-urls"))
    initial, findings = join.initial_cluster(checks.name_of(opts), advertised, facts.members)
    if initial:
        opts["initial-cluster"] = initial
    return findings


def wanted(options: Options, facts: Facts) -> Wanted:
    """Which facts `decide` reads beyond the data dir and the member list (those settle membership first)."""
    step = membership(options, facts)
    opts, restarting = step.options, step.restarting
    hosts = checks.names_to_resolve(opts, restarting)
    srv_lookup = v2 = v3 = None
    if not restarting and opts.get("discovery-srv"):
        srv_lookup = (opts["discovery-srv"], opts.get("discovery-srv-name", ""))
        hosts += [h for h in _advertised_peer_hosts(opts) if not is_ip(h)]
    if not restarting and opts.get("discovery"):
        v2 = (opts["discovery"], opts.get("discovery-proxy", ""))
    uses_v3 = not restarting and bool(opts.get("discovery-endpoints")) and bool(opts.get("discovery-token"))
    if uses_v3:
        v3 = opts
    return Wanted(
        hosts=tuple(dict.fromkeys(hosts)),
        srv=srv_lookup,
        discovery_v2=v2,
        discovery_v3=v3,
        etcd_version=uses_v3,
        certificates=any(opts.get(f"{prefix}cert-file") for prefix in ("", "peer-")),
    )


def v3_discovery_supported(version: tuple[int, int, int] | None) -> bool:
    """v3 discovery arrived in etcd 3.6; an unknown version gets the benefit of the doubt."""
    return version is None or version >= (3, 6, 0)


def _bootstrap_source_checks(opts: Mapping[str, str], etcd_bin: str, facts: Facts) -> list[Finding]:
    findings: list[Finding] = []
    name, advertised = checks.name_of(opts), split_list(opts.get("initial-advertise-peer-urls"))
    if opts.get("discovery-srv"):
        from . import srv  # dnspython loads only for SRV discovery

        own = {h: facts.addresses.get(h, ()) for h in _advertised_peer_hosts(opts)}
        findings += srv.check(opts, _read(facts.srv, "srv"), own)
    if opts.get("discovery"):
        findings += discovery.check(name, advertised, _read(facts.discovery_v2, "discovery_v2"))
    if opts.get("discovery-endpoints") and opts.get("discovery-token"):
        version = facts.etcd_version
        if version is not None and not v3_discovery_supported(version):
            findings.append(
                error(
                    "DiscoveryV3Unsupported",
                    f"--discovery-endpoints (v3 discovery) needs etcd 3.6 or later; {etcd_bin} is "
                    f"{'.'.join(map(str, version))}",
                    "use etcd >= 3.6, or a v2 --discovery URL with etcd 3.5",
                )
            )
        else:
            findings += discovery.check(name, advertised, _read(facts.discovery_v3, "discovery_v3"))
    return findings


def _certificate_checks(opts: Mapping[str, str], facts: Facts) -> list[Finding]:
    if not facts.certificates:
        return []
    from . import tls  # cryptography loads only when there are certificates to check

    srv_domain = opts.get("discovery-srv") or None
    findings: list[Finding] = []
    for loaded in facts.certificates:
        hosts = tls.hosts_needed(opts, loaded.files.side, srv_domain)
        findings += tls.check(loaded, hosts, facts.now, srv_domain)
    return findings


def _advertised_peer_hosts(opts: Mapping[str, str]) -> Sequence[str]:
    try:
        return [u.host for u in parse_urls(opts.get("initial-advertise-peer-urls"), "initial-advertise-peer-urls")]
    except UrlError:
        return []  # reported by the flag checks


_Fact = TypeVar("_Fact")


def _read(fact: _Fact | None, name: str) -> _Fact:
    """A fact `wanted()` named; missing only when a caller built Facts by hand and forgot it."""
    if fact is None:
        raise ValueError(f"Facts.{name} was not gathered: preflight.gather reads every fact wanted() names")
    return fact
