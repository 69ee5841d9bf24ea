"""A daemon without `--coordination` refuses to run beside another live daemon of its instance.

Two daemons of one instance fight: each plans against its own manifests and deletes or replaces what the
other applied. With `--coordination` the replicas elect one writer; without it, each daemon keeps a
heartbeat in an ARM tag of the instance's *home* resource group (the Tags API, so no other service is
needed): `aci-reconciler.heartbeat.<instance>` = `<replica id>;<unix time it expires>`.

- At start, before the first pass: a tag naming another replica and not yet expired refuses the start
  (`DuplicateDaemonError`, the message naming the other, until when, and the fixes); otherwise the daemon
  writes its own value.
- Every `interval` it reads the tag again and rewrites it (expiry: now + 3 intervals). A tag naming another
  live replica then means two daemons started at the same moment: the later writer keeps running, the one
  that finds itself overwritten stops (`on_conflict`).
- On an orderly stop it removes the tag if it is still its own, so the next daemon starts at once.
- Reading or writing the tag can fail (the identity lacks `Microsoft.Resources/tags/*` on the resource
  group): one warning, and the daemon runs undetected rather than not at all.

Composed by `reconciler.daemon.cli`; the decisions are pure functions (`verdict`), the loop takes its clock
and sleep from the caller.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from reconciler.cloud.errors import GatewayError
from reconciler.cloud.gateway import TagStore

log = structlog.get_logger("reconciler.daemon.duplicate")

TAG_PREFIX = "aci-reconciler.heartbeat."
DEFAULT_INTERVAL = 30.0
LIFETIME_INTERVALS = 3


class DuplicateDaemonError(Exception):
    """Another live daemon of this instance holds the heartbeat; the message says who and what to do."""


def tag_name(instance: str) -> str:
    return f"{TAG_PREFIX}{instance}"


def encode(replica: str, expires: float) -> str:
    return f"{replica};{int(expires)}"


def decode(value: str | None) -> tuple[str, float] | None:
    """(replica, expiry) of a tag value; None when there is none or it is not ours to read."""
    if not value:
        return None
    replica, sep, expiry = value.rpartition(";")
    if not sep or not replica or not expiry.isdigit():
        return None
    return replica, float(expiry)


@dataclass(frozen=True)
class Verdict:
    """`free`: nobody live holds the heartbeat; `ours`: we do; `other`: `holder` does until `until`."""

    kind: str
    holder: str | None = None
    until: float | None = None


def verdict(value: str | None, me: str, now: float) -> Verdict:
    found = decode(value)
    if found is None:
        if value:
            log.warning("heartbeat tag unreadable; taken as free", value=value[:80])
        return Verdict("free")
    replica, until = found
    if replica == me:
        return Verdict("ours", replica, until)
    if until <= now:
        return Verdict("free", replica, until)
    return Verdict("other", replica, until)


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Heartbeat:
    def __init__(
        self,
        tags: TagStore,
        resource_group: str,
        *,
        instance: str,
        replica: str,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.tags = tags
        self.resource_group = resource_group
        self.instance = instance
        self.replica = replica
        self.interval = interval
        self.clock = clock
        self.sleep = sleep
        self.name = tag_name(instance)
        self._warned = False

    def _refusal(self, found: Verdict) -> str:
        assert found.until is not None  # an `other` verdict has both
        return (
            f"another daemon of instance {self.instance!r} is running: replica {found.holder} holds the "
            f"heartbeat tag {self.name} on resource group {self.resource_group} until {_when(found.until)}. "
            "Stop it, or wait until then if it is gone, or pass --allow-duplicate (two daemons of one "
            "instance undo each other's work); to run several replicas safely use --coordination URL"
        )

    async def claim(self) -> None:
        """At start: raise `DuplicateDaemonError` when another live daemon holds the heartbeat; else take
        it."""
        try:
            current = (await self.tags.get_resource_group_tags(self.resource_group)).get(self.name)
        except GatewayError as err:
            self._cannot(err)
            return
        found = verdict(current, self.replica, self.clock())
        if found.kind == "other":
            raise DuplicateDaemonError(self._refusal(found))
        if found.holder is not None and found.kind == "free":
            log.info("heartbeat of a daemon that is gone taken over", previous=found.holder)
        await self._write()

    async def run(self, on_conflict: Callable[[str], None]) -> None:
        """Every interval: check the tag is still ours, then renew it. Ends when another daemon took it."""
        while True:
            await self.sleep(self.interval)
            try:
                current = (await self.tags.get_resource_group_tags(self.resource_group)).get(self.name)
            except GatewayError as err:
                self._cannot(err)
                continue
            found = verdict(current, self.replica, self.clock())
            if found.kind == "other":
                on_conflict(
                    self._refusal(found) + " (it started while this one ran; the later one keeps running)"
                )
                return
            await self._write()

    async def release(self) -> None:
        """Remove our heartbeat if it is still ours (an orderly stop: the next daemon may start at once)."""
        try:
            current = (await self.tags.get_resource_group_tags(self.resource_group)).get(self.name)
            if verdict(current, self.replica, self.clock()).kind == "ours":
                await self.tags.update_resource_group_tags(
                    self.resource_group, {self.name: current or ""}, "Delete"
                )
        except GatewayError as err:
            log.warning("heartbeat tag not removed; it expires by itself", error=str(err))

    async def _write(self) -> None:
        value = encode(self.replica, self.clock() + LIFETIME_INTERVALS * self.interval)
        try:
            await self.tags.update_resource_group_tags(self.resource_group, {self.name: value}, "Merge")
        except GatewayError as err:
            self._cannot(err)

    def _cannot(self, err: GatewayError) -> None:
        if not self._warned:
            log.warning(
                "cannot read or write the heartbeat tag; another daemon of this instance would go "
                "unnoticed (grant Microsoft.Resources/tags/read and write on the resource group, or use "
                "--coordination)",
                resource_group=self.resource_group,
                error=str(err),
            )
            self._warned = True
