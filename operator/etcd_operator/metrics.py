"""The operator's own metrics: what each pass saw of its cluster, as Prometheus series.

Two halves, like the rest of the operator. `sample(ctx, result)` is pure: one
pass's result (the same `Observed` that plan and status came from) in, plain
values out, so what the metrics say can never disagree with what status says.
`Recorder` is the thin layer that sets prometheus_client series from a sample,
keeps the little state counters need across passes (the last leader, the last
refusal), and removes every series of a member or a cluster that is gone, so a
deleted cluster leaves no stale series behind.

Labels are `namespace` and `cluster`; member series add `member` (the pod
name, bounded by replicas <= 9), and the other extra labels take values from
small fixed sets (step kinds, refusal reasons, phases, the five TLS Secrets).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, start_http_server
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from .controller import PassResult
from .reconcile import maintenance as maint
from .reconcile import membership as mp
from .reconcile.plan import ClusterContext
from .reconcile.secrets import IssuedCertificate, issued_certificates
from .resources.naming import ClusterNames

PHASES = ("Bootstrapping", "Running", "Degraded", "Unavailable", "Failed", "Hibernated", "Restoring")
DEFAULT_QUOTA = 2 * 2**30  # etcd's --quota-backend-bytes when unset (or 0)
TAKEN = (mp.AddLearner, mp.Promote, mp.MoveLeader, mp.RemoveMember, mp.ScaleStatefulSet, mp.RestartMember)
PASS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class MemberSample:
    member: str  # the pod name
    healthy: bool
    leader: bool
    learner: bool
    db_size: int | None = None  # None: the member did not answer its status this pass
    db_size_in_use: int | None = None
    applied_lag: int | None = None  # raft entries applied by the leader but not yet by this member


@dataclass(frozen=True)
class ClusterSample:
    namespace: str
    cluster: str
    phase: str
    desired: int  # spec.replicas
    voting: int
    learners: int
    healthy: int  # members that answered their status with no alarm and a leader
    leader_id: int | None  # None: no member knows a leader (or etcd could not be asked)
    quota_bytes: int
    members: tuple[MemberSample, ...] = ()
    steps: tuple[tuple[str, str], ...] = ()  # (step kind, "done" | "retry") taken this pass
    refused: str = ""  # the reason a membership step is refused now, "" when none is
    certificates: tuple[IssuedCertificate, ...] = ()
    database_full: bool = False  # etcd's NOSPACE alarm is raised
    maintained: str = ""  # the maintenance step this pass took: Compact, Defragment or Disarm ("" for none)
    last_backup: float | None = None  # completion of the newest Completed scheduled backup, seconds since the epoch


def _pod(names: ClusterNames, member_name: str, member_id: int, peer_urls: Iterable[str]) -> str:
    for url in peer_urls:
        if (ordinal := names.ordinal_in_url(url)) is not None:
            return names.pod(ordinal)
    return member_name or f"{member_id:x}"  # a member the operator did not add: still one series


def _quota(ctx: ClusterContext, reported: Iterable[int]) -> int:
    """What etcd says its quota is (3.6+), else what the spec sets it to, else etcd's default."""
    told = max(reported, default=0)
    if told:
        return told
    return (ctx.spec.etcd.quota_backend_bytes if ctx.spec.etcd else None) or DEFAULT_QUOTA


def _members(names: ClusterNames, result: PassResult) -> tuple[tuple[MemberSample, ...], int | None, int]:
    """Member series from etcd's answer; without one, the last members status lists, none healthy."""
    view = result.observed.etcd
    if view is None:
        last = result.status.members or []
        samples = tuple(
            MemberSample(_pod(names, m.name, int(m.id, 16), m.peer_urls), healthy=False, leader=False,
                         learner=m.is_learner)
            for m in last
        )  # fmt: skip
        return samples, None, 0
    reports = view.status
    leader = reports.get(view.leader_id) if view.leader_id is not None else None
    samples_list = []
    for m in view.members:
        report = reports.get(m.id)
        lag = None
        if report is not None and leader is not None:
            lag = max(leader.raft_applied_index - report.raft_applied_index, 0)
        samples_list.append(
            MemberSample(
                _pod(names, m.name, m.id, m.peer_urls), healthy=m.healthy, leader=m.id == view.leader_id,
                learner=m.is_learner, db_size=report.db_size if report else None,
                db_size_in_use=report.db_size_in_use if report else None, applied_lag=lag,
            )  # fmt: skip
        )
    leader_id = view.leader_id if any(m.id == view.leader_id for m in view.members) else None
    return tuple(samples_list), leader_id, max((r.db_size_quota for r in reports.values()), default=0)


def _steps(result: PassResult) -> tuple[tuple[str, str], ...]:
    """Steps carried out this pass. When etcd refused, the first step is the one that failed (it runs first)."""
    outcome, follow_up = result.outcome, result.plan.follow_up
    step = outcome.step
    if step is None or not isinstance(step, TAKEN):
        return ()
    if outcome.step_error:
        return ((type(step).__name__, "retry"),)
    taken = [(type(step).__name__, "done")]
    if follow_up is not None:
        taken.append((type(follow_up).__name__, "done"))
    return tuple(taken)


