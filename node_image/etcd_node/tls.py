"""Certificate checks before start: present, paired with the key, in date, covering the names used.

etcd discovers a bad certificate only when a peer or client connects, and says
so in a log line on the *other* member ("tls: bad certificate"). Checking the
files first turns that into one line on the member that has the problem.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from .findings import Finding, error, warning
from .flags import truthy
from .urls import Url, UrlError, parse_urls

EXPIRY_WARNING = timedelta(days=30)


@dataclass(frozen=True)
class CertFiles:
    """What one TLS side (client or peer) of a member was configured with."""

    side: str  # "client" or "peer"
    prefix: str  # flag prefix: "" or "peer-"
    cert_file: str
    key_file: str
    ca_file: str = ""
    client_cert_auth: bool = False


@dataclass(frozen=True)
class LoadedCert:
    """Parsed contents of a side's files, or why they could not be read."""

    files: CertFiles
    cert: x509.Certificate | None = None
    key: PrivateKeyTypes | None = None
    cas: tuple[x509.Certificate, ...] = ()
    problems: tuple[Finding, ...] = field(default_factory=tuple)


def configured_sides(options: Mapping[str, str]) -> list[CertFiles]:
    sides = []
    for side, prefix in (("client", ""), ("peer", "peer-")):
        cert, key = options.get(f"{prefix}cert-file", ""), options.get(f"{prefix}key-file", "")
        if cert and key:
            sides.append(
                CertFiles(
                    side=side,
                    prefix=prefix,
                    cert_file=cert,
                    key_file=key,
                    ca_file=options.get(f"{prefix}trusted-ca-file", ""),
                    client_cert_auth=truthy(options.get(f"{prefix}client-cert-auth")),
                )
            )
    return sides


def load(files: CertFiles) -> LoadedCert:
    """Read and parse the files (I/O); every failure becomes a finding."""
    problems: list[Finding] = []

    def read(flag: str, path: str) -> bytes | None:
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            problems.append(
                error(
                    "CertificateFileUnreadable",
                    f"--{files.prefix}{flag} {path}: {exc.strerror or exc}",
                    f"mount or copy the file there, or point --{files.prefix}{flag} at it",
                )
            )
            return None

    cert, key = read("cert-file", files.cert_file), read("key-file", files.key_file)
    ca = read("trusted-ca-file", files.ca_file) if files.ca_file else None
    parsed = parse(files, cert, key, ca)
    return LoadedCert(files, parsed.cert, parsed.key, parsed.cas, (*problems, *parsed.problems))


def parse(files: CertFiles, cert_pem: bytes | None, key_pem: bytes | None, ca_pem: bytes | None) -> LoadedCert:
    """Parse a side's material (pure: the operator checks Secrets with it as the agent checks files)."""
    problems: list[Finding] = []
    cert = key = None
    cas: list[x509.Certificate] = []
    if cert_pem is not None:
        try:
            cert = x509.load_pem_x509_certificate(cert_pem)
        except ValueError:
            problems.append(
                error(
                    "CertificateInvalid",
                    f"--{files.prefix}cert-file {files.cert_file} is not a PEM certificate",
                    "give the PEM-encoded certificate (-----BEGIN CERTIFICATE-----)",
                )
            )
    if key_pem is not None:
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError):
            problems.append(
                error(
                    "KeyInvalid",
                    f"--{files.prefix}key-file {files.key_file} is not an unencrypted PEM private key",
                    "give the PEM-encoded private key without a passphrase",
                )
            )
    if files.ca_file and ca_pem is not None:
        try:
            cas = x509.load_pem_x509_certificates(ca_pem)
        except ValueError:
            problems.append(
                error(
                    "CAInvalid",
                    f"--{files.prefix}trusted-ca-file {files.ca_file} holds no PEM certificate",
                    "give the PEM-encoded CA certificate",
                )
            )
    return LoadedCert(files, cert, key, tuple(cas), tuple(problems))


