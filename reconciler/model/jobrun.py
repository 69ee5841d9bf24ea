"""One run of a job: what was asked (`JobRequest`) and what came of it (`JobResult`), as plain values.

Made by the engine's job runner (`reconciler.engine.jobs`), read by the CLI (`reconcile run`), the Python API
(`reconciler.jobs`) and the daemon's scheduler, ledger, status and metrics. No I/O.

Exit codes follow `docker run`: the job's own code (0 when every container exited 0, else the first
non-zero code in manifest order), 124 when the run timed out, 125 when the reconciler itself failed (bad
manifest, conflict, Azure refused the group), 128+N when a signal N stopped the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

EXIT_TIMEOUT = 124
EXIT_RECONCILER_ERROR = 125

Keep = Literal["always", "never", "on-failure"]
Concurrency = Literal["Forbid", "Replace", "Allow"]


class Trigger(StrEnum):
    """Why a run started."""

    MANUAL = "manual"  # `reconcile run`, the Python API
    SCHEDULE = "schedule"  # a cron slot
    CHANGE = "change"  # runOnChange: a new spec


class RunResult(StrEnum):
    SUCCEEDED = "succeeded"  # every container exited 0
    FAILED = "failed"  # a container exited non-zero, or the group failed to provision
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"  # a signal, shutdown, or Replace concurrency stopped it
    ERROR = "error"  # the reconciler could not run it (exit 125)
    SKIPPED = "skipped"  # Forbid concurrency: a run was still active


@dataclass(frozen=True)
class JobRequest:
    """Run the job template `name` (in `resource_group`, or wherever the manifests put the only group of that
    name). Fields left None take the manifest's `reconcile.job` value, then the default."""

    name: str
    resource_group: str | None = None
    trigger: Trigger = Trigger.MANUAL
    keep: Keep | None = None
    timeout_s: float | None = None
    concurrency: Concurrency | None = None
    # Stream the containers' logs (the log callback gets them); the tail is read at the end regardless.
    logs: bool = True
    timestamps: bool = False
    # When the run's slot was due (schedule) or the spec fingerprint it runs for (change): the ledger's key.
    slot: str | None = None


@dataclass(frozen=True)
class ContainerExit:
    name: str
    exit_code: int | None  # None: never terminated (stopped, timed out, lost)
    restart_count: int = 0
    detail: str = ""


@dataclass(frozen=True)
class JobResult:
    name: str  # the template's name
    resource_group: str
    group_name: str  # the group that ran it (a suffixed name under Allow concurrency)
    result: RunResult
    exit_code: int
    containers: tuple[ContainerExit, ...] = ()
    trigger: Trigger = Trigger.MANUAL
    started_at: float | None = None  # epoch seconds
    finished_at: float | None = None
    # How the group was brought up: create, start (an identical terminated group), replace, update.
    launched_by: str = ""
    kept: bool = False  # the group was left in place (keep)
    # The last lines of each container's log, secrets masked, bounded (status and the ledger show them).
    log_tail: tuple[str, ...] = ()
    message: str = ""  # for people: why it failed, what was skipped
    slot: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)

    @property
    def ok(self) -> bool:
        return self.result is RunResult.SUCCEEDED
