"""The one etcd client of the operator: etcd's v3 JSON gateway over HTTPS, with aiohttp.

Why the gateway and not gRPC: it is part of every etcd server (3.4+), speaks the
same v3 API (member list/add/promote/remove, status), needs no generated stubs,
and aiohttp is already here through kopf. No maintained asyncio gRPC client for
etcd exists for Python; the sync ones (python-etcd3) are unmaintained.
Answers are mapped to our own types; callers never see raw JSON.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import aiohttp

from ..reconcile import auth
from ..reconcile.observed import EtcdView, MaintenanceStatus, Member, Survey


class EtcdError(RuntimeError):
    """etcd refused or could not be reached; `message` is etcd's own words when it answered."""

    def __init__(self, message: str, endpoint: str = ""):
        super().__init__(f"{endpoint}: {message}" if endpoint else message)
        self.message = message
        self.endpoint = endpoint


@dataclass(frozen=True)
class EndpointStatus:
    endpoint: str
    member_id: int
    leader_id: int
    cluster_id: int
    version: str
    is_learner: bool
    raft_index: int
    errors: tuple[str, ...] = ()
    db_size: int = 0
    db_size_in_use: int = 0
    db_size_quota: int = 0
    raft_applied_index: int = 0
    raft_term: int = 0
    revision: int = 0

    def maintenance(self) -> MaintenanceStatus:
        return MaintenanceStatus(
            member_id=self.member_id, leader_id=self.leader_id, db_size=self.db_size,
            db_size_in_use=self.db_size_in_use, db_size_quota=self.db_size_quota, raft_index=self.raft_index,
            raft_applied_index=self.raft_applied_index, raft_term=self.raft_term, revision=self.revision,
            errors=self.errors,
        )  # fmt: skip


def _member(raw: dict[str, Any]) -> Member:
    return Member(
        id=int(raw.get("ID", 0)),
        name=raw.get("name", ""),
        peer_urls=tuple(raw.get("peerURLs", [])),
        client_urls=tuple(raw.get("clientURLs", [])),
        is_learner=bool(raw.get("isLearner", False)),
    )


# etcd's words (rpctypes) when a promotion or a removal asked again has already been made.
MEMBER_NOT_LEARNER = "etcdserver: can only promote a learner member"
MEMBER_NOT_FOUND = "etcdserver: member not found"
DEFRAG_TIMEOUT = 300.0  # rewriting a database file of several GiB takes minutes
STATUS_TIMEOUT = 1.5  # seconds for one member's own status


