"""Triggers: coalescing, debounced file events with editors' noise ignored, the jittered interval, retries."""

from __future__ import annotations

import asyncio
import contextlib
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.daemon.triggers import (
    Coalescer,
    RetryTimer,
    Trigger,
    TriggerKind,
    is_relevant_change,
    jittered,
    run_interval,
    watch_files,
)
from tests.daemon.fakes import FakeClock, ScriptedFiles, settle

ROOT = Path("/srv/manifests")


def trig(kind: TriggerKind = TriggerKind.FILE, reason: str = "r") -> Trigger:
    return Trigger(kind, reason, 0.0)


async def test_coalescer_collapses_triggers_during_a_pass_into_one_batch() -> None:
    coalescer = Coalescer()
    coalescer.fire(trig(TriggerKind.STARTUP))
    first = await coalescer.next()
    assert first is not None
    assert [t.kind for t in first] == [TriggerKind.STARTUP]
    # "During the pass": three triggers arrive before the worker asks again.
    coalescer.fire(trig(TriggerKind.FILE))
    coalescer.fire(trig(TriggerKind.INTERVAL))
    coalescer.fire(trig(TriggerKind.FILE))
    second = await coalescer.next()
    assert second is not None
    assert len(second) == 3
    assert {t.kind for t in second} == {TriggerKind.FILE, TriggerKind.INTERVAL}
    waiter = asyncio.create_task(coalescer.next(), name="test-next")
    await settle()
    assert not waiter.done(), "no trigger since the last batch: no further pass"
    coalescer.close()
    assert await waiter is None
    assert coalescer.batches == 2


async def test_closed_coalescer_drops_triggers_and_returns_none() -> None:
    coalescer = Coalescer()
    coalescer.fire(trig())
    coalescer.close()
    assert coalescer.fire(trig()) is False
    assert await coalescer.next() is None


async def test_on_fire_sees_every_trigger() -> None:
    seen: list[TriggerKind] = []
    coalescer = Coalescer(on_fire=lambda t: seen.append(t.kind))
    coalescer.fire(trig(TriggerKind.GIT))
    coalescer.fire(trig(TriggerKind.WEBHOOK))
    assert seen == [TriggerKind.GIT, TriggerKind.WEBHOOK]


@pytest.mark.parametrize(
    ("path", "relevant"),
    [
        ("/srv/manifests/web.yaml", True),
        ("/srv/manifests/team/api.yml", True),
        ("/srv/manifests/team", True),
        ("/srv/manifests/.git/index", False),
        ("/srv/manifests/.git/objects/ab/cdef", False),
        ("/srv/manifests/web.yaml~", False),
        ("/srv/manifests/.#web.yaml", False),
        ("/srv/manifests/.web.yaml.swp", False),
        ("/srv/manifests/web.yaml.swp", False),
        ("/srv/manifests/4913", False),
        ("/srv/manifests/#web.yaml#", False),
        ("/srv/manifests/.idea/workspace.xml", False),
        ("/srv/manifests/.hidden.yaml", False),
        # `sed -i` writes sedXXXXXX beside the file, then renames it over the file.
        ("/srv/manifests/sedAb12Z9", False),
        ("/srv/manifests/team/sedq0W9xY", False),
        ("/srv/manifests/sediment.yaml", True),
        ("/srv/manifests/sed", True),
        # JetBrains "safe write".
        ("/srv/manifests/web.yaml___jb_tmp___", False),
        ("/srv/manifests/web.yaml___jb_old___", False),
        # kate, and the numbered temp files of atomic writers (`web.yaml.tmp.1234`, `web.yaml.tmp12345`).
        ("/srv/manifests/.web.yaml.kate-swp", False),
        ("/srv/manifests/web.yaml.tmp.1234", False),
        ("/srv/manifests/web.yaml.tmp12345", False),
        ("/srv/manifests/web.yaml.swo", False),
        ("/srv/manifests/web.yaml.dpkg-new", False),
    ],
)
def test_editor_temp_files_and_git_dir_are_ignored(path: str, relevant: bool) -> None:
    assert is_relevant_change(ROOT, path) is relevant


async def _watch(
    clock: FakeClock, files: ScriptedFiles, debounce: float = 1.0
) -> tuple[Coalescer, asyncio.Task[None]]:
    coalescer = Coalescer()
    task = asyncio.create_task(
        watch_files(coalescer, ROOT, files, debounce=debounce, sleep=clock.sleep, clock=clock.time),
        name="test-watch",
    )
    await settle()
    return coalescer, task


async def test_burst_of_saves_is_one_pass() -> None:
    clock, files = FakeClock(), ScriptedFiles()
    coalescer, task = await _watch(clock, files)
    for i in range(5):
        files.push(f"/srv/manifests/g{i}.yaml")
        await clock.advance(0.3)  # each save lands inside the quiet window of the previous one
    assert coalescer.fired == 0
    await clock.advance(1.0)
    assert coalescer.fired == 1
    batch = await coalescer.next()
    assert batch is not None
    assert batch[0].kind is TriggerKind.FILE
    assert "g0.yaml" in batch[0].reason
    assert "2 more" in batch[0].reason
    files.end()
    await task


