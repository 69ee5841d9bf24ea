"""The daemon's job scheduler on a fake clock with a fake launcher: slots, the run ledger, concurrency,
runOnChange, restarts and crashes, and what /status and /metrics show of job runs."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import structlog
from cronsim import CronSim
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from reconciler.daemon.http import status_json
from reconciler.daemon.jobs import JobScheduler, JobTemplate, slots
from reconciler.daemon.metrics import DaemonMetrics
from reconciler.daemon.passes import job_templates
from reconciler.daemon.runner import Daemon, DaemonConfig
from reconciler.daemon.state import StateBook, StateStore
from reconciler.daemon.worker import PassEngine, PlanView
from reconciler.model.job import JobPolicy
from reconciler.model.jobrun import ContainerExit, JobRequest, JobResult, RunResult, Trigger
from reconciler.planning import DesiredGroup, write_tags_for
from reconciler.planning.ownership import SPEC_TAG
from reconciler.source.loader import load_manifests
from tests.daemon.fakes import FakeClock, FakeEngine, plan, settle


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


T0 = at("2024-01-01T00:00:30+00:00")


def template(
    name: str = "nightly", *, rg: str = "rg", fingerprint: str = "spec-a", **policy: Any
) -> JobTemplate:
    return JobTemplate(rg, name, JobPolicy.model_validate(policy), fingerprint)


class FakeLauncher:
    """Records every request; finishes at once, or (`hold`) when the test releases the run's slot."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.requests: list[JobRequest] = []
        self.hold = False
        self.gates: dict[str, asyncio.Event] = {}
        self.result = RunResult.SUCCEEDED
        self.exit_code = 0
        self.log_tail: tuple[str, ...] = ("line 1", "done")
        self.cancelled: list[str] = []

    @property
    def slots(self) -> list[str | None]:
        return [r.slot for r in self.requests]

    async def __call__(self, request: JobRequest) -> JobResult:
        self.requests.append(request)
        started = self.clock.time()
        suffix = f"-{len(self.requests)}" if request.concurrency == "Allow" else ""
        if self.hold:
            gate = self.gates.setdefault(str(request.slot), asyncio.Event())
            try:
                await gate.wait()
            except asyncio.CancelledError:
                self.cancelled.append(str(request.slot))
                raise
        return JobResult(
            name=request.name,
            resource_group=request.resource_group or "",
            group_name=request.name + suffix,
            result=self.result,
            exit_code=self.exit_code,
            containers=(ContainerExit("main", self.exit_code),),
            trigger=request.trigger,
            started_at=started,
            finished_at=self.clock.time(),
            launched_by="create",
            log_tail=self.log_tail,
            slot=request.slot,
        )

    def release(self, slot: str | None = None) -> None:
        for key, gate in self.gates.items():
            if slot is None or key == slot:
                gate.set()


class Harness:
    """A scheduler over a state file; `restart()` makes a new one from that file, as a new daemon would."""

    def __init__(self, tmp_path: Path, clock: FakeClock, launcher: FakeLauncher | None) -> None:
        self.tmp_path = tmp_path
        self.clock = clock
        self.launcher = launcher
        self.store = StateStore(tmp_path / "state")
        self.metrics = DaemonMetrics()
        self.book = StateBook()
        self.scheduler = self._make()

    def _make(self) -> JobScheduler:
        self.book = StateBook()
        saved = self.store.load()
        if saved is not None:
            self.book.restore(saved, now=self.clock.time())
        self.metrics = DaemonMetrics()
        book = self.book
        return JobScheduler(
            book.jobs,
            launcher=self.launcher,
            metrics=self.metrics,
            clock=self.clock.time,
            sleep=self.clock.sleep,
            save=lambda: self.store.save(book.to_json()),
            max_nap=3600.0,
        )

    def restart(self) -> JobScheduler:
        self.scheduler = self._make()
        return self.scheduler

    def crash(self) -> None:
        """The process dies: nothing more is written, the runs in flight are simply gone."""
        old = self.scheduler
        old.save = None
        for task in old.running_tasks():
            task.cancel()

    def saved_runs(self, key: str = "rg/nightly") -> list[dict[str, Any]]:
        data = json.loads(self.store.path.read_text())
        for job in data["jobs"]:
            if f"{job['resource_group']}/{job['name']}" == key:
                return list(job["runs"])
        return []

    def runs(self, key: tuple[str, str] = ("rg", "nightly")) -> list[Any]:
        entry = self.book.jobs.get(key)
        return list(entry.runs) if entry is not None else []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=T0)


@pytest.fixture
def launcher(clock: FakeClock) -> FakeLauncher:
    return FakeLauncher(clock)


