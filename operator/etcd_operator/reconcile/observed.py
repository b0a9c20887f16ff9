"""What one pass saw: every fact it plans from and reports, read once into typed values.

Planning and status are both pure functions of one `Observed`, so what a pass
did and what it says can never come from two different reads of the world.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from etcd_node.contract import AgentError, Member

from .auth import AuthView

__all__ = ["BackupView", "Member", "MaintenanceStatus", "EtcdView", "Observed", "PodView", "StatefulSetView", "DiscoveryService", "Survey", "quorum"]

REPLICAS_MANAGER = "etcd-operator-membership"  # the one field manager that writes StatefulSet.spec.replicas


def quorum(voting: int) -> int:
    return voting // 2 + 1


def fault_tolerance(voting: int) -> int:
    """Voting members that may be down while the rest keep quorum."""
    return max(voting - quorum(voting), 0) if voting else 0


@dataclass(frozen=True)
class MaintenanceStatus:
    """One member's answer to the maintenance status call: its database and raft progress, and alarms.

    Read in the same round as the member list (no extra call), so metrics and
    maintenance plan from the pass's one observation. Sizes are bytes;
    `db_size_quota` is 0 when the member does not say (etcd before 3.6).
    """

    member_id: int
    leader_id: int = 0
    db_size: int = 0
    db_size_in_use: int = 0
    db_size_quota: int = 0
    raft_index: int = 0
    raft_applied_index: int = 0
    raft_term: int = 0
    revision: int = 0  # the store's current revision (from the response header)
    errors: tuple[str, ...] = ()  # etcd's alarms and health errors, e.g. "memberID:… alarm:NOSPACE"


@dataclass(frozen=True)
class EtcdView:
    """etcd's answer: `members` with health, and the leader and cluster identity any member reported."""

    members: tuple[Member, ...]
    leader_id: int | None = None
    cluster_id: int | None = None
    version: str | None = None  # the cluster version: it moves only once every member runs the new one
    status: Mapping[int, MaintenanceStatus] = field(default_factory=dict)  # member ID -> its own status, if it answered

    @property
    def voting(self) -> tuple[Member, ...]:
        return tuple(m for m in self.members if not m.is_learner)


@dataclass(frozen=True)
class Survey:
    """Members asked one by one when the cluster did not answer as a whole: how a loss of quorum is told.

    Read only when the member list could not be read (it needs quorum); each
    member's own status and the membership it knows (not linearizable) need
    none, so the survivors of a loss still say who they are and how far their
    log goes.
    """

    answers: Mapping[int, MaintenanceStatus] = field(default_factory=dict)  # member ID -> its own status
    members: tuple[Member, ...] | None = None  # the membership as an answering member knows it


@dataclass(frozen=True)
class PodView:
    """A member pod; `error` is etcd-node's refusal, read only from a container that is not running now."""

    name: str
    ordinal: int | None
    error: AgentError | None = None
    uid: str = ""
    revision: str = ""  # the StatefulSet revision (controller-revision-hash) the pod was created from
    ready: bool = False
    deleting: bool = False
    unschedulable: str = ""  # the scheduler's message while the pod cannot be placed (PodScheduled False)


@dataclass(frozen=True)
class StatefulSetView:
    replicas: int
    ready: int
    replicas_owned: bool  # REPLICAS_MANAGER owns spec.replicas: the object apply leaves it out
    live: Mapping[str, Any] = field(default_factory=dict)
    update_revision: str = ""  # the revision pods of the current template carry
    template_observed: bool = True  # the StatefulSet controller has seen the newest template


@dataclass(frozen=True)
class DiscoveryService:
    """Another EtcdCluster used as this one's v3 discovery service; `error` says why it cannot be used yet.

    Its URL and client CA are read only while this cluster's template or discovery credential needs them.
    """

    endpoints: str = ""
    client_ca_secret: str = ""  # the discovery cluster's client CA Secret: members present a certificate it signed
    client_ca: Mapping[str, bytes] | None = None  # that Secret's data (None: not read, or it does not exist)
    credential: Mapping[str, bytes] | None = None  # this cluster's own discovery Secret (None: it does not exist)
    error: str = ""


@dataclass(frozen=True)
class BackupView:
    """An EtcdBackup the cluster's schedule created: enough to decide the next run and what to prune."""

    name: str
    uid: str
    scheduled: datetime  # the cron time it was created for (its annotation; else its creation time)
    phase: str = ""  # "" until the backup's own pass has written a status
    completion_time: str = ""
    deleting: bool = False  # already being deleted (its snapshot first): retention neither counts nor deletes it


@dataclass(frozen=True)
class RestoreSources:
    """What the pass read for a pending restore: the EtcdBackup named, and the store's Secrets."""

    backup: Mapping[str, Any] | None = None
    credentials: Mapping[str, bytes] | None = None  # None: the Secret does not exist
    ca: Mapping[str, bytes] | None = None
    request: Mapping[str, bytes] | None = None  # our request Secret's data, when it exists


@dataclass(frozen=True)
class Observed:
    generation: int
    statefulset: StatefulSetView | None
    pods: tuple[PodView, ...] = ()
    objects: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # "Kind/name" -> live owned object
    secrets: Mapping[str, Mapping[str, bytes]] = field(default_factory=dict)  # owned Secret name -> data
    etcd: EtcdView | None = None
    etcd_error: str = ""  # why `etcd` is None
    discovery: DiscoveryService = field(default_factory=DiscoveryService)
    ever_available: bool = False
    backups: tuple[BackupView, ...] = ()  # scheduled EtcdBackups owned by the cluster (read only with spec.backup)
    restore: RestoreSources = field(default_factory=RestoreSources)  # read only while a restore is pending
    in_place: RestoreSources = field(default_factory=RestoreSources)  # spec.restore's, read only while it may be needed
    survey: Survey | None = None  # members one by one, when `etcd` is None and members run
    recovery_request: Mapping[str, bytes] | None = None  # spec.recovery's request Secret's data, when it exists
    # tls mode secret: the user's Secrets the members mount, by name (None: it does not exist)
    provided_tls: Mapping[str, Mapping[str, bytes] | None] = field(default_factory=dict)
    auth: AuthView | None = None  # etcd's users and roles, read only while the operator manages auth
    auth_error: str = ""  # why `auth` could not be read

    @property
    def sts_replicas(self) -> int:
        return self.statefulset.replicas if self.statefulset else 0

    @property
    def sts_ready(self) -> int:
        return self.statefulset.ready if self.statefulset else 0

    @property
    def members(self) -> tuple[Member, ...] | None:
        return self.etcd.members if self.etcd else None

    def pod_errors(self) -> dict[str, AgentError]:
        return {p.name: p.error for p in self.pods if p.error is not None}
