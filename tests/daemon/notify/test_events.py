"""What the daemon emits: the worker's transitions and outcomes, job runs and leadership, each once, and none
from a dry run's revision; a receiver that never answers does not hold a pass up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.daemon.jobs.ledger import RunRecord
from reconciler.daemon.notify import Event, EventKind, load_notifications
from reconciler.daemon.runner import Daemon
from reconciler.daemon.triggers import Trigger, TriggerKind
from reconciler.model.plan import Action
from tests.daemon.fakes import FakeClock, FakeEngine, change, fail, plan, settle
from tests.daemon.notify.receivers import receivers
from tests.daemon.test_runner import config, factory
from tests.daemon.test_worker import make

SHA1 = "1" * 40
SHA2 = "2" * 40


def trig() -> Trigger:
    return Trigger(TriggerKind.FILE, "test", 0.0)


def kinds(events: list[Event]) -> list[tuple[str, str | None]]:
    return [(e.kind.value, e.name) for e in events]


async def test_a_pass_emits_replace_prune_conflict_stalled_and_the_revision_result() -> None:
    clock, engine, events = FakeClock(), FakeEngine(), []
    engine.set_plan(
        plan(
            SHA1,
            change("db", Action.REPLACE),
            change("old", Action.DELETE),
            change("legacy", Action.CONFLICT),
            change("web"),
            change("ok", Action.NOOP),
        )
    )
    engine.outcomes["web"] = fail(retryable=False, message="InvalidImage")
    worker = make(engine, clock, notify=events.append)
    await worker.run_pass([trig()])
    assert sorted(kinds(events)) == sorted(
        [
            ("revision", None),  # pending
            ("replace", "db"),
            ("prune", "old"),
            ("conflict", "legacy"),
            ("stalled", "web"),
            ("revision", None),  # failure
        ]
    )
    revision = [e for e in events if e.kind is EventKind.REVISION]
    assert [e.detail["state"] for e in revision] == ["pending", "failure"]
    stalled = next(e for e in events if e.kind is EventKind.STALLED)
    assert stalled.severity == "error"
    assert "InvalidImage" in str(stalled.detail["message"])

    events.clear()
    engine.set_plan(plan(SHA1, change("db", Action.NOOP), change("legacy", Action.CONFLICT), change("web")))
    await worker.run_pass([trig()])
    assert kinds(events) == [], "nothing new: the stall and the conflict were told once"


async def test_recovery_and_corrected_drift_are_told() -> None:
    clock, engine, events = FakeClock(), FakeEngine(), []
    engine.set_plan(plan(SHA1, change("web", spec="s1")))
    engine.outcomes["web"] = fail(retryable=True)
    worker = make(engine, clock, notify=events.append)
    await worker.run_pass([trig()])
    del engine.outcomes["web"]
    clock.now += 3600
    events.clear()
    await worker.run_pass([trig()])
    assert ("recovered", "web") in kinds(events)
    events.clear()
    await worker.run_pass([trig()])  # the same manifest planned again: Azure drifted
    drift = [e for e in events if e.kind is EventKind.DRIFT_CORRECTED]
    assert [e.name for e in drift] == ["web"]
    assert "image" in str(drift[0].detail["paths"])


async def test_a_dry_run_reports_no_revision_status() -> None:
    clock, engine, events = FakeClock(), FakeEngine(), []
    engine.set_plan(plan(SHA1, change("web")))
    worker = make(engine, clock, notify=events.append, dry_run=True)
    await worker.run_pass([trig()])
    assert [e for e in events if e.kind is EventKind.REVISION] == []


async def test_a_receiver_that_never_answers_does_not_hold_up_passes_or_shutdown(tmp_path: Path) -> None:
    clock, engine = FakeClock(), FakeEngine()
    engine.set_plan(plan(SHA1, change("db", Action.REPLACE)))
    async with receivers() as rx:
        rx.hang.add("/hook")
        notifications = load_notifications(None, [f"webhook={rx.url}/hook,secret=env:K"], {"K": "k"})
        daemon = Daemon(
            config(tmp_path, clock, notifications=notifications, notify_grace=0.0), factory(engine)
        )
        await daemon.start()
        await rx.wait_for(1, "/hook")  # the sender is stuck on the first event
        await settle()
        assert daemon.worker.first_pass_done.is_set()
        assert daemon.worker.last_pass is not None
        assert daemon.worker.last_pass.result == "ok"
        engine.set_plan(plan(SHA2, change("db", Action.REPLACE)))
        before = daemon.worker.passes
        await daemon.worker.run_pass([trig()])
        assert daemon.worker.passes == before + 1
        assert sum(len(lane.queue) for lane in daemon.notifier.lanes) == 1, "queued behind the stuck one"
        daemon.stop()
        assert await daemon.wait() == 0, "shutdown does not wait on a receiver past its grace"


async def test_job_results_and_leadership_become_events(tmp_path: Path) -> None:
    clock, engine = FakeClock(), FakeEngine()
    sent: list[Any] = []

    async def send(request: Any, limit: float) -> None:
        sent.append(request)

    notifications = load_notifications(None, ["slack=env:S"], {"S": "https://hooks.slack.com/x"})
    daemon = Daemon(config(tmp_path, clock, notifications=notifications, notify_send=send), factory(engine))
    emitted: list[Event] = []
    daemon.notifier.emit = emitted.append  # type: ignore[method-assign]  # record what the daemon emits
    run = RunRecord(trigger="schedule", slot="2024-01-01T00:05:00+00:00", started_at=clock.time())
    run.finish("failed", now=clock.time(), message="exit 3", exit_code=3)
    daemon._job_finished("rg", "nightly", run)
    [job] = emitted
    assert (job.kind, job.severity, job.detail["exit_code"]) == (EventKind.JOB_FAILED, "error", 3)
    assert "exit code 3" in job.summary


async def test_leadership_changes_become_events_naming_the_shards(tmp_path: Path) -> None:
    from reconciler.daemon.coordination.fence import LeaseTable

    clock = FakeClock()
    notifications = load_notifications(None, ["slack=env:S"], {"S": "https://hooks.slack.com/x"})
    daemon = Daemon(config(tmp_path, clock, notifications=notifications), factory(FakeEngine()))
    daemon.leases = LeaseTable("replica-a", 4, margin=5.0, monotonic=clock.monotonic)
    emitted: list[Event] = []
    daemon.notifier.emit = emitted.append  # type: ignore[method-assign]  # record what the daemon emits
    daemon._leadership_changed("lost shard 2")
    [event] = emitted
    assert event.kind is EventKind.LEADERSHIP
    assert event.severity == "warning", "holding no shard is worth a look"
    assert event.detail == {"replica": "replica-a", "shards_owned": "none", "leader": False}
    assert "lost shard 2" in event.summary
