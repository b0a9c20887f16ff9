"""Pure rules over member pods and the StatefulSet as the API server returns them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from etcd_node.contract import MEMBER_ALREADY_BOOTSTRAPPED, parse_agent_error, split_pod_name

from .observed import REPLICAS_MANAGER, PodView, StatefulSetView


def pod_view(pod: Mapping[str, Any], statefulset: str) -> PodView:
    """A pod and etcd-node's refusal, if its container is not running now.

    The kubelet keeps `lastState.terminated` after the container runs again, so
    a member healed after losing its volume would keep counting as failed if
    that were read while it runs: only a container that is waiting or
    terminated right now carries an error.
    """
    name = pod["metadata"]["name"]
    split = split_pod_name(name)
    ordinal = split[1] if split and split[0] == statefulset else None
    error = None
    meta, status_ = pod.get("metadata") or {}, pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status_.get("conditions") or [])
    unschedulable = next((str(c.get("message") or c.get("reason") or "unschedulable") for c in status_.get("conditions") or []
                          if c.get("type") == "PodScheduled" and c.get("status") == "False"), "")  # fmt: skip
    for status in status_.get("containerStatuses") or []:
        state = status.get("state") or {}
        if "running" in state:
            continue
        terminated = state.get("terminated") or (status.get("lastState") or {}).get("terminated") or {}
        error = parse_agent_error(terminated.get("message") or "") or error
    return PodView(
        name,
        ordinal,
        error,
        uid=meta.get("uid", ""),
        revision=(meta.get("labels") or {}).get("controller-revision-hash", ""),
        ready=ready,
        deleting=bool(meta.get("deletionTimestamp")),
        unschedulable=unschedulable,
    )


def lost_data(pods: Iterable[PodView]) -> frozenset[int]:
    """Ordinals whose member was started once and now has an empty volume: healed by remove, then re-add."""
    return frozenset(
        p.ordinal for p in pods if p.ordinal is not None and p.error and p.error.code == MEMBER_ALREADY_BOOTSTRAPPED
    )


def _owns_replicas(entry: Mapping[str, Any]) -> bool:
    fields = entry.get("fieldsV1") or entry.get("fields_v1") or {}
    return "f:replicas" in (fields.get("f:spec") or {})


def statefulset_view(sts: Mapping[str, Any]) -> StatefulSetView:
    managed = (sts.get("metadata") or {}).get("managedFields") or []
    owned = any(
        (e.get("manager") == REPLICAS_MANAGER) and e.get("operation") == "Apply" and _owns_replicas(e) for e in managed
    )
    status = sts.get("status") or {}
    generation = int((sts.get("metadata") or {}).get("generation") or 0)
    return StatefulSetView(
        replicas=int((sts.get("spec") or {}).get("replicas") or 0),
        ready=int(status.get("readyReplicas") or 0),
        replicas_owned=owned,
        live=sts,
        update_revision=status.get("updateRevision", ""),
        template_observed=int(status.get("observedGeneration") or 0) >= generation,
    )
