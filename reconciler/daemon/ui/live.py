"""A group's live side for its status page: container states, events and the tail of each container's log,
read from Azure when someone looks, through the daemon's own gateway (so its retries, metrics, throttling
and write fence apply; these are reads only).

Built by `reconciler.daemon.cli` and called by `reconciler.daemon.ui.routes`. Page views must not spend the
subscription's read budget: answers are cached per group for `ttl` seconds, at most `concurrency` reads run
at once, and each has a deadline. Log text is masked by the log redactor (the pass's resolved secrets and the
daemon's own) before it is kept, and bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.cloud.errors import GatewayError
from reconciler.cloud.gateway import Gateway
from reconciler.model.observed import ObservedGroup

LOG_TAIL_LINES = 50
MAX_LINE_CHARS = 500
MAX_EVENTS = 20
CACHE_ENTRIES = 256

Redact = Callable[[str], str]


class GroupInspector:
    def __init__(
        self,
        gateway: Gateway,
        *,
        redact: Redact,
        ttl: float = 10.0,
        deadline: float = 8.0,
        concurrency: int = 2,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gateway = gateway
        self.redact = redact
        self.ttl = ttl
        self.deadline = deadline
        self.monotonic = monotonic
        self._bound = asyncio.Semaphore(concurrency)
        self._cache: OrderedDict[tuple[str, str], tuple[float, dict[str, Any]]] = OrderedDict()
        self._inflight: dict[tuple[str, str], asyncio.Task[dict[str, Any]]] = {}

    async def inspect(self, resource_group: str, name: str) -> dict[str, Any]:
        """`{"ok": True, "containers": [...], "events": [...]}`, or `{"ok": False, "error": why}`."""
        key = (resource_group.lower(), name.lower())
        hit = self._cache.get(key)
        if hit is not None and self.monotonic() - hit[0] < self.ttl:
            return hit[1]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(
                self._read(resource_group, name), name=f"ui-inspect:{resource_group}/{name}"
            )
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        # A page view that goes away must not cancel the read another view waits for.
        result = await asyncio.shield(task)
        self._cache[key] = (self.monotonic(), result)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_ENTRIES:
            self._cache.popitem(last=False)
        return result

    async def _read(self, resource_group: str, name: str) -> dict[str, Any]:
        try:
            async with self._bound, asyncio.timeout(self.deadline):
                group = await self.gateway.get_group(resource_group, name)
                if group is None:
                    return {"ok": False, "error": "Azure has no container group of that name"}
                containers = await self._containers(group)
        except TimeoutError:
            return {"ok": False, "error": f"Azure did not answer within {self.deadline:g}s"}
        except GatewayError as err:
            return {"ok": False, "error": self.redact(str(err))[:MAX_LINE_CHARS]}
        view = (group.body.get("properties") or {}).get("instanceView") or {}
        return {
            "ok": True,
            "provisioning_state": group.provisioning_state,
            "instance_state": group.instance_state,
            "containers": containers,
            "events": _events(view.get("events") or (), self.redact),
        }

    async def _containers(self, group: ObservedGroup) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        views = group.container_views()
        props = group.body.get("properties") or {}
        names = [str(c.get("name")) for c in props.get("containers") or () if isinstance(c, Mapping)]
        for container in names:
            view = views.get(container) or {}
            current = view.get("currentState") or {}
            try:
                text = await self.gateway.logs(
                    group.resource_group, group.name, container, tail=LOG_TAIL_LINES
                )
            except GatewayError as err:
                lines = [f"(log not available: {self.redact(str(err))[:MAX_LINE_CHARS]})"]
            else:
                lines = [self.redact(line)[:MAX_LINE_CHARS] for line in text.splitlines()[-LOG_TAIL_LINES:]]
            out.append(
                {
                    "name": container,
                    "state": current.get("state"),
                    "detail": self.redact(str(current.get("detailStatus") or ""))[:MAX_LINE_CHARS],
                    "exit_code": current.get("exitCode"),
                    "started": current.get("startTime"),
                    "restart_count": view.get("restartCount"),
                    "events": _events(view.get("events") or (), self.redact),
                    "log": lines,
                }
            )
        return out


def _events(events: Any, redact: Redact) -> list[dict[str, Any]]:
    out = []
    for event in list(events)[-MAX_EVENTS:]:
        if not isinstance(event, Mapping):
            continue
        out.append(
            {
                "type": str(event.get("type") or ""),
                "name": str(event.get("name") or ""),
                "count": event.get("count"),
                "last": str(event.get("lastTimestamp") or event.get("firstTimestamp") or ""),
                "message": redact(str(event.get("message") or ""))[:MAX_LINE_CHARS],
            }
        )
    return out
