"""What applying a plan did to each group: data that execution produces and render/daemon/CLI present.

Built by `reconciler.execution`; read by the engine (exit codes), the renderers and the daemon's status.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from reconciler.model.plan import Action


class Result(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # gave up on this pass; `retryable` says whether a later pass may succeed
    HELD = "held"  # the plan asked for it but policy held it back (suspend, `recreate: never`)
    SKIPPED = "skipped"  # nothing to do (noop) or not attempted (conflict, shutdown)
    # A replace deleted the group and could not create it again, retries included: the group is missing
    # (or failed to provision). Counts as failed (exit 1) and is rendered loudly.
    RECREATE_FAILED = "recreate-failed"


FAILED_RESULTS = frozenset({Result.FAILED, Result.RECREATE_FAILED})


class GroupOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    resource_group: str
    name: str
    action: Action
    result: Result
    message: str = ""  # never holds a secret value
    retryable: bool | None = None  # for FAILED: retryable (throttling, 5xx) or stalled
    # Tries of the step that needed the most (a replace's delete and create are two steps, not two attempts).
    attempts: int = 0
    duration_s: float = 0.0
    # A replace that deleted the group but has not created it yet (cut short, or RECREATE_FAILED).
    interrupted_after_delete: bool = False

    @property
    def failed(self) -> bool:
        return self.result in FAILED_RESULTS


class ApplyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    revision: str
    outcomes: tuple[GroupOutcome, ...] = ()

    @property
    def failed(self) -> tuple[GroupOutcome, ...]:
        return tuple(o for o in self.outcomes if o.failed)

    @property
    def ok(self) -> bool:
        return not self.failed
