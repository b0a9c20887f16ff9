"""The client CA's revocation list: the serials of users' certificates that must no longer be accepted.

etcd reads its `--client-crl-file` on every new client connection and refuses a
certificate whose serial it lists, so a user is cut off without a restart. etcd
3.6 parses the file with Go's x509.ParseRevocationList, which takes DER only
(3.5's ParseCRL took PEM too): it is written as DER. etcd checks neither the
signature nor the dates; the list is signed by the client CA all the same, so
any other reader can trust it. Pure: keys and the clock are passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from ..resources.statefulset import CLIENT_CRL_FILE
from . import bundles

FILE = CLIENT_CRL_FILE  # its key in the server-tls Secret the members mount
NEXT_UPDATE = timedelta(days=3650)  # etcd ignores it; no reader must think the list stale


def build(signer: bundles.Authority, revoked: Mapping[int, datetime], updated: datetime) -> bytes:
    """A DER revocation list of `revoked` (serial -> when it was revoked), signed by the CA that signs now."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(signer.cert.subject)
        .last_update(updated)
        .next_update(updated + NEXT_UPDATE)
    )
    for serial, when in sorted(revoked.items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    return builder.sign(signer.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def read(der: bytes | None) -> dict[int, datetime]:
    """serial -> revocation date; a missing or unreadable list lists nothing."""
    if not der:
        return {}
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError:
        return {}
    return {entry.serial_number: entry.revocation_date_utc for entry in crl}


def signed_by(der: bytes, ca: bundles.Authority) -> bool:
    try:
        return x509.load_der_x509_crl(der).is_signature_valid(ca.cert.public_key())  # type: ignore[arg-type]
    except ValueError:
        return False