@pytest.fixture
def harness(tmp_path: Path, clock: FakeClock, launcher: FakeLauncher) -> Harness:
    return Harness(tmp_path, clock, launcher)


async def running(scheduler: JobScheduler) -> asyncio.Task[None]:
    task = asyncio.create_task(scheduler.run(), name="test-job-scheduler")
    await settle()
    return task


async def stopped(scheduler: JobScheduler, task: asyncio.Task[None]) -> None:
    scheduler.stop()
    await settle()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


# -- schedules ------------------------------------------------------------------------------------------


async def test_a_schedule_fires_once_per_slot(
    harness: Harness, clock: FakeClock, launcher: FakeLauncher
) -> None:
    scheduler = harness.scheduler
    scheduler.update([template(schedule="*/5 * * * *")])
    task = await running(scheduler)
    await clock.advance(16 * 60)
    for _ in range(3):
        scheduler.tick()  # asked again at the same moment: nothing new is due
    await settle()
    await stopped(scheduler, task)
    assert launcher.slots == [
        "2024-01-01T00:05:00+00:00",
        "2024-01-01T00:10:00+00:00",
        "2024-01-01T00:15:00+00:00",
    ]
    assert all(r.trigger is Trigger.SCHEDULE and r.concurrency == "Forbid" for r in launcher.requests)
    assert [r["result"] for r in harness.saved_runs()] == ["succeeded"] * 3


async def test_the_scheduler_sleeps_until_the_next_slot_not_in_a_busy_loop(
    harness: Harness, clock: FakeClock, launcher: FakeLauncher
) -> None:
    scheduler = harness.scheduler
    scheduler.update([template(schedule="0 3 * * *")])
    task = await running(scheduler)
    assert clock.sleeping == 1
    assert clock.slept[-1] == pytest.approx(3600.0), "at most max_nap, then it reads the wall clock again"
    await clock.advance(3 * 3600)
    await stopped(scheduler, task)
    assert launcher.slots == ["2024-01-01T03:00:00+00:00"]
    assert len(clock.slept) < 10


async def test_a_missed_slot_inside_the_deadline_runs_once_after_a_restart(
    harness: Harness, clock: FakeClock, launcher: FakeLauncher
) -> None:
    jobs = [template(schedule="0 * * * *", startingDeadline="10m")]
    harness.scheduler.update(jobs)
    harness.scheduler.tick()  # first sight at 00:00:30, written to the state file
    harness.crash()
    clock.now = at("2024-01-01T01:04:00+00:00")  # down over the 01:00 slot
    scheduler = harness.restart()
    scheduler.update(jobs)
    scheduler.tick()
    scheduler.tick()
    await settle()
    assert launcher.slots == ["2024-01-01T01:00:00+00:00"]
    assert "missed, then caught up" in harness.runs()[-1].message
    clock.now += 60
    scheduler = harness.restart()
    scheduler.update(jobs)
    scheduler.tick()
    await settle()
    assert launcher.slots == ["2024-01-01T01:00:00+00:00"], "never twice, across restarts"


async def test_a_missed_slot_outside_the_deadline_is_recorded_as_skipped_and_never_run(
    harness: Harness, clock: FakeClock, launcher: FakeLauncher
) -> None:
    jobs = [template(schedule="0 * * * *", startingDeadline="10m")]
    harness.scheduler.update(jobs)
    harness.scheduler.tick()
    clock.now = at("2024-01-01T01:30:00+00:00")
    scheduler = harness.restart()
    scheduler.update(jobs)
    scheduler.tick()
    await settle()
    assert launcher.requests == []
    (run,) = harness.runs()
    assert (run.slot, run.result) == ("2024-01-01T01:00:00+00:00", "skipped")
    assert "past the starting deadline" in run.message
    assert harness.metrics.job_runs.labels(job="rg/nightly", result="skipped")._value.get() == 1


async def test_only_the_most_recent_missed_slot_runs_never_a_backlog(
    harness: Harness, clock: FakeClock, launcher: FakeLauncher
) -> None:
    jobs = [template(schedule="*/10 * * * *")]  # no deadline: a missed slot always catches up once
    harness.scheduler.update(jobs)
    harness.scheduler.tick()
    clock.now = at("2024-01-01T05:07:00+00:00")
    scheduler = harness.restart()
    scheduler.update(jobs)
    scheduler.tick()
    await settle()
    assert launcher.slots == ["2024-01-01T05:00:00+00:00"]


async def test_slots_before_the_job_was_first_seen_are_never_missed(
    harness: Harness, clock: FakeClock, launcher: FakeLauncher
) -> None:
    clock.now = at("2024-01-01T00:30:00+00:00")
    harness.scheduler.update([template(schedule="0 * * * *")])
    harness.scheduler.tick()
    await settle()
    assert launcher.requests == [], "the 00:00 slot was before the daemon knew the job"


