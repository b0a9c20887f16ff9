"""Pure pre-start checks on etcd's flags: the clustering guide's error cases, caught early.

etcd reports most of these only after it has started (or, for a cluster-ID
mismatch, never exits at all). Checking first gives one clear line that names
the flag and the fix, and leaves the data dir untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from .findings import Finding, error, warning
from .flags import truthy
from .urls import Url, UrlError, cluster_map, parse_initial_cluster, parse_urls

# Resolve a host name to its addresses; injected so the checks stay pure.
Resolve = Callable[[str], Sequence[str]]

BOOTSTRAP_SOURCES = ("initial-cluster", "discovery", "discovery-endpoints", "discovery-srv")
# Flags etcd reads only while bootstrapping a fresh data dir.
BOOTSTRAP_ONLY = (
    "initial-cluster",
    "initial-cluster-state",
    "initial-cluster-token",
    "discovery",
    "discovery-token",
    "discovery-endpoints",
    "discovery-srv",
    "discovery-srv-name",
)
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
_URL_FLAGS = ("listen-peer-urls", "listen-client-urls", "initial-advertise-peer-urls", "advertise-client-urls")


def name_of(options: Mapping[str, str]) -> str:
    return options.get("name", "default")


def bootstrap_sources(options: Mapping[str, str]) -> list[str]:
    return [flag for flag in BOOTSTRAP_SOURCES if options.get(flag)]


def parsed_urls(options: Mapping[str, str]) -> tuple[dict[str, list[Url]], list[Finding]]:
    urls: dict[str, list[Url]] = {}
    problems: list[Finding] = []
    for flag in _URL_FLAGS:
        try:
            urls[flag] = parse_urls(options.get(flag), flag)
        except UrlError as exc:
            problems.append(error("InvalidURL", str(exc), f"correct --{flag}"))
    return urls, problems


def check_flags(options: Mapping[str, str], data_dir_initialized: bool, resolve: Resolve) -> list[Finding]:
    """Every flag-only check, in the order a person would want to fix them."""
    urls, findings = parsed_urls(options)
    findings += check_listen_urls(urls)
    findings += check_advertise_client_urls(options, urls)
    findings += check_tls_flags(options, urls)
    if data_dir_initialized:
        findings += check_restart(options)
        return findings
    findings += check_bootstrap_choice(options)
    if _checks_initial_cluster(options):
        findings += check_initial_cluster(options, urls.get("initial-advertise-peer-urls", []), resolve)
    return findings


def names_to_resolve(options: Mapping[str, str], data_dir_initialized: bool) -> list[str]:
    """The host names `check_flags` will ask `resolve` for, so the caller can look them up beforehand.

    Only a member whose advertised peer URLs differ in spelling from its
    `--initial-cluster` entry is compared by address (as etcd does); every other
    start needs no DNS at all.
    """
    if data_dir_initialized or not _checks_initial_cluster(options):
        return []
    urls, _ = parsed_urls(options)
    advertised = urls.get("initial-advertise-peer-urls", [])
    listed = _own_entry(options, advertised)
    if not advertised or not listed or sorted(set(listed)) == sorted(set(advertised)):
        return []
    return list(dict.fromkeys(u.host for u in [*listed, *advertised] if not u.is_ip))


def _checks_initial_cluster(options: Mapping[str, str]) -> bool:
    return not bootstrap_sources(options) or bool(options.get("initial-cluster"))


def _initial_cluster_raw(options: Mapping[str, str], advertised: Sequence[Url]) -> str:
    """`--initial-cluster`, or etcd's default for it: NAME=the advertised peer URLs."""
    name = name_of(options)
    return options.get("initial-cluster") or f"{name}={','.join(map(str, advertised)) or 'http://localhost:2380'}"


def _own_entry(options: Mapping[str, str], advertised: Sequence[Url]) -> list[Url] | None:
    try:
        entries = parse_initial_cluster(_initial_cluster_raw(options, advertised))
    except UrlError:
        return None
    return cluster_map(entries).get(name_of(options))


def check_listen_urls(urls: Mapping[str, list[Url]]) -> list[Finding]:
    found = []
    for flag in ("listen-peer-urls", "listen-client-urls"):
        for url in urls.get(flag, []):
            if not url.is_ip and url.host != "localhost" and not url.scheme.startswith("unix"):
                port = url.port
                found.append(
                    error(
                        "DomainInListenURL",
                        f"--{flag} {url}: etcd binds listen URLs to an IP address and rejects a domain name "
                        f"({url.host!r}) since 3.2",
                        f"listen on the interface's IP address or on all of them ({url.scheme}://0.0.0.0:{port}); "
                        "keep the domain name in the advertise URLs",
                    )
                )
    return found


