"""etcd auth for tls.clients[].access: the users, roles and permissions etcd should hold, and the calls to get there.

Pure: what the spec asks (`desired_access`) and what etcd holds (`AuthView`, read
once per pass) in, the ordered calls that make them agree out (`plan_auth`).
Every call is planned from the observation, so a pass that stops half way (a
crash, a refused call, the per-pass bound) leaves a state the next pass plans
from again; the applier stops at the first failure, as later calls may rest on it.

Why the order matters. etcd refuses `auth enable` without a `root` user holding
the root role, and once auth is on every call of the operator needs a root user:
the JSON gateway ignores client certificates (etcd drops the CommonName of a
request the gateway forwards), so the operator authenticates with a password of
its own, under the name of its client certificate (etcd-operator), which the
backup Job's etcdctl presents over gRPC. That user is made, and its password set,
before auth is enabled; auth is the last call of a pass, after every user has
its roles. Users without `access` get the root role, so turning auth on for one
user locks nobody else out.

What belongs to the operator: every user it makes gets a role `user-<name>`
(empty for users with full access, and for root and etcd-operator), so the role
list alone tells which users and roles it may delete. Auth it did not turn on
(no `user-etcd-operator` role) is never turned off.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..models.cluster import RESERVED_USERS, AccessStatus, EtcdClusterSpec, KeyPermission, TLSMode
from ..resources.meta import Owner
from ..resources.secrets import build_secret
from .problems import Problem

ROOT = "root"  # etcd's root user and role
OPERATOR_USER = "etcd-operator"  # the CommonName of the operator's client certificate (pki.bundles)
ROLE_PREFIX = "user-"
assert (ROOT, OPERATOR_USER) == RESERVED_USERS
MAX_CALLS = 24  # auth calls per pass: a spec with many users converges over a few passes


def role_of(user: str) -> str:
    return f"{ROLE_PREFIX}{user}"


def prefix_end(prefix: bytes) -> bytes:
    """The end of the key range of every key starting with `prefix` (clientv3.GetPrefixRangeEnd)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"  # every key from prefix on


@dataclass(frozen=True, order=True)
class Grant:
    """One permission of a role, as etcd holds it: READ, WRITE or READWRITE over [key, range_end)."""

    key: bytes
    range_end: bytes
    kind: str

    @classmethod
    def for_prefix(cls, prefix: str, permission: KeyPermission) -> Grant:
        key = prefix.encode()
        return cls(key, prefix_end(key), permission.value.upper())

    def describe(self) -> str:
        key = self.key.decode(errors="replace")
        return f"{self.kind.lower()} {key}*" if self.range_end == prefix_end(self.key) else f"{self.kind.lower()} {key}"


@dataclass(frozen=True)
class DesiredAccess:
    """What tls.clients asks: auth on or off, and each user's grants (None: full access, the root role)."""

    enabled: bool = False
    users: Mapping[str, frozenset[Grant] | None] = field(default_factory=dict)

    def digest(self) -> str:
        users = {u: sorted((g.kind, g.key.hex(), g.range_end.hex()) for g in grants) if grants is not None else None
                 for u, grants in sorted(self.users.items())}  # fmt: skip
        return hashlib.sha256(json.dumps([self.enabled, users]).encode()).hexdigest()[:16]


def desired_access(spec: EtcdClusterSpec) -> DesiredAccess:
    clients = (spec.tls.clients or []) if spec.tls.client.mode is TLSMode.SELF_SIGNED else []
    if not any(c.access for c in clients):
        return DesiredAccess()
    users = {
        c.name: frozenset(Grant.for_prefix(a.prefix, a.permission) for a in c.access) if c.access else None
        for c in clients
    }
    return DesiredAccess(True, users)


@dataclass(frozen=True)
class AuthView:
    """etcd's auth store as one pass read it.

    `users` holds the roles of every user the pass asked about (the operator's, the spec's, and those with an
    operator role); `names` every user's name. `roles` holds the permissions of the operator's roles and
    the bare names of the others. `settled`: the status recorded this very revision and spec as matched,
    so nothing but the revision was read (users and roles are then empty).
    """

    enabled: bool
    revision: int
    names: frozenset[str] = frozenset()
    users: Mapping[str, frozenset[str]] = field(default_factory=dict)
    roles: Mapping[str, frozenset[Grant]] = field(default_factory=dict)
    settled: bool = False
    cluster_id: int = 0  # etcd's cluster ID: a snapshot restored in place makes a new cluster with its own auth store

    @property
    def owned_users(self) -> frozenset[str]:
        """Users the operator made: those with a role user-<name>."""
        return frozenset(r[len(ROLE_PREFIX):] for r in self.roles if r.startswith(ROLE_PREFIX)) & self.names

    @property
    def owned_roles(self) -> frozenset[str]:
        return frozenset(r for r in self.roles if r.startswith(ROLE_PREFIX))


def users_to_read(desired: DesiredAccess, roles: frozenset[str], names: frozenset[str]) -> frozenset[str]:
    """Whose roles a full read asks for: the users the spec wants and those the operator made."""
    wanted = set(desired.users) | {ROOT, OPERATOR_USER} if desired.enabled else set()
    owned = {r[len(ROLE_PREFIX):] for r in roles if r.startswith(ROLE_PREFIX)}
    return frozenset((wanted | owned) & names)


