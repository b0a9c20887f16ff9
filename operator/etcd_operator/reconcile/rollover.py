"""CA rollover for selfSigned TLS, pure: the next state of one side's CA Secret, and what it waits for.

etcd re-reads its certificate and key files on every new connection, but its
trusted CA files only at start (etcd #11555). Replacing a CA therefore takes
two rolling restarts around one in-place leaf renewal, in this order, so that
at every moment each member trusts every certificate it can be shown:

1. Trusting: a new CA joins the old one in every trust bundle (`ca.crt`); the
   pod template's TRUSTED_CA digest changes, and the rollout restarts the
   members one at a time, health-gated, the leader last. The old CA still signs.
2. Signing: once every member runs that template, the new CA signs: every leaf
   (members' peer and server pairs, the client certificate) is reissued from it,
   in place, no restart. The old CA stays trusted for DELIVERY, while the
   kubelet writes the new files into every pod that mounts them.
3. Dropping: the old CA leaves the bundles; the digest changes again and the
   rollout restarts the members to trust only the new CA. The rollover is over
   once every member runs that template.

It starts on request (the ROTATE_CA annotation, any new value) or by itself when
the CA could no longer issue a full-length leaf with a month to spare. Every stage
is read back from the CA Secret (`bundles.CASet`), the live pod template and the
pods, so a crash anywhere resumes where it stopped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .. import GROUP
from ..pki import bundles, certs

ROTATE_CA = f"{GROUP}/rotate-ca"  # annotation: a new value asks for a rollover of both CAs
CA_ROLLOVER = "CARollover"  # the Progressing reason while a rollover is under way
# The kubelet rewrites a mounted Secret at its next sync of the pod: up to 90 s with its defaults.
DELIVERY = timedelta(minutes=2)
# A CA is rolled over while it can still issue a full-length leaf, and this long before that stops.
ROLL_MARGIN = timedelta(days=30)


@dataclass(frozen=True)
class Stage:
    """One side's CA after this pass, and what the rollover is doing ("" when none is under way)."""

    ca: bundles.CASet
    doing: str = ""


def due(ca: certs.x509.Certificate, now: datetime, lifetime: certs.Lifetime) -> bool:
    """Roll over while a leaf issued now could still live its full validity, with ROLL_MARGIN to spare."""
    return now + lifetime.validity + ROLL_MARGIN >= ca.not_valid_after_utc


def advance(
    ca: bundles.CASet,
    now: datetime,
    *,
    side: str,
    requested: str,
    restarted: bool,
    leaves_current: Callable[[bundles.CASet], bool],
    lifetime: certs.Lifetime,
    new_authority: Callable[[], bundles.Authority],
) -> Stage:
    """The next state of one side's CA Secret.

    `restarted`: every member runs the pod template made for `ca` as it is now (its digest) and is ready.
    `leaves_current(ca)`: every leaf of this side was issued by `ca.signer` already (nothing left to reissue).
    """
    if ca.restarting:
        if not restarted:
            return Stage(ca, f"{side} CA: restarting members to trust only the new CA")
        return Stage(replace(ca, restarting=False))
    if ca.next is not None:
        if not restarted:
            return Stage(ca, f"{side} CA: restarting members to trust the old and the new CA")
        signing = bundles.CASet(ca.next, previous=ca.signer.cert, signing_since=now, generation=ca.generation,
                                request=ca.request)  # fmt: skip
        return Stage(signing, f"{side} CA: issuing every certificate from the new CA")
    if ca.previous is not None:
        since = ca.signing_since or now
        if now < since + DELIVERY or not leaves_current(ca):
            return Stage(ca, f"{side} CA: certificates from the new CA are being delivered to the members "
                         f"(the old CA stays trusted until {since + DELIVERY:%Y-%m-%dT%H:%M:%SZ})")  # fmt: skip
        return Stage(replace(ca, previous=None, signing_since=None, restarting=True), f"{side} CA: restarting "
                     "members to trust only the new CA")  # fmt: skip
    asked = bool(requested) and requested != ca.request
    if asked or due(ca.signer.cert, now, lifetime):
        started = replace(ca, next=new_authority(), generation=ca.generation + 1, request=requested or ca.request)
        why = f"requested ({ROTATE_CA}={requested})" if asked else (
            f"the CA ends at {ca.signer.cert.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")  # fmt: skip
        return Stage(started, f"{side} CA rollover started, {why}: restarting members to trust the old and the new CA")
    return Stage(ca)


def trust_digest(sides: Sequence[bundles.CASet], pod_certificates: bool = False) -> str:
    """The TRUSTED_CA value for the pod template: "" for a cluster whose CAs were never rolled over.

    Omitting it then keeps the template of every existing cluster as it was. Once a rollover has begun
    it is always set, so each change of the trusted CAs, the last one included, changes the template.
    With pod certificates it names the signing CAs too: the kubelets hold the members' certificates and
    renew them only when their time comes, so the new CA's are delivered by restarting every member,
    whose kubelet then asks again (a third rolling restart, when the new CA starts signing).
    """
    if all(side.generation == 1 for side in sides):
        return ""
    parts = [side.bundle() for side in sides]
    if pod_certificates:
        parts += [certs.cert_pem(side.signer.cert) for side in sides]
    return hashlib.sha256(b"|".join(parts)).hexdigest()[:16]