def check_advertise_client_urls(options: Mapping[str, str], urls: Mapping[str, list[Url]]) -> list[Finding]:
    advertised = urls.get("advertise-client-urls", [])
    listening = urls.get("listen-client-urls", [])
    if not options.get("advertise-client-urls"):
        if options.get("listen-client-urls") and any(u.host not in _LOCAL_HOSTS for u in listening):
            return [
                error(
                    "AdvertiseClientURLsMissing",
                    "--advertise-client-urls is required when --listen-client-urls is set explicitly",
                    "set --advertise-client-urls to the URLs clients use to reach this member, "
                    "e.g. http://10.0.1.10:2379",
                )
            ]
        return []
    if advertised and all(u.host in _LOCAL_HOSTS for u in advertised):
        return [
            warning(
                "AdvertiseClientURLsLocalhost",
                f"--advertise-client-urls {options['advertise-client-urls']} names only localhost: "
                "remote clients, proxies and other members will be told to connect to themselves "
                "(the clustering guide's 'common mistake')",
                "advertise an address clients can reach, e.g. http://10.0.1.10:2379",
            )
        ]
    return []


def check_tls_flags(options: Mapping[str, str], urls: Mapping[str, list[Url]]) -> list[Finding]:
    findings: list[Finding] = []
    for side, prefix, url_flags in (
        ("client", "", ("listen-client-urls", "advertise-client-urls")),
        ("peer", "peer-", ("listen-peer-urls", "initial-advertise-peer-urls")),
    ):
        https = [str(u) for flag in url_flags for u in urls.get(flag, []) if u.is_tls]
        has_files = bool(options.get(f"{prefix}cert-file")) and bool(options.get(f"{prefix}key-file"))
        auto = truthy(options.get(f"{prefix}auto-tls"))
        if bool(options.get(f"{prefix}cert-file")) != bool(options.get(f"{prefix}key-file")):
            findings.append(
                error(
                    "TLSPairIncomplete",
                    f"--{prefix}cert-file and --{prefix}key-file must be given together",
                    f"set both --{prefix}cert-file and --{prefix}key-file, or neither",
                )
            )
        if https and not has_files and not auto:
            findings.append(
                error(
                    "TLSMissing",
                    f"{side} URLs use https ({', '.join(https)}) but no {side} certificate is configured",
                    f"give --{prefix}cert-file and --{prefix}key-file, or --{prefix}auto-tls for "
                    "self-generated certificates",
                )
            )
        if has_files and auto:
            findings.append(
                warning(
                    "AutoTLSIgnored",
                    f"--{prefix}auto-tls is ignored because --{prefix}cert-file is set",
                    f"drop --{prefix}auto-tls",
                )
            )
        if truthy(options.get(f"{prefix}client-cert-auth")) and not options.get(f"{prefix}trusted-ca-file"):
            findings.append(
                error(
                    "TrustedCAMissing",
                    f"--{prefix}client-cert-auth needs --{prefix}trusted-ca-file to verify {side} certificates",
                    f"set --{prefix}trusted-ca-file to the CA that signed the {side} certificates",
                )
            )
        if (has_files or auto) and not https and urls.get(url_flags[0]):
            findings.append(
                warning(
                    "TLSUnused",
                    f"a {side} certificate is configured but every {side} URL uses http, so it is never used",
                    f"switch the {side} URLs to https://",
                )
            )
    return findings


def check_bootstrap_choice(options: Mapping[str, str]) -> list[Finding]:
    sources = bootstrap_sources(options)
    found: list[Finding] = []
    if len(sources) > 1:
        found.append(
            error(
                "MultipleBootstrapSources",
                "multiple discovery or bootstrap flags are set: " + ", ".join(f"--{s}" for s in sources),
                'choose one of "initial-cluster", "discovery", "discovery-endpoints" or "discovery-srv"',
            )
        )
    if options.get("discovery-endpoints") and not options.get("discovery-token"):
        found.append(
            error(
                "DiscoveryTokenMissing",
                "--discovery-endpoints is set but --discovery-token is empty",
                "give the token the cluster registers under, e.g. --discovery-token=etcd-cluster-1",
            )
        )
    state = options.get("initial-cluster-state", "new")
    if state not in ("new", "existing"):
        found.append(
            error(
                "InvalidClusterState",
                f"--initial-cluster-state {state!r} is neither new nor existing",
                "use new to bootstrap a cluster, existing to join one after etcdctl member add",
            )
        )
    elif state == "new" and options.get("initial-cluster") and "initial-cluster-token" not in options:
        found.append(
            warning(
                "ClusterTokenDefault",
                "--initial-cluster-token is not set: every cluster bootstrapped with the same members and "
                "the default token gets the same cluster and member IDs",
                "give each cluster a unique --initial-cluster-token, e.g. etcd-cluster-1",
            )
        )
    return found