async def test_a_changed_schedule_counts_from_its_change(
    harness: Harness, clock: FakeClock, launcher: FakeLauncher
) -> None:
    scheduler = harness.scheduler
    scheduler.update([template(schedule="0 23 * * *")])
    scheduler.tick()
    clock.now = at("2024-01-01T10:00:00+00:00")
    scheduler.update([template(schedule="0 9 * * *")])  # its 09:00 slot today is not a missed one
    scheduler.tick()
    await settle()
    assert launcher.requests == []


async def test_a_crash_between_the_ledger_write_and_the_finish_never_runs_the_slot_twice(
    harness: Harness, clock: FakeClock, launcher: FakeLauncher
) -> None:
    jobs = [template(schedule="0 * * * *")]
    launcher.hold = True
    harness.scheduler.update(jobs)
    harness.scheduler.tick()
    clock.now = at("2024-01-01T01:00:00+00:00")
    harness.scheduler.tick()
    await settle()
    assert launcher.slots == ["2024-01-01T01:00:00+00:00"]
    assert [r["result"] for r in harness.saved_runs()] == ["running"], "written before the launch"
    harness.crash()
    await settle()
    clock.now += 30
    scheduler = harness.restart()
    (run,) = harness.runs()
    assert run.result == "interrupted"
    scheduler.update(jobs)
    scheduler.tick()
    await settle()
    assert launcher.slots == ["2024-01-01T01:00:00+00:00"]
    clock.now = at("2024-01-01T02:00:00+00:00")
    scheduler.tick()
    await settle()
    assert launcher.slots[-1] == "2024-01-01T02:00:00+00:00", "the next slot runs as usual"


async def test_a_run_is_not_launched_when_the_ledger_cannot_be_written(
    harness: Harness, clock: FakeClock, launcher: FakeLauncher
) -> None:
    scheduler = harness.scheduler

    def broken() -> None:
        raise OSError("disk full")

    scheduler.save = broken
    scheduler.update([template(schedule="0 * * * *")])
    scheduler.tick()
    clock.now = at("2024-01-01T01:00:00+00:00")
    scheduler.tick()
    await settle()
    assert launcher.requests == []
    (run,) = harness.runs()
    assert (run.result, run.exit_code) == ("error", 125)
    assert "could not be written" in run.message


async def test_a_launcher_that_raises_records_an_error_and_the_scheduler_goes_on(
    harness: Harness, clock: FakeClock
) -> None:
    calls: list[str | None] = []

    async def failing(request: JobRequest) -> JobResult:
        calls.append(request.slot)
        raise RuntimeError("gateway gone")

    harness.launcher = None
    scheduler = harness.restart()
    scheduler.launcher = failing
    scheduler.update([template(schedule="0 * * * *")])
    task = await running(scheduler)
    await clock.advance(2 * 3600)
    await stopped(scheduler, task)
    assert len(calls) == 2
    assert [(r.result, r.exit_code) for r in harness.runs()] == [("error", 125), ("error", 125)]
    assert "RuntimeError: gateway gone" in harness.runs()[0].message


# -- concurrency ----------------------------------------------------------------------------------------


async def test_forbid_skips_a_slot_while_a_run_is_active(
    harness: Harness, clock: FakeClock, launcher: FakeLauncher
) -> None:
    scheduler = harness.scheduler
    launcher.hold = True
    scheduler.update([template(schedule="*/5 * * * *", concurrency="Forbid")])
    task = await running(scheduler)
    await clock.advance(5 * 60)
    assert scheduler.active(("rg", "nightly")) == 1
    await clock.advance(5 * 60)
    assert launcher.slots == ["2024-01-01T00:05:00+00:00"]
    skipped = harness.runs()[-1]
    assert (skipped.slot, skipped.result) == ("2024-01-01T00:10:00+00:00", "skipped")
    assert "still active" in skipped.message
    launcher.release()
    await clock.advance(5 * 60)
    await stopped(scheduler, task)
    assert launcher.slots == ["2024-01-01T00:05:00+00:00", "2024-01-01T00:15:00+00:00"]
    assert [r.result for r in harness.runs()] == ["succeeded", "skipped", "running"]


