"""The run ledger: for every job template the daemon runs, which slots and specs it has handled, and its runs.

It makes scheduled runs at most once. The scheduler (`reconciler.daemon.jobs.scheduler`) advances a job's
cursor and records a run as `running` and has the state file written before it launches the run; after a
crash or a restart the cursor says the slot was taken, so it never starts again, and a run still `running` in
the file is recorded as `interrupted` (its outcome is unknown to the daemon; its group may still be running).

The ledger lives in the `StateBook` (`reconciler.daemon.state`) and so in its state file under `--state-dir`,
under a `jobs` key, written atomically with the rest. It is read back with the same care as the rest of that
file: an entry that does not fit the schema is dropped with one log line, and the others are kept. Each job
keeps its last `history` finished runs (its `reconcile.job.history`) and as many skipped slots, and its runs
in flight; the cursors are kept apart from the runs, so a short history never lets a slot run twice.
`/status`, `reconcile status` and the metrics read the runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import structlog
from pydantic import BaseModel, ConfigDict, Field

from reconciler.model.jobrun import ContainerExit, JobResult, RunResult
from reconciler.model.text import plain, shown

log = structlog.get_logger("reconciler.daemon.jobs")

JobKey = tuple[str, str]  # (resource group, name), lower case, as the state book's groups

# The ledger's results beyond RunResult's: a run launched and not yet finished, and one a previous daemon
# launched and never saw finish (killed, crashed).
RUNNING = "running"
INTERRUPTED = "interrupted"
RESULTS = frozenset({RUNNING, INTERRUPTED, *(r.value for r in RunResult)})

DEFAULT_HISTORY = 10
MAX_HISTORY = 1000
MAX_LOG_LINES = 20
MAX_LINE_CHARS = 400
MAX_MESSAGE_CHARS = 1000
MAX_CONTAINERS = 60  # ACI allows 60 containers in a group
MAX_IN_FLIGHT = 20  # runs of one job read back beyond its history (Allow concurrency)


def job_key(resource_group: str, name: str) -> JobKey:
    return (resource_group.lower(), name.lower())


def job_label(key: JobKey) -> str:
    """How metrics and logs name a job: `resource-group/name`."""
    return f"{key[0]}/{key[1]}"


def bounded_lines(lines: Iterable[str], redact: Any = None) -> tuple[str, ...]:
    """The last `MAX_LOG_LINES` lines, each redacted (when a redactor is given), escaped and cut short."""
    kept = list(lines)[-MAX_LOG_LINES:]
    if redact is not None:
        kept = [redact(line) for line in kept]
    return tuple(plain(line, limit=MAX_LINE_CHARS) for line in kept)


def bounded_message(text: str, redact: Any = None) -> str:
    return plain(redact(text) if redact is not None else text, limit=MAX_MESSAGE_CHARS)


@dataclass
class RunRecord:
    """One run of a job (or a slot it skipped), as the ledger, `/status` and `reconcile status` show it."""

    trigger: str  # Trigger value: schedule | change
    # The slot's local time with offset (schedule) or the spec fingerprint (change): with the trigger, the
    # ledger's key of the run.
    slot: str
    started_at: float  # when the daemon launched (or skipped) it, epoch seconds
    result: str = RUNNING
    scheduled_at: float | None = None  # the slot as an instant (schedule)
    finished_at: float | None = None
    duration_s: float | None = None
    exit_code: int | None = None
    containers: tuple[ContainerExit, ...] = ()
    group_name: str = ""
    launched_by: str = ""
    kept: bool = False
    log_tail: tuple[str, ...] = ()
    message: str = ""

    @property
    def id(self) -> str:
        return f"{self.trigger}:{self.slot}"

    @property
    def running(self) -> bool:
        return self.result == RUNNING

    def finish_with(self, result: JobResult, *, now: float, redact: Any = None) -> None:
        """Take what the launcher reported; the daemon's own start time stays the ledger's."""
        self.result = result.result.value
        self.exit_code = result.exit_code
        self.containers = tuple(
            ContainerExit(
                name=c.name,
                exit_code=c.exit_code,
                restart_count=c.restart_count,
                detail=bounded_message(c.detail, redact)[:MAX_LINE_CHARS],
            )
            for c in result.containers[:MAX_CONTAINERS]
        )
        self.group_name = result.group_name or self.group_name
        self.launched_by = result.launched_by
        self.kept = result.kept
        self.log_tail = bounded_lines(result.log_tail, redact)
        # The launcher's word on the run, else what the scheduler noted when it launched it.
        self.message = bounded_message(result.message, redact) if result.message else self.message
        self.finished_at = result.finished_at if result.finished_at is not None else now
        duration = result.duration_s
        self.duration_s = duration if duration is not None else max(0.0, self.finished_at - self.started_at)

    def finish(
        self, result: str, *, now: float, message: str, exit_code: int | None = None, redact: Any = None
    ) -> None:
        """End the run without a result from the launcher (skipped, failed to start, cut by shutdown)."""
        self.result = result
        self.exit_code = exit_code
        self.message = bounded_message(message, redact)
        self.finished_at = now
        self.duration_s = max(0.0, now - self.started_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "trigger": self.trigger,
            "slot": self.slot,
            "scheduled_at": self.scheduled_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
            "result": self.result,
            "exit_code": self.exit_code,
            "containers": [
                {
                    "name": c.name,
                    "exit_code": c.exit_code,
                    "restart_count": c.restart_count,
                    "detail": c.detail,
                }
                for c in self.containers
            ],
            "group_name": self.group_name,
            "launched_by": self.launched_by,
            "kept": self.kept,
            "log_tail": list(self.log_tail),
            "message": self.message,
        }


@dataclass
class JobEntry:
    """What the ledger keeps of one job template."""

    resource_group: str
    name: str
    # The schedule and zone `schedule_since` belongs to: a changed schedule starts afresh from its change.
    schedule: str | None = None
    time_zone: str = "UTC"
    # When this schedule was first seen by this daemon: slots before it are never "missed".
    schedule_since: float | None = None
    # The last slot handled (launched, skipped or missed): only later slots may run.
    schedule_cursor: float | None = None
    # The spec fingerprint of the last runOnChange run: a run is due when the spec's differs.
    change_fingerprint: str | None = None
    history: int = DEFAULT_HISTORY
    runs: list[RunRecord] = field(default_factory=list)  # oldest first

    @property
    def key(self) -> JobKey:
        return job_key(self.resource_group, self.name)

    def set_history(self, history: int) -> None:
        self.history = history
        self.trim()

    def add(self, run: RunRecord) -> None:
        self.runs.append(run)
        self.trim()

    def trim(self) -> None:
        # `history` finished runs and `history` skipped slots, oldest out first, so that the skips of a long
        # run under Forbid never push the runs out; a run in flight stays until it has its result.
        for skipped in (False, True):
            kind = [r for r in self.runs if not r.running and (r.result == RunResult.SKIPPED) is skipped]
            for oldest in kind[: max(0, len(kind) - self.history)]:
                self.runs.remove(oldest)

    def has_run(self, trigger: str, slot: str) -> bool:
        return any(r.trigger == trigger and r.slot == slot for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "resource_group": self.resource_group,
            "name": self.name,
            "schedule": self.schedule,
            "time_zone": self.time_zone,
            "schedule_since": self.schedule_since,
            "schedule_cursor": self.schedule_cursor,
            "change_fingerprint": self.change_fingerprint,
            "history": self.history,
            "runs": [r.to_json() for r in self.runs],
        }


class _Entry(BaseModel):
    """The ledger's schema in the state file: strict types, finite numbers, unknown keys ignored."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")