def check_initial_cluster(options: Mapping[str, str], advertised: Sequence[Url], resolve: Resolve) -> list[Finding]:
    name = name_of(options)
    try:
        entries = parse_initial_cluster(_initial_cluster_raw(options, advertised))
    except UrlError as exc:
        return [error("InvalidInitialCluster", str(exc), "correct --initial-cluster")]
    found = check_duplicates(entries)
    members = cluster_map(entries)
    if name not in members:
        listed = ", ".join(members) or "nobody"
        own = ",".join(map(str, advertised)) or "<its peer URL>"
        found.append(
            error(
                "MemberNotListed",
                f"{name} not listed in the initial cluster config (--initial-cluster lists {listed})",
                f"add {name}={own} to --initial-cluster on every member of a new cluster, or set --name to "
                "this member's entry; to join a running cluster, run etcdctl member add first and start "
                "with --initial-cluster-state existing",
            )
        )
        return found
    if advertised and not same_urls(members[name], advertised, resolve):
        found.append(
            error(
                "AdvertisedURLMismatch",
                f"error setting up initial cluster: {name} has different advertised URLs in the cluster and "
                f"advertised peer URLs list (--initial-advertise-peer-urls {','.join(map(str, advertised))}, "
                f"--initial-cluster {name}={','.join(map(str, members[name]))})",
                "make --initial-advertise-peer-urls list exactly the URLs --initial-cluster gives for "
                f"{name}; if it listens on several addresses, list them all in both",
            )
        )
    return found


def check_duplicates(entries: Sequence[tuple[str, Url]]) -> list[Finding]:
    found: list[Finding] = []
    owner: dict[Url, str] = {}
    for name, url in entries:
        other = owner.setdefault(url, name)
        if other != name:
            found.append(
                error(
                    "DuplicatePeerURL",
                    f"--initial-cluster gives the peer URL {url} to both {other} and {name}",
                    "each member needs its own peer URL; correct the address of one of them",
                )
            )
    for name, urls in cluster_map(list(entries)).items():
        hosts = {u.host for u in urls}
        if len(urls) != len(set(urls)):
            found.append(
                error(
                    "DuplicateMemberName",
                    f"--initial-cluster lists {name} more than once with the same URL",
                    f"list {name} once; every member needs a different name",
                )
            )
        elif len(hosts) > 1:
            found.append(
                warning(
                    "MemberWithSeveralHosts",
                    f"--initial-cluster lists {name} with URLs on several hosts ({', '.join(map(str, urls))}); "
                    "etcd treats them as one member with several peer URLs",
                    "if these are different machines, give each its own name (names must be unique)",
                )
            )
    return found


def same_urls(listed: Sequence[Url], advertised: Sequence[Url], resolve: Resolve) -> bool:
    """Compare URL sets the way etcd does: after resolving host names to addresses."""
    if sorted(set(listed)) == sorted(set(advertised)):
        return True

    def resolved(urls: Sequence[Url]) -> set[tuple[str, str, int]]:
        out: set[tuple[str, str, int]] = set()
        for u in urls:
            for addr in [u.host] if u.is_ip else resolve(u.host) or [u.host]:
                out.add((u.scheme, addr, u.port))
        return out

    return resolved(listed) == resolved(advertised)


def check_restart(options: Mapping[str, str]) -> list[Finding]:
    """The data dir already holds a member: bootstrap flags are ignored, as etcd does."""
    data_dir = options.get("data-dir") or f"{name_of(options)}.etcd"
    given = [flag for flag in BOOTSTRAP_ONLY if options.get(flag)]
    if not given:
        return []
    found = []
    if options.get("discovery") or options.get("discovery-token"):
        found.append(
            warning(
                "DiscoveryIgnored",
                "discovery token ignored since a cluster has already been initialized. "
                f"Valid log found at {data_dir}/member/wal",
                "harmless; drop --discovery/--discovery-token after the first start",
            )
        )
    rest = [f for f in given if f not in ("discovery", "discovery-token")]
    if rest:
        found.append(
            warning(
                "BootstrapFlagsIgnored",
                f"{', '.join('--' + f for f in rest)} ignored: {data_dir} already holds this member's data, "
                "so etcd restarts from it and does not bootstrap again",
                "harmless; to change membership use runtime reconfiguration (etcdctl member add/remove)",
            )
        )
    return found