@pytest.mark.parametrize("policy", ["Replace", "Allow"])
async def test_replace_and_allow_launch_while_a_run_is_active_and_pass_the_policy_on(
    policy: str, harness: Harness, clock: FakeClock, launcher: FakeLauncher
) -> None:
    scheduler = harness.scheduler
    launcher.hold = True
    scheduler.update([template(schedule="*/5 * * * *", concurrency=policy)])
    task = await running(scheduler)
    await clock.advance(10 * 60)
    assert len(launcher.requests) == 2
    assert [r.concurrency for r in launcher.requests] == [policy, policy]
    assert scheduler.active(("rg", "nightly")) == 2
    launcher.release()
    await settle()
    await stopped(scheduler, task)
    names = [r.group_name for r in harness.runs()]
    assert names == (["nightly-1", "nightly-2"] if policy == "Allow" else ["nightly", "nightly"])


# -- runOnChange ----------------------------------------------------------------------------------------


async def test_run_on_change_runs_once_per_spec_and_never_on_a_restart(
    harness: Harness, launcher: FakeLauncher
) -> None:
    scheduler = harness.scheduler
    scheduler.update([template("migrate", runOnChange=True, fingerprint="a")])
    scheduler.tick()
    scheduler.update([template("migrate", runOnChange=True, fingerprint="a")])
    scheduler.tick()
    await settle()
    assert [(r.trigger, r.slot) for r in launcher.requests] == [(Trigger.CHANGE, "a")]
    scheduler = harness.restart()
    scheduler.update([template("migrate", runOnChange=True, fingerprint="a")])
    scheduler.tick()
    await settle()
    assert launcher.slots == ["a"], "a restart is no change"
    scheduler.update([template("migrate", runOnChange=True, fingerprint="b")])
    scheduler.tick()
    await settle()
    assert launcher.slots == ["a", "b"]


async def test_a_change_run_under_forbid_waits_for_the_active_run_then_runs_the_latest_spec(
    harness: Harness, launcher: FakeLauncher
) -> None:
    scheduler = harness.scheduler
    launcher.hold = True
    task = await running(scheduler)
    scheduler.update([template("migrate", runOnChange=True, fingerprint="a")])
    await settle()
    scheduler.update([template("migrate", runOnChange=True, fingerprint="b")])
    await settle()
    scheduler.update([template("migrate", runOnChange=True, fingerprint="c")])
    await settle()
    assert launcher.slots == ["a"]
    assert scheduler.status_json()[0]["change_pending"] is True
    launcher.release("a")
    await settle()
    await stopped(scheduler, task)
    assert launcher.slots == ["a", "c"]


# -- templates, history, the ledger ---------------------------------------------------------------------


async def test_a_template_that_disappears_stops_its_schedule_unless_its_manifest_failed_to_load(
    harness: Harness, clock: FakeClock, launcher: FakeLauncher
) -> None:
    scheduler = harness.scheduler
    scheduler.update([template(schedule="0 * * * *")])
    task = await running(scheduler)
    await clock.advance(3600)
    scheduler.update([], complete=False)  # an unreadable manifest is not a removed one
    await clock.advance(3600)
    assert len(launcher.requests) == 2
    scheduler.update([])
    await clock.advance(3 * 3600)
    await stopped(scheduler, task)
    assert len(launcher.requests) == 2
    assert harness.book.jobs.get(("rg", "nightly")) is None
    assert 'job="rg/nightly"' not in harness.metrics.render().decode()


async def test_the_ledger_keeps_history_runs_per_job_and_still_never_reruns_a_slot(
    harness: Harness, clock: FakeClock, launcher: FakeLauncher
) -> None:
    jobs = [template(schedule="0 * * * *", history=3)]
    scheduler = harness.scheduler
    scheduler.update(jobs)
    task = await running(scheduler)
    await clock.advance(5 * 3600)
    await stopped(scheduler, task)
    saved = harness.saved_runs()
    assert [r["slot"][11:16] for r in saved] == ["03:00", "04:00", "05:00"]
    scheduler = harness.restart()
    scheduler.update(jobs)
    scheduler.tick()
    await settle()
    assert len(launcher.requests) == 5


async def test_damaged_ledger_entries_are_dropped_with_one_log_line_and_the_rest_kept(tmp_path: Path) -> None:
    good_run = {
        "trigger": "schedule",
        "slot": "2024-01-01T01:00:00+00:00",
        "started_at": 1.0,
        "result": "failed",
    }
    good = {
        "resource_group": "rg",
        "name": "nightly",
        "schedule": "0 * * * *",
        "schedule_since": 0.0,
        "schedule_cursor": 3600.0,
        "runs": [good_run, {"trigger": "schedule", "slot": 5}, good_run | {"result": "exploded"}],
    }
    data = {
        "version": 1,
        "groups": [],
        "jobs": [good, {"resource_group": "rg", "name": 7}, {"name": "no-rg"}, good | {"history": -1}],
    }
    book = StateBook()
    with structlog.testing.capture_logs() as logs:
        book.restore(data)
    entry = book.jobs.get(("rg", "nightly"))
    assert entry is not None
    assert [r.result for r in entry.runs] == ["failed"]
    assert entry.schedule_cursor == 3600.0
    assert [e["event"] for e in logs] == ["run ledger entries dropped"]
    assert logs[0]["count"] == 5


