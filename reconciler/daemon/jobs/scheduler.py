"""The daemon's job scheduler: runs job templates on their cron schedule and once per new spec.

Each reconcile pass hands the scheduler the job templates of the manifests it loaded (`update`, called by the
worker with `PlanView.jobs`, which `reconciler.daemon.passes` fills). The scheduler's own task (`run`, started
by `reconciler.daemon.runner`) wakes at the next slot, decides (`tick`) and launches runs through the
injected launcher, a `JobLauncher` (`reconciler.engine.jobs.run_job` bound to the gateway and the watcher,
wired in `reconciler.daemon.cli.job_launcher`). Without a launcher, or with `--dry-run`, it runs nothing and
only reports what it would run (`status_json`).

The rules (DESIGN.md section 12):

- schedule: slots come from cronsim in the job's time zone (`reconciler.daemon.jobs.slots`); each slot runs at
  most once. The run ledger (`reconciler.daemon.jobs.ledger`, inside the state file) records a slot as
  started and is written before the run is launched, so a crash or a restart never runs it again; when that
  write fails the run is not launched. A slot missed while the daemon was down or busy runs once when it
  comes back, if it is still within `startingDeadline` (none: always), and only the most recent one, never a
  backlog; a slot older than the deadline is recorded as skipped. Slots before this daemon first saw the
  job's current schedule are never missed.
- runOnChange: one run per new spec fingerprint (the planner's `aci-reconciler.spec` fingerprint; first
  sight counts as new, and so does a return to an earlier spec), never again on a restart. Under `Forbid`
  a change run waits for the active run to finish (a spec change is not a slot that passes); a later change
  while waiting supersedes it.
- concurrency: `Forbid` records a slot that falls while a run of the job is active as skipped; `Replace` and
  `Allow` launch anyway and pass the policy in the request, so the runner stops the active run or gives the
  new one a suffixed group name. Only runs launched by this process count as active.
- templates that disappear from the manifests stop; their ledger entries and metric series are dropped once
  a pass loaded every manifest (an unreadable manifest keeps its last template, as it keeps its group).

Shutdown (`aclose`): no new runs; the runs in flight get the grace period to finish and are then cancelled.
A cancelled launch is the job runner's SIGTERM (it stops the group and deletes it per `keep`), recorded as
`cancelled`. A daemon that is killed outright leaves its runs going in Azure: the next start finds them
`running` in the ledger, records them as `interrupted` (outcome unknown) and never starts those slots again.

Every wait is interruptible and bounded (`max_nap`), so a wall clock that jumps is noticed within a minute;
tests drive it all with a fake clock and sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from reconciler.daemon.jobs.ledger import (
    RUNNING,
    JobEntry,
    JobKey,
    JobLedger,
    RunRecord,
    job_key,
    job_label,
)
from reconciler.daemon.jobs.slots import latest_due, next_slot, slot_iso
from reconciler.daemon.metrics import DaemonMetrics
from reconciler.model.job import JobPolicy
from reconciler.model.jobrun import EXIT_RECONCILER_ERROR, JobRequest, JobResult, RunResult, Trigger

log = structlog.get_logger("reconciler.daemon.jobs")

JobLauncher = Callable[[JobRequest], Awaitable[JobResult]]
"""Runs one job to its end and reports it; cancelling the call stops the run (as SIGTERM stops `reconcile
run`). The real one is `reconciler.engine.jobs.run_job` bound to the daemon's gateway and watcher."""

Redact = Callable[[str], str]
Sleep = Callable[[float], Awaitable[None]]

# The longest the scheduler sleeps before it looks at the wall clock again.
MAX_NAP_S = 60.0
# A run that starts this much after its slot says so in its message (it was missed, then caught up).
LATE_NOTE_S = 5.0


@dataclass(frozen=True)
class JobTemplate:
    """A job template as the latest pass loaded it: where, its `reconcile.job` policy, and its spec
    fingerprint (what runOnChange compares)."""

    resource_group: str
    name: str
    policy: JobPolicy
    fingerprint: str

    @property
    def key(self) -> JobKey:
        return job_key(self.resource_group, self.name)


