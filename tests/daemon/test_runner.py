"""The composed daemon in-process: triggers to passes, shutdown with a grace period, restart after a cut."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp

from reconciler.daemon.runner import Daemon, DaemonConfig
from reconciler.daemon.state import StateStore
from reconciler.daemon.triggers import FileChanges
from reconciler.daemon.worker import PassEngine
from reconciler.model.plan import Action
from tests.daemon.fakes import FakeClock, FakeEngine, ScriptedFiles, change, plan, settle


def config(
    tmp_path: Path, clock: FakeClock, files: ScriptedFiles | None = None, **kwargs: object
) -> DaemonConfig:
    def source(root: Path, stop: asyncio.Event) -> AsyncIterator[FileChanges]:
        del root, stop
        assert files is not None
        return files

    base: dict[str, object] = {
        "manifests": tmp_path / "manifests",
        "listen": None,
        "state_dir": tmp_path / "state",
        "interval": 300.0,
        "grace_period": 30.0,
        "debounce": 1.0,
        "sleep": clock.sleep,
        "clock": clock.time,
        "monotonic": clock.monotonic,
        "file_changes": source if files is not None else None,
        "watch": files is not None,
    }
    base.update(kwargs)
    return DaemonConfig(**base)  # type: ignore[arg-type]  # test options by keyword


def factory(engine: FakeEngine) -> Callable[..., PassEngine]:
    return lambda manifests, revision: engine


async def test_file_change_runs_a_pass_after_the_debounce(tmp_path: Path) -> None:
    clock, files, engine = FakeClock(), ScriptedFiles(), FakeEngine()
    engine.set_plan(plan("r1", change("web", Action.NOOP)))
    daemon = Daemon(config(tmp_path, clock, files), factory(engine))
    await daemon.start()
    await settle()
    assert engine.plan_calls == 1, "a pass at start-up"
    assert daemon.worker.first_pass_done.is_set()
    files.push(str(tmp_path / "manifests" / "web.yaml"))
    await clock.advance(0.5)
    assert engine.plan_calls == 1
    await clock.advance(0.6)
    assert engine.plan_calls == 2
    await clock.advance(300 * 1.1)
    assert engine.plan_calls == 3, "the interval resync"
    daemon.stop()
    assert await daemon.wait() == 0


async def started_replacing(tmp_path: Path, clock: FakeClock, engine: FakeEngine) -> Daemon:
    """A daemon whose first pass replaces web (held where the test gated the engine)."""
    engine.set_plan(plan("r1", change("web", Action.REPLACE)))
    daemon = Daemon(config(tmp_path, clock), factory(engine))
    await daemon.start()
    await settle()
    return daemon


async def test_sigterm_lets_the_pass_in_flight_finish_within_the_grace_period(tmp_path: Path) -> None:
    clock, engine = FakeClock(), FakeEngine()
    engine.gate = asyncio.Event()
    daemon = await started_replacing(tmp_path, clock, engine)
    assert engine.in_apply.is_set()
    daemon.stop()
    waiting = asyncio.create_task(daemon.wait(), name="test-wait")
    await clock.advance(10)
    assert not waiting.done(), "the apply in flight may finish"
    engine.gate.set()
    assert await waiting == 0
    assert engine.plan_calls == 1, "no new pass after the signal"
    saved = StateStore(tmp_path / "state").load()
    assert saved is not None
    assert saved["groups"][0]["in_flight"] is None
    assert saved["groups"][0]["state"] == "Ready"


async def test_sigterm_drops_a_pass_that_is_still_planning_at_once(tmp_path: Path) -> None:
    clock, engine = FakeClock(), FakeEngine()
    engine.plan_gate = asyncio.Event()
    daemon = await started_replacing(tmp_path, clock, engine)
    assert engine.in_plan.is_set()
    daemon.stop()
    waiting = asyncio.create_task(daemon.wait(), name="test-wait")
    await settle()
    assert waiting.done(), "no grace period spent on a plan: nothing was written"
    assert await waiting == 0
    assert engine.applied == []
    assert daemon.worker.last_pass is not None
    assert daemon.worker.last_pass.result == "interrupted"


async def test_grace_period_over_records_the_unfinished_and_restart_reports_it(tmp_path: Path) -> None:
    clock, engine = FakeClock(), FakeEngine()
    engine.gate = asyncio.Event()
    daemon = await started_replacing(tmp_path, clock, engine)
    daemon.stop()
    waiting = asyncio.create_task(daemon.wait(), name="test-wait")
    await clock.advance(31)
    assert await waiting == 0
    saved = StateStore(tmp_path / "state").load()
    assert saved is not None
    assert saved["groups"][0]["in_flight"] == "replace"

    # A new run reports what was cut short, then converges.
    engine2 = FakeEngine()
    engine2.set_plan(plan("r1", change("web", Action.CREATE)))
    again = Daemon(config(tmp_path, clock), factory(engine2))
    await again.start()
    assert again.unfinished == ["rg/web (replace)"]
    assert again.book.unfinished_at_start[0]["action"] == "replace"
    await settle()
    assert engine2.applied == [["web"]]
    again.stop()
    assert await again.wait() == 0
    saved = StateStore(tmp_path / "state").load()
    assert saved is not None
    assert saved["groups"][0]["in_flight"] is None


async def test_webhook_without_git_runs_a_pass(tmp_path: Path) -> None:
    clock, engine = FakeClock(), FakeEngine()
    daemon = Daemon(config(tmp_path, clock), factory(engine))
    await daemon.start()
    await settle()
    daemon.hook()
    await settle()
    assert engine.plan_calls == 2
    assert daemon.metrics.registry.get_sample_value("aci_reconciler_triggers_total", {"kind": "webhook"}) == 1
    daemon.stop()
    assert await daemon.wait() == 0


async def test_once_runs_one_pass_and_exits_by_its_result(tmp_path: Path) -> None:
    clock, engine = FakeClock(), FakeEngine()
    engine.set_plan(plan("r1", change("web")))
    daemon = Daemon(config(tmp_path, clock, once=True), factory(engine))
    await daemon.start()
    assert await daemon.wait() == 0
    assert engine.plan_calls == 1

    failing = FakeEngine()
    failing.plan_error = RuntimeError("no access")
    daemon = Daemon(config(tmp_path, clock, once=True), factory(failing))
    await daemon.start()
    assert await daemon.wait() == 1


async def test_serves_its_endpoints_on_loopback(tmp_path: Path) -> None:
    clock, engine = FakeClock(), FakeEngine()
    daemon = Daemon(config(tmp_path, clock, listen=("127.0.0.1", 0)), factory(engine))
    await daemon.start()
    await settle()
    assert daemon.bound is not None
    host, port = daemon.bound
    async with aiohttp.ClientSession() as session:
        for path, status in (("/healthz", 200), ("/readyz", 200), ("/metrics", 200), ("/status", 200)):
            async with session.get(f"http://{host}:{port}{path}") as response:
                assert response.status == status, path
    daemon.stop()
    assert await daemon.wait() == 0
