"""Certificates for selfSigned TLS: per-cluster CAs and member/client certificates.

Pure: keys and the clock are passed in, so tests are deterministic and the
reconciler decides when to generate (only when a Secret is missing or due for
renewal). Peer certificates carry serverAuth and clientAuth, because every
member is both server and client of its peers.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from etcd_node.tls import issued_by as issued_by

CA_VALIDITY = timedelta(days=3650)
CA_WARN_BEFORE = timedelta(days=30)  # CAExpiring is reported this long before a CA ends
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class Lifetime:
    """How long a leaf certificate lives and how long before its end it is replaced (spec.tls.certificates)."""

    validity: timedelta = timedelta(days=365)
    renew_before: timedelta = timedelta(days=30)


DEFAULT_LIFETIME = Lifetime()

SERVER_AND_CLIENT = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
CLIENT_ONLY = (ExtendedKeyUsageOID.CLIENT_AUTH,)

PrivateKey = ec.EllipticCurvePrivateKey


def new_key() -> PrivateKey:
    """The only source of randomness here: call it in the I/O layer and pass the key in."""
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    """O=etcd-operator, CN=common_name; no CN when it is empty (etcd's gateway refuses one once auth is on)."""
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "etcd-operator")]
    if common_name:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]))
    return x509.Name(attributes)


def _key_usage(ca: bool) -> x509.KeyUsage:
    """CAs sign certificates; leaves sign handshakes (and encipher keys for RSA peers)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def issue_ca(key: PrivateKey, common_name: str, now: datetime, serial: int) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def issue(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    key: PrivateKey,
    common_name: str,
    hosts: Iterable[str],
    now: datetime,
    serial: int,
    usages: tuple[x509.ObjectIdentifier, ...] = SERVER_AND_CLIENT,
    validity: timedelta = DEFAULT_LIFETIME.validity,
) -> x509.Certificate:
    """A leaf certificate, never outliving its CA; `hosts` become DNS or IP subject alternative names."""
    not_after = min(now + validity, ca_cert.not_valid_after_utc)
    return issue_for(ca_cert, ca_key, key.public_key(), common_name, hosts, now - CLOCK_SKEW, not_after, serial, usages)


def issue_for(
    ca_cert: x509.Certificate,
    ca_key: PrivateKey,
    public_key: CertificatePublicKeyTypes,
    common_name: str,
    hosts: Iterable[str],
    not_before: datetime,
    not_after: datetime,
    serial: int,
    usages: tuple[x509.ObjectIdentifier, ...] = SERVER_AND_CLIENT,
) -> x509.Certificate:
    """A leaf for a public key whose private key the operator never sees (a member's pod certificate)."""
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def load_cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def load_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("expected an EC private key")
    return key


def expiring(cert: x509.Certificate, now: datetime, before: timedelta = DEFAULT_LIFETIME.renew_before) -> bool:
    return now + before >= cert.not_valid_after_utc


def due_by_age(cert: x509.Certificate, now: datetime, lifetime: Lifetime = DEFAULT_LIFETIME) -> bool:
    """Within renewBefore of its end, or living longer than the policy now allows (validity was shortened).

    A certificate issued under `lifetime` ends at most `validity` after it was issued, so the second
    test never holds for it: a pass that reissues stays quiet on the next one.
    """
    end = cert.not_valid_after_utc
    return now + lifetime.renew_before >= end or end > now + lifetime.validity


def covers(cert: x509.Certificate, hosts: Iterable[str]) -> bool:
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return not list(hosts)
    have = {str(v) for v in sans.get_values_for_type(x509.IPAddress)} | set(sans.get_values_for_type(x509.DNSName))
    return set(hosts) <= have


def can_extend(ca_cert: x509.Certificate, cert: x509.Certificate) -> bool:
    """A leaf issued now would outlive `cert` (leaves never outlive their CA)."""
    return ca_cert.not_valid_after_utc > cert.not_valid_after_utc


def due_for_renewal(
    cert: x509.Certificate, now: datetime, hosts: Iterable[str] = (), lifetime: Lifetime = DEFAULT_LIFETIME
) -> bool:
    """Renew when due by age or when the names it must cover changed (e.g. after a scale-out)."""
    return due_by_age(cert, now, lifetime) or not covers(cert, hosts)
