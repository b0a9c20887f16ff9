"""DNS SRV discovery: look up the cluster's records and check this member is among them.

etcd does the same lookup itself when it starts; doing it first means a missing
record or a member whose address is not a target fails with a line naming the
record and the address, instead of etcd's bare "cannot find local etcd member".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.resolver

from .findings import Finding, error
from .urls import Url, UrlError, parse_urls


@dataclass(frozen=True)
class SrvTarget:
    host: str
    port: int
    addresses: tuple[str, ...] = ()


@dataclass(frozen=True)
class SrvAnswer:
    """What DNS said for one cluster: TLS records first, as etcd looks them up."""

    domain: str
    queried: tuple[str, ...]
    tls_targets: tuple[SrvTarget, ...] = ()
    plain_targets: tuple[SrvTarget, ...] = ()
    failure: str = ""  # a resolver error other than "no such record"
    unresolved: tuple[str, ...] = field(default_factory=tuple)


def record_names(domain: str, service_name: str = "", kind: str = "server") -> tuple[str, str]:
    """The (TLS, plain) SRV names etcd queries, e.g. `_etcd-server-ssl._tcp.example.com`."""
    suffix = f"-{service_name}" if service_name else ""
    domain = domain.rstrip(".")
    return (f"_etcd-{kind}-ssl{suffix}._tcp.{domain}", f"_etcd-{kind}{suffix}._tcp.{domain}")


def lookup(
    domain: str, service_name: str = "", kind: str = "server", resolver: dns.resolver.Resolver | None = None
) -> SrvAnswer:
    """Query both SRV names and resolve every target's addresses (I/O)."""
    resolver = resolver or dns.resolver.Resolver()
    resolver.lifetime = min(resolver.lifetime, 5.0)
    names = record_names(domain, service_name, kind)
    found: list[tuple[SrvTarget, ...]] = []
    unresolved: list[str] = []
    failure = ""
    for name in names:
        try:
            answer = resolver.resolve(name, "SRV")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            found.append(())
            continue
        except dns.exception.DNSException as exc:
            failure = f"{name}: {exc}"
            found.append(())
            continue
        targets = []
        for rr in sorted(answer, key=lambda r: (r.priority, -r.weight, str(r.target))):
            host = str(rr.target).rstrip(".")
            addresses = resolve_host(host, resolver)
            if not addresses:
                unresolved.append(host)
            targets.append(SrvTarget(host, rr.port, tuple(addresses)))
        found.append(tuple(targets))
    return SrvAnswer(domain, names, found[0], found[1], failure, tuple(unresolved))


def resolve_host(host: str, resolver: dns.resolver.Resolver | None = None) -> list[str]:
    """A and AAAA addresses of a name; empty when it has none (I/O)."""
    resolver = resolver or dns.resolver.Resolver()
    addresses: list[str] = []
    for rdtype in ("A", "AAAA"):
        try:
            addresses += [rr.address for rr in resolver.resolve(host, rdtype)]
        except dns.exception.DNSException:
            continue
    return addresses


def check(options: Mapping[str, str], answer: SrvAnswer, own_addresses: Mapping[str, Sequence[str]]) -> list[Finding]:
    """Pure: the records exist, use the member's scheme, and list the member's own peer URL.

    `own_addresses` maps each advertised peer host to its resolved addresses,
    because etcd compares resolved addresses, not names.
    """
    tls_name, plain_name = answer.queried
    if not answer.tls_targets and not answer.plain_targets:
        detail = f" ({answer.failure})" if answer.failure else ""
        return [
            error(
                "SRVRecordsMissing",
                f"no SRV records for {tls_name} or {plain_name}{detail}",
                f"publish them (check with: dig +noall +answer SRV {plain_name}) or correct --discovery-srv "
                "/ --discovery-srv-name",
            )
        ]
    findings: list[Finding] = []
    if answer.unresolved:
        findings.append(
            error(
                "SRVTargetUnresolvable",
                f"SRV targets without an A/AAAA record: {', '.join(answer.unresolved)}",
                "add address records for every SRV target",
            )
        )
    try:
        advertised = parse_urls(options.get("initial-advertise-peer-urls"), "initial-advertise-peer-urls")
    except UrlError:
        return findings  # reported by the flag checks
    listed = {
        ("https", addr, t.port) for t in answer.tls_targets for addr in t.addresses
    } | {("http", addr, t.port) for t in answer.plain_targets for addr in t.addresses}
    mine = {(u.scheme, addr, u.port) for u in advertised for addr in _addresses(u, own_addresses)}
    if not mine & listed:
        targets = [
            f"{t.host}:{t.port} -> {','.join(t.addresses) or '?'} ({scheme})"
            for scheme, group in (("https", answer.tls_targets), ("http", answer.plain_targets))
            for t in group
        ]
        scheme_hint = ""
        if any(s == "http" for s, _, _ in mine) and answer.tls_targets and not answer.plain_targets:
            scheme_hint = f"; only {tls_name} exists, so peer URLs must use https"
        elif any(s == "https" for s, _, _ in mine) and answer.plain_targets and not answer.tls_targets:
            scheme_hint = f"; only {plain_name} exists, so peer URLs must use http"
        findings.append(
            error(
                "NotInSRVRecords",
                f"--initial-advertise-peer-urls {','.join(map(str, advertised))} (resolved: "
                f"{', '.join(f'{a}:{p}' for _, a, p in sorted(mine)) or 'nothing'}) matches none of the SRV "
                f"targets of {answer.domain}: {'; '.join(targets)}{scheme_hint}",
                "advertise a peer URL whose address and port are one of the SRV targets, or add this member's "
                "SRV record",
            )
        )
    return findings


def _addresses(url: Url, own_addresses: Mapping[str, Sequence[str]]) -> Sequence[str]:
    return [url.host] if url.is_ip else own_addresses.get(url.host, ())
