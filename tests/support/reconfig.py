"""Runtime reconfiguration against real etcd, as the operator's next pass would retry it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from etcd_operator.adapters.etcd import EtcdError


async def settled(call: Callable[..., Awaitable[Any]], *args: Any, timeout: float = 30) -> Any:
    """`call(*args)`, retried while etcd refuses it with "unhealthy cluster": etcd takes no membership change
    until every voter has been connected for a while after the last one."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            return await call(*args)
        except EtcdError as exc:
            if "unhealthy cluster" not in exc.message or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
