"""Apply a Plan through the gateway: ordering, concurrency, LRO waits, retries and quota budgets.

Called by the engine (`reconciler.engine`) after planning; the daemon and the CLI see its progress through
`on_event` and its result as an `ApplyResult`. Semantics (DESIGN.md section 8):

- The executor acts on `Change.action` and `Change.held` only. `noop` and `conflict` make no call
  (SKIPPED); a held change makes no call (HELD, with the reason: suspend, `recreate: never`).
- Every PUT is built from the desired manifest with secrets resolved (`to_arm_body(reveal_secrets=True)`),
  never from a GET, with `tags` replaced by `Change.write_tags` (the manifest's tags plus the ownership
  tags). A tags-only change PATCHes `write_tags`. A write without the ownership tags is refused: the group
  would no longer be recognised as ours.
- create/update: one PUT; tags: one PATCH; delete: DELETE and wait until gone; replace: DELETE, wait until
  gone, then PUT.
- A replace is guarded (DESIGN section 8). Before the DELETE, the exact body of the PUT must pass
  `gate.replace_problems` (and its secrets must resolve); otherwise nothing is sent and the group is
  stalled. After the DELETE, the PUT is retried in up to `recreate_rounds` rounds with backoff between
  them; a round that finds the group standing with this change's spec (another apply of this instance
  created it) ends converged. If every round fails, the outcome is `RECREATE_FAILED` (a failure: exit 1),
  with `interrupted_after_delete=True` and what stands at the name now; the next pass plans a create.
- Azure decides the unknowns (DESIGN section 5): an update refused as needing a delete
  (`UpdateRefusedError`, `InvalidContainerGroupUpdate`) becomes a guarded replace in the same pass when the
  manifest says `recreate: auto` (outcome action `replace`, message "Azure refused the in-place update
  (...); replaced"), and is stalled with Azure's message when it says `recreate: never`.
- A delete whose wait finds the group created again by someone else returns it (`Gateway.delete`); a
  replace then reports converged when that group carries this change's spec and secrets hash.
- `attempts` is the tries of the step that needed the most: a replace's delete and create are two steps.
- Retryable errors are retried with backoff (full jitter), honouring Retry-After, up to `max_attempts` per
  call; stalled errors are not retried (FAILED, retryable=False). An LRO that times out is not retried in
  this pass (another PUT would restart the group again); it is FAILED, retryable.
- Groups run concurrently, at most `concurrency` at a time, each as an asyncio task named `apply:rg/name`.
  One group's failure never cancels another. Creates, updates, tag patches and replaces run before deletes
  (prunes), so a rename never leaves a gap.
- Creates and deletes draw tokens from a `QuotaBudget` (ACI's create/delete quotas).
- When Azure throttles a write (429), the groups of the apply slow down together (`_ThrottleGate`): every
  write waits for the Retry-After, then attempts start one per interval (the Retry-After, at most 5 s)
  that shrinks on each success, so throttled groups do not all retry at the same instant and use up their
  attempts against an ARM bucket that refills one token at a time.
- Cancellation (shutdown) cancels the group tasks, lets each finish its cancellation, emits a `cancelled`
  event for each interrupted group, and re-raises `CancelledError`: nothing is reported as succeeded that
  did not.
- Messages never hold a secret: Azure's messages are scrubbed of the change's resolved secret values.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.cloud.errors import GatewayError, OperationTimeoutError, StalledError, UpdateRefusedError
from reconciler.cloud.gateway import Gateway
from reconciler.cloud.retry import Attempts, RetryPolicy, call_with_retry
from reconciler.execution.gate import replace_problems
from reconciler.execution.ratelimit import (
    ACI_CREATE_LIMITS,
    ACI_DELETE_LIMITS,
    QuotaBudget,
    RateLimit,
    RateLimiter,
)
from reconciler.model.manifest import UnresolvedSecretError
from reconciler.model.observed import ObservedGroup
from reconciler.model.outcome import ApplyResult, GroupOutcome, Result
from reconciler.model.plan import SENSITIVE, Action, Change, Plan
from reconciler.planning.ownership import MANAGED_BY_TAG, SECRETS_TAG, SPEC_TAG

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

Phase = Literal[
    "started",
    "retrying",
    "waiting",
    "deleting",
    "creating",
    "updating",
    "patching",
    "done",
    "failed",
    "held",
    "cancelled",
]

# Actions that write before prunes, and prunes: the two waves of an apply.
FIRST_WAVE = frozenset({Action.CREATE, Action.UPDATE, Action.TAGS, Action.REPLACE})
LAST_WAVE = frozenset({Action.DELETE})


@dataclass(frozen=True)
class ProgressEvent:
    """One step of one group, for progress display and logs. Never holds a secret."""

    resource_group: str
    name: str
    action: Action
    phase: Phase
    message: str = ""
    attempt: int = 0

    @property
    def rg(self) -> str:
        return self.resource_group


@dataclass(frozen=True)
class ApplyOptions:
    """How to apply: bounds, patience and budgets. The defaults suit Azure; tests shrink them.

    `rng` drives the backoff jitter (seed it in tests). `create_limits`/`delete_limits` are ACI's quotas
    (see `reconciler.execution.ratelimit`); pass a `QuotaBudget` to `apply_plan` to share one across passes.
    `hold_prunes_on_failure`: skip this pass's deletes when a create/update/replace failed, for operators
    who prefer a duplicate to a gap (off by default: one group's failure does not stop the others).
    """

    concurrency: int = 20
    lro_timeout: float = 900.0
    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    max_retry_after: float = 300.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    create_limits: tuple[RateLimit, ...] = ACI_CREATE_LIMITS
    delete_limits: tuple[RateLimit, ...] = ACI_DELETE_LIMITS
    hold_prunes_on_failure: bool = False
    # Rounds of creating a replaced group again after its delete, each round with its own retries of
    # retryable errors, with backoff in between; then the outcome is RECREATE_FAILED.
    recreate_rounds: int = 3

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.lro_timeout <= 0:
            raise ValueError(f"lro_timeout must be positive, got {self.lro_timeout}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.recreate_rounds < 1:
            raise ValueError(f"recreate_rounds must be at least 1, got {self.recreate_rounds}")

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base,
            backoff_cap=self.backoff_cap,
            max_retry_after=self.max_retry_after,
            rng=self.rng,
        )


def scrub(message: str, secrets: Sequence[str]) -> str:
    """`message` with every secret value replaced by `(sensitive)` (longest first, so none leaks in part)."""
    for value in sorted({s for s in secrets if s}, key=len, reverse=True):
        message = message.replace(value, SENSITIVE)
    return message


class _ThrottleGate:
    """Write pacing shared by the group tasks of one apply, engaged by Azure's 429s.

    Without it, N throttled groups all retry when the Retry-After ends, one of them gets the token ARM
    refilled, and the others spend another attempt: measured against the emulator (bench/bench_bulk.py, 60
    updates, write bucket 20 refilled at 1/s) 24 of 60 groups failed after 5 attempts. Paced, they start
    one per interval and each attempt meets a refilled token.
    """

    MAX_SPACING = 5.0
    MIN_SPACING = 0.05

    def __init__(self, clock: Clock, sleep: Sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._resume = 0.0  # no write attempt before this (the latest Retry-After)
        self._spacing = 0.0  # seconds between attempt starts; 0: not throttled
        self._next_slot = 0.0

    def throttled(self, retry_after: float) -> None:
        now = self._clock()
        self._resume = max(self._resume, now + retry_after)
        # A bucket's Retry-After is the time to its next token: start attempts that far apart.
        self._spacing = min(max(retry_after, self.MIN_SPACING), self.MAX_SPACING)

    def succeeded(self) -> None:
        if self._spacing:
            self._spacing *= 0.8
            if self._spacing < self.MIN_SPACING:
                self._spacing = 0.0

    async def wait_turn(self) -> None:
        now = self._clock()
        if not self._spacing and now >= self._resume:
            return
        slot = max(now, self._resume, self._next_slot)
        self._next_slot = slot + self._spacing
        if slot > now:
            await self._sleep(slot - now)


class _Run:
    """The state of one `apply_plan` call, shared by its group tasks."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        options: ApplyOptions,
        sleep: Sleep,
        clock: Clock,
        on_event: Callable[[ProgressEvent], None] | None,
        budget: QuotaBudget,
    ) -> None:
        self.gateway = gateway
        self.options = options
        self.sleep = sleep
        self.clock = clock
        self.on_event = on_event
        self.budget = budget
        self.policy = options.retry_policy()
        self.semaphore = asyncio.Semaphore(options.concurrency)
        self.gate = _ThrottleGate(clock, sleep)

    def emit(self, change: Change, phase: Phase, message: str = "", attempt: int = 0) -> None:
        if self.on_event is None:
            return
        event = ProgressEvent(change.resource_group, change.name, change.action, phase, message, attempt)
        try:
            self.on_event(event)
        except Exception:
            # A broken progress display must not break an apply.
            log.exception("on_event callback failed")

    async def _take(self, change: Change, budget: RateLimiter, what: str) -> None:
        wait = budget.wait_needed()
        if wait > 0:
            self.emit(change, "waiting", f"{what} quota: next slot in {wait:.0f}s")
        await budget.acquire()

    async def _retrying(
        self,
        change: Change,
        call: Callable[[], Awaitable[Any]],
        attempts: Attempts,
        *,
        quota: RateLimiter | None = None,
        quota_name: str = "",
    ) -> Any:
        def on_retry(attempt: int, error: GatewayError, delay: float) -> None:
            if error.status == 429:
                self.gate.throttled(error.retry_after if error.retry_after is not None else delay)
            self.emit(
                change,
                "retrying",
                f"{scrub(str(error), _secrets(change))}; retrying in {delay:.1f}s",
                attempt,
            )

        async def before() -> None:
            if quota is not None:
                await self._take(change, quota, quota_name)
            await self.gate.wait_turn()

        async def guarded() -> Any:
            try:
                result = await call()
            except OperationTimeoutError as exc:
                # Not retried in this pass: the operation is probably still running in Azure.
                raise _NoRetry(exc) from exc
            self.gate.succeeded()
            return result

        try:
            return await call_with_retry(
                guarded,
                policy=self.policy,
                sleep=self.sleep,
                attempts=attempts,
                on_retry=on_retry,
                before_attempt=before,
            )
        except _NoRetry as wrapped:
            raise wrapped.error from None

    def _put_body(self, change: Change) -> dict[str, Any]:
        if change.desired is None:
            raise StalledError("the plan entry carries no desired manifest (a planning bug); nothing sent")
        try:
            body = change.desired.to_arm_body(reveal_secrets=True)
        except UnresolvedSecretError as exc:
            # Names the JSON pointers of the references, never a value.
            raise StalledError(str(exc), code="UnresolvedSecret") from None
        body["tags"] = dict(change.write_tags)
        return body

    def _check_ownership(self, change: Change) -> None:
        if not any(k.lower() == MANAGED_BY_TAG for k in change.write_tags):
            raise StalledError(
                "the plan entry carries no ownership tags (a planning bug); refusing to write a group "
                "that would not be recognised as managed"
            )

    async def put(
        self, change: Change, attempts: Attempts, *, create: bool, body: dict[str, Any] | None = None
    ) -> None:
        self._check_ownership(change)
        body = body if body is not None else self._put_body(change)
        timeout = self.options.lro_timeout
        await self._retrying(
            change,
            lambda: self.gateway.create_or_update(change.resource_group, change.name, body, timeout=timeout),
            attempts,
            quota=self.budget.creates if create else None,
            quota_name="create",
        )

    async def patch(self, change: Change, attempts: Attempts) -> None:
        self._check_ownership(change)
        tags = dict(change.write_tags)
        await self._retrying(
            change,
            lambda: self.gateway.patch_tags(change.resource_group, change.name, tags),
            attempts,
        )

    async def delete(self, change: Change, attempts: Attempts) -> ObservedGroup | None:
        """Delete and wait until gone; the group that stands there instead when someone re-created it."""
        timeout = self.options.lro_timeout
        result: ObservedGroup | None = await self._retrying(
            change,
            lambda: self.gateway.delete(change.resource_group, change.name, timeout=timeout),
            attempts,
            quota=self.budget.deletes,
            quota_name="delete",
        )
        return result

    async def replace(self, change: Change, steps: _Steps) -> str:
        """Delete, wait until gone, create; the gate first. Returns a note for the outcome ("" normally).

        Raises `_RecreateFailedError` when the group was deleted and every round of creating it failed.
        """
        # The gate: a replace that could never create must not delete.
        self._check_ownership(change)
        body = self._put_body(change)
        problems = replace_problems(body)
        if problems:
            raise StalledError(
                "replace not started, the live group is untouched: Azure would refuse the new group ("
                + "; ".join(problems)
                + "); fix the manifest",
                code="ReplaceGate",
            )
        self.emit(change, "deleting")
        standing = await self.delete(change, steps.new())
        steps.deleted = True
        if standing is not None and _carries_spec(standing, change):
            # Another apply of this instance replaced it first, with the same spec: converged.
            return "re-created meanwhile by another apply with the desired spec"
        self.emit(change, "creating")
        return await self.recreate(change, body, steps)

    async def recreate(self, change: Change, body: dict[str, Any], steps: _Steps) -> str:
        """Create a group this replace deleted: retried with backoff, round after round, because every
        failure here leaves a managed group missing. Returns a note when another apply created it first."""
        rounds = self.options.recreate_rounds
        for round_number in range(1, rounds + 1):
            try:
                await self.put(change, steps.new(), create=True, body=body)
                return ""
            except OperationTimeoutError as exc:
                # Accepted and probably still running: another PUT would only restart it.
                raise _RecreateFailedError(exc, round_number) from exc
            except GatewayError as exc:
                if round_number == rounds:
                    raise _RecreateFailedError(exc, round_number) from exc
                delay = self.policy.delay(round_number, exc)
                self.emit(
                    change,
                    "retrying",
                    f"re-creating after the delete failed: {scrub(str(exc), _secrets(change))}; "
                    f"trying again in {delay:.1f}s",
                    round_number,
                )
                await self.sleep(delay)
            if await self._standing_as_desired(change):
                # Another apply of this instance (racing on the same replace) created it: converged.
                return "re-created meanwhile by another apply with the desired spec"
        return ""  # pragma: no cover - the loop returns or raises

    async def _standing_as_desired(self, change: Change) -> bool:
        try:
            live = await self.gateway.get_group(change.resource_group, change.name)
        except GatewayError:
            return False  # not known: the next round's PUT decides
        return live is not None and _carries_spec(live, change)

    async def _describe_missing(self, change: Change) -> str:
        """What stands at the group's name after a failed re-create, for the message (best effort)."""
        try:
            live = await self.gateway.get_group(change.resource_group, change.name)
        except GatewayError:
            return "its current state could not be read"
        if live is None:
            return "it does not exist now"
        return f"it exists with provisioningState {live.provisioning_state or 'unknown'}"

    async def apply_one(self, change: Change) -> GroupOutcome:
        steps = _Steps()
        started = self.clock()
        action = change.action

        def outcome(result: Result, message: str = "", retryable: bool | None = None) -> GroupOutcome:
            return GroupOutcome(
                resource_group=change.resource_group,
                name=change.name,
                action=action,
                result=result,
                message=scrub(message, _secrets(change)),
                retryable=retryable,
                attempts=steps.attempts,
                duration_s=max(0.0, self.clock() - started),
                interrupted_after_delete=steps.deleted and result is not Result.SUCCEEDED,
            )

        note = ""
        try:
            async with self.semaphore:
                started = self.clock()
                self.emit(change, "started")
                if action is Action.CREATE:
                    self.emit(change, "creating")
                    await self.put(change, steps.new(), create=True)
                elif action is Action.UPDATE:
                    self.emit(change, "updating")
                    try:
                        await self.put(change, steps.new(), create=False)
                    except UpdateRefusedError as refused:
                        # DESIGN section 5: where no evidence decides a field, Azure's answer does.
                        why = f"Azure refused the in-place update ({refused.azure_message})"
                        if change.desired is not None and change.desired.policy.recreate == "never":
                            raise StalledError(
                                f"{why}; recreate: never holds the replace it needs (delete the group to "
                                "let it be recreated, or set recreate: auto)",
                                status=refused.status,
                                code=refused.code,
                            ) from None
                        action = Action.REPLACE
                        self.emit(change, "retrying", f"{why}; replacing it")
                        extra = await self.replace(change, steps)
                        note = f"{why}; replaced" + (f" ({extra})" if extra else "")
                elif action is Action.TAGS:
                    self.emit(change, "patching")
                    await self.patch(change, steps.new())
                elif action is Action.DELETE:
                    self.emit(change, "deleting")
                    await self.delete(change, steps.new())
                elif action is Action.REPLACE:
                    note = await self.replace(change, steps)
                else:  # pragma: no cover - apply_plan only schedules changing actions
                    raise StalledError(f"nothing to do for action {action}")
        except asyncio.CancelledError:
            message = (
                "interrupted after the delete; the next pass creates it" if steps.deleted else "interrupted"
            )
            self.emit(change, "cancelled", message, steps.attempts)
            raise
        except _RecreateFailedError as failed:
            where = await self._describe_missing(change)
            message = (
                f"the group was deleted for the replace and creating it again failed "
                f"({failed.rounds} round(s) with retries): {failed.error}; {where}. The next pass tries "
                "to create it again"
            )
            result = outcome(Result.RECREATE_FAILED, message, True)
            self.emit(change, "failed", result.message, steps.attempts)
            return result
        except GatewayError as exc:
            result = outcome(Result.FAILED, str(exc), exc.retryable)
            self.emit(change, "failed", result.message, steps.attempts)
            return result
        except Exception as exc:
            # A bug, not an Azure answer: record it against this group and keep the others going.
            log.exception("applying %s/%s failed unexpectedly", change.resource_group, change.name)
            result = outcome(Result.FAILED, f"internal error: {type(exc).__name__}", False)
            self.emit(change, "failed", result.message, steps.attempts)
            return result
        result = outcome(Result.SUCCEEDED, note)
        self.emit(change, "done", note, steps.attempts)
        return result

    async def run_wave(self, changes: Sequence[Change]) -> dict[int, GroupOutcome]:
        """Run one wave concurrently; outcomes by index in `changes`."""
        results: dict[int, GroupOutcome] = {}

        async def one(index: int, change: Change) -> None:
            results[index] = await self.apply_one(change)

        async with asyncio.TaskGroup() as group:
            for index, change in enumerate(changes):
                group.create_task(one(index, change), name=f"apply:{change.resource_group}/{change.name}")
        return results