def hosts_needed(options: Mapping[str, str], side: str, srv_domain: str | None) -> list[str]:
    """Names and addresses a side's certificate must cover."""
    flag = "advertise-client-urls" if side == "client" else "initial-advertise-peer-urls"
    try:
        urls: list[Url] = parse_urls(options.get(flag), flag)
    except UrlError:
        urls = []
    hosts = [u.host for u in urls if u.is_tls]
    # etcd verifies peers against the SRV domain (it sets it as the TLS ServerName).
    if srv_domain and side == "peer" and hosts:
        hosts.append(srv_domain)
    return list(dict.fromkeys(hosts))


def check(loaded: LoadedCert, hosts: Sequence[str], now: datetime, srv_domain: str | None = None) -> list[Finding]:
    """Pure checks on parsed material; `now` is passed in so tests control the clock."""
    findings = list(loaded.problems)
    files, cert, key = loaded.files, loaded.cert, loaded.key
    flag = f"--{files.prefix}cert-file {files.cert_file}"
    if cert is None:
        return findings
    if key is not None and not _same_public_key(cert, key):
        findings.append(
            error(
                "KeyMismatch",
                f"--{files.prefix}key-file {files.key_file} is not the private key of {flag}",
                "give the key the certificate was issued for (they are generated as a pair)",
            )
        )
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now < start:
        findings.append(
            error(
                "CertificateNotYetValid",
                f"{flag} is not valid before {start:%Y-%m-%d %H:%M:%S}Z (now {now:%Y-%m-%d %H:%M:%S}Z)",
                "check the clock of this machine, or reissue the certificate",
            )
        )
    elif now > end:
        findings.append(
            error(
                "CertificateExpired",
                f"{flag} expired on {end:%Y-%m-%d %H:%M:%S}Z",
                "issue a new certificate for this member and restart it",
            )
        )
    elif end - now < EXPIRY_WARNING:
        findings.append(
            warning(
                "CertificateExpiresSoon",
                f"{flag} expires on {end:%Y-%m-%d %H:%M:%S}Z",
                "renew it before then",
            )
        )
    missing = [h for h in hosts if not covers(cert, h)]
    if missing:
        why = ""
        if srv_domain and srv_domain in missing:
            why = (
                f"; with --discovery-srv over TLS the SRV domain {srv_domain} must be a DNS SAN, or clustering "
                f'fails with "tls: bad certificate" (ServerName "{srv_domain}")'
            )
        findings.append(
            error(
                "CertificateSANMissing",
                f"{flag} does not cover {', '.join(missing)} (it names {', '.join(sans(cert)) or 'nothing'}){why}",
                f"reissue the {files.side} certificate with these names as subject alternative names",
            )
        )
    usages = _extended_usages(cert)
    if usages is not None:
        need = [ExtendedKeyUsageOID.SERVER_AUTH]
        if files.side == "peer":
            need.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        lacking = [oid._name for oid in need if oid not in usages]  # noqa: SLF001 - readable OID names
        if lacking:
            findings.append(
                error(
                    "CertificateUsage",
                    f"{flag} lacks extended key usage {', '.join(lacking)}"
                    + (" (peer certificates are used as both server and client)" if files.side == "peer" else ""),
                    "reissue it with extended key usages serverAuth and clientAuth",
                )
            )
    if loaded.cas and not any(issued_by(cert, ca) for ca in loaded.cas):
        findings.append(
            error(
                "CertificateNotSignedByCA",
                f"{flag} (issuer {cert.issuer.rfc4514_string()}) is not signed by any CA in "
                f"--{files.prefix}trusted-ca-file {files.ca_file}",
                "give the CA that issued the member certificates, or reissue the certificate from it",
            )
        )
    return findings


def sans(cert: x509.Certificate) -> list[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*ext.get_values_for_type(x509.DNSName), *map(str, ext.get_values_for_type(x509.IPAddress))]


def covers(cert: x509.Certificate, host: str) -> bool:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return any(_dns_match(pattern, host) for pattern in ext.get_values_for_type(x509.DNSName))
    return addr in ext.get_values_for_type(x509.IPAddress)


def _dns_match(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def _same_public_key(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return cert.public_key().public_bytes(*fmt) == key.public_key().public_bytes(*fmt)


def _extended_usages(cert: x509.Certificate) -> list[x509.ObjectIdentifier] | None:
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None


def issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """Signed by this CA's key (not merely naming it as issuer: a CA rollover's two CAs may share a name)."""
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
