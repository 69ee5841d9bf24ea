"""A gateway wrapper that lets the daemon drain on shutdown: groups already being written finish, no new
group starts.

`reconciler.daemon.passes` puts it between the engine and the real gateway. After `drain()`, a write to a
group that has had no write yet in this pass is refused with a `StalledError` (code `ShuttingDown`), so the
executor does not retry it and moves on; a group already started keeps going, so a replace whose delete is
done still gets its create. Reads always pass, so observation and verification still work. The worker
records the refused groups as interrupted (never as stalled), and the next run re-observes them.
"""

from __future__ import annotations

from typing import Any

from reconciler.cloud.errors import StalledError
from reconciler.cloud.gateway import Gateway, ListCursor
from reconciler.model.observed import ObservedGroup

SHUTTING_DOWN = "ShuttingDown"


class DrainingGateway:
    def __init__(self, inner: Gateway) -> None:
        self.inner = inner
        self.draining = False
        self._started: set[tuple[str, str]] = set()

    def new_pass(self) -> None:
        self._started.clear()

    def drain(self) -> None:
        self.draining = True

    def _admit(self, resource_group: str, name: str) -> None:
        key = (resource_group.lower(), name.lower())
        if key in self._started:
            return
        if self.draining:
            raise StalledError("not started: the daemon is shutting down", code=SHUTTING_DOWN)
        self._started.add(key)

    async def list_groups(
        self, resource_group: str, *, cursor: ListCursor | None = None
    ) -> list[ObservedGroup]:
        return await self.inner.list_groups(resource_group, cursor=cursor)

    async def list_subscription_groups(self, *, cursor: ListCursor | None = None) -> list[ObservedGroup]:
        return await self.inner.list_subscription_groups(cursor=cursor)

    async def get_group(self, resource_group: str, name: str) -> ObservedGroup | None:
        return await self.inner.get_group(resource_group, name)

    async def create_or_update(
        self,
        resource_group: str,
        name: str,
        body: dict[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the Gateway contract passes the LRO deadline through
    ) -> ObservedGroup:
        self._admit(resource_group, name)
        return await self.inner.create_or_update(resource_group, name, body, timeout=timeout)

    async def patch_tags(self, resource_group: str, name: str, tags: dict[str, str]) -> ObservedGroup:
        self._admit(resource_group, name)
        return await self.inner.patch_tags(resource_group, name, tags)

    async def delete(
        self,
        resource_group: str,
        name: str,
        *,
        timeout: float,  # noqa: ASYNC109 - the Gateway contract passes the deadline through
    ) -> None:
        self._admit(resource_group, name)
        await self.inner.delete(resource_group, name, timeout=timeout)

    async def logs(
        self,
        resource_group: str,
        name: str,
        container: str,
        *,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> str:
        return await self.inner.logs(resource_group, name, container, tail=tail, timestamps=timestamps)

    async def start(
        self,
        resource_group: str,
        name: str,
        *,
        timeout: float,  # noqa: ASYNC109 - the Gateway contract passes the deadline through
    ) -> None:
        self._admit(resource_group, name)
        await self.inner.start(resource_group, name, timeout=timeout)

    async def stop(self, resource_group: str, name: str) -> None:
        self._admit(resource_group, name)
        await self.inner.stop(resource_group, name)

    async def close(self) -> None:
        await self.inner.close()
