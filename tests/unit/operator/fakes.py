"""In-memory Kubernetes and etcd for exercising whole reconcile passes in unit tests.

Typed and small, not servers: they keep just the behaviour the pass depends on
and could get wrong. The fake API server stores objects and, like server-side
apply, drops a field when the only manager that set it stops sending it
(which is how `replicas` would vanish if two writers shared it); the fake
etcd keeps a member list and answers the runtime API the way etcd does,
including refusing a second change while a learner is not started. A `World`
plays the StatefulSet controller and the kubelet between passes.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from typing import Any

from etcd_operator.adapters.etcd import EtcdError
from etcd_operator.adapters.kube import FIELD_MANAGER, ApiError
from etcd_operator.reconcile import auth
from etcd_operator.reconcile.observed import EtcdView, MaintenanceStatus, Member, Survey


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


@dataclass
class FakeKube:
    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    writes: list[str] = field(default_factory=list)
    refuse: dict[str, tuple[int, str]] = field(default_factory=dict)  # "Kind/name" -> (status, message) on apply
    replicas_owners: dict[str, set[str]] = field(default_factory=dict)  # StatefulSet name -> managers of replicas

    def get(self, api_version: str, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        self.requests += 1
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list(self, api_version: str, kind: str, namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
        self.requests += 1
        return [
            copy.deepcopy(o)
            for (k, ns, _), o in sorted(self.objects.items())
            if k == kind and ns == namespace
            and all((o["metadata"].get("labels") or {}).get(a) == b for a, b in selector.items())
        ]

    def apply(self, obj: dict[str, Any], manager: str = FIELD_MANAGER) -> dict[str, Any]:
        self.requests += 1
        kind, meta = obj["kind"], obj["metadata"]
        what = f"{kind}/{meta['name']}"
        if what in self.refuse:
            status, message = self.refuse[what]
            raise ApiError(what, status, message)
        key = (kind, meta["namespace"], meta["name"])
        self.writes.append(what if manager == FIELD_MANAGER else f"{what} ({manager})")
        live = self.objects.get(key)
        if live is None:
            if kind == "StatefulSet" and "replicas" not in obj.get("spec", {}):
                raise ApiError(what, 422, "a new StatefulSet needs spec.selector and spec.template")
            live = {"metadata": {}}
        if kind == "StatefulSet":
            owners = self.replicas_owners.setdefault(meta["name"], set())
            if "replicas" in obj.get("spec", {}):
                if live.get("spec", {}).get("replicas") != obj["spec"]["replicas"]:
                    owners.clear()  # a forced apply of another value takes the field from everyone else
                owners.add(manager)
            else:
                owners.discard(manager)
                if not owners:
                    live.get("spec", {}).pop("replicas", None)  # SSA: nobody owns it any more
            live.setdefault("metadata", {})["managedFields"] = [
                {"manager": m, "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}} for m in sorted(owners)
            ]
        _merge(live, obj)
        if "data" in obj:
            live["data"] = copy.deepcopy(obj["data"])  # SSA drops the keys this manager stopped sending
        if kind == "StatefulSet" and "replicas" not in live.get("spec", {}):
            live["spec"]["replicas"] = 1  # the API server's default
        self.objects[key] = live
        return copy.deepcopy(live)

    def patch_status(self, api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]) -> None:
        self.requests += 1

    def delete(self, api_version: str, kind: str, name: str, namespace: str, uid: str = "") -> None:
        self.requests += 1
        live = self.objects.get((kind, namespace, name))
        if live is not None and (not uid or live["metadata"].get("uid") == uid):
            self.writes.append(f"delete {kind}/{name}")
            del self.objects[(kind, namespace, name)]

    def remove(self, kind: str, namespace: str, name: str) -> None:
        """Somebody else deletes an object (kubectl delete)."""
        self.objects.pop((kind, namespace, name), None)

    def secret(self, namespace: str, name: str) -> dict[str, bytes]:
        found = self.objects[("Secret", namespace, name)]
        return {k: base64.b64decode(v) for k, v in found["data"].items()}


def auth_apply(view: auth.AuthView, call: auth.Call) -> auth.AuthView:
    """What etcd's auth store holds after one call (every call bumps the auth revision)."""
    users, roles, names, enabled = dict(view.users), dict(view.roles), set(view.names), view.enabled
    match call:
        case auth.RoleAdd(role):
            roles[role] = frozenset()
        case auth.RoleDelete(role):
            roles.pop(role)
            users = {u: rs - {role} for u, rs in users.items()}
        case auth.RoleGrant(role, grant):
            kept = {g for g in roles[role] if (g.key, g.range_end) != (grant.key, grant.range_end)}
            roles[role] = frozenset(kept | {grant})
        case auth.RoleRevoke(role, grant):
            roles[role] = frozenset(g for g in roles[role] if (g.key, g.range_end) != (grant.key, grant.range_end))
        case auth.UserAdd(user):
            names.add(user)
            users[user] = frozenset()
        case auth.UserPassword():
            pass
        case auth.UserDelete(user):
            names.discard(user)
            users.pop(user, None)
        case auth.UserGrant(user, role):
            assert role == auth.ROOT or role in roles, f"etcd refuses a grant of the unknown role {role}"
            users[user] = users[user] | {role}
        case auth.UserRevoke(user, role):
            users[user] = users[user] - {role}
        case auth.AuthEnable():
            assert auth.ROOT in names and auth.ROOT in users[auth.ROOT], "etcd refuses auth enable without root"
            assert auth.ROOT in users.get(auth.OPERATOR_USER, frozenset()), "the operator would lock itself out"
            enabled = True
        case auth.AuthDisable():
            enabled = False
    return auth.AuthView(enabled, view.revision + 1, frozenset(names), users, roles)


