"""Paged lists within ARM's read budget, through the real adapter and the in-process emulator: a chain that
fails on a later page resumes from that page (never from page 1), a fresh attempt budget follows progress,
reads are paced by `x-ms-ratelimit-remaining-subscription-reads`, each page is told to the engine once as it
is read, and a list of many more pages than the read bucket holds completes (slower, never failing). Time is
the emulator's and the gateway's shared fake clock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.cloud.errors import RetryableError
from reconciler.cloud.gateway import ListCursor
from reconciler.cloud.retry import RetryExhaustedError, RetryPolicy
from reconciler.emulator.limits import FaultSettings
from reconciler.emulator.store import GroupRecord
from reconciler.engine.observe import ReadCount, Scope, list_resuming, observe_scope
from reconciler.model.observed import PackedBody
from tests.execution.conftest import FakeClock
from tests.inprocess import SUBSCRIPTION, in_process
from tests.reliability.support import unmanaged_body

RG = "rg-pages"


def seed(emu: object, count: int, rg: str = RG) -> None:
    store = emu.store  # type: ignore[attr-defined]  # the emulator's own store, to seed fast
    for n in range(count):
        spec = unmanaged_body()
        store.insert(
            GroupRecord(SUBSCRIPTION, rg, f"g{n:04d}", spec, created=0.0, provisioning_state="Succeeded")
        )


def lists(emu: object) -> list[int]:
    log = emu.request_log  # type: ignore[attr-defined]
    return [e.status for e in log if e.method == "GET" and e.route != "containerGroup"]


async def test_a_chain_that_fails_on_a_later_page_resumes_there(tmp_path: Path) -> None:
    clock = FakeClock()
    async with in_process(tmp_path, sleep=clock.sleep, page_size=2) as (emu, gateway):
        seed(emu, 7)  # 4 pages
        emu.faults.set(FaultSettings(rate=1.0, kinds=("503",), query_contains="$skipToken", count=2))
        reads = ReadCount()
        told: list[list[str]] = []
        found = await list_resuming(
            lambda cursor: gateway.list_groups(RG, cursor=cursor),
            policy=RetryPolicy(max_attempts=5, backoff_base=0.0, backoff_cap=0.0),
            sleep=clock.sleep,
            reads=reads,
            on_page=lambda page: told.append([g.name for g in page]),
        )
        assert sorted(g.name for g in found) == [f"g{n:04d}" for n in range(7)]
        assert lists(emu) == [200, 503, 503, 200, 200, 200], "page 1 once; page 2 twice refused, then read"
        assert reads.requests == 6, "every request counted, refused ones too"
        assert told == [["g0000", "g0001"], ["g0002", "g0003"], ["g0004", "g0005"], ["g0006"]], (
            "each page told once, as it was read, the refused one too once it was"
        )


async def test_progress_earns_a_fresh_attempt_budget_and_a_stuck_page_still_ends_the_chain(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=2, backoff_base=0.0, backoff_cap=0.0)
    async with in_process(tmp_path, sleep=clock.sleep, page_size=2) as (emu, gateway):
        seed(emu, 7)
        # Three refusals: a whole-chain retry of two attempts would give up; resuming gets through.
        emu.faults.set(FaultSettings(rate=1.0, kinds=("503",), query_contains="$skipToken", count=3))
        found = await list_resuming(
            lambda cursor: gateway.list_groups(RG, cursor=cursor), policy=policy, sleep=clock.sleep
        )
        assert len(found) == 7
        emu.faults.set(FaultSettings(rate=1.0, kinds=("503",), query_contains="$skipToken"))
        with pytest.raises(RetryExhaustedError):
            await list_resuming(
                lambda cursor: gateway.list_groups(RG, cursor=cursor), policy=policy, sleep=clock.sleep
            )


async def test_a_cursor_takes_pages_whole_so_a_retry_never_doubles_a_group(tmp_path: Path) -> None:
    clock = FakeClock()
    async with in_process(tmp_path, sleep=clock.sleep, page_size=3) as (emu, gateway):
        seed(emu, 8)
        cursor = ListCursor()
        emu.faults.set(FaultSettings(rate=1.0, kinds=("500",), query_contains="$skipToken", count=1))
        with pytest.raises(RetryableError):
            await gateway.list_groups(RG, cursor=cursor)
        assert (cursor.pages, len(cursor.groups)) == (1, 3)
        found = await gateway.list_groups(RG, cursor=cursor)
        assert [g.name for g in found] == [f"g{n:04d}" for n in range(8)]
        assert cursor.pages == 3


async def test_reads_are_paced_by_the_remaining_reads_header_before_the_bucket_runs_dry(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    async with in_process(
        tmp_path, sleep=clock.sleep, page_size=1, clock=clock, read_bucket_size=40, read_refill_rate=25.0
    ) as (emu, gateway):
        seed(emu, 60)
        found = await list_resuming(
            lambda cursor: gateway.list_groups(RG, cursor=cursor), policy=RetryPolicy(), sleep=clock.sleep
        )
        assert len(found) == 60
        assert 429 not in lists(emu), "paced reads never ran the bucket dry"
        assert gateway.reads_paced > 0
        assert max(clock.sleeps) <= 1.0


async def test_a_subscription_list_of_many_more_pages_than_the_read_bucket_holds_completes(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    async with in_process(
        tmp_path,
        sleep=clock.sleep,
        page_size=2,
        clock=clock,
        read_bucket_size=250,
        read_refill_rate=25.0,
    ) as (emu, gateway):
        for rg in ("rg-a", "rg-b", "rg-c"):
            seed(emu, 400, rg)  # 600 pages against a bucket of 250
        # Now and then ARM refuses a later page anyway (another client shares the bucket): waited out.
        emu.faults.set(
            FaultSettings(rate=0.05, kinds=("429",), query_contains="$skipToken", retry_after=2, seed=7)
        )
        observed = await observe_scope(
            gateway,
            Scope(mode="subscription"),
            [],
            policy=RetryPolicy(max_attempts=3, backoff_base=0.0, backoff_cap=0.0),
            sleep=clock.sleep,
        )
        assert observed.failed_all is None
        assert len(observed.groups) == 1200
        statuses = lists(emu)
        assert statuses.count(200) == 600, "every page read exactly once"
        assert observed.reads == len(statuses)
        assert statuses.count(429) > 0, "the refusals happened and were waited out"


async def test_a_missing_resource_group_costs_one_read(tmp_path: Path) -> None:
    clock = FakeClock()
    async with in_process(tmp_path, sleep=clock.sleep) as (_, gateway):
        reads = ReadCount()
        found = await list_resuming(
            lambda cursor: gateway.list_groups("rg-nowhere", cursor=cursor),
            policy=RetryPolicy(),
            sleep=clock.sleep,
            reads=reads,
        )
        assert (found, reads.requests) == ([], 1)


async def test_a_page_answered_with_the_same_bytes_hands_back_the_same_groups_without_decoding(
    tmp_path: Path,
) -> None:
    async with in_process(tmp_path, page_size=3) as (emu, gateway):
        seed(emu, 8)  # pages: g0000-g0002, g0003-g0005, g0006-g0007
        first = await gateway.list_groups(RG)
        again = await gateway.list_groups(RG)
        assert [g.name for g in again] == [g.name for g in first]
        assert all(a is b for a, b in zip(again, first, strict=True)), "the very same objects"
        assert gateway.pages_reused == 3
        store = emu.store
        store.remove(next(r for r in store.records() if r.name == "g0004"))
        store.insert(
            GroupRecord(
                SUBSCRIPTION, RG, "g0004", unmanaged_body("nginx:changed"), created=0.0,
                provisioning_state="Succeeded",
            )
        )  # fmt: skip
        third = await gateway.list_groups(RG)
        assert gateway.pages_reused == 5, "the two unchanged pages"
        changed = {g.name for g, before in zip(third, first, strict=True) if g is not before}
        assert changed == {"g0003", "g0004", "g0005"}, "the changed page is decoded anew, whole"
        assert (
            next(g for g in third if g.name == "g0004").body["properties"]["containers"][0]["properties"][
                "image"
            ]
            == "nginx:changed"
        )
        other_rg = await gateway.list_groups("rg-other")
        assert other_rg == [], "pages are kept per list, never mixed"


async def test_listed_groups_keep_their_bodies_as_text_and_share_tag_names_and_short_values(
    tmp_path: Path,
) -> None:
    async with in_process(tmp_path, page_size=3) as (emu, gateway):
        seed(emu, 4)  # two pages, so two decodes
        first, _, _, last = await gateway.list_groups(RG)
        for group in (first, last):
            assert isinstance(group.body, PackedBody)
            assert json.loads(group.body.text)["name"] == group.name
            assert group.body["properties"]["containers"][0]["name"] == "main"
        assert first.tags == last.tags == {"owner": "someone-else"}
        [(name_a, value_a)], [(name_b, value_b)] = first.tags.items(), last.tags.items()
        assert name_a is name_b
        assert value_a is value_b


async def test_each_next_page_is_asked_for_before_the_page_before_it_is_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.cloud import azure

    events: list[str] = []
    decode = azure._parse_page

    def parse(raw: bytes, *args: Any) -> Any:
        page = decode(raw, *args)
        events.append(f"decoded {len(page.groups)}")
        return page

    monkeypatch.setattr(azure, "_parse_page", parse)
    async with in_process(tmp_path, page_size=2) as (emu, gateway):
        seed(emu, 7)  # 4 pages
        send = gateway._send

        async def sending(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            events.append("asked" + (" again" if "skiptoken" in url.lower() else ""))
            return await send(method, url, *args, **kwargs)

        monkeypatch.setattr(gateway, "_send", sending)
        found = await gateway.list_groups(RG)
        assert sorted(g.name for g in found) == [f"g{n:04d}" for n in range(7)]
        assert events == [
            "asked",
            "asked again",  # page 2, before page 1 is decoded
            "decoded 2",
            "asked again",
            "decoded 2",
            "asked again",
            "decoded 2",
            "decoded 1",  # the last page names no next one
        ]
        assert lists(emu) == [200, 200, 200, 200], "no request more than the pages"


async def test_a_link_read_ahead_that_the_page_does_not_name_is_dropped_and_the_chain_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.cloud import azure

    async with in_process(tmp_path, page_size=2) as (emu, gateway):
        seed(emu, 5)  # 3 pages
        wrong = (
            f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.ContainerInstance"
            "/containerGroups?api-version=2023-05-01&$skipToken=wrong"
        )
        monkeypatch.setattr(azure, "next_link_at_end", lambda raw: wrong)
        found = await gateway.list_groups(RG)
        assert sorted(g.name for g in found) == [f"g{n:04d}" for n in range(5)]
        assert len([t for t in asyncio.all_tasks() if t.get_name().startswith("list-ahead")]) == 0