class _Steps:
    """The steps of one group's apply: each gets its own attempt counter, so a replace's delete and create
    are two steps, and the outcome reports the tries of the step that needed the most."""

    def __init__(self) -> None:
        self.counters: list[Attempts] = []
        self.deleted = False

    def new(self) -> Attempts:
        self.counters.append(Attempts())
        return self.counters[-1]

    @property
    def attempts(self) -> int:
        return max((c.count for c in self.counters), default=0)


class _RecreateFailedError(Exception):
    """A replace deleted the group and could not create it again."""

    def __init__(self, error: GatewayError, rounds: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.rounds = rounds


def _tag(tags: dict[str, str], name: str) -> str | None:
    return next((v for k, v in tags.items() if k.lower() == name.lower()), None)


def _carries_spec(group: ObservedGroup, change: Change) -> bool:
    """True when a live group carries this change's spec fingerprint and secrets hash and is not failed
    or going away: someone (another apply of this instance) already wrote exactly what we want."""
    state = (group.provisioning_state or "").lower()
    if state in ("failed", "deleting"):
        return False
    want = change.write_tags
    return all(_tag(group.tags, name) == _tag(want, name) for name in (MANAGED_BY_TAG, SPEC_TAG, SECRETS_TAG))


class _NoRetry(Exception):
    """Carries an error past the retry loop without it being retried."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(str(error))
        self.error = error


def _secrets(change: Change) -> list[str]:
    if change.desired is None:
        return []
    try:
        return list(change.desired.secret_values().values())
    except Exception:
        # Secret resolution failing here means the PUT body could not be built either; nothing to scrub.
        return []


def _skipped(change: Change, result: Result, message: str) -> GroupOutcome:
    return GroupOutcome(
        resource_group=change.resource_group,
        name=change.name,
        action=change.action,
        result=result,
        message=message,
    )


async def apply_plan(
    plan: Plan,
    gateway: Gateway,
    *,
    options: ApplyOptions | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    on_event: Callable[[ProgressEvent], None] | None = None,
    budget: QuotaBudget | None = None,
) -> ApplyResult:
    """Apply every change of `plan` through `gateway`; one outcome per change, in plan order.

    `sleep`/`clock` are injected for tests (backoff waits, quota pacing, durations). `budget` carries the
    create/delete quotas across calls (the daemon keeps one); by default a fresh one per call.
    Raises `asyncio.CancelledError` when cancelled, after the group tasks have finished cancelling.
    """
    options = options or ApplyOptions()
    budget = budget or QuotaBudget(
        creates=options.create_limits, deletes=options.delete_limits, clock=clock, sleep=sleep
    )
    run = _Run(gateway, options=options, sleep=sleep, clock=clock, on_event=on_event, budget=budget)
    outcomes: dict[int, GroupOutcome] = {}
    first: list[tuple[int, Change]] = []
    last: list[tuple[int, Change]] = []
    for index, change in enumerate(plan.changes):
        if change.action in (Action.NOOP, Action.CONFLICT):
            reason = change.reason or ("no changes" if change.action is Action.NOOP else "not managed")
            outcomes[index] = _skipped(change, Result.SKIPPED, reason)
        elif change.held is not None:
            outcomes[index] = _skipped(change, Result.HELD, change.held)
            run.emit(change, "held", change.held)
        elif change.action in FIRST_WAVE:
            first.append((index, change))
        elif change.action in LAST_WAVE:
            last.append((index, change))
        else:  # pragma: no cover - every Action is handled above
            outcomes[index] = _skipped(change, Result.SKIPPED, f"unknown action {change.action}")

    for wave in (first, last):
        if not wave:
            continue
        if wave is last and options.hold_prunes_on_failure:
            failed = [o for o in outcomes.values() if o.failed]
            if failed:
                for index, change in wave:
                    message = (
                        f"prune postponed: {len(failed)} other change(s) failed in this pass "
                        "(hold_prunes_on_failure)"
                    )
                    outcomes[index] = _skipped(change, Result.SKIPPED, message)
                continue
        results = await run.run_wave([c for _, c in wave])
        for position, (index, _) in enumerate(wave):
            outcomes[index] = results[position]

    return ApplyResult(revision=plan.revision, outcomes=tuple(outcomes[i] for i in range(len(plan.changes))))