async def test_debounce_waits_for_quiet_after_the_last_change() -> None:
    clock, files = FakeClock(), ScriptedFiles()
    coalescer, task = await _watch(clock, files, debounce=2.0)
    files.push("/srv/manifests/a.yaml")
    await clock.advance(1.5)
    files.push("/srv/manifests/a.yaml")
    await clock.advance(1.5)
    assert coalescer.fired == 0, "the second save restarted the window"
    await clock.advance(0.6)
    assert coalescer.fired == 1
    files.push("/srv/manifests/b.yaml")
    await clock.advance(2.1)
    assert coalescer.fired == 2, "a later, separate save is another pass"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_changes_only_in_ignored_files_trigger_nothing() -> None:
    clock, files = FakeClock(), ScriptedFiles()
    coalescer, task = await _watch(clock, files)
    files.push("/srv/manifests/.git/index", "/srv/manifests/4913", "/srv/manifests/web.yaml~")
    await clock.advance(5)
    assert coalescer.fired == 0
    files.end()
    await task


async def test_pending_burst_fires_when_the_stream_ends() -> None:
    clock, files = FakeClock(), ScriptedFiles()
    coalescer, task = await _watch(clock, files)
    files.push("/srv/manifests/a.yaml")
    await settle()
    files.end()
    await task
    assert coalescer.fired == 1


@given(
    interval=st.floats(min_value=0.1, max_value=1e5),
    jitter=st.floats(min_value=0.0, max_value=0.99),
    seed=st.integers(),
)
def test_jittered_interval_stays_within_its_spread(interval: float, jitter: float, seed: int) -> None:
    delay = jittered(interval, jitter, random.Random(seed))
    assert interval * (1 - jitter) - 1e-9 <= delay <= interval * (1 + jitter) + 1e-9


async def test_interval_ticker_fires_with_jittered_delays() -> None:
    clock = FakeClock()
    coalescer = Coalescer()
    task = asyncio.create_task(
        run_interval(coalescer, 300.0, jitter=0.1, rng=random.Random(7), sleep=clock.sleep, clock=clock.time),
        name="test-interval",
    )
    await clock.advance(269)
    assert coalescer.fired == 0, "never before interval minus the jitter"
    await clock.advance(3 * 330)
    assert coalescer.fired >= 3
    delays = clock.slept[:3]
    assert all(270 <= d <= 330 for d in delays)
    assert len(set(delays)) == 3, "each interval is jittered anew"
    batch = await coalescer.next()
    assert batch is not None
    assert all(t.kind is TriggerKind.INTERVAL for t in batch)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_retry_timer_fires_once_when_due_and_can_be_rescheduled() -> None:
    clock = FakeClock()
    coalescer = Coalescer()
    timer = RetryTimer(coalescer, sleep=clock.sleep, clock=clock.time)
    timer.schedule(clock.now + 60)
    await clock.advance(30)
    timer.schedule(clock.now + 10)  # an earlier backoff replaces the later one
    await clock.advance(10)
    assert coalescer.fired == 1
    await clock.advance(100)
    assert coalescer.fired == 1
    batch = await coalescer.next()
    assert batch is not None
    assert batch[0].kind is TriggerKind.RETRY
    timer.schedule(clock.now + 5)
    await timer.aclose()
    await clock.advance(10)
    assert coalescer.fired == 1


async def test_real_file_watcher_reports_a_saved_manifest_and_ignores_editor_noise(tmp_path: Path) -> None:
    from reconciler.daemon.triggers import watchfiles_source

    fired = asyncio.Event()
    coalescer = Coalescer(on_fire=lambda trigger: fired.set())
    stop = asyncio.Event()
    task = asyncio.create_task(
        watch_files(
            coalescer,
            tmp_path,
            watchfiles_source(tmp_path, stop),
            debounce=0.05,
            sleep=asyncio.sleep,
            clock=lambda: 0.0,
        ),
        name="test-real-watch",
    )
    # watchfiles starts its watcher in a thread and misses what happens before: save until it reports.
    for attempt in range(50):
        (tmp_path / ".web.yaml.swp").write_text(f"noise {attempt}")
        (tmp_path / "web.yaml").write_text(f"name: web  # {attempt}\n")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(fired.wait(), 0.2)
            break
    assert fired.is_set()
    batch = await coalescer.next()
    assert batch is not None
    assert batch[0].reason == "changed: web.yaml"
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_trigger_reason_names_paths_relative_to_a_relative_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    clock, files = FakeClock(), ScriptedFiles()
    coalescer = Coalescer()
    task = asyncio.create_task(
        watch_files(coalescer, Path("m"), files, debounce=1.0, sleep=clock.sleep, clock=clock.time),
        name="test-watch",
    )
    files.push(str(tmp_path / "m" / "sedAb12Cd"), str(tmp_path / "m" / "web.yaml"))
    await clock.advance(1.5)
    batch = await coalescer.next()
    assert batch is not None
    assert batch[0].reason == "changed: web.yaml", "sed -i's temp file is not a reason"
    files.end()
    await task