class EtcdClient:
    """One HTTP session for the client's life: connections and TLS sessions are reused across passes.

    Call `close()` when done (the operator keeps one client per cluster and
    closes it when the cluster or its client certificate goes away).
    """

    # Requests of every client this process made, closed ones included: the operator's
    # etcd_operator_etcd_calls_total (a client per cluster comes and goes; this total only grows).
    total_calls: ClassVar[int] = 0

    def __init__(
        self,
        endpoints: Sequence[str],
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 5.0,
        credentials: tuple[str, str] | None = None,
    ):
        self.endpoints = [e.rstrip("/") for e in endpoints]
        self._ssl = ssl_context
        # (user, password) for etcd auth: the gateway ignores the client certificate's CommonName, so
        # with auth enabled the operator presents a token, got with these the first time etcd asks for one.
        self._credentials = credentials
        self._token = ""
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.calls = 0  # HTTP requests made, for the operator's own accounting and tests

    def _open(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            # A session belongs to one event loop; callers that run each call in its own
            # loop (asyncio.run in tests and scripts) get a session per loop.
            # No DNS cache: a restarted member pod comes back under its old name with a new
            # address, and a cached one would send the next passes to a dead IP.
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else False, use_dns_cache=False)
            self._session = aiohttp.ClientSession(timeout=self._timeout, connector=connector)
            self._loop = loop
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> EtcdClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def _call(
        self, endpoint: str, path: str, body: dict[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        try:
            return await self._request(endpoint, path, body, timeout)
        except EtcdError as exc:
            if self._credentials is None or not needs_token(exc.message):
                raise
        # Auth is on and the token is missing, expired or older than an auth change: a new one, once.
        self._token = await self._authenticate(endpoint)
        return await self._request(endpoint, path, body, timeout)

    async def _authenticate(self, endpoint: str) -> str:
        assert self._credentials is not None
        user, password = self._credentials
        self._token = ""
        data = await self._request(endpoint, "/v3/auth/authenticate", {"name": user, "password": password})
        return str(data.get("token", ""))

    async def _request(
        self, endpoint: str, path: str, body: dict[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        session = self._open()
        self.calls += 1
        EtcdClient.total_calls += 1
        limit = aiohttp.ClientTimeout(total=timeout) if timeout is not None else None
        try:
            method = session.post if body is not None else session.get
            headers = {"Authorization": self._token} if self._token else None
            async with method(f"{endpoint}{path}", json=body, timeout=limit, headers=headers) as response:
                status = response.status
                text = await response.text()
            data = json.loads(text) if text.strip() else None
        except ValueError as exc:
            # Not JSON: etcd's own words in plain text (e.g. the gateway refusing a certificate's CommonName).
            raise EtcdError(f"HTTP {status}: {text.strip()[:300]}" if text.strip() else str(exc), endpoint) from exc
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise EtcdError(str(exc) or type(exc).__name__, endpoint) from exc
        if isinstance(data, dict) and ("error" in data or "message" in data) and "header" not in data:
            raise EtcdError(str(data.get("message") or data.get("error")), endpoint)
        return data if isinstance(data, dict) else {}

    async def _any(self, path: str, body: dict[str, Any] | None = None, done_if: str = "") -> dict[str, Any]:
        """Try each endpoint in turn; membership calls go to whichever member answers.

        `done_if`: etcd's words for "what you ask is already so". A member may apply a change and drop the
        connection before answering (the member being removed serves the request, say); the next endpoint
        then reports the change as made, and that is success, not a refusal.
        """
        errors = []
        for endpoint in self.endpoints:
            try:
                return await self._call(endpoint, path, body)
            except EtcdError as exc:
                if done_if and exc.message == done_if:
                    return {}
                errors.append(str(exc))
        raise EtcdError("; ".join(errors) or "no endpoints")

    async def put(self, key: str, value: str) -> None:
        await self._any("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})

    async def member_list(self) -> list[Member]:
        data = await self._any("/v3/cluster/member/list", {"linearizable": True})
        return [_member(m) for m in data.get("members", [])]

    async def member_add(self, peer_urls: Sequence[str], learner: bool = True) -> Member:
        data = await self._any("/v3/cluster/member/add", {"peerURLs": list(peer_urls), "isLearner": learner})
        return _member(data.get("member", {}))

    async def member_promote(self, member_id: int) -> None:
        await self._any("/v3/cluster/member/promote", {"ID": str(member_id)}, done_if=MEMBER_NOT_LEARNER)

    async def member_remove(self, member_id: int) -> None:
        await self._any("/v3/cluster/member/remove", {"ID": str(member_id)}, done_if=MEMBER_NOT_FOUND)

    async def move_leader(self, to_member_id: int) -> None:
        """Leadership transfer must be asked of the current leader, so find it first."""
        for endpoint in self.endpoints:
            try:
                status = await self.status(endpoint)
            except EtcdError:
                continue
            if status.member_id == status.leader_id:
                await self._call(endpoint, "/v3/maintenance/transfer-leadership", {"targetID": str(to_member_id)})
                return
        raise EtcdError("no endpoint is the leader")

    async def compact(self, revision: int) -> None:
        """Compact the key-value history up to revision (physical: its pages are free once it returns).

        A revision compacted already is success: the pass that asked before may have crashed after it.
        """
        try:
            await self._any("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        except EtcdError as exc:
            if "compacted" not in exc.message:
                raise

    async def defragment(self, endpoint: str) -> None:
        """Defragment one member's database file: asked of that member, which blocks while it runs."""
        await self._call(endpoint.rstrip("/"), "/v3/maintenance/defragment", {}, timeout=DEFRAG_TIMEOUT)

    async def disarm_nospace(self, member_id: int) -> None:
        body = {"action": "DEACTIVATE", "memberID": str(member_id), "alarm": "NOSPACE"}
        await self._any("/v3/maintenance/alarm", body)

    async def status(self, endpoint: str) -> EndpointStatus:
        # A member answers its own status at once or is down: a short limit keeps one member that is
        # restarting from holding up the whole pass.
        data = await self._call(endpoint.rstrip("/"), "/v3/maintenance/status", {}, timeout=STATUS_TIMEOUT)
        header = data.get("header", {})
        return EndpointStatus(
            endpoint=endpoint,
            member_id=int(header.get("member_id", 0)),
            leader_id=int(data.get("leader", 0)),
            cluster_id=int(header.get("cluster_id", 0)),
            version=data.get("version", ""),
            is_learner=bool(data.get("isLearner", False)),
            raft_index=int(data.get("raftIndex", 0)),
            errors=tuple(data.get("errors", []) or ()),
            # The gateway writes int64 fields as strings and leaves out zeros (proto3 JSON).
            db_size=int(data.get("dbSize", 0)),
            db_size_in_use=int(data.get("dbSizeInUse", 0)),
            db_size_quota=int(data.get("dbSizeQuota", 0)),
            raft_applied_index=int(data.get("raftAppliedIndex", 0)),
            raft_term=int(data.get("raftTerm", 0)),
            revision=int(header.get("revision", 0)),
        )

    async def view(self) -> EtcdView:
        """The member list and each member's own status, asked concurrently: one etcd round per pass.

        A member is healthy when it answers its status with no alarm (but NOSPACE) and
        knows a leader; that is what quorum needs, without a separate /health call.
        """
        members = await self.member_list()
        statuses = await asyncio.gather(*(self._first_status(m) for m in members))
        leader = cluster = None
        seen = []
        reports: dict[int, MaintenanceStatus] = {}
        for member, status in zip(members, statuses, strict=True):
            # A full database (NOSPACE) refuses writes but serves reads and counts for quorum: Degraded, not
            # down (the pass reports DatabaseFull and recovers); any other alarm makes a member unhealthy.
            faults = [e for e in status.errors if "alarm:NOSPACE" not in e] if status is not None else []
            healthy = status is not None and not faults and bool(status.leader_id)
            if status is not None:
                leader = leader or status.leader_id or None
                cluster = cluster or status.cluster_id or None
                reports[member.id] = status.maintenance()
            version = status.version if status is not None else ""
            seen.append(dataclasses.replace(member, healthy=healthy, version=version))
        answered = next((s.endpoint for s in statuses if s is not None), None)
        speaks = await self.cluster_version(answered) if answered else None
        return EtcdView(tuple(seen), leader, cluster, speaks, reports)

    async def survey(self, endpoints: Sequence[str]) -> Survey:
        """Each member on its own, for when the cluster does not answer as a whole (see `Survey`).

        Its own status from every endpoint, concurrently, and the membership as
        the first one that answers knows it (not linearizable: no quorum needed).
        """
        statuses = await asyncio.gather(*(self._status_or_none(e) for e in endpoints))
        answers = {s.member_id: s.maintenance() for s in statuses if s is not None}
        members = None
        for status in statuses:
            if status is None:
                continue
            try:
                data = await self._call(status.endpoint.rstrip("/"), "/v3/cluster/member/list", {"linearizable": False},
                                        timeout=STATUS_TIMEOUT)  # fmt: skip
            except EtcdError:
                continue
            members = tuple(_member(m) for m in data.get("members", []))
            break
        return Survey(answers, members)

    async def _status_or_none(self, endpoint: str) -> EndpointStatus | None:
        try:
            return await self.status(endpoint)
        except EtcdError:
            return None

    async def cluster_version(self, endpoint: str) -> str | None:
        """The version the cluster as a whole speaks (`etcdcluster`): it moves once every member runs the new one."""
        try:
            data = await self._call(endpoint.rstrip("/"), "/version")
        except EtcdError:
            return None
        return str(data.get("etcdcluster") or "") or None

    async def _first_status(self, member: Member) -> EndpointStatus | None:
        for url in member.client_urls:
            try:
                return await self.status(url)
            except EtcdError:
                continue
        return None

    async def auth_status(self) -> tuple[bool, int]:
        """(auth enabled, etcd's auth revision): one call, what a pass reads when nothing may have changed."""
        data = await self._any("/v3/auth/status", {})
        return bool(data.get("enabled", False)), int(data.get("authRevision", 0))

    async def auth_view(self, desired: auth.DesiredAccess) -> auth.AuthView:
        """etcd's users and roles, as far as the operator's planning needs them.

        Calls: auth status, user list, role list, then a get per role of the operator's and per user
        it wants or made: bounded by the size of tls.clients.
        """
        enabled, revision = await self.auth_status()
        names = frozenset((await self._any("/v3/auth/user/list", {})).get("users") or [])
        role_names = frozenset((await self._any("/v3/auth/role/list", {})).get("roles") or [])
        roles: dict[str, frozenset[auth.Grant]] = {r: frozenset() for r in role_names}
        for role in sorted(r for r in role_names if r.startswith(auth.ROLE_PREFIX)):
            data = await self._any("/v3/auth/role/get", {"role": role})
            roles[role] = frozenset(_grant(p) for p in data.get("perm") or [])
        users = {}
        for user in sorted(auth.users_to_read(desired, role_names, names)):
            users[user] = frozenset((await self._any("/v3/auth/user/get", {"name": user})).get("roles") or [])
        return auth.AuthView(enabled, revision, names, users, roles)

    async def auth_call(self, call: auth.Call) -> None:
        """One planned call. A call a crashed pass already made (exists, not found, not granted) is success."""
        path, body, done = _auth_request(call, self._credentials)
        try:
            await self._any(path, body)
        except EtcdError as exc:
            if not done or not any(words in exc.message for words in done):
                raise

    async def healthy(self, endpoint: str) -> bool:
        try:
            data = await self._call(endpoint.rstrip("/"), "/health")
        except EtcdError:
            return False
        return str(data.get("health", "")).lower() == "true"


# etcd's words when a request needs a (new) token: none was sent, it expired, or auth changed since.
TOKEN_ERRORS = ("user name is empty", "invalid auth token", "revision of auth store is old")


def needs_token(message: str) -> bool:
    return any(words in message for words in TOKEN_ERRORS)


_PERM_TYPES = ("READ", "WRITE", "READWRITE")


def _grant(raw: dict[str, Any]) -> auth.Grant:
    kind = raw.get("permType", "READ")  # proto3 JSON leaves out the zero value, READ
    kind = _PERM_TYPES[kind] if isinstance(kind, int) else str(kind)
    return auth.Grant(base64.b64decode(raw.get("key", "")), base64.b64decode(raw.get("range_end", "")), kind)


def _auth_request(
    call: auth.Call, credentials: tuple[str, str] | None
) -> tuple[str, dict[str, Any], tuple[str, ...]]:
    """The gateway path and body of a call, and etcd's words that mean it was made already."""
    def password() -> str:
        if credentials is None:
            raise EtcdError(f"{auth.describe(call)}: the operator has no password (Secret not read yet)")
        return credentials[1]

    match call:
        case auth.RoleAdd(role):
            return "/v3/auth/role/add", {"name": role}, ("role name already exists",)
        case auth.RoleDelete(role):
            return "/v3/auth/role/delete", {"role": role}, ("role name not found",)
        case auth.RoleGrant(role, grant):
            perm = {"permType": grant.kind, "key": auth.b64(grant.key), "range_end": auth.b64(grant.range_end)}
            return "/v3/auth/role/grant", {"name": role, "perm": perm}, ()
        case auth.RoleRevoke(role, grant):
            revoke = {"role": role, "key": auth.b64(grant.key), "range_end": auth.b64(grant.range_end)}
            return "/v3/auth/role/revoke", revoke, ("permission is not granted to the role",)
        case auth.UserAdd(user, with_password):
            add: dict[str, Any] = {"name": user, "password": password()} if with_password else {
                "name": user, "options": {"no_password": True}}  # fmt: skip
            return "/v3/auth/user/add", add, ("user name already exists",)
        case auth.UserPassword(user):
            return "/v3/auth/user/changepw", {"name": user, "password": password()}, ()
        case auth.UserDelete(user):
            return "/v3/auth/user/delete", {"name": user}, ("user name not found",)
        case auth.UserGrant(user, role):
            return "/v3/auth/user/grant", {"user": user, "role": role}, ()
        case auth.UserRevoke(user, role):
            return "/v3/auth/user/revoke", {"name": user, "role": role}, ("role is not granted to the user",)
        case auth.AuthEnable():
            return "/v3/auth/enable", {}, ()
        case auth.AuthDisable():
            return "/v3/auth/disable", {}, ()
    raise ValueError(f"unknown auth call {call!r}")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def client_ssl_context(ca_pem: bytes, cert_path: str, key_path: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=ca_pem.decode())
    ctx.load_cert_chain(cert_path, key_path)
    return ctx