# The calls. None carries a password: the applier adds the operator's own where `password` says so.
@dataclass(frozen=True)
class RoleAdd:
    role: str


@dataclass(frozen=True)
class RoleDelete:
    role: str


@dataclass(frozen=True)
class RoleGrant:
    role: str
    grant: Grant


@dataclass(frozen=True)
class RoleRevoke:
    role: str
    grant: Grant


@dataclass(frozen=True)
class UserAdd:
    user: str
    password: bool = False  # the operator's password (its own user); else a user without one (certificate only)


@dataclass(frozen=True)
class UserPassword:
    user: str  # set to the operator's password


@dataclass(frozen=True)
class UserDelete:
    user: str


@dataclass(frozen=True)
class UserGrant:
    user: str
    role: str


@dataclass(frozen=True)
class UserRevoke:
    user: str
    role: str


@dataclass(frozen=True)
class AuthEnable:
    pass


@dataclass(frozen=True)
class AuthDisable:
    pass


Call = RoleAdd | RoleDelete | RoleGrant | RoleRevoke | UserAdd | UserPassword | UserDelete | UserGrant | UserRevoke | AuthEnable | AuthDisable


def describe(call: Call) -> str:
    """A call in words, naming the user (logs, Events, conditions); never a password."""
    match call:
        case RoleAdd(role) | RoleDelete(role):
            return f"{'add' if isinstance(call, RoleAdd) else 'delete'} role {role}"
        case RoleGrant(role, grant):
            return f"grant {grant.describe()} to role {role}"
        case RoleRevoke(role, grant):
            return f"revoke {grant.describe()} from role {role}"
        case UserAdd(user, password):
            return f"add user {user}" + (" (the operator's password)" if password else " (certificate only)")
        case UserPassword(user):
            return f"set the operator's password on user {user}"
        case UserDelete(user):
            return f"delete user {user}"
        case UserGrant(user, role):
            return f"grant role {role} to user {user}"
        case UserRevoke(user, role):
            return f"revoke role {role} from user {user}"
        case AuthEnable():
            return "enable auth"
        case AuthDisable():
            return "disable auth"
    return repr(call)


@dataclass(frozen=True)
class AuthPlan:
    calls: tuple[Call, ...] = ()  # in order; the applier makes at most MAX_CALLS of them per pass
    problem: Problem | None = None  # why the plan cannot make etcd agree (auth someone else turned on)
    matched: bool = False  # etcd holds what the spec asks: nothing to call

    @property
    def pending(self) -> bool:
        return bool(self.calls)


def _wanted(desired: DesiredAccess) -> tuple[dict[str, frozenset[Grant]], dict[str, frozenset[str]]]:
    """Roles (name -> grants) and users (name -> roles) etcd must hold while auth is on."""
    roles: dict[str, frozenset[Grant]] = {}
    users: dict[str, frozenset[str]] = {}
    for user, grants in desired.users.items():
        roles[role_of(user)] = grants or frozenset()
        users[user] = frozenset({role_of(user)} | ({ROOT} if grants is None else set()))
    for user in (ROOT, OPERATOR_USER):  # full access whatever the spec says (the model refuses them access)
        roles[role_of(user)] = frozenset()
        users[user] = frozenset({ROOT, role_of(user)})
    return roles, users


def plan_auth(desired: DesiredAccess, view: AuthView) -> AuthPlan:
    if view.settled:
        return AuthPlan(matched=True)
    if desired.enabled:
        return _plan_on(desired, view)
    return _plan_off(view)


def _plan_on(desired: DesiredAccess, view: AuthView) -> AuthPlan:
    roles, users = _wanted(desired)
    if view.enabled and role_of(OPERATOR_USER) not in view.roles:
        return AuthPlan(problem=Problem("AccessFailed", "etcd auth was turned on by someone else: the operator has "
                                        f"no user of its own ({OPERATOR_USER} with role {role_of(OPERATOR_USER)}) and "
                                        "cannot manage users and roles; turn auth off (etcdctl auth disable) and let "
                                        "the operator turn it on"))  # fmt: skip
    calls: list[Call] = []
    # 1. Users that left the spec go first: taking their access away is the point of removing them.
    for user in sorted(view.owned_users - set(users)):
        calls.append(UserDelete(user))
    for role in sorted(view.owned_roles - set(roles)):
        calls.append(RoleDelete(role))
    # 2. Roles with exactly their grants: revoke what is not asked (or asked with another type), grant the rest.
    for role, grants in sorted(roles.items()):
        have = view.roles.get(role)
        if have is None:
            calls.append(RoleAdd(role))
            have = frozenset()
        wanted_ranges = {(g.key, g.range_end): g for g in grants}
        for g in sorted(have):
            if (g.key, g.range_end) not in wanted_ranges:
                calls.append(RoleRevoke(role, g))
        calls += [RoleGrant(role, g) for g in sorted(grants - have)]
    # 3. Users with exactly their roles; the operator's own with its password.
    for user, wanted_roles in sorted(users.items(), key=lambda kv: (kv[0] != OPERATOR_USER, kv[0] != ROOT, kv[0])):
        held = view.users.get(user)
        if user not in view.names:
            calls.append(UserAdd(user, password=user == OPERATOR_USER))
            held = frozenset()
        elif held is None:
            held = frozenset()
        calls += [UserGrant(user, r) for r in sorted(wanted_roles - held)]
        calls += [UserRevoke(user, r) for r in sorted(held - wanted_roles)]
    # 4. Auth last, once everyone holds their roles; the password set just before, as the Secret holds it now.
    if not view.enabled:
        if OPERATOR_USER in view.names:
            calls.append(UserPassword(OPERATOR_USER))
        calls.append(AuthEnable())
    return AuthPlan(tuple(calls), matched=not calls)