def sample(ctx: ClusterContext, result: PassResult) -> ClusterSample:
    """One pass's `PassResult` as metric values. Pure: no clock, no I/O."""
    names = ctx.identity.names
    members, leader_id, reported_quota = _members(names, result)
    step = result.outcome.step
    return ClusterSample(
        namespace=names.namespace,
        cluster=names.name,
        phase=result.status.phase or "Bootstrapping",
        desired=ctx.spec.replicas,
        voting=sum(not m.learner for m in members),
        learners=sum(m.learner for m in members),
        healthy=sum(m.healthy for m in members),
        leader_id=leader_id,
        quota_bytes=_quota(ctx, [reported_quota]),
        members=members,
        steps=_steps(result),
        refused=step.reason if isinstance(step, mp.Refuse) else "",
        certificates=issued_certificates(names, result.observed.secrets),
        database_full=any(maint.nospace(st) for st in result.observed.etcd.status.values()) if result.observed.etcd else False,
        maintained=result.outcome.maintained.split(" ", 1)[0],
        last_backup=_epoch(result.status.backup.last_successful_time) if result.status.backup else None,
    )


def _epoch(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def leader_changed(previous: int | None, current: int | None) -> bool:
    """A new leader was elected since the last pass saw one (losing a leader is not yet a change)."""
    return previous is not None and current is not None and previous != current


Key = tuple[str, str]  # (namespace, cluster)


class _Totals(Collector):
    """Operator-wide counters the adapters keep themselves, read at scrape time."""

    def __init__(self) -> None:
        self.sources: dict[str, tuple[str, Callable[[], int]]] = {}

    def collect(self) -> Iterator[Metric]:
        for name, (doc, read) in sorted(self.sources.items()):
            yield CounterMetricFamily(name, doc, value=read())


class Recorder:
    """prometheus_client series from `ClusterSample`s, on a registry of its own (tests make their own)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r, c, m = self.registry, ["namespace", "cluster"], ["namespace", "cluster", "member"]
        self.members = Gauge("etcd_operator_cluster_members", "Members in etcd's member list, by role (voting, learner)", [*c, "role"], registry=r)
        self.desired = Gauge("etcd_operator_cluster_desired_members", "spec.replicas", c, registry=r)
        self.healthy = Gauge("etcd_operator_cluster_healthy_members", "Members that answered their status with no alarm and a leader", c, registry=r)
        self.has_leader = Gauge("etcd_operator_cluster_has_leader", "1 when a member of the cluster knows a leader", c, registry=r)
        self.leader_changes = Counter("etcd_operator_cluster_leader_changes", "Leader changes the operator saw between passes", c, registry=r)
        self.phase = Gauge("etcd_operator_cluster_phase", "1 for the cluster's status.phase, 0 for the others", [*c, "phase"], registry=r)
        self.quota = Gauge("etcd_operator_cluster_quota_backend_bytes", "etcd's backend quota", c, registry=r)
        self.member_healthy = Gauge("etcd_operator_member_healthy", "1 when the member answered its status with no alarm and a leader", m, registry=r)
        self.member_leader = Gauge("etcd_operator_member_is_leader", "1 for the member that is the leader", m, registry=r)
        self.member_learner = Gauge("etcd_operator_member_is_learner", "1 for a learner (non-voting) member", m, registry=r)
        self.db_size = Gauge("etcd_operator_member_db_size_bytes", "Size of the member's backend database", m, registry=r)
        self.db_in_use = Gauge("etcd_operator_member_db_size_in_use_bytes", "Bytes of the database in use (the rest is free pages a defrag returns)", m, registry=r)
        self.lag = Gauge("etcd_operator_member_raft_applied_index_lag", "Raft entries the leader has applied and the member not yet", m, registry=r)
        self.steps = Counter("etcd_operator_membership_steps", "Membership and StatefulSet steps carried out (done) or that etcd asked to retry", [*c, "step", "result"], registry=r)
        self.refused = Gauge("etcd_operator_membership_step_refused", "1 while the next membership step is refused, by reason", [*c, "reason"], registry=r)
        self.refusals = Counter("etcd_operator_membership_refusals", "Times a membership step started being refused", [*c, "reason"], registry=r)
        self.not_after = Gauge("etcd_operator_certificate_not_after_timestamp_seconds", "notAfter of the operator-issued certificates: each CA, the earliest leaf per Secret", [*c, "secret", "kind"], registry=r)
        self.duration = Histogram("etcd_operator_reconcile_duration_seconds", "Time of one reconcile pass", c, buckets=PASS_BUCKETS, registry=r)
        self.errors = Counter("etcd_operator_reconcile_errors", "Passes that failed before writing status", c, registry=r)
        self.full = Gauge("etcd_operator_cluster_database_full", "1 while etcd's NOSPACE alarm is raised (writes refused)", c, registry=r)
        self.upkeep = Counter("etcd_operator_maintenance_steps", "Maintenance steps carried out (Compact, Defragment, Disarm)", [*c, "step"], registry=r)
        self.last_backup = Gauge("etcd_operator_backup_last_success_timestamp_seconds", "Completion time of the newest Completed scheduled backup", c, registry=r)
        self.totals = _Totals()
        r.register(self.totals)
        self._lock = threading.Lock()  # record (event loop) against forget; scrapes read prometheus_client's own locks
        self._series: dict[Key, set[tuple[Any, tuple[str, ...]]]] = {}
        self._leader: dict[Key, int | None] = {}
        self._refused: dict[Key, str] = {}

    def count(self, name: str, doc: str, read: Callable[[], int]) -> None:
        """An operator-wide counter whose value an adapter keeps (`read` is called at each scrape)."""
        self.totals.sources[name] = (doc, read)

    def _track(self, key: Key, metric: Any, *labels: str) -> Any:
        self._series.setdefault(key, set()).add((metric, labels))
        return metric.labels(*labels)

    def record(self, s: ClusterSample) -> None:
        key = (s.namespace, s.cluster)
        with self._lock:
            before = self._series.pop(key, set())
            self._series[key] = set()
            t = functools.partial(self._track, key)
            t(self.members, *key, "voting").set(s.voting)
            t(self.members, *key, "learner").set(s.learners)
            t(self.desired, *key).set(s.desired)
            t(self.healthy, *key).set(s.healthy)
            t(self.has_leader, *key).set(int(s.leader_id is not None))
            changes = t(self.leader_changes, *key)
            if leader_changed(self._leader.get(key), s.leader_id):
                changes.inc()
            if s.leader_id is not None:
                self._leader[key] = s.leader_id
            for phase in PHASES:
                t(self.phase, *key, phase).set(int(s.phase == phase))
            t(self.quota, *key).set(s.quota_bytes)
            for member in s.members:
                pod = (*key, member.member)
                t(self.member_healthy, *pod).set(int(member.healthy))
                t(self.member_leader, *pod).set(int(member.leader))
                t(self.member_learner, *pod).set(int(member.learner))
                for metric, value in ((self.db_size, member.db_size), (self.db_in_use, member.db_size_in_use),
                                      (self.lag, member.applied_lag)):  # fmt: skip
                    if value is not None:
                        t(metric, *pod).set(value)
            for step, outcome in s.steps:
                t(self.steps, *key, step, outcome).inc()
            if s.refused:
                t(self.refused, *key, s.refused).set(1)
                if self._refused.get(key) != s.refused:
                    t(self.refusals, *key, s.refused).inc()
            self._refused[key] = s.refused
            for cert in s.certificates:
                t(self.not_after, *key, cert.secret, cert.kind).set(cert.not_after)
            t(self.full, *key).set(int(s.database_full))
            if s.maintained:
                t(self.upkeep, *key, s.maintained).inc()
            if s.last_backup is not None:
                t(self.last_backup, *key).set(s.last_backup)
            # Counters and the histogram keep their series for the cluster's life; gauges of members,
            # refusals and Secrets that are gone are dropped.
            keep = (self.steps, self.refusals, self.duration, self.errors, self.leader_changes, self.upkeep)
            for metric, labels in before - self._series[key]:
                if metric in keep:
                    self._series[key].add((metric, labels))
                else:
                    metric.remove(*labels)

    def observe_pass(self, namespace: str, cluster: str, seconds: float, failed: bool) -> None:
        key = (namespace, cluster)
        with self._lock:
            self._track(key, self.duration, *key).observe(seconds)
            errors = self._track(key, self.errors, *key)
            if failed:
                errors.inc()

    def forget(self, namespace: str, cluster: str) -> None:
        """The cluster is gone (or no longer this operator's): every series of it goes too."""
        key = (namespace, cluster)
        with self._lock:
            for metric, labels in self._series.pop(key, set()):
                metric.remove(*labels)
            self._leader.pop(key, None)
            self._refused.pop(key, None)


def new_registry() -> CollectorRegistry:
    """A registry with the process collectors (resident memory, CPU, open files) and nothing global."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


RECORDER = Recorder(new_registry())


def parse_address(address: str) -> tuple[str, int]:
    """`host:port` (`[v6]:port`, `:port` for every address) -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"metrics address must be host:port, e.g. 0.0.0.0:8081, not {address!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve(address: str, registry: CollectorRegistry | None = None) -> Any:
    """Start the /metrics HTTP server on a daemon thread; returns the server (`server_port`, `shutdown()`)."""
    host, port = parse_address(address)
    disable_created_metrics()  # no `_created` series beside every counter: half the series, nothing lost
    server, _ = start_http_server(port, host, registry=registry or RECORDER.registry)
    return server