def test_a_ledger_that_is_not_a_list_is_dropped_and_the_groups_are_kept() -> None:
    book = StateBook()
    group = {"resource_group": "rg", "name": "web"}
    with structlog.testing.capture_logs() as logs:
        book.restore({"version": 1, "groups": [group], "jobs": {"oops": 1}})
    assert book.jobs.jobs == {}
    assert list(book.groups) == [("rg", "web")]
    assert [e["event"] for e in logs] == ["run ledger entries dropped"]


async def test_log_tails_are_bounded_escaped_and_redacted(tmp_path: Path, clock: FakeClock) -> None:
    launcher = FakeLauncher(clock)
    launcher.log_tail = (*(f"line {i}" for i in range(100)), "token hunter2-secret\x1b[31m", "x" * 5000)
    harness = Harness(tmp_path, clock, launcher)
    harness.scheduler.redact = lambda text: text.replace("hunter2-secret", "(redacted)")
    harness.scheduler.update([template("migrate", runOnChange=True)])
    harness.scheduler.tick()
    await settle()
    (run,) = harness.saved_runs("rg/migrate")
    tail = run["log_tail"]
    assert len(tail) == 20
    assert tail[0] == "line 82"
    assert tail[-2] == "token (redacted)\\x1b[31m"
    assert len(tail[-1]) < 500


# -- time zones and DST ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "zone", "start", "expected"),
    [
        # Spring forward: 02:30 does not exist that night; it runs at 03:00 (as Debian cron), once.
        ("30 2 * * *", "Europe/Berlin", "2024-03-30T12:00:00+01:00", ["2024-03-31T03:00:00+02:00"]),
        # Fall back: 02:30 happens twice; it runs once, at the first.
        ("30 2 * * *", "Europe/Berlin", "2024-10-26T12:00:00+02:00", ["2024-10-27T02:30:00+02:00"]),
        # An hourly job runs in both 01:00 hours of the repeated hour (every real hour, once).
        (
            "0 * * * *",
            "America/New_York",
            "2024-11-03T00:30:00-04:00",
            ["2024-11-03T01:00:00-04:00", "2024-11-03T01:00:00-05:00", "2024-11-03T02:00:00-05:00"],
        ),
    ],
)
async def test_slots_follow_the_time_zone_across_dst(
    schedule: str, zone: str, start: str, expected: list[str], tmp_path: Path
) -> None:
    clock = FakeClock(start=at(start))
    launcher = FakeLauncher(clock)
    harness = Harness(tmp_path, clock, launcher)
    harness.scheduler.update([template(schedule=schedule, timeZone=zone)])
    task = await running(harness.scheduler)
    await clock.advance(at(expected[-1]) - clock.now + 60)
    await stopped(harness.scheduler, task)
    assert launcher.slots == expected


_DST_STARTS = [
    ("Europe/Berlin", "2024-03-30T18:00:00+00:00"),
    ("Europe/Berlin", "2024-10-26T18:00:00+00:00"),
    ("America/New_York", "2024-03-09T20:00:00+00:00"),
    ("America/New_York", "2024-11-02T20:00:00+00:00"),
    ("Australia/Lord_Howe", "2024-04-06T06:00:00+00:00"),  # a 30-minute DST shift
    ("Asia/Kathmandu", "2024-01-01T00:00:00+00:00"),  # a +05:45 offset
    ("UTC", "2024-02-28T12:00:00+00:00"),
]