class _ContainerIn(_Entry):
    name: Annotated[str, Field(min_length=1, max_length=63)]
    exit_code: int | None = None
    restart_count: int = Field(default=0, ge=0)
    detail: str = ""


class _RunIn(_Entry):
    trigger: Annotated[str, Field(pattern="^(schedule|change|manual)$")]
    slot: Annotated[str, Field(min_length=1, max_length=200)]
    started_at: float
    result: str
    scheduled_at: float | None = None
    finished_at: float | None = None
    duration_s: float | None = Field(default=None, ge=0)
    exit_code: int | None = None
    containers: list[_ContainerIn] = Field(default_factory=list, max_length=MAX_CONTAINERS)
    group_name: Annotated[str, Field(max_length=63)] = ""
    launched_by: Annotated[str, Field(max_length=40)] = ""
    kept: bool = False
    log_tail: list[str] = Field(default_factory=list)
    message: str = ""


class _JobIn(_Entry):
    resource_group: Annotated[str, Field(min_length=1, max_length=90)]
    name: Annotated[str, Field(min_length=1, max_length=63)]
    schedule: Annotated[str, Field(max_length=200)] | None = None
    time_zone: Annotated[str, Field(min_length=1, max_length=80)] = "UTC"
    schedule_since: float | None = None
    schedule_cursor: float | None = None
    change_fingerprint: Annotated[str, Field(max_length=128)] | None = None
    history: int = Field(default=DEFAULT_HISTORY, ge=1, le=MAX_HISTORY)
    runs: list[Any] = Field(default_factory=list)