@dataclass
class FakeEtcd:
    """One etcd cluster's membership; members are keyed by ID, ordered by when they were added."""

    members: dict[int, Member] = field(default_factory=dict)
    leader: int | None = None
    reachable: bool = True
    calls: int = 0
    next_id: int = 0x100
    statuses: dict[int, MaintenanceStatus] = field(default_factory=dict)  # member ID -> what its status call answers
    maintenance: list[str] = field(default_factory=list)  # compact/defragment/disarm calls, in order
    live_bytes: int = 2 * 2**20  # what a compaction leaves in use
    cluster_id: int = 0xC1
    survivors: set[int] = field(default_factory=set)  # while unreachable: members that still answer on their own
    puts: list[tuple[str, str]] = field(default_factory=list)  # keys written, in order

    async def survey(self, endpoints: list[str]) -> Survey:
        """What members say one by one when quorum is lost: their own status (no leader) and the membership."""
        self.calls += len(endpoints)
        answers = {i: replace(self.statuses.get(i, MaintenanceStatus(i, raft_index=1000 + i)), leader_id=0)
                   for i in self.survivors if i in self.members}  # fmt: skip
        return Survey(answers, tuple(self.members.values()) if answers else None)
    auth: auth.AuthView = field(default_factory=lambda: auth.AuthView(False, 1))  # etcd's auth store
    auth_log: list[str] = field(default_factory=list)  # the auth calls made, in words
    refuse_auth: str = ""  # etcd's words for the next auth write it refuses ("" accepts them all)

    async def auth_status(self) -> tuple[bool, int]:
        self.calls += 1
        return self.auth.enabled, self.auth.revision

    async def auth_view(self, desired: auth.DesiredAccess) -> auth.AuthView:
        self.calls += 3 + len(self.auth.owned_roles) + len(self.auth.names)
        return replace(self.auth, users={u: self.auth.users.get(u, frozenset()) for u in self.auth.names})

    async def auth_call(self, call: auth.Call) -> None:
        self.calls += 1
        if self.refuse_auth:
            raise EtcdError(self.refuse_auth)
        self.auth = auth_apply(self.auth, call)
        self.auth_log.append(auth.describe(call))

    async def view(self) -> EtcdView:
        self.calls += 1 + len(self.members)  # the member list, then each member's status
        if not self.reachable:
            raise EtcdError("connection refused")
        status = {i: s for i, s in self.statuses.items() if i in self.members}
        return EtcdView(tuple(self.members.values()), self.leader, self.cluster_id, "3.6.16", status)

    async def put(self, key: str, value: str) -> None:
        self.calls += 1
        self.puts.append((key, value))

    def _settled(self) -> None:
        if any(m.is_learner and not m.started for m in self.members.values()):
            raise EtcdError("etcdserver: unhealthy cluster")

    async def member_add(self, peer_urls: list[str], learner: bool = True) -> Member:
        self.calls += 1
        self._settled()
        member = Member(self.next_id, "", tuple(peer_urls), (), learner, False)
        self.members[member.id] = member
        self.next_id += 1
        return member

    async def member_promote(self, member_id: int) -> None:
        self.calls += 1
        member = self.members[member_id]
        if not member.healthy:
            raise EtcdError("etcdserver: can only promote a learner member which is in sync with leader")
        self.members[member_id] = replace(member, is_learner=False)

    async def member_remove(self, member_id: int) -> None:
        self.calls += 1
        self.members.pop(member_id)
        if self.leader == member_id:
            self.leader = next(iter(self.members), None)

    async def move_leader(self, to_member_id: int) -> None:
        self.calls += 1
        self.leader = to_member_id

    async def compact(self, revision: int) -> None:
        """History up to revision is gone: the pages in use shrink to the live data (in_use_after_compact)."""
        self.calls += 1
        self.maintenance.append(f"compact {revision}")
        for i, s in self.statuses.items():
            self.statuses[i] = replace(s, db_size_in_use=min(s.db_size_in_use, self.live_bytes))

    async def defragment(self, endpoint: str) -> None:
        self.calls += 1
        member = next(m for m in self.members.values() if endpoint in m.client_urls)
        self.maintenance.append(f"defragment {member.name}")
        s = self.statuses[member.id]
        self.statuses[member.id] = replace(s, db_size=s.db_size_in_use)

    async def disarm_nospace(self, member_id: int) -> None:
        self.calls += 1
        self.maintenance.append(f"disarm {member_id:x}")
        for i, s in self.statuses.items():
            self.statuses[i] = replace(s, errors=tuple(e for e in s.errors if f"memberID:{member_id} " not in e + " "))

    async def close(self) -> None:
        pass


