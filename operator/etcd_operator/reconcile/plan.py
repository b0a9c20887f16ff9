"""One pass's plan: the object repairs, and at most one membership or StatefulSet-size step.

Pure: the spec, the last status and one `Observed` in, a `Plan` out; the
clock is passed in. Every owned object is compared with what it should be on
every pass, so a deleted Service, a stale PodDisruptionBudget after a scale or
a certificate near its end is put right without anyone editing the spec.

`spec.replicas` of the StatefulSet has exactly one writer: the step of this
plan, written by the REPLICAS_MANAGER field manager. The object apply carries
`replicas` only until that manager owns the field (at creation, and for a
StatefulSet an older operator created), with the live value, so the two can
never disagree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from ..models.cluster import EtcdClusterSpec, EtcdClusterStatus, MemberKeys, TLSMode
from ..resources.statefulset import TRUSTED_CA, MemberTemplateInputs
from . import auth
from . import maintenance as maint
from . import membership as mp
from .desired import ClusterIdentity, default_token, desired_objects, needs_generated_tls
from .discovery import live_discovery, plan_discovery
from .drift import drift
from .inplace import RESTORING, InPlacePlan, plan_in_place, restore_token
from .observed import Member, Observed, PodView, StatefulSetView, quorum
from .pods import lost_data
from .problems import Problem
from .recovery import RECOVERING, RecoveryPlan, plan_recovery, request_of
from .restore import RestorePlan, claim_problem, plan_restore
from .rollout import ROLLOUT_REASONS, path_refusal, plan_rollout, running_version
from .rollover import CA_ROLLOVER, ROTATE_CA
from .schedule import SchedulePlan, plan_schedule
from .secrets import REISSUE_CA, TLSPlan, provided_tls_problem, tls_secrets
from .versions import Version


@dataclass(frozen=True)
class ClusterContext:
    """The EtcdCluster as this pass read it."""

    identity: ClusterIdentity
    spec: EtcdClusterSpec
    status: EtcdClusterStatus
    generation: int
    node_repository: str  # the node image without its tag; the tag is the etcd version
    annotations: Mapping[str, str] = field(default_factory=dict)
    pod_certificates: bool = False  # this operator signs PodCertificateRequests (handlers/podcerts.py)


@dataclass(frozen=True)
class Plan:
    objects: tuple[dict[str, Any], ...] = ()  # missing or drifted objects to apply, Secrets first
    drifted: Mapping[str, str] = field(default_factory=dict)  # "Kind/name" -> first field that differed
    step: mp.Step | None = None  # None: membership is not planned this pass (bootstrap, etcd unreachable)
    follow_up: mp.ScaleStatefulSet | None = None  # the StatefulSet following `step`, in the same pass
    claim_replicas: int | None = None  # REPLICAS_MANAGER takes spec.replicas over at this (live) value
    problems: tuple[Problem, ...] = ()
    seed_discovery: bool = False  # write the expected size into the discovery cluster before members start
    initial_members: int | None = None  # recorded in status at the first pass
    schedule: SchedulePlan = field(default_factory=SchedulePlan)  # spec.backup: object writes, not a step
    restore: RestorePlan = field(default_factory=RestorePlan)  # spec.bootstrap.restore: its request Secret
    in_place: InPlacePlan = field(default_factory=InPlacePlan)  # spec.restore: its step, request and record
    recovery: RecoveryPlan = field(default_factory=RecoveryPlan)  # spec.recovery: its step, request and record
    upkeep: maint.Step = field(default_factory=lambda: maint.Idle("NotPlanned"))  # one maintenance step, if any
    # users' certificate Secrets whose certificates are revoked; the discovery credential once bootstrapped
    retire_secrets: tuple[str, ...] = ()
    auth: auth.AuthPlan | None = None  # etcd auth for tls.clients[].access; None while the operator manages none

    @property
    def step_in_flight(self) -> bool:
        """A membership change is under way: the next step is possible as soon as etcd settles."""
        settling = (mp.AddLearner, mp.Promote, mp.MoveLeader, mp.RemoveMember, mp.ScaleStatefulSet, mp.RestartMember)
        catching_up = isinstance(self.step, mp.Wait) and self.step.reason in (
            "LearnerCatchingUp", RESTORING, RECOVERING, *ROLLOUT_REASONS)  # fmt: skip
        restoring = self.in_place.active and self.in_place.problem is None  # a stuck restore is polled slowly
        recovering = self.recovery.active and self.recovery.problem is None
        return isinstance(self.step, settling) or catching_up or restoring or recovering


def _available(observed: Observed) -> bool:
    if observed.etcd is None:
        return False
    voting = observed.etcd.voting
    return bool(voting) and sum(m.healthy for m in voting) >= quorum(len(voting))


def _membership(ctx: ClusterContext, observed: Observed, members: Sequence[Member]) -> mp.Step:
    assert observed.etcd is not None
    names, peer_tls = ctx.identity.names, ctx.spec.tls.peer.mode is not TLSMode.NONE
    return mp.plan(
        ctx.spec.replicas,
        observed.sts_replicas,
        members,
        observed.etcd.leader_id,
        lambda o: names.peer_url(o, peer_tls),
        names.ordinal_in_url,
        lost_data(observed.pods),
    )


def size_step(ctx: ClusterContext, observed: Observed, initial: int, refused: bool = False) -> mp.Step | None:
    """The StatefulSet's size and membership (hibernation, waking, one runtime-API step), then the rollout.

    `refused`: the version in the spec may not be rolled out (etcd's upgrade path), so no pod restarts.
    """
    if observed.statefulset is None:
        return None  # created with the initial size by the object apply
    if ctx.spec.hibernate:
        return mp.ScaleStatefulSet(0) if observed.sts_replicas else mp.Noop("hibernated")
    if observed.sts_replicas == 0:
        # Waking: every member etcd last listed comes back at once, with its data and ID.
        return mp.ScaleStatefulSet(len(ctx.status.members or []) or initial)
    if observed.etcd is None or not (observed.ever_available or _available(observed)):
        return None  # still bootstrapping, or etcd cannot be asked: nothing to plan from
    step = _membership(ctx, observed, observed.etcd.members)
    if not isinstance(step, mp.Noop) or refused:
        return step
    # Membership is right: the rollout of a new pod template may take its one step.
    names = ctx.identity.names
    rollout = plan_rollout(
        observed.statefulset, observed.pods, observed.etcd, ctx.spec.version,
        lambda m: mp.ordinal_of(m, names.ordinal_in_url),
    )  # fmt: skip
    return rollout or step


def _follow_up(ctx: ClusterContext, observed: Observed, step: mp.Step | None) -> mp.ScaleStatefulSet | None:
    """After an add or a remove, the StatefulSet's size planned from the membership the step leaves."""
    if observed.etcd is None or not isinstance(step, (mp.AddLearner, mp.RemoveMember)):
        return None
    members = mp.after(step, observed.etcd.members) or []
    nxt = _membership(ctx, observed, members)
    return nxt if isinstance(nxt, mp.ScaleStatefulSet) else None


def _template_version(sts: StatefulSetView | None) -> Version | None:
    """The etcd version of the StatefulSet's current pod template (the node image's tag)."""
    if sts is None:
        return None
    containers = sts.live.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or [{}]
    return Version.parse(str(containers[0].get("image", "")).rpartition(":")[2])


def _live_trusted_ca(sts: StatefulSetView | None) -> str | None:
    """The TRUSTED_CA digest of the StatefulSet's current pod template ("" without one); None without a StatefulSet."""
    if sts is None:
        return None
    meta = sts.live.get("spec", {}).get("template", {}).get("metadata", {})
    return str((meta.get("annotations") or {}).get(TRUSTED_CA, ""))


def _live_pod_certificates(sts: StatefulSetView | None) -> bool:
    """The StatefulSet's current pod template mounts pod certificates (spec.tls.memberKeys podCertificate)."""
    volumes = (sts.live.get("spec", {}).get("template", {}).get("spec", {}).get("volumes") or []) if sts else []
    return any(
        "podCertificate" in source for v in volumes for source in (v.get("projected") or {}).get("sources") or []
    )


def _restarted(sts: StatefulSetView | None, pods: Sequence[PodView]) -> bool:
    """Every member runs the current pod template and is ready: what the template says, the members do."""
    if sts is None or not sts.template_observed or not sts.update_revision:
        return False
    members = [p for p in pods if p.ordinal is not None and p.ordinal < sts.replicas]
    return len(members) == sts.replicas and all(
        p.revision == sts.update_revision and p.ready and not p.deleting for p in members
    )


def _for_rollover(step: mp.Step | None, tls: TLSPlan) -> mp.Step | None:
    """A CA rollover's restarts and waits, told as such: the rollout's steps for a change of trusted CAs."""
    doing = tls.rollover
    if not doing:
        return step
    match step:
        case mp.RestartMember() | mp.Wait(reason="RollingUpdate"):
            return replace(step, reason=CA_ROLLOVER, message=f"{doing}; {step.message}")
        case mp.Noop():
            return mp.Wait(CA_ROLLOVER, doing)
    return step


def _membership_counts(ctx: ClusterContext, observed: Observed, initial: int) -> tuple[int, int]:
    """(members, voting) for the PodDisruptionBudget: etcd's answer, else the last status, else the first start."""
    if observed.etcd is not None and observed.etcd.members:
        return len(observed.etcd.members), len(observed.etcd.voting)
    if ctx.status.members:
        return len(ctx.status.members), sum(not m.is_learner for m in ctx.status.members)
    return initial, initial


def _backup_schedule(ctx: ClusterContext, observed: Observed, now: datetime) -> SchedulePlan:
    """Scheduled backups wait while the cluster cannot be snapshotted: a backup created then could only wait."""
    spec = ctx.spec
    ready = ""
    if spec.hibernate:
        ready = "the cluster is hibernated"
    elif not _available(observed):
        ready = "the cluster is not Available"
    owner = ctx.identity.owner
    return plan_schedule(owner, ctx.identity.names.namespace, spec.backup, observed.backups, ctx.status.backup,
                         now, ready)  # fmt: skip


DEFAULT_QUOTA = 2 * 2**30  # etcd's own default --quota-backend-bytes


def _upkeep(ctx: ClusterContext, observed: Observed, step: mp.Step | None, follow_up: mp.Step | None) -> maint.Step:
    """The pass's one maintenance step, planned only when membership took none (one change per pass)."""
    settings = ctx.spec.maintenance
    if observed.etcd is None or (not settings.nospace_recovery and settings.defrag is None):
        return maint.Idle("Off")
    changing = (step is not None and not isinstance(step, (mp.Noop, mp.Wait, mp.Refuse))) or follow_up is not None
    backing_up = any(b.phase in ("", "Pending", "Running") and not b.deleting for b in observed.backups)
    settling = isinstance(step, mp.Wait) or ctx.status.phase not in ("Running", "Degraded") or backing_up
    alarmed = any(maint.nospace(s) for s in observed.etcd.status.values())
    if alarmed and not settings.nospace_recovery:
        return maint.Idle("NospaceRecoveryOff")
    reported = max((s.db_size_quota for s in observed.etcd.status.values()), default=0)
    quota = (ctx.spec.etcd.quota_backend_bytes if ctx.spec.etcd else None) or reported or DEFAULT_QUOTA
    compacted = ctx.status.maintenance.compacted_revision if ctx.status.maintenance else None
    return maint.plan(observed.etcd, quota, settings.defrag, compacted_revision=compacted or 0, changing=changing,
                      settling=settling)  # fmt: skip


def plan(ctx: ClusterContext, observed: Observed, now: datetime) -> Plan:
    spec, identity = ctx.spec, ctx.identity
    initial = ctx.status.initial_members or spec.replicas
    first = ctx.status.initial_members is None
    sts = observed.statefulset
    discovery = observed.discovery
    uses_discovery_cluster = spec.bootstrap.discovery_cluster_ref is not None
    if sts is None and uses_discovery_cluster and discovery.error:
        wait = mp.Wait("WaitingForDiscovery", discovery.error)
        return Plan(step=wait, initial_members=spec.replicas if first else None)
    # The members' discovery inputs come from the live template once it exists, so the discovery cluster
    # going away changes nothing; their credential is this cluster's own, and only until it has bootstrapped.
    # Available once: every initial member registered with the discovery service, which is not asked again.
    registered = sts is not None and (observed.ever_available or _available(observed))
    via = plan_discovery(identity, spec, discovery, live_discovery(sts.live if sts else None), registered, now)
    if sts is None and via.wait:
        return Plan(step=mp.Wait("WaitingForDiscovery", via.wait), initial_members=spec.replicas if first else None)

    token = spec.cluster_token or default_token(identity)
    voting_healthy = sum(m.healthy for m in observed.etcd.voting) if observed.etcd is not None else 0
    restore = plan_restore(identity.names, identity.owner, spec.bootstrap.restore, ctx.status.restored_from,
                           observed.restore, token, started=sts is not None, done=sts is not None and
                           voting_healthy >= initial)  # fmt: skip
    if restore.waiting:
        # Members started without the request would bootstrap an empty cluster: the StatefulSet waits.
        return Plan(step=mp.Wait("WaitingForBackup", restore.waiting), initial_members=spec.replicas if first else None,
                    restore=restore)  # fmt: skip

    pending_bootstrap = "bootstrap.restore has not finished; wait for status.restoredFrom" if (
        spec.bootstrap.restore is not None and not ctx.status.restored_from) else ""  # fmt: skip
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    recovering = request_of(observed.recovery_request)
    recovering_id = str(recovering["requestID"]) if recovering else ""
    if recovering_id and ctx.status.recovery is not None and ctx.status.recovery.request_id == recovering_id:
        recovering_id = ""  # done, only its request is left to delete
    in_place = plan_in_place(identity.names, identity.owner, spec, ctx.status.restore, observed, token, stamp,
                             blocked=pending_bootstrap or (f"quorum recovery {recovering_id} is under way; set "
                                                           "spec.restore again once it is done" if recovering_id
                                                           else ""))  # fmt: skip
    last_available = next((c.reason for c in ctx.status.conditions or [] if c.type == "Available"), "")
    recovery = plan_recovery(identity.names, identity.owner, spec, ctx.status.recovery, observed, last_available,
                             stamp, blocked=pending_bootstrap or ("an in-place restore (spec.restore) is under way"
                                                                  if in_place.active else ""))  # fmt: skip
    # From its first start on, the restored cluster's members carry its token (and keep the request mounted,
    # so the template does not change again when the request goes).
    member_token = restore_token(token, in_place.restore_id)

    hosts_for = max(spec.replicas, observed.sts_replicas, len(observed.members or ()))
    tls_problem = provided_tls_problem(spec, observed.provided_tls, identity.names, hosts_for, now)
    unusable = tls_problem is not None and tls_problem.reason == "TLSSecretInvalid"  # not only ending soon
    if unusable and tls_problem is not None and sts is None:
        # Pods would hang in ContainerCreating on a volume that cannot be mounted: say why, start nothing.
        return Plan(step=mp.Wait("WaitingForTLSSecret", tls_problem.message), problems=(tls_problem,),
                    initial_members=spec.replicas if first else None, restore=restore)  # fmt: skip

    problems: list[Problem] = [tls_problem] if tls_problem is not None else []
    if via.problem is not None:
        problems.append(via.problem)
    refusal = path_refusal(observed.etcd, spec.version) if observed.etcd is not None else None
    if refusal is not None:
        # The template keeps the version it has (what members run or are being moved to): no pod, not even
        # one a scale-out starts, may run a refused version.
        problems.append(Problem(refusal.reason, refusal.message))
        kept = _template_version(sts) or (running_version(observed.etcd) if observed.etcd else None)
        if kept is not None:
            spec = spec.model_copy(update={"version": str(kept)})
    if in_place.problem is not None:
        problems.append(in_place.problem)
    if recovery.problem is not None:
        problems.append(recovery.problem)
    if stuck := claim_problem(restore.claim or in_place.claim, observed.pods):
        problems.append(stuck)
    if in_place.active:
        # The restore owns the StatefulSet's size: no membership step, rollout or follow-up meanwhile.
        step, follow_up = in_place.step, None
    elif recovery.active:
        # So does a quorum recovery, until the survivor runs alone; then membership grows it back.
        step, follow_up = recovery.step, None
    else:
        step = size_step(ctx, observed, initial, refused=refusal is not None)
        if unusable and tls_problem is not None and isinstance(step, mp.AddLearner):
            # The new member would refuse to start with these certificates: a learner that never starts.
            step = mp.Refuse(tls_problem.reason, f"not adding member {step.ordinal}: {tls_problem.message}")
        follow_up = _follow_up(ctx, observed, step)
    claim = sts.replicas if sts is not None and not sts.replicas_owned and not isinstance(
        step, mp.ScaleStatefulSet) else None  # fmt: skip

    objects: list[dict[str, Any]] = []
    tls = TLSPlan()
    pod_certificates = spec.tls.member_keys is MemberKeys.POD_CERTIFICATE
    if pod_certificates and not ctx.pod_certificates:
        pod_certificates = False
        problems.append(Problem("PodCertificatesUnavailable", "spec.tls.memberKeys is podCertificate but this "
                                "operator does not sign pod certificates: install its chart with "
                                "podCertificates.enabled=true on Kubernetes 1.35+ serving certificates.k8s.io/v1beta1 "
                                "PodCertificateRequests (feature gate PodCertificateRequest); until then the members "
                                "keep their keys in the cluster's Secrets"))  # fmt: skip
    if needs_generated_tls(spec):
        planned_size = max(
            spec.replicas,
            observed.sts_replicas,
            len(observed.members or ()),
            follow_up.replicas if follow_up else 0,
        )
        bootstrapped = sts is not None or bool(ctx.status.members)
        reissue = ctx.annotations.get(REISSUE_CA, "").lower() == "true"
        tls = tls_secrets(identity, spec, planned_size, observed.secrets, now, bootstrapped=bootstrapped,
                          reissue_ca=reissue, rotate_ca=ctx.annotations.get(ROTATE_CA, ""),
                          trusted_ca_live=_live_trusted_ca(sts) if _restarted(sts, observed.pods) else None,
                          gateway_client=managing_auth(ctx), pod_certificates=pod_certificates,
                          pod_certificates_live=_live_pod_certificates(sts) and _restarted(sts, observed.pods))  # fmt: skip
        objects += tls.secrets
        problems += tls.problems
        step = _for_rollover(step, tls)
    if via.secret is not None:
        objects.append(via.secret)  # before the StatefulSet whose first members present it
    inputs = MemberTemplateInputs(
        replicas=None if sts is not None and sts.replicas_owned else (sts.replicas if sts else initial),
        initial_members=initial,
        cluster_token=member_token,
        node_image=f"{ctx.node_repository}:{spec.version}",
        discovery_url=spec.bootstrap.discovery_url or "",
        discovery_endpoints=via.endpoints,
        discovery_tls_secret=via.tls_secret,
        trusted_ca=tls.trusted_ca,
        client_crl=tls.client_crl,
        restore_mount=bool(in_place.restore_id),
        recovery_mount=recovery.mount,
        restore_claim=restore.claim or in_place.claim,
        pod_certificates=pod_certificates,
    )
    if restore.request is not None:
        objects.append(restore.request)  # before the StatefulSet: the first pods must find it
    if in_place.request is not None:
        objects.append(in_place.request)  # before the StatefulSet that starts the members
    if recovery.request is not None:
        objects.append(recovery.request)  # before the StatefulSet that starts the survivor
    drifted = {f"Secret/{o['metadata']['name']}": "data" for o in objects}
    members, voting = _membership_counts(ctx, observed, initial)
    for obj in desired_objects(identity, spec, inputs, members, voting):
        key = f"{obj['kind']}/{obj['metadata']['name']}"
        live = sts.live if obj["kind"] == "StatefulSet" and sts is not None else observed.objects.get(key)
        if where := drift(obj, live):
            objects.append(obj)
            drifted[key] = where
    access = _access(ctx, observed)
    if access is not None:
        if secret := auth.auth_secret(identity.names.auth_secret, identity.names.namespace, identity.owner,
                                      observed.secrets.get(identity.names.auth_secret)):  # fmt: skip
            objects.insert(0, secret)
            drifted[f"Secret/{identity.names.auth_secret}"] = "data"
        if access.problem is not None:
            problems.append(access.problem)
    upkeep = _upkeep(ctx, observed, step, follow_up) if not (in_place.active or recovery.active) else maint.Idle(
        "Restoring" if in_place.active else RECOVERING)  # fmt: skip
    if isinstance(upkeep, maint.Refuse):
        problems.append(Problem(upkeep.reason, upkeep.message))
    elif observed.etcd is not None and any(maint.nospace(s) for s in observed.etcd.status.values()):
        problems.append(Problem("DatabaseFull", "etcd raised its NOSPACE alarm: writes are refused until the "
                                "database is compacted, defragmented and the alarm disarmed"
                                + ("" if spec.maintenance.nospace_recovery else
                                   "; spec.maintenance.nospaceRecovery is false: do it by hand")))  # fmt: skip
    return Plan(
        objects=tuple(objects),
        drifted=drifted,
        step=step,
        follow_up=follow_up,
        claim_replicas=claim,
        problems=tuple(problems),
        seed_discovery=sts is None and uses_discovery_cluster,
        initial_members=spec.replicas if first else None,
        schedule=_backup_schedule(ctx, observed, now),
        restore=restore,
        in_place=in_place,
        recovery=recovery,
        upkeep=upkeep,
        retire_secrets=tls.retire + ((identity.names.discovery_tls_secret,) if via.retire else ()),
        auth=access,
    )


def managing_auth(ctx: ClusterContext) -> bool:
    """The operator manages etcd auth: a user of tls.clients has access, or what it made is not cleaned up yet."""
    return auth.desired_access(ctx.spec).enabled or ctx.status.access is not None


def _access(ctx: ClusterContext, observed: Observed) -> auth.AuthPlan | None:
    """The auth calls of this pass; none until the operator's password Secret is read, or when etcd cannot be asked."""
    if not managing_auth(ctx):
        return None
    names = ctx.identity.names
    desired = auth.desired_access(ctx.spec)
    if desired.enabled and auth.credentials(observed.secrets.get(names.auth_secret)) is None:
        return auth.AuthPlan()  # the password Secret is written by this pass and read by the next
    if observed.auth is None:
        return auth.AuthPlan(problem=Problem("AccessFailed", f"cannot read etcd's users and roles: "
                                                  f"{observed.auth_error}") if observed.auth_error else None)  # fmt: skip
    return auth.plan_auth(desired, observed.auth)
