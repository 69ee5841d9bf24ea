"""Coordinators of several replicas against one Azurite container, ticked by the test: one leader, failover on
release, the book carried over, shards balanced, fencing when storage is gone, and layout changes."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from reconciler.cloud.blobstore import open_store
from reconciler.daemon.coordination.coordinator import (
    CoordinationSettings,
    CoordinationStartError,
    Coordinator,
)
from reconciler.daemon.coordination.fence import LeaseTable
from reconciler.daemon.coordination.shards import shard_of
from reconciler.daemon.state import BackoffPolicy, Phase, Reason, StateBook
from tests.daemon.fakes import START, change, fail
from tests.support.azurite import Azurite, TcpProxy


class Mono:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


class Replica:
    def __init__(self, coordinator: Coordinator, table: LeaseTable, book: StateBook) -> None:
        self.coordinator = coordinator
        self.table = table
        self.book = book
        self.changes: list[str] = []
        self.fatal: list[str] = []
        self.hooks = 0


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


@asynccontextmanager
async def replicas(
    azurite: Azurite,
    container: str,
    names: list[str],
    *,
    shards: int = 1,
    port: int | None = None,
    monotonic: Callable[[], float] | None = None,
    keeper: bool = False,
) -> AsyncIterator[list[Replica]]:
    made: list[Replica] = []
    stores = []
    for name in names:
        store = open_store(
            azurite.container_url(container, port=port),
            connection_string=azurite.connection_string(port=port),
            timeout=1.0,
        )
        stores.append(store)
        settings = CoordinationSettings(replica=name, shards=shards)
        clock = monotonic or Mono()
        table = LeaseTable(name, shards, margin=settings.margin, monotonic=clock)
        book = StateBook(backoff=BackoffPolicy(base=10, cap=100, jitter=0))
        replica: Replica

        def snapshot(book: StateBook = book) -> dict[str, Any]:
            return book.to_json()

        coordinator = Coordinator(
            store,
            table,
            settings,
            instance="prod",
            book=book,
            snapshot=snapshot,
            clock=lambda: START,
            sleep=no_sleep,
            on_change=lambda why, n=name: by_name[n].changes.append(why),
            on_fatal=lambda why, n=name: by_name[n].fatal.append(why),
            on_hook=lambda n=name: setattr(by_name[n], "hooks", by_name[n].hooks + 1),
            keeper_store=(
                (
                    lambda port=port: open_store(
                        azurite.container_url(container, port=port),
                        connection_string=azurite.connection_string(port=port),
                        timeout=1.0,
                    )
                )
                if keeper
                else None
            ),
        )
        replica = Replica(coordinator, table, book)
        made.append(replica)
    by_name = dict(zip(names, made, strict=True))
    try:
        yield made
    finally:
        for replica in made:
            await replica.coordinator.stop_keeper()
        for store in stores:
            await store.close()


async def tick_all(group: list[Replica], rounds: int = 1) -> None:
    for _ in range(rounds):
        for replica in group:
            await replica.coordinator.tick()


async def test_one_replica_leads_and_a_standby_takes_over_at_once_when_it_releases(
    azurite: Azurite, blob_container: str
) -> None:
    async with replicas(azurite, blob_container, ["r1", "r2", "r3"]) as (r1, r2, r3):
        for replica in (r1, r2, r3):
            await replica.coordinator.start()
        assert [r.table.leading for r in (r1, r2, r3)] == [True, False, False]
        await tick_all([r1, r2, r3], 3)
        assert [r.table.leading for r in (r1, r2, r3)] == [True, False, False], "no flapping"
        assert r2.table.refusal("rg") == "standby: replica r1 holds the lease"
        status = r3.coordinator.status_json()
        assert status["owners"][0]["owner"] == "r1"
        assert status["replicas"] == ["r1", "r2", "r3"]
        await r1.coordinator.close()
        await tick_all([r2, r3])
        assert [r.table.leading for r in (r2, r3)] == [True, False]
        assert r2.changes == ["shard 0 acquired"]


async def test_the_new_leader_continues_from_the_last_leaders_book(
    azurite: Azurite, blob_container: str
) -> None:
    async with replicas(azurite, blob_container, ["r1", "r2"]) as (r1, r2):
        await r1.coordinator.start()
        await r2.coordinator.start()
        flaky = change("flaky", rg="rg-a")
        r1.book.record_outcome(flaky, fail(retryable=True)(flaky), "r1", START)
        r1.book.jobs.entry("rg-a", "nightly").schedule_cursor = START + 60
        r1.coordinator.mark_dirty()
        await r1.coordinator.tick()  # the tick writes what changed
        r2.book.record_held(change("flaky", rg="rg-a"), Reason.PLANNED, "standby: r1 leads")
        await r1.coordinator.close()
        await r2.coordinator.tick()
        assert r2.table.leading
        state = r2.book.groups[("rg-a", "flaky")]
        assert (state.phase, state.failures, state.next_retry_at) == (Phase.RECONCILING, 1, START + 10)
        job = r2.book.jobs.get(("rg-a", "nightly"))
        assert job is not None
        assert job.schedule_cursor == START + 60


async def test_three_replicas_share_twelve_shards_and_rebalance_when_one_leaves(
    azurite: Azurite, blob_container: str
) -> None:
    async with replicas(azurite, blob_container, ["a", "b", "c"], shards=12) as group:
        for replica in group:
            await replica.coordinator.start()
        await tick_all(group, 12)
        assert sorted(len(r.table.owned()) for r in group) == [4, 4, 4]
        owned = [set(r.table.owned()) for r in group]
        assert set.union(*owned) == set(range(12))
        assert sum(len(o) for o in owned) == 12, "no shard has two holders"
        status = group[0].coordinator.status_json()
        assert {o["owner"] for o in status["owners"]} == {"a", "b", "c"}
        await group[2].coordinator.close()
        await tick_all(group[:2], 4)
        assert sorted(len(r.table.owned()) for r in group[:2]) == [6, 6]
        rg = next(f"rg-{i}" for i in itertools.count() if shard_of(f"rg-{i}", 12) in group[0].table.owned())
        assert group[0].table.refusal(rg) is None
        assert group[1].table.refusal(rg) == "standby: replica a holds the lease of shard " + str(
            shard_of(rg, 12)
        )


async def test_a_leader_cut_off_from_storage_stops_writing_before_its_lease_can_expire(
    azurite: Azurite, blob_container: str
) -> None:
    proxy = TcpProxy(azurite.port)
    clock = Mono()
    try:
        async with replicas(azurite, blob_container, ["r1"], port=proxy.port, monotonic=clock) as (r1,):
            await r1.coordinator.start()
            assert r1.table.leading
            proxy.cut()
            for _ in range(9):
                clock.now += 1.0
                await r1.coordinator.tick()
            assert r1.table.leading, "9 s after the last renewal a 15 s lease still has more than the margin"
            assert not r1.coordinator.reachable or r1.coordinator.last_error is not None
            clock.now += 1.0
            assert not r1.table.leading, "10 s after it: fenced, 5 s before the lease could expire"
            clock.now += 5.0
            await r1.coordinator.tick()
            assert r1.table.holds == {}
            assert r1.changes[-1] == "shard 0 lost"
            proxy.restore()
            await (
                r1.coordinator.tick()
            )  # the lease did not expire at the store (its clock is real): ours again
            assert r1.table.leading
    finally:
        proxy.close()


async def test_the_lease_keeper_renews_while_a_long_pass_keeps_the_event_loop_busy(
    azurite: Azurite, blob_container: str
) -> None:
    clock = Mono()
    async with replicas(azurite, blob_container, ["r1"], monotonic=clock, keeper=True) as (r1,):
        await r1.coordinator.start()
        hold = r1.table.holds[0]
        before = hold.renewed_at
        clock.now += 6.0  # a renewal is due
        keeper = r1.coordinator.keeper
        assert keeper is not None
        # Block the event loop the way a long synchronous pass does (this wait does not yield to it): only
        # another thread can renew now. Two rounds: the first may have started before the clock moved.
        assert keeper.wait_rounds(keeper.rounds + 2, timeout=10)
        assert hold.renewed_at == clock.now != before, "renewed by the keeper while the loop was blocked"
        clock.now += 6.0
        await r1.coordinator.tick()
        assert r1.table.leading


async def test_a_webhook_that_reached_one_replica_makes_every_other_replica_fetch_once(
    azurite: Azurite, blob_container: str
) -> None:
    async with replicas(azurite, blob_container, ["r1", "r2", "r3"]) as group:
        r1, r2, _ = group
        for replica in group:
            await replica.coordinator.start()
        r2.coordinator.relay_hook()
        await tick_all(group, 2)
        assert [r.hooks for r in group] == [1, 0, 1], "all but the one it reached, once each"
        r1.coordinator.relay_hook()
        await tick_all(group)
        assert [r.hooks for r in group] == [1, 1, 2]
    async with replicas(azurite, blob_container, ["late"]) as (late,):
        await late.coordinator.start()
        await late.coordinator.tick()
        assert late.hooks == 0, "a webhook from before it started is not news"


async def test_a_replica_restarted_in_place_waits_for_its_predecessors_lease_instead_of_stopping(
    azurite: Azurite, blob_container: str
) -> None:
    async with replicas(azurite, blob_container, ["pod-0"]) as (before,):
        await before.coordinator.start()
        clock = Mono()
        async with replicas(azurite, blob_container, ["pod-0"], monotonic=clock) as (after,):
            await after.coordinator.start()  # the predecessor's lease still runs: not a duplicate (yet)
            clock.now += 10.0
            await after.coordinator.tick()
            assert after.fatal == []
            await before.coordinator.close()  # ... or its lease runs out
            clock.now += 1.0
            await after.coordinator.tick()
            assert after.fatal == []
            assert after.table.leading, "it leads once the predecessor is gone"


async def test_two_live_processes_with_one_replica_id_stop_the_newcomer_after_a_lease_duration(
    azurite: Azurite, blob_container: str
) -> None:
    async with replicas(azurite, blob_container, ["pod-0"]) as (first,):
        await first.coordinator.start()
        clock = Mono()
        async with replicas(azurite, blob_container, ["pod-0"], monotonic=clock) as (second,):
            await second.coordinator.start()
            clock.now += 15.0
            await first.coordinator.tick()
            await second.coordinator.tick()
            assert second.fatal == []
            clock.now += 6.0  # lease duration and margin: the other process renews, so it is alive
            await first.coordinator.tick()
            await second.coordinator.tick()
            assert second.fatal == [
                "another process is running as replica pod-0; give each replica its own --replica-id (or "
                "leave it out)"
            ]
            assert first.fatal == []


async def test_a_pass_that_changed_nothing_but_its_timing_does_not_rewrite_the_books(
    azurite: Azurite, blob_container: str
) -> None:
    async with replicas(azurite, blob_container, ["r1"], shards=2) as (r1,):
        await r1.coordinator.start()
        await tick_all([r1], 2)
        last_pass = {"number": 1, "started_at": 1.0, "duration_s": 0.5, "revision": "a1", "result": "ok"}
        r1.coordinator.snapshot = lambda: {**r1.book.to_json(), "last_pass": dict(last_pass)}
        await r1.coordinator.flush()
        etags = {s: h.etag for s, h in r1.table.holds.items()}
        last_pass.update(number=2, started_at=301.0, duration_s=0.7)
        await r1.coordinator.flush()
        assert {s: h.etag for s, h in r1.table.holds.items()} == etags, "nothing but timing: no write"
        last_pass.update(number=3, revision="b2")
        await r1.coordinator.flush()
        assert all(h.etag != etags[s] for s, h in r1.table.holds.items()), "a new revision is written"
        etags = {s: h.etag for s, h in r1.table.holds.items()}
        failed = change("web", rg="rg-0")
        r1.book.record_outcome(failed, fail(retryable=True)(failed), "b2", START)
        await r1.coordinator.flush()
        changed = {s for s, h in r1.table.holds.items() if h.etag != etags[s]}
        assert changed == {shard_of("rg-0", 2)}, "only the shard whose groups changed"


async def test_changing_the_shard_count_moves_the_books_when_no_replica_runs(
    azurite: Azurite, blob_container: str
) -> None:
    async with replicas(azurite, blob_container, ["old"], shards=2) as (old,):
        await old.coordinator.start()
        await tick_all([old], 2)
        for i in range(6):
            rg = f"rg-{i}"
            failed = change("web", rg=rg)
            old.book.record_outcome(failed, fail(retryable=True)(failed), "r1", START)
        await old.coordinator.flush()
        async with replicas(azurite, blob_container, ["early"], shards=3) as (early,):
            with pytest.raises(CoordinationStartError, match="--shards 2"):
                await early.coordinator.start()
        await old.coordinator.close()
    async with replicas(azurite, blob_container, ["new"], shards=3) as (new,):
        await new.coordinator.start()
        await tick_all([new], 2)
        assert new.table.owned() == [0, 1, 2]
        assert {k[0] for k in new.book.groups} == {f"rg-{i}" for i in range(6)}
        assert all(s.failures == 1 for s in new.book.groups.values())


async def test_a_replica_still_running_the_old_layout_stops_when_it_changes(
    azurite: Azurite, blob_container: str
) -> None:
    async with replicas(azurite, blob_container, ["old"], shards=2) as (old,):
        await old.coordinator.start()
        await old.coordinator.close()  # gone, but a standby of the old layout lingers:
        async with replicas(azurite, blob_container, ["stale"], shards=2) as (stale,):
            stale.coordinator._layout_etag = (
                await stale.coordinator.store.read("instances/prod/layout.json")
            ).etag  # type: ignore[union-attr]
            async with replicas(azurite, blob_container, ["new"], shards=3) as (new,):
                await new.coordinator.start()
            await stale.coordinator.tick()
            assert stale.fatal
            assert "--shards" in stale.fatal[0]
