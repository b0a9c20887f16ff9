"""All kopf settings in one startup handler."""

from __future__ import annotations

import logging
import os
import random
import time
from typing import Any

import kopf

from .. import GROUP


def peering_priority(started: float, tiebreak: int) -> int:
    """kopf's peering priority of an operator started at `started` (epoch seconds): the oldest is highest.

    kopf runs only the operator of the highest priority and pauses the others; two of the same
    priority both pause for good. So every replica needs its own, and an older replica must
    outrank a newer one: a pod that starts (a rollout, a rescheduled replica) then waits,
    paused, until the active one is gone, instead of taking over while it still runs a pass.
    `tiebreak` (0-999, random) orders two replicas started in the same millisecond.
    """
    return -(int(started * 1000) * 1000 + tiebreak)


@kopf.on.startup(id="settings")
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.persistence.finalizer = f"{GROUP}/finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP, key="last-handled")
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 30
    settings.batching.error_delays = (1, 5, 15, 30, 60)
    # Only problems become Events automatically (not every "Timer succeeded"); the handlers post
    # progress Events themselves with kopf.event, which this level does not filter.
    settings.posting.level = logging.WARNING
    # With --namespace (exact names) kopf needs nothing cluster-wide: it watches the namespaces it
    # was given, takes the resources from API discovery, and neither lists namespaces nor watches
    # CRDs (the chart's namespaced mode grants no ClusterRole). Without, it watches CRDs, so an
    # EtcdCluster CRD installed after the operator starts is still served.
    settings.scanning.disabled = bool(getattr(memo, "namespaces", ()))
    # Several replicas of the operator: one is active, the others wait (kopf peering, on the
    # ClusterKopfPeering of this name, or the KopfPeering in each watched namespace).
    peering = os.environ.get("ETCD_OPERATOR_PEERING", "")
    settings.peering.standalone = not peering
    if peering:
        settings.peering.name = peering
        settings.peering.mandatory = True
        settings.peering.priority = peering_priority(time.time(), random.randrange(1000))
