"""Twenty seeded failure schedules, run at once: replicas of an instance are killed (leases left to expire),
stopped cleanly, partitioned from storage and stalled (their lease loop frozen while they keep trying to
write), in random order and for random lengths. Whatever happens, two replicas never write at the same time.

Each schedule has its own container in Azurite and its own resource group in one in-process emulator; each
replica is a real coordinator, a real lease table and the real Azure adapter with its write guard, plus a
writer that patches a group's tags every 0.3 s for as long as it lives. Storage leases run on real time (15
seconds at the least), so the schedules take real time: the events' durations are the point of the test,
nothing waits for an outcome. The check reads the emulator's request log: each write names its replica and
lease tenure, and no two tenures' writes overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from reconciler.cloud.azure import AzureGateway
from reconciler.cloud.blobstore import BlobCoordinationStore, open_store
from reconciler.cloud.errors import GatewayError
from reconciler.daemon.coordination.coordinator import CoordinationSettings, Coordinator
from reconciler.daemon.coordination.fence import LeaseTable
from reconciler.daemon.state import StateBook
from reconciler.emulator.server import Emulator
from tests.cloud.test_emulator_roundtrip import body
from tests.inprocess import emulator_config, gateway_for
from tests.support.azurite import Azurite, TcpProxy
from tests.support.writers import assert_one_writer_at_a_time, labelled_writes

pytestmark = [pytest.mark.timeout(150)]

SCHEDULES = 20
STEPS = 8


@dataclass
class Replica:
    name: str
    proxy: TcpProxy
    store: BlobCoordinationStore
    table: LeaseTable
    coordinator: Coordinator
    gateway: AzureGateway
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Cleared while the lease loop is stalled.
    thawed: asyncio.Event = field(default_factory=asyncio.Event)

    async def stop(self, *, release: bool) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.proxy.restore()
        if release:
            await self.coordinator.close()
        await self.gateway.close()
        await self.store.close()
        self.proxy.close()


class Schedule:
    def __init__(self, seed: int, azurite: Azurite, emulator: Emulator) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.azurite = azurite
        self.emulator = emulator
        self.container = azurite.create_container()
        self.rg = f"rg-schedule-{seed}"
        self.live: list[Replica] = []
        self.made = 0
        self.log: list[str] = []

    async def replica(self) -> Replica:
        self.made += 1
        name = f"s{self.seed}-r{self.made}"
        proxy = TcpProxy(self.azurite.port)
        store = open_store(
            self.azurite.container_url(self.container, port=proxy.port),
            connection_string=self.azurite.connection_string(port=proxy.port),
            timeout=1.0,
        )
        settings = CoordinationSettings(replica=name)
        table = LeaseTable(name, 1, margin=settings.margin, monotonic=asyncio.get_running_loop().time)
        book = StateBook()
        coordinator = Coordinator(
            store,
            table,
            settings,
            instance="chaos",
            book=book,
            snapshot=book.to_json,
            clock=lambda: 0.0,
            sleep=asyncio.sleep,
            on_change=lambda _: None,
            on_fatal=lambda _: None,
        )
        gateway = gateway_for(self.emulator.endpoint, self.emulator.ca_cert_path)
        gateway._write_guard = table  # the adapter's guard, as `connect(write_guard=...)` sets it
        made = Replica(name, proxy, store, table, coordinator, gateway)
        made.thawed.set()
        await coordinator.start()
        made.tasks = [
            asyncio.create_task(self._tick(made), name=f"{name}-coordination"),
            asyncio.create_task(self._write(made), name=f"{name}-writer"),
        ]
        self.live.append(made)
        return made

    async def _tick(self, replica: Replica) -> None:
        while True:
            await asyncio.sleep(replica.coordinator.settings.poll)
            await replica.thawed.wait()
            with contextlib.suppress(Exception):
                await replica.coordinator.tick()

    async def _write(self, replica: Replica) -> None:
        count = 0
        while True:
            count += 1
            with contextlib.suppress(GatewayError):
                await replica.gateway.patch_tags(self.rg, "g", {"writer": replica.name, "n": str(count)})
            await asyncio.sleep(0.3)

    async def run(self) -> None:
        setup = gateway_for(self.emulator.endpoint, self.emulator.ca_cert_path)
        try:
            await setup.create_or_update(self.rg, "g", body(), timeout=30)
        finally:
            await setup.close()
        for _ in range(3):
            await self.replica()
        for _ in range(STEPS):
            await self.step()
            await asyncio.sleep(self.rng.uniform(1.0, 4.0))
        for replica in list(self.live):
            replica.thawed.set()
            replica.proxy.restore()
        await asyncio.sleep(3.0)
        for replica in self.live:
            await replica.stop(release=True)

    async def step(self) -> None:
        leaders = [r for r in self.live if r.table.holds]
        # Mostly the leader: failures of a standby rarely move the lease.
        victim = self.rng.choice(leaders if leaders and self.rng.random() < 0.75 else self.live)
        event = self.rng.choice(["kill", "sigterm", "partition", "stall", "partition", "stall"])
        self.log.append(f"{event} {victim.name}")
        if event in ("kill", "sigterm"):
            self.live.remove(victim)
            await victim.stop(release=event == "sigterm")
            await self.replica()
        elif event == "partition":
            victim.proxy.cut()
            asyncio.get_running_loop().call_later(self.rng.uniform(2.0, 20.0), victim.proxy.restore)
        else:
            victim.thawed.clear()
            asyncio.get_running_loop().call_later(self.rng.uniform(5.0, 25.0), victim.thawed.set)


async def test_two_replicas_never_write_at_once_in_twenty_seeded_failure_schedules(
    azurite: Azurite, tmp_path: Path
) -> None:
    azurite.start()
    async with Emulator(emulator_config(tmp_path / "tls", provisioning_delay=0.0)) as emulator:
        schedules = [Schedule(seed, azurite, emulator) for seed in range(SCHEDULES)]
        async with asyncio.TaskGroup() as group:
            for schedule in schedules:
                group.create_task(schedule.run(), name=f"schedule-{schedule.seed}")
        writes = labelled_writes(e.to_json() for e in emulator.request_log)
    tenures = 0
    for schedule in schedules:
        mine = [
            w for w in writes if f"/resourceGroups/{schedule.rg}/" in w["path"] and w["method"] == "PATCH"
        ]
        assert mine, f"schedule {schedule.seed} never wrote: {schedule.log}"
        try:
            tenures += assert_one_writer_at_a_time(mine)
        except AssertionError as err:
            raise AssertionError(f"schedule {schedule.seed} ({'; '.join(schedule.log)}): {err}") from None
    assert tenures >= 2 * SCHEDULES, f"the schedules should move the lease around: {tenures} tenures wrote"