@dataclass
class World:
    """The StatefulSet controller and the kubelet, for a cluster named `name` in `namespace`."""

    kube: FakeKube
    etcd: FakeEtcd
    name: str = "main"
    namespace: str = "db"
    wiped: set[int] = field(default_factory=set)  # ordinals whose volume is gone (their pod refuses to start)
    restarts: dict[int, int] = field(default_factory=dict)  # ordinal -> times its pod was recreated
    uids: int = 0
    restored: list[str] = field(default_factory=list)  # in-place requests the members carried out, in order
    recovered: list[str] = field(default_factory=list)  # recovery requests a survivor carried out, in order

    def replicas(self) -> int:
        sts = self.kube.objects.get(("StatefulSet", self.namespace, self.name))
        return int(sts["spec"]["replicas"]) if sts else 0

    def _ordinal(self, member: Member) -> int | None:
        for url in member.peer_urls:
            host = url.split("://", 1)[1].split(".", 1)[0]
            if host.startswith(f"{self.name}-"):
                return int(host.rsplit("-", 1)[1])
        return None

    def _template(self) -> tuple[str, str]:
        """(revision, etcd version) of the StatefulSet's current pod template."""
        sts = self.kube.objects[("StatefulSet", self.namespace, self.name)]
        template = sts["spec"]["template"]
        image = template["spec"]["containers"][0]["image"]
        return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10], image.rpartition(":")[2]

    def settle(self) -> None:
        """The StatefulSet controller (OnDelete: a pod keeps its revision until deleted) and the kubelet.

        Pods exist for ordinals below the StatefulSet's size; each starts its member if etcd lists it,
        running the etcd version of the template the pod was created from.
        """
        replicas = self.replicas()
        if ("StatefulSet", self.namespace, self.name) not in self.kube.objects:
            return
        revision, version = self._template()
        sts = self.kube.objects[("StatefulSet", self.namespace, self.name)]
        member = re.compile(rf"^{re.escape(self.name)}-[0-9]+$")  # other pods (a backup Job's) are not the set's
        pods = {k[2]: o for k, o in self.kube.objects.items() if k[0] == "Pod" and member.match(k[2])}
        for name in list(pods):
            if int(name.rsplit("-", 1)[1]) >= replicas:
                del self.kube.objects[("Pod", self.namespace, name)]
                del pods[name]
        if replicas and not pods:
            self._restore_in_place(sts)
            self._recover(sts)
        listed = {self._ordinal(m): m for m in self.etcd.members.values()}
        if not self.etcd.members and replicas:  # first start: the initial members bootstrap together
            for ordinal in range(replicas):
                member = self._member(ordinal, self.next_id())
                self.etcd.members[member.id] = member
            self.etcd.leader = next(iter(self.etcd.members))
            listed = {self._ordinal(m): m for m in self.etcd.members.values()}
        ready = 0
        for ordinal in range(replicas):
            name = f"{self.name}-{ordinal}"
            member = listed.get(ordinal)
            # etcd-node refuses an empty volume for a member that was started before; a re-added learner joins.
            refused = ordinal in self.wiped and member is not None and member.started and not member.is_learner
            pod = pods.get(name)
            if pod is None:
                self.restarts[ordinal] = self.restarts.get(ordinal, -1) + 1
                pod = self._pod(ordinal, revision, version)
            pod["status"] = self._pod_status(refused)
            self.kube.objects[("Pod", self.namespace, name)] = pod
            if member is None:
                continue
            if refused:
                self.etcd.members[member.id] = replace(member, healthy=False)
                continue
            self.wiped.discard(ordinal)
            ready += 1
            self.etcd.members[member.id] = replace(member, name=name, healthy=True,
                                                   version=pod["metadata"]["annotations"]["version"],
                                                   client_urls=(f"https://{name}.{self.name}:2379",))  # fmt: skip
        for member in list(self.etcd.members.values()):
            ordinal = self._ordinal(member)
            if ordinal is not None and ordinal >= replicas:
                self.etcd.members[member.id] = replace(member, healthy=False)
        sts["status"] = {"readyReplicas": ready, "updateRevision": revision,
                         "observedGeneration": sts["metadata"].get("generation", 0)}  # fmt: skip

    def _restore_in_place(self, sts: dict[str, Any]) -> None:
        """Members starting together with an in-place request for their token restore it (etcd-node's part):
        the same names and peer URLs, new member IDs, a new cluster ID. Once per request, as the marker
        on each member's volume ensures."""
        secret = self.kube.objects.get(("Secret", self.namespace, f"{self.name}-restore"))
        if secret is None:
            return
        request = json.loads(base64.b64decode(secret["data"]["restore.json"]))
        env = sts["spec"]["template"]["spec"]["containers"][0]["env"]
        token = next(e.get("value") for e in env if e["name"] == "ETCD_INITIAL_CLUSTER_TOKEN")
        if not request.get("requestID") or request["requestID"] in self.restored or token != request["token"]:
            return
        self.restored.append(request["requestID"])
        self.etcd.members = {}
        for ordinal in range(int(request["members"])):
            member = self._member(ordinal, self.next_id())
            self.etcd.members[member.id] = member
        self.etcd.leader = next(iter(self.etcd.members))
        self.etcd.cluster_id += 1

    def _recover(self, sts: dict[str, Any]) -> None:
        """The survivor of a recovery request starting with its data (etcd-node's --force-new-cluster, once):
        the same member ID and cluster ID, alone in the membership; etcd answers again."""
        secret = self.kube.objects.get(("Secret", self.namespace, f"{self.name}-recovery"))
        volumes = sts["spec"]["template"]["spec"].get("volumes") or []
        if secret is None or not any(v["name"] == "recovery" for v in volumes):
            return
        request = json.loads(base64.b64decode(secret["data"]["recovery.json"]))
        survivor = next((m for m in self.etcd.members.values() if self._ordinal(m) == request["ordinal"]), None)
        if request["requestID"] in self.recovered or survivor is None or survivor.id not in self.etcd.survivors:
            return
        self.recovered.append(request["requestID"])
        self.etcd.members = {survivor.id: survivor}
        self.etcd.leader, self.etcd.reachable, self.etcd.survivors = survivor.id, True, set()

    def next_id(self) -> int:
        self.etcd.next_id += 1
        return self.etcd.next_id - 1

    def _member(self, ordinal: int, member_id: int) -> Member:
        url = f"https://{self.name}-{ordinal}.{self.name}.{self.namespace}.svc.cluster.local:2380"
        return Member(member_id, "", (url,), (), False, False)

    def _pod(self, ordinal: int, revision: str, version: str) -> dict[str, Any]:
        self.uids += 1
        labels = {"app.kubernetes.io/name": "etcd", "app.kubernetes.io/instance": self.name,
                  "controller-revision-hash": revision}  # fmt: skip
        return {"metadata": {"name": f"{self.name}-{ordinal}", "namespace": self.namespace, "labels": labels,
                             "uid": f"uid-{self.uids}", "annotations": {"version": version}}}  # fmt: skip

    def _pod_status(self, refused: bool) -> dict[str, Any]:
        if refused:
            message = "etcd-node: error[MemberAlreadyBootstrapped]: this member was started before; its data is gone"
            state: dict[str, Any] = {"waiting": {"reason": "CrashLoopBackOff"}}
            last: dict[str, Any] = {"terminated": {"exitCode": 1, "message": message}}
        else:
            state = {"running": {"startedAt": "2026-12-01T00:00:00Z"}}
            # The kubelet keeps the last termination after a restart: a healed member still shows it.
            last = {"terminated": {"exitCode": 1, "message": "etcd-node: error[MemberAlreadyBootstrapped]: old"}}
        ready = {"type": "Ready", "status": "False" if refused else "True"}
        return {"conditions": [ready], "containerStatuses": [{"name": "etcd", "state": state, "lastState": last}]}


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)