def policy_json(policy: JobPolicy) -> dict[str, Any]:
    return {
        "schedule": policy.schedule,
        "time_zone": policy.time_zone,
        "run_on_change": policy.run_on_change,
        "concurrency": policy.concurrency,
        "starting_deadline_s": policy.starting_deadline,
        "timeout_s": policy.timeout,
        "keep": policy.keep,
        "history": policy.history,
    }


def _identity(text: str) -> str:
    return text


class JobScheduler:
    def __init__(
        self,
        ledger: JobLedger,
        *,
        launcher: JobLauncher | None,
        metrics: DaemonMetrics,
        clock: Callable[[], float],
        sleep: Sleep,
        save: Callable[[], None] | None = None,
        redact: Redact = _identity,
        dry_run: bool = False,
        max_nap: float = MAX_NAP_S,
        may_run: Callable[[JobKey], bool] | None = None,
        on_finished: Callable[[str, str, RunRecord], None] | None = None,
    ) -> None:
        """`save` writes the state file (the ledger with it) and raises OSError when it cannot; None keeps the
        ledger in memory only (no --state-dir). `may_run(key)`: whether this replica runs that job now (the
        lease of its shard is held, with `--coordination`); the others are reported and never started."""
        self.ledger = ledger
        self.launcher = launcher
        self.metrics = metrics
        self.clock = clock
        self.sleep = sleep
        self.save = save
        self.redact = redact
        self.dry_run = dry_run
        self.max_nap = max_nap
        self.may_run = may_run
        # Told about every run that ended (not skipped slots): the notifications.
        self.on_finished = on_finished
        self.templates: dict[JobKey, JobTemplate] = {}
        self._tasks: dict[JobKey, dict[str, asyncio.Task[None]]] = {}
        self._waiting_change: set[JobKey] = set()
        self._metric_results: dict[str, set[str]] = {}
        self._wake = asyncio.Event()
        self._closing = False

    # -- what the daemon tells it -----------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self.launcher is not None and not self.dry_run

    @property
    def mode(self) -> str:
        if self.dry_run:
            return "disabled: --dry-run reports the next runs and starts none"
        if self.launcher is None:
            return "disabled: no job launcher is wired; the next runs are reported, none is started"
        return "enabled"

    def update(
        self,
        templates: Iterable[JobTemplate],
        *,
        complete: bool = True,
        within: Callable[[str], bool] | None = None,
    ) -> None:
        """The job templates of the manifests a pass just loaded. With `complete` False (some manifest did
        not load) templates missing from the list keep running as last loaded. `within`: the resource groups
        the pass covered; ledger entries of others are kept (a shard taken over meanwhile)."""
        fresh: dict[JobKey, JobTemplate] = {}
        for template in templates:
            fresh[template.key] = template
        if not complete:
            for key, old in self.templates.items():
                fresh.setdefault(key, old)
        for key in sorted(set(self.templates) - set(fresh)):
            old = self.templates[key]
            log.info(
                "job template gone; its schedule stops", resource_group=old.resource_group, name=old.name
            )
            self._waiting_change.discard(key)
        for key in sorted(set(fresh) - set(self.templates)):
            self._restore_last_success(key)
        gone = set(self.templates) - set(fresh)
        self.templates = fresh
        if complete:
            keep = set(fresh) | {key for key, runs in self._tasks.items() if runs}
            if within is not None:
                keep |= {key for key in self.ledger.jobs if not within(key[0])}
            gone |= set(self.ledger.forget_except(keep))
            for key in gone - keep:
                label = job_label(key)
                self.metrics.forget_job(label, self._metric_results.pop(label, ()))
        self._wake.set()

    def _restore_last_success(self, key: JobKey) -> None:
        entry = self.ledger.get(key)
        if entry is None:
            return
        times = [r.finished_at for r in entry.runs if r.result == RunResult.SUCCEEDED and r.finished_at]
        if times:
            self.metrics.job_last_success.labels(job=job_label(key)).set(max(times))

    # -- deciding ---------------------------------------------------------------------------------------

    def active(self, key: JobKey) -> int:
        """How many runs of the job this process has in flight."""
        return len(self._tasks.get(key, {}))

    def tick(self) -> None:
        """Launch (or skip) whatever is due now."""
        if not self.enabled or self._closing:
            return
        now = self.clock()
        dirty = False
        for key in sorted(self.templates):
            template = self.templates[key]
            if self.may_run is not None and not self.may_run(key):
                continue
            try:
                entry, changed = self._entry(template, now)
                dirty |= changed
                if template.policy.run_on_change:
                    self._change_due(template, entry, now)
                if template.policy.schedule is not None:
                    dirty |= self._slot_due(template, entry, now)
            except Exception as err:  # one job's failure must not stop the others' schedules
                self._failed(template, err)
        if dirty:
            self._persist()

    def _entry(self, template: JobTemplate, now: float) -> tuple[JobEntry, bool]:
        """The job's ledger entry, brought in line with its policy; True when that changed it."""
        policy = template.policy
        fresh = self.ledger.get(template.key) is None
        entry = self.ledger.entry(template.resource_group, template.name)
        entry.set_history(policy.history)
        if (entry.schedule, entry.time_zone) != (policy.schedule, policy.time_zone) or (
            policy.schedule is not None and entry.schedule_since is None
        ):
            # A new or changed schedule counts from now: its earlier slots were never this job's to miss.
            entry.schedule, entry.time_zone = policy.schedule, policy.time_zone
            entry.schedule_since = now if policy.schedule is not None else None
            return entry, True
        return entry, fresh

    def _change_due(self, template: JobTemplate, entry: JobEntry, now: float) -> None:
        key = template.key
        if entry.change_fingerprint == template.fingerprint:
            self._waiting_change.discard(key)
            return
        if self.active(key) and template.policy.concurrency == "Forbid":
            if key not in self._waiting_change:
                log.info(
                    "change run waits for the active run (concurrency Forbid)",
                    resource_group=template.resource_group,
                    name=template.name,
                )
            self._waiting_change.add(key)
            return
        self._waiting_change.discard(key)
        entry.change_fingerprint = template.fingerprint
        self._launch(template, entry, Trigger.CHANGE, template.fingerprint, scheduled_at=None, now=now)

    def _slot_due(self, template: JobTemplate, entry: JobEntry, now: float) -> bool:
        policy = template.policy
        assert policy.schedule is not None  # tick() asks only for scheduled jobs
        assert entry.schedule_since is not None  # _entry sets it with the schedule
        cursor = entry.schedule_since
        if entry.schedule_cursor is not None:
            cursor = max(cursor, entry.schedule_cursor)
        due = latest_due(policy.schedule, policy.time_zone, cursor, now)
        if due is None:
            return False
        entry.schedule_cursor = due
        slot = slot_iso(due, policy.time_zone)
        if entry.has_run(Trigger.SCHEDULE.value, slot):
            return True  # the ledger has it, whatever the cursor said
        late = max(0.0, now - due)
        deadline = policy.starting_deadline
        if deadline is not None and late > deadline:
            why = f"missed: due {late:.0f}s ago, past the starting deadline of {deadline:g}s"
            self._skip(template, entry, slot=slot, due=due, now=now, why=why)
        elif self.active(template.key) and policy.concurrency == "Forbid":
            why = "skipped: a run of this job is still active (concurrency Forbid)"
            self._skip(template, entry, slot=slot, due=due, now=now, why=why)
        else:
            note = (
                f"started {late:.0f}s after its slot (missed, then caught up)" if late > LATE_NOTE_S else ""
            )
            self._launch(template, entry, Trigger.SCHEDULE, slot, scheduled_at=due, now=now, note=note)
        return True

    def _skip(
        self, template: JobTemplate, entry: JobEntry, *, slot: str, due: float, now: float, why: str
    ) -> None:
        run = RunRecord(
            trigger=Trigger.SCHEDULE.value,
            slot=slot,
            started_at=now,
            scheduled_at=due,
            group_name=template.name,
        )
        run.finish(RunResult.SKIPPED.value, now=now, message=why)
        entry.add(run)
        log.info(
            "job slot skipped",
            resource_group=template.resource_group,
            name=template.name,
            slot=slot,
            why=why,
        )
        self._count(template.key, run)

    def _launch(
        self,
        template: JobTemplate,
        entry: JobEntry,
        trigger: Trigger,
        slot: str,
        *,
        scheduled_at: float | None,
        now: float,
        note: str = "",
    ) -> None:
        launcher = self.launcher
        assert launcher is not None  # tick() runs only when enabled
        run = RunRecord(
            trigger=trigger.value,
            slot=slot,
            started_at=now,
            scheduled_at=scheduled_at,
            group_name=template.name,
            message=note,
        )
        entry.add(run)
        fields = {
            "resource_group": template.resource_group,
            "name": template.name,
            "trigger": trigger.value,
            "slot": slot,
        }
        try:
            # Write-ahead: once this returns, no later daemon starts this slot or spec again.
            self._persist(strict=True)
        except OSError as err:
            run.finish(
                RunResult.ERROR.value,
                now=now,
                exit_code=EXIT_RECONCILER_ERROR,
                message=f"not started: the run ledger could not be written ({err}); a run it does not record "
                "could run twice after a restart",
                redact=self.redact,
            )
            log.error("job run not started: the run ledger could not be written", **fields, error=str(err))
            self._count(template.key, run)
            return
        request = JobRequest(
            name=template.name,
            resource_group=template.resource_group,
            trigger=trigger,
            concurrency=template.policy.concurrency,
            logs=False,
            slot=slot,
        )
        task = asyncio.create_task(
            self._run(template.key, entry, run, launcher, request),
            name=f"job-run {job_label(template.key)} {run.id}",
        )
        self._tasks.setdefault(template.key, {})[run.id] = task
        log.info("job run started", **fields, concurrency=template.policy.concurrency, note=note or None)

    async def _run(
        self, key: JobKey, entry: JobEntry, run: RunRecord, launcher: JobLauncher, request: JobRequest
    ) -> None:
        try:
            try:
                result = await launcher(request)
            except asyncio.CancelledError:
                run.finish(
                    RunResult.CANCELLED.value,
                    now=self.clock(),
                    message="cancelled by the daemon's shutdown after the grace period",
                )
                raise
            except Exception as err:  # a launcher failure is this run's error, never the scheduler's end
                run.finish(
                    RunResult.ERROR.value,
                    now=self.clock(),
                    exit_code=EXIT_RECONCILER_ERROR,
                    message=f"the job runner failed: {type(err).__name__}: {err}",
                    redact=self.redact,
                )
            else:
                run.finish_with(result, now=self.clock(), redact=self.redact)
        finally:
            runs = self._tasks.get(key, {})
            runs.pop(run.id, None)
            if not runs:
                self._tasks.pop(key, None)
            self._finished(entry, run)
            self._wake.set()

    def _finished(self, entry: JobEntry, run: RunRecord) -> None:
        entry.trim()
        self._count(entry.key, run)
        fields = {
            "resource_group": entry.resource_group,
            "name": entry.name,
            "trigger": run.trigger,
            "slot": run.slot,
            "result": run.result,
            "exit_code": run.exit_code,
            "duration_s": None if run.duration_s is None else round(run.duration_s, 3),
            "group_name": run.group_name,
        }
        if run.result == RunResult.SUCCEEDED:
            log.info("job run finished", **fields)
        else:
            log.warning("job run finished", **fields, message=run.message)
        if self.on_finished is not None and run.result != RunResult.SKIPPED:
            self.on_finished(entry.resource_group, entry.name, run)
        self._persist()

    def _count(self, key: JobKey, run: RunRecord) -> None:
        label = job_label(key)
        self.metrics.job_runs.labels(job=label, result=run.result).inc()
        self._metric_results.setdefault(label, set()).add(run.result)
        if run.result != RunResult.SKIPPED and run.duration_s is not None:
            self.metrics.job_run_duration.labels(job=label).observe(run.duration_s)
        if run.result == RunResult.SUCCEEDED and run.finished_at is not None:
            self.metrics.job_last_success.labels(job=label).set(run.finished_at)

    def _persist(self, *, strict: bool = False) -> None:
        if self.save is None:
            return
        try:
            self.save()
        except OSError as err:
            if strict:
                raise
            log.error("cannot write the run ledger", error=str(err))

    # -- waiting ----------------------------------------------------------------------------------------

    def next_wake(self) -> float | None:
        """The next instant a slot is due, over every scheduled job; None when none is."""
        now = self.clock()
        times: list[float] = []
        for template in self.templates.values():
            try:
                wake = self._next_run(template, now)
            except Exception as err:  # as in tick(): this job is left out, the others still wake
                self._failed(template, err)
                continue
            if wake is not None:
                times.append(wake)
        return min(times, default=None)

    def _failed(self, template: JobTemplate, err: Exception) -> None:
        log.error(
            "job scheduling failed",
            resource_group=template.resource_group,
            name=template.name,
            error=f"{type(err).__name__}: {err}",
        )

    def _next_run(self, template: JobTemplate, now: float) -> float | None:
        policy = template.policy
        if policy.schedule is None:
            return None
        after = now
        entry = self.ledger.get(template.key) if self.enabled else None
        if entry is not None and entry.schedule_cursor is not None:
            after = max(after, entry.schedule_cursor)
        return next_slot(policy.schedule, policy.time_zone, after)

    async def run(self) -> None:
        """Decide, sleep until the next slot (or a new set of templates, or a run's end), until `stop()`."""
        while not self._closing:
            self._wake.clear()
            self.tick()
            wake_at = self.next_wake() if self.enabled else None
            delay = self.max_nap if wake_at is None else min(self.max_nap, max(0.0, wake_at - self.clock()))
            await self._nap(delay)

    async def _nap(self, delay: float) -> None:
        sleeper = asyncio.ensure_future(self.sleep(delay))
        sleeper.set_name("job-scheduler-nap")
        waker = asyncio.create_task(self._wake.wait(), name="job-scheduler-wake")
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                task.cancel()
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    def wake(self) -> None:
        """Decide again now (which runs this replica may start has changed)."""
        self._wake.set()

    def stop(self) -> None:
        """Start no more runs (shutdown)."""
        self._closing = True
        self._wake.set()

    def running_tasks(self) -> list[asyncio.Task[None]]:
        return [task for runs in self._tasks.values() for task in runs.values()]

    async def aclose(self, grace: float) -> None:
        """Shutdown: let the runs in flight finish within `grace`, cancel the rest, write the ledger."""
        self.stop()
        tasks = self.running_tasks()
        if not tasks:
            return
        log.info("waiting for the job runs in flight", runs=len(tasks), grace_period_s=grace)
        every = asyncio.gather(*tasks, return_exceptions=True)
        timer = asyncio.ensure_future(self.sleep(grace))
        timer.set_name("job-scheduler-grace-period")
        try:
            waiting: set[asyncio.Future[Any]] = {every, timer}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            left = [task for task in tasks if not task.done()]
            if left:
                log.warning("grace period over; cancelling the job runs in flight", runs=len(left))
            for task in left:
                task.cancel()
            await asyncio.gather(every, timer, return_exceptions=True)
        self._persist()

    # -- reporting --------------------------------------------------------------------------------------

    def status_json(self) -> list[dict[str, Any]]:
        """Every job the templates or the ledger know: policy, next run, active runs, last run, history."""
        now = self.clock()
        out: list[dict[str, Any]] = []
        for key in sorted(set(self.templates) | set(self.ledger.jobs)):
            template = self.templates.get(key)
            entry = self.ledger.get(key)
            runs = list(entry.runs) if entry is not None else []
            finished = [r for r in runs if r.result != RUNNING]
            successes = [r.finished_at for r in finished if r.result == RunResult.SUCCEEDED and r.finished_at]
            next_at = self._next_run(template, now) if template is not None else None
            policy = template.policy if template is not None else None
            where = template if template is not None else entry
            assert where is not None  # the key came from one of them
            out.append(
                {
                    "resource_group": where.resource_group,
                    "name": where.name,
                    "template_loaded": template is not None,
                    "policy": policy_json(policy) if policy is not None else None,
                    "fingerprint": template.fingerprint if template is not None else None,
                    "next_run_at": next_at,
                    "next_run": slot_iso(next_at, policy.time_zone) if next_at and policy else None,
                    "change_pending": bool(
                        template is not None
                        and template.policy.run_on_change
                        and (entry is None or entry.change_fingerprint != template.fingerprint)
                    ),
                    "active": [r.to_json() for r in runs if r.result == RUNNING],
                    "last_run": finished[-1].to_json() if finished else None,
                    "last_success_at": max(successes, default=None),
                    "history": [r.to_json() for r in reversed(runs)],
                }
            )
        return out