def _plan_off(view: AuthView) -> AuthPlan:
    ours = role_of(OPERATOR_USER) in view.roles
    calls: list[Call] = []
    if view.enabled:
        if not ours:
            return AuthPlan(matched=True)  # someone else's auth: not the operator's to turn off
        calls.append(AuthDisable())
    calls += [UserDelete(u) for u in sorted(view.owned_users)]
    calls += [RoleDelete(r) for r in sorted(view.owned_roles)]
    return AuthPlan(tuple(calls), matched=not calls)


# The operator's password, in a Secret owned by the cluster: made when auth is first wanted, kept after.
USERNAME, PASSWORD = "username", "password"


def auth_secret(
    names_secret: str,
    namespace: str,
    owner: Owner,
    existing: Mapping[str, bytes] | None,
    new_password: Callable[[], str] = lambda: secrets.token_urlsafe(32),
) -> dict[str, Any] | None:
    """The Secret to apply, or None when the existing one is complete."""
    current = dict(existing or {})
    if current.get(USERNAME) == OPERATOR_USER.encode() and current.get(PASSWORD):
        return None
    data = {USERNAME: OPERATOR_USER.encode(), PASSWORD: current.get(PASSWORD) or new_password().encode()}
    return build_secret(names_secret, namespace, owner, data, "etcd-auth")


def credentials(data: Mapping[str, bytes] | None) -> tuple[str, str] | None:
    if not data or not data.get(PASSWORD):
        return None
    return (data.get(USERNAME) or OPERATOR_USER.encode()).decode(), data[PASSWORD].decode()


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class AuthOutcome:
    """What the applier did with an AuthPlan: the calls made (in words), and etcd's refusal of the next one."""

    made: tuple[str, ...] = ()
    failed: str = ""  # the call that failed and etcd's words, e.g. "grant role user-alice to user alice: ..."
    left: int = 0  # planned calls not made this pass (the bound, or a failure)


def settled_key(desired: DesiredAccess, cluster_id: int) -> str:
    """What status.access.specHash records beside the auth revision: the access asked, in the cluster it was made in."""
    return f"{desired.digest()}.{cluster_id:x}"


def summary(desired: DesiredAccess) -> str:
    """Each user's access in words: alice: readwrite /app/*; bob: full access."""
    parts = []
    for user, grants in sorted(desired.users.items()):
        parts.append(f"{user}: " + (", ".join(g.describe() for g in sorted(grants)) if grants is not None else "full access"))
    return "; ".join(parts)


def record(
    desired: DesiredAccess, view: AuthView | None, planned: AuthPlan, outcome: AuthOutcome, previous: AccessStatus | None
) -> AccessStatus | None:
    """status.access after the pass: the revision that matched the spec, a marker while work is left, None when done."""
    if view is None or view.settled:
        return previous if previous is not None or not desired.enabled else AccessStatus(enabled=False)
    if planned.matched and not desired.enabled:
        return None  # auth off and everything the operator made deleted: nothing left to manage
    if planned.matched:
        return AccessStatus(enabled=True, auth_revision=view.revision, spec_hash=settled_key(desired, view.cluster_id))
    enabled = view.enabled
    if "enable auth" in outcome.made:
        enabled = True
    if "disable auth" in outcome.made:
        enabled = False
    return AccessStatus(enabled=enabled)


def condition(desired: DesiredAccess, planned: AuthPlan | None, outcome: AuthOutcome) -> tuple[bool, str, str] | None:
    """The AccessApplied condition as (status, reason, message); None when the operator manages no auth (any more)."""
    if planned is None:
        return None
    if outcome.failed or planned.problem is not None:
        return False, "AccessFailed", outcome.failed or (planned.problem.message if planned.problem else "")
    if planned.matched:
        if desired.enabled:
            return True, "AccessApplied", f"etcd auth is on; {summary(desired)}"
        return None  # auth off and cleaned up: the condition goes with status.access (the last calls made an Event)
    if outcome.made:
        return False, "AccessApplying", f"made {len(outcome.made)} call(s): {', '.join(outcome.made)}" + (
            f"; {outcome.left} left for the next pass" if outcome.left else "")  # fmt: skip
    return False, "AccessApplying", "waiting for the operator's etcd password Secret and etcd's users and roles"