def _run_from(item: Any) -> RunRecord:
    data = _RunIn.model_validate(item)
    if data.result not in RESULTS:
        raise ValueError(f"unknown run result {shown(data.result)}")
    return RunRecord(
        trigger=data.trigger,
        slot=data.slot,
        started_at=data.started_at,
        result=data.result,
        scheduled_at=data.scheduled_at,
        finished_at=data.finished_at,
        duration_s=data.duration_s,
        exit_code=data.exit_code,
        containers=tuple(
            ContainerExit(name=c.name, exit_code=c.exit_code, restart_count=c.restart_count, detail=c.detail)
            for c in data.containers
        ),
        group_name=data.group_name,
        launched_by=data.launched_by,
        kept=data.kept,
        # Bounded again: the file may come from another version or another hand.
        log_tail=bounded_lines(data.log_tail),
        message=bounded_message(data.message),
    )


def _why(err: Exception) -> str:
    return str(err).splitlines()[0] if str(err) else type(err).__name__


class JobLedger:
    """Every job's entry, keyed by (resource group, name) in lower case."""

    def __init__(self) -> None:
        self.jobs: dict[JobKey, JobEntry] = {}

    def get(self, key: JobKey) -> JobEntry | None:
        return self.jobs.get(key)

    def entry(self, resource_group: str, name: str) -> JobEntry:
        key = job_key(resource_group, name)
        found = self.jobs.get(key)
        if found is None:
            found = JobEntry(resource_group=resource_group, name=name)
            self.jobs[key] = found
        return found

    def forget_except(self, keys: Iterable[JobKey]) -> list[JobKey]:
        """Drop the jobs whose template is gone; returns their keys."""
        keep = set(keys)
        gone = [key for key in self.jobs if key not in keep]
        for key in gone:
            del self.jobs[key]
        return gone

    def running(self) -> list[tuple[JobEntry, RunRecord]]:
        return [(e, r) for e in self.jobs.values() for r in e.runs if r.running]

    def to_json(self) -> list[dict[str, Any]]:
        return [self.jobs[key].to_json() for key in sorted(self.jobs)]

    def restore(
        self, data: Any, *, now: float | None = None, interrupt: bool = True
    ) -> list[tuple[JobEntry, RunRecord]]:
        """Load the ledger from the state file's `jobs`; returns the runs a previous daemon left running,
        now recorded as interrupted (unless `interrupt` is False: a reader beside a running daemon). Entries
        that do not fit are dropped (one log line for all of them)."""
        self.jobs.clear()
        if data is None:
            return []
        items: Sequence[Any] = data if isinstance(data, list) else []
        dropped: list[str] = [] if isinstance(data, list) else ["jobs is not a list"]
        interrupted: list[tuple[JobEntry, RunRecord]] = []
        for item in items:
            try:
                job = _JobIn.model_validate(item)
            except (ValueError, TypeError) as err:
                dropped.append(_why(err))
                continue
            entry = JobEntry(
                resource_group=job.resource_group,
                name=job.name,
                schedule=job.schedule,
                time_zone=job.time_zone,
                schedule_since=job.schedule_since,
                schedule_cursor=job.schedule_cursor,
                change_fingerprint=job.change_fingerprint,
                history=job.history,
            )
            # Runs and skips are bounded apart (see JobEntry.trim): read enough of the tail for both.
            for raw in job.runs[-(2 * job.history + MAX_IN_FLIGHT) :]:
                try:
                    run = _run_from(raw)
                except (ValueError, TypeError) as err:
                    dropped.append(f"{job.resource_group}/{job.name}: {_why(err)}")
                    continue
                if run.running and interrupt:
                    run.finish(
                        INTERRUPTED,
                        now=run.started_at if now is None else now,
                        message="the daemon stopped while this run was active; its outcome is unknown "
                        "and this slot is not run again",
                    )
                    interrupted.append((entry, run))
                entry.add(run)
            if entry.key in self.jobs:
                dropped.append(f"{job.resource_group}/{job.name}: listed twice")
                continue
            self.jobs[entry.key] = entry
        if dropped:
            log.warning("run ledger entries dropped", count=len(dropped), first=shown(dropped[0]))
        for entry, run in interrupted:
            log.warning(
                "job run interrupted by the previous daemon",
                resource_group=entry.resource_group,
                name=entry.name,
                trigger=run.trigger,
                slot=run.slot,
            )
        return interrupted


def entries_json(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The validated job entries of a state file's contents, as `/status` shows a job's ledger part: for
    readers of the file without a running daemon (`reconcile status`)."""
    ledger = JobLedger()
    ledger.restore(data.get("jobs"), interrupt=False)
    return ledger.to_json()