cron_fields = st.tuples(
    st.sampled_from(["0", "30", "*/15", "0,30", "5-10", "*/7", "45"]),
    st.sampled_from(["*", "1-3", "2", "*/2", "0", "23", "1,2,3"]),
    st.sampled_from(["*", "*", "1-15", "28-31"]),
    st.sampled_from(["*", "*", "3,10,11"]),
    st.sampled_from(["*", "*", "0", "1-5", "6"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=cron_fields,
    where=st.sampled_from(_DST_STARTS),
    offset_s=st.integers(min_value=-6 * 3600, max_value=6 * 3600),
    late=st.lists(st.sampled_from([0.0, 0.0, 0.0, 1.0, 400.0, 4000.0]), min_size=1, max_size=20),
)
def test_slots_are_strictly_increasing_and_each_fires_once(
    fields: tuple[str, str, str, str, str], where: tuple[str, str], offset_s: int, late: list[float]
) -> None:
    schedule = " ".join(fields)
    zone, start_text = where
    start = at(start_text) + offset_s
    end = start + 2 * 86400

    expected: list[float] = []
    it = CronSim(schedule, datetime.fromtimestamp(start, slots.zone(zone)))
    for slot in it:
        if slot.timestamp() > end:
            break
        expected.append(slot.timestamp())

    async def drive(wake_late: Callable[[int], float]) -> list[float]:
        clock = FakeClock(start=start)
        launched: list[float] = []

        async def launch(request: JobRequest) -> JobResult:
            assert request.slot is not None
            launched.append(datetime.fromisoformat(request.slot).timestamp())
            return JobResult(request.name, "rg", request.name, RunResult.SUCCEEDED, 0)

        scheduler = JobScheduler(
            StateBook().jobs, launcher=launch, metrics=DaemonMetrics(), clock=clock.time, sleep=clock.sleep
        )
        scheduler.update([template(schedule=schedule, timeZone=zone, concurrency="Allow")])
        step = 0
        while True:
            scheduler.tick()
            await settle(3)
            wake = scheduler.next_wake()
            if wake is None or wake > end:
                break
            assert wake > clock.now
            clock.now = min(end, wake + wake_late(step))
            step += 1
        return launched

    on_time = asyncio.run(drive(lambda step: 0.0))
    assert on_time == expected, "awake all along: every slot, each once, in order"
    with_late = asyncio.run(drive(lambda step: late[step % len(late)]))
    assert all(a < b for a, b in itertools.pairwise(with_late)), "strictly increasing"
    assert set(with_late) <= set(expected), "only real slots"


# -- the composed daemon: /status, /metrics, shutdown ---------------------------------------------------


def daemon_config(
    tmp_path: Path, clock: FakeClock, launcher: FakeLauncher | None, **kwargs: Any
) -> DaemonConfig:
    base: dict[str, Any] = {
        "manifests": tmp_path / "manifests",
        "listen": None,
        "state_dir": tmp_path / "state",
        "interval": 0,
        "watch": False,
        "grace_period": 30.0,
        "sleep": clock.sleep,
        "clock": clock.time,
        "monotonic": clock.monotonic,
        "job_launcher": launcher,
        "job_max_nap": 3600.0,
    }
    base.update(kwargs)
    return DaemonConfig(**base)


def sample(text: str, name: str, labels: dict[str, str]) -> float | None:
    for family in text_string_to_metric_families(text):
        for found in family.samples:
            if found.name == name and found.labels == labels:
                return float(found.value)
    return None


def engine_with(*jobs: JobTemplate, secrets: tuple[str, ...] = ()) -> FakeEngine:
    engine = FakeEngine()
    engine.view = PlanView(plan=plan("r1"), jobs=jobs, secrets=secrets)
    return engine


def factory(engine: FakeEngine) -> Callable[..., PassEngine]:
    return lambda manifests, revision: engine


async def test_status_and_metrics_show_each_job_with_its_policy_next_run_and_history(
    tmp_path: Path, clock: FakeClock, launcher: FakeLauncher
) -> None:
    secret = "s3cr3t-value-of-the-job"
    launcher.log_tail = ("connecting", f"password={secret} ok")
    job = template(schedule="0 * * * *", timeZone="Europe/Berlin", startingDeadline="5m", history=5)
    daemon = Daemon(daemon_config(tmp_path, clock, launcher), factory(engine_with(job, secrets=(secret,))))
    await daemon.start()
    await settle()
    await clock.advance(3600)
    status = status_json(daemon.view)
    assert status["job_runs"] == "enabled"
    (shown,) = status["jobs"]
    assert shown["policy"] == {
        "schedule": "0 * * * *",
        "time_zone": "Europe/Berlin",
        "run_on_change": False,
        "concurrency": "Forbid",
        "starting_deadline_s": 300.0,
        "timeout_s": None,
        "keep": "never",
        "history": 5,
    }
    assert shown["next_run"] == "2024-01-01T03:00:00+01:00"
    assert shown["next_run_at"] == at("2024-01-01T02:00:00+00:00")
    last = shown["last_run"]
    assert last["slot"] == "2024-01-01T02:00:00+01:00"
    assert (last["trigger"], last["result"], last["exit_code"]) == ("schedule", "succeeded", 0)
    assert last["containers"] == [{"name": "main", "exit_code": 0, "restart_count": 0, "detail": ""}]
    assert last["group_name"] == "nightly"
    assert last["log_tail"][0] == "connecting"
    assert secret not in json.dumps(status)
    assert shown["history"] == [last]
    assert shown["last_success_at"] == last["finished_at"]

    metrics = daemon.metrics.render().decode()
    labels = {"job": "rg/nightly"}
    assert sample(metrics, "aci_reconciler_job_runs_total", labels | {"result": "succeeded"}) == 1
    assert sample(metrics, "aci_reconciler_job_run_duration_seconds_count", labels) == 1
    assert sample(metrics, "aci_reconciler_job_last_success_timestamp_seconds", labels) == last["finished_at"]
    daemon.stop()
    assert await daemon.wait() == 0
    saved = json.loads((tmp_path / "state" / "daemon-state.json").read_text())
    assert saved["jobs"][0]["runs"][0]["result"] == "succeeded"
    assert secret not in json.dumps(saved)


async def test_without_a_launcher_jobs_are_reported_and_never_run(tmp_path: Path, clock: FakeClock) -> None:
    job = template(schedule="0 * * * *")
    daemon = Daemon(daemon_config(tmp_path, clock, None), factory(engine_with(job)))
    await daemon.start()
    await clock.advance(2 * 3600)
    status = status_json(daemon.view)
    assert status["job_runs"].startswith("disabled")
    assert status["jobs"][0]["next_run_at"] == at("2024-01-01T03:00:00+00:00")
    assert status["jobs"][0]["history"] == []
    daemon.stop()
    assert await daemon.wait() == 0


async def test_a_launcher_factory_gets_the_manifests_resolver(tmp_path: Path, clock: FakeClock) -> None:
    seen: list[object] = []

    def make(manifests: object) -> None:
        seen.append(manifests)

    Daemon(daemon_config(tmp_path, clock, None), factory(FakeEngine()), launcher_factory=make)
    assert seen == [None], "without git the launcher reads the configured manifests"


async def test_shutdown_lets_job_runs_finish_within_the_grace_period(
    tmp_path: Path, clock: FakeClock, launcher: FakeLauncher
) -> None:
    launcher.hold = True
    daemon = Daemon(
        daemon_config(tmp_path, clock, launcher),
        factory(engine_with(template("migrate", runOnChange=True))),
    )
    await daemon.start()
    await settle()
    assert launcher.slots == ["spec-a"]
    daemon.stop()
    waiting = asyncio.create_task(daemon.wait(), name="test-wait")
    await clock.advance(10)
    assert not waiting.done()
    launcher.release()
    assert await waiting == 0
    saved = json.loads((tmp_path / "state" / "daemon-state.json").read_text())
    assert saved["jobs"][0]["runs"][0]["result"] == "succeeded"


async def test_shutdown_cancels_job_runs_after_the_grace_period_and_a_restart_does_not_rerun_them(
    tmp_path: Path, clock: FakeClock, launcher: FakeLauncher
) -> None:
    launcher.hold = True
    engine = engine_with(template("migrate", runOnChange=True))
    daemon = Daemon(daemon_config(tmp_path, clock, launcher), factory(engine))
    await daemon.start()
    await settle()
    daemon.stop()
    waiting = asyncio.create_task(daemon.wait(), name="test-wait")
    await clock.advance(31)
    assert await waiting == 0
    assert launcher.cancelled == ["spec-a"]
    saved = json.loads((tmp_path / "state" / "daemon-state.json").read_text())
    run = saved["jobs"][0]["runs"][0]
    assert run["result"] == "cancelled"

    again = Daemon(daemon_config(tmp_path, clock, launcher), factory(engine))
    await again.start()
    await clock.advance(60)
    assert launcher.slots == ["spec-a"], "the change was run (and cut short) once; a restart is no change"
    again.stop()
    assert await again.wait() == 0


async def test_job_templates_carry_the_spec_fingerprint_the_planner_writes(tmp_path: Path) -> None:
    manifest = tmp_path / "migrate.yaml"
    manifest.write_text(
        "name: migrate\nresourceGroup: rg\nlocation: westeurope\n"
        "properties:\n  osType: Linux\n  restartPolicy: Never\n  containers:\n  - name: main\n"
        "    properties:\n      image: alpine:3\n      command: [echo, hi]\n"
        "      resources: {requests: {cpu: 1, memoryInGB: 1}}\n"
        "reconcile:\n  job: {runOnChange: true, schedule: '0 2 * * *', timeZone: Europe/Berlin}\n"
        "---\nname: web\nresourceGroup: rg\nlocation: westeurope\nproperties:\n  osType: Linux\n"
        "  containers:\n  - name: main\n    properties:\n      image: nginx\n"
        "      resources: {requests: {cpu: 1, memoryInGB: 1}}\n"
    )
    loaded = load_manifests(manifest, environ={})
    assert not loaded.errors, loaded.errors
    (job,) = job_templates(loaded)
    assert (job.resource_group, job.name, job.policy.schedule) == ("rg", "migrate", "0 2 * * *")
    desired = DesiredGroup(manifest=loaded.groups[0].manifest)
    tags = write_tags_for(desired, instance="default", revision="r1", secret_key=b"k" * 32)
    assert job.fingerprint == tags[SPEC_TAG]


def test_slot_helpers_answer_strictly_after_and_at_most() -> None:
    nine = at("2024-01-01T09:00:00+00:00")
    assert slots.next_slot("0 * * * *", "UTC", nine) == nine + 3600
    assert slots.latest_slot("0 * * * *", "UTC", nine) == nine
    assert slots.latest_slot("0 * * * *", "UTC", nine - 0.5) == nine - 3600
    assert slots.latest_due("0 * * * *", "UTC", nine - 3 * 3600, nine + 10) == nine
    assert slots.latest_due("0 * * * *", "UTC", nine, nine + 10) is None
    assert slots.next_slot("0 0 29 2 *", "UTC", at("2097-03-01T00:00:00+00:00")) == at(
        "2104-02-29T00:00:00+00:00"
    )


def test_inside_a_repeated_hour_the_slot_helpers_never_answer_a_slot_already_past() -> None:
    # 02:10 in the second 02:00 hour of the fall-back night: 02:30 in the first one is 40 minutes past.
    inside = at("2024-10-27T02:10:00+01:00")
    first_0230 = at("2024-10-27T02:30:00+02:00")
    assert slots.next_slot("30 2 * * *", "Europe/Berlin", inside) == at("2024-10-28T02:30:00+01:00")
    assert (
        slots.latest_due("30 2 * * *", "Europe/Berlin", at("2024-10-26T12:00:00+02:00"), inside) == first_0230
    )
    assert slots.latest_due("30 2 * * *", "Europe/Berlin", first_0230, inside) is None


async def test_one_job_failing_to_schedule_leaves_the_others_running(
    harness: Harness, clock: FakeClock, launcher: FakeLauncher, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.daemon.jobs import scheduler as module

    real = module.latest_due

    def flaky(schedule: str, time_zone: str, cursor: float, now: float) -> float | None:
        if schedule == "7 * * * *":
            raise RuntimeError("calendar bug")
        return real(schedule, time_zone, cursor, now)

    monkeypatch.setattr(module, "latest_due", flaky)
    harness.scheduler.update([template("broken", schedule="7 * * * *"), template(schedule="0 * * * *")])
    task = await running(harness.scheduler)
    with structlog.testing.capture_logs() as logs:
        await clock.advance(3600)
    await stopped(harness.scheduler, task)
    assert launcher.slots == ["2024-01-01T01:00:00+00:00"]
    assert any(e["event"] == "job scheduling failed" and e["name"] == "broken" for e in logs)


async def test_skips_never_push_a_run_out_of_a_short_history(
    harness: Harness, clock: FakeClock, launcher: FakeLauncher
) -> None:
    launcher.hold = True
    scheduler = harness.scheduler
    scheduler.update([template(schedule="*/5 * * * *", history=1)])
    task = await running(scheduler)
    await clock.advance(20 * 60)
    assert [(r.slot[14:16], r.result) for r in harness.runs()] == [("05", "running"), ("20", "skipped")]
    assert [r["result"] for r in harness.saved_runs()] == ["running", "skipped"]
    launcher.release()
    await settle()
    await stopped(scheduler, task)
    assert [(r.slot[14:16], r.result) for r in harness.runs()] == [("05", "succeeded"), ("20", "skipped")]


async def test_the_state_file_ledger_reads_back_for_reconcile_status_with_runs_in_flight_still_running(
    harness: Harness, clock: FakeClock, launcher: FakeLauncher
) -> None:
    from reconciler.daemon.state import read_job_ledger

    launcher.hold = True
    harness.scheduler.update([template("migrate", runOnChange=True)])
    harness.scheduler.tick()
    await settle()
    (job,) = read_job_ledger(harness.store.directory)
    assert (job["resource_group"], job["name"], job["change_fingerprint"]) == ("rg", "migrate", "spec-a")
    assert [r["result"] for r in job["runs"]] == ["running"]
    assert read_job_ledger(harness.tmp_path / "nowhere") == []
    launcher.release()
    await settle()


async def test_every_finished_run_is_told_to_the_notifications(
    harness: Harness, clock: FakeClock, launcher: FakeLauncher
) -> None:
    finished: list[tuple[str, str, str]] = []
    scheduler = harness.scheduler
    scheduler.on_finished = lambda rg, name, run: finished.append((rg, name, run.result))
    scheduler.update([template(schedule="*/5 * * * *")])
    task = await running(scheduler)
    await clock.advance(11 * 60)
    await stopped(scheduler, task)
    assert finished == [("rg", "nightly", "succeeded")] * 2
