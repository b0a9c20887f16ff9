"""All kopf settings in one startup handler."""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from .. import GROUP


@kopf.on.startup(id="settings")
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
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
    # Several replicas of the operator: one is active, the others wait (kopf peering).
    peering = os.environ.get("ETCD_OPERATOR_PEERING", "")
    settings.peering.standalone = not peering
    if peering:
        settings.peering.name = peering
        settings.peering.mandatory = True
