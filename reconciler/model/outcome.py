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


class GroupOutcome(BaseModel):
    model_config = ConfigDict(frozen=True)

    resource_group: str
    name: str
    action: Action
    result: Result
    message: str = ""  # never holds a secret value
    retryable: bool | None = None  # for FAILED: retryable (throttling, 5xx) or stalled
    attempts: int = 0
    duration_s: float = 0.0
    # A replace that deleted the group but has not created it yet; the next pass creates it.
    interrupted_after_delete: bool = False


class ApplyResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    revision: str
    outcomes: tuple[GroupOutcome, ...] = ()

    @property
    def failed(self) -> tuple[GroupOutcome, ...]:
        return tuple(o for o in self.outcomes if o.result is Result.FAILED)

    @property
    def ok(self) -> bool:
        return not self.failed
