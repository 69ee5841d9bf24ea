"""The daemon's loop: wait for a batch of triggers, plan, leave out what the group states hold back, apply.

One `Worker` consumes the `Coalescer`, so passes never overlap. Each pass plans everything (which re-observes
Azure, so drift is found), hands the job templates it loaded to the job scheduler (`on_jobs`), asks the
`StateBook` which changes may be applied (stalled groups wait for a new manifest or revision; retryable
failures wait for their backoff), applies those through the `PassEngine`, records every outcome in the book,
the metrics and the logs, and keeps the last plan for `/status`.

The engine is a protocol so that tests drive the worker with scripted plans; `reconciler.daemon.passes` adapts
the real engine (`reconciler.engine.reconcile`). Composed by `reconciler.daemon.cli`.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from reconciler.daemon.jobs import JobTemplate
from reconciler.daemon.metrics import DaemonMetrics
from reconciler.daemon.notify.events import Event, EventKind
from reconciler.daemon.state import Key, Phase, Reason, StateBook, StateStore
from reconciler.daemon.triggers import Clock, Coalescer, RetryTimer, Trigger, TriggerKind
from reconciler.model.manifest import GroupManifest
from reconciler.model.outcome import ApplyResult, GroupOutcome, Result
from reconciler.model.plan import Action, Change, Plan, PlanIssue

log = structlog.get_logger("reconciler.daemon")

RECENT_PASSES = 20


class ProgressLike(Protocol):
    """What the worker reads of the executor's progress events."""

    @property
    def resource_group(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def action(self) -> Any: ...
    @property
    def phase(self) -> Any: ...
    @property
    def message(self) -> str: ...


OnEvent = Callable[[Any], None]


@dataclass(frozen=True)
class PlanView:
    """A plan and what the worker must know about how its manifests loaded."""

    plan: Plan
    # False when some manifest could not be read: nothing may be pruned then.
    complete: bool = True
    # Groups whose manifest failed to load (when the loader could tell which), with why.
    failed: Mapping[Key, str] = field(default_factory=dict)
    # The engine's own pass object, handed back to `apply`.
    handle: Any = None
    # Values that must never be logged (resolved secrets of this pass), for the log redactor.
    secrets: tuple[str, ...] = ()
    # Plan again after this many seconds: a manifest file was still being written (its prunes were held).
    recheck_after: float | None = None
    # The job templates among the loaded manifests, for the job scheduler; None: the engine does not say.
    jobs: tuple[JobTemplate, ...] | None = None
    # The resource groups the plan covers when replicas share the work by shard; None: all of them.
    owned: Callable[[str], bool] | None = None
    # What Azure said of each group it listed, for the status page (never a body: no secrets, little memory).
    observed: Mapping[Key, LiveSummary] = field(default_factory=dict)
    # A focused pass (`PassEngine.plan(focus=...)`): the only groups it planned and observed; the others
    # keep what the last passes said of them. None: the plan covers every group.
    focus: frozenset[Key] | None = None
    # Whether a desired manifest of this plan holds no secret value (so it may be kept after the pass);
    # None: treat every one as holding some.
    secret_free: Callable[[GroupManifest], bool] | None = None


@dataclass(frozen=True)
class LiveSummary:
    """A group as the pass's list call saw it."""

    provisioning_state: str | None = None
    instance_state: str | None = None
    revision: str | None = None  # the revision tag the reconciler last wrote on it


@dataclass(frozen=True)
class ApplyView:
    result: ApplyResult
    # Groups applied successfully that the verifying re-plan still finds different.
    unconverged: frozenset[Key] = frozenset()


class Sharing(Protocol):
    """What the worker asks of the replicas' coordination (`reconciler.daemon.coordination`)."""

    def refusal(self, resource_group: str) -> str | None:
        """Why this replica must only plan `resource_group` now (a standby); None when it may write."""
        ...

    def mark_dirty(self) -> None:
        """The state book changed: the replicas' shared copy is written at the next tick."""
        ...

    async def flush(self) -> None:
        """Write the shared copy now (before a pass's first write to Azure); failures are logged, not
        raised: the lease's fence, not this write, keeps a replica that lost its lease from writing."""
        ...


class PassEngine(Protocol):
    async def plan(self, focus: frozenset[str] | None = None) -> PlanView:
        """The plan of a pass. `focus`: the manifest files (absolute paths) whose change is the only
        reason for it; the engine may then plan just their groups (`PlanView.focus`), or all of them."""
        ...

    async def apply(self, planned: PlanView, changes: Sequence[Change], on_event: OnEvent) -> ApplyView: ...

    def drain(self) -> None:
        """Shutdown: let groups already being written finish; start no other."""
        ...


@dataclass
class PassRecord:
    number: int
    triggers: tuple[Trigger, ...]
    started_at: float
    finished_at: float | None = None
    duration_s: float | None = None
    revision: str | None = None
    result: str = "running"  # running | ok | failed | error | interrupted
    error: str | None = None
    applied: int = 0
    deferred: int = 0
    focused: int | None = None  # groups planned by a focused pass; None: a full pass

    def to_json(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "triggers": [t.to_json() for t in self.triggers],
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
            "revision": self.revision,
            "result": self.result,
            "error": self.error,
            "applied": self.applied,
            "deferred": self.deferred,
            "focused": self.focused,
        }


class Worker:
    def __init__(
        self,
        engine: PassEngine,
        coalescer: Coalescer,
        book: StateBook,
        *,
        metrics: DaemonMetrics,
        retry_timer: RetryTimer,
        clock: Clock,
        monotonic: Callable[[], float] = time.monotonic,
        store: StateStore | None = None,
        dry_run: bool = False,
        on_secrets: Callable[[Sequence[str]], None] | None = None,
        on_jobs: Callable[[Sequence[JobTemplate], bool, Callable[[str], bool] | None], None] | None = None,
        sharing: Sharing | None = None,
        notify: Callable[[Event], None] | None = None,
        instance: str = "default",
    ) -> None:
        """`sharing`: the replicas' coordination (`--coordination`), None for a daemon on its own.
        `notify`: where the pass's events go (`reconciler.daemon.notify.Notifier.emit`); it never waits."""
        self.engine = engine
        self.coalescer = coalescer
        self.book = book
        self.metrics = metrics
        self.retry_timer = retry_timer
        self._recheck_at: float | None = None
        self.clock = clock
        self.monotonic = monotonic
        self.store = store
        self.dry_run = dry_run
        self.on_secrets = on_secrets
        self.on_jobs = on_jobs
        self.sharing = sharing
        self.notify = notify
        self.instance = instance
        self._drift: set[Key] = set()
        self.first_pass_done = asyncio.Event()
        self.last_plan: Plan | None = None
        self._plan_index: tuple[Plan | None, dict[Key, Change]] = (None, {})
        self.observed: Mapping[Key, LiveSummary] = {}
        # The last passes, newest last, for the status page.
        self.recent_passes: deque[PassRecord] = deque(maxlen=RECENT_PASSES)
        self.last_pass: PassRecord | None = None
        self.current: PassRecord | None = None
        # The pass in flight has begun writing (until then it only read, and may be dropped at shutdown).
        self.applying = False
        self.passes = 0
        self.revision: str | None = None
        self.idle = asyncio.Event()
        self.idle.set()
        # Set at shutdown: failures from here on are the drain's refusals, recorded as interrupted.
        self.draining = False

    def plan_index(self) -> dict[Key, Change]:
        """The last plan's entries by key (built once per plan, for the status page)."""
        plan = self.last_plan
        if plan is None:
            return {}
        if self._plan_index[0] is not plan:
            self._plan_index = (plan, {c.key: c for c in plan.changes})
        return self._plan_index[1]

    def drain(self) -> None:
        self.draining = True
        self.engine.drain()

    async def run(self) -> None:
        """Run passes until the coalescer closes (shutdown)."""
        while True:
            batch = await self.coalescer.next()
            if batch is None:
                return
            await self.run_pass(batch)

    async def run_pass(self, triggers: Sequence[Trigger]) -> PassRecord:
        self.passes += 1
        record = PassRecord(number=self.passes, triggers=tuple(triggers), started_at=self.clock())
        self.current = record
        self.idle.clear()
        started = self.monotonic()
        kinds = sorted({t.kind.value for t in triggers})
        log.info(
            "pass started", number=record.number, triggers=kinds, reasons=[t.reason for t in triggers][:5]
        )
        before = self._phases() if self.notify is not None else {}
        try:
            await self._pass(record)
        except asyncio.CancelledError:
            record.result = "interrupted"
            raise
        except Exception as err:  # one failed pass must never end the daemon; it is recorded
            record.result = "error"
            record.error = f"{type(err).__name__}: {err}"
            log.error("pass failed", number=record.number, error=record.error)
        finally:
            record.finished_at = self.clock()
            record.duration_s = self.monotonic() - started
            self.metrics.pass_duration.labels(result=record.result).observe(record.duration_s)
            self.metrics.passes.labels(result=record.result).inc()
            self.metrics.last_pass.set(record.finished_at)
            if record.result == "ok":
                self.metrics.last_success.set(record.finished_at)
            self.metrics.set_groups(self.book.counts())
            self._save()
            self.last_pass = record
            self.recent_passes.append(record)
            self.current = None
            self.applying = False
            self.idle.set()
            if self.notify is not None and record.result != "interrupted":
                self._notify_pass(record, before)
            if record.result != "interrupted":
                self.first_pass_done.set()
                self.metrics.ready.set(1)
                due = [t for t in (self.book.next_retry(), self._recheck_at) if t is not None]
                self.retry_timer.schedule(min(due, default=None))
            log.info(
                "pass finished",
                number=record.number,
                result=record.result,
                revision=record.revision,
                duration_s=round(record.duration_s, 3),
                applied=record.applied,
                deferred=record.deferred,
            )
        return record

    def _focus(self, triggers: Sequence[Trigger]) -> frozenset[str] | None:
        """The manifest files a pass may focus on: only saves of files set it off, and a full pass has run
        before (the groups a focused pass leaves alone keep what it said of them)."""
        if self.last_plan is None or not triggers:
            return None
        if any(t.kind is not TriggerKind.FILE or not t.paths for t in triggers):
            return None
        return frozenset(p for t in triggers for p in t.paths)

    async def _pass(self, record: PassRecord) -> None:
        self._drift.clear()
        view = await self.engine.plan(focus=self._focus(record.triggers))
        if view.focus is not None:
            record.focused = len(view.focus)
        if view.secrets and self.on_secrets is not None:
            self.on_secrets(view.secrets)
        if view.jobs is not None and self.on_jobs is not None:
            # Before any apply: the scheduler follows the manifests even when this pass fails later.
            self.on_jobs(view.jobs, view.complete and not view.failed, view.owned)
        plan = view.plan
        revision = plan.revision
        record.revision = revision
        self.revision = revision
        # /status needs the plan, not the manifests behind it: one holding resolved secrets is dropped from
        # the entry kept (no secret outlives its pass). One the engine says holds none is kept as it is: the
        # engine's caches keep it anyway, and a copy per group per pass costs memory and CPU for nothing.
        free = view.secret_free
        shown = tuple(
            c
            if c.desired is None or (free is not None and free(c.desired))
            else c.model_copy(update={"desired": None})
            for c in plan.changes
        )
        if view.focus is not None and self.last_plan is not None:
            # The groups out of focus keep their entries of the last full pass (or later focused ones).
            kept = tuple(c for c in self.last_plan.changes if c.key not in view.focus)
            shown = tuple(sorted((*kept, *shown), key=lambda c: c.key))
            self.observed = {
                **{k: v for k, v in self.observed.items() if k not in view.focus},
                **view.observed,
            }
        else:
            self.observed = view.observed
        self.last_plan = plan.model_copy(update={"changes": shown})
        now = self.clock()
        self._recheck_at = None if view.recheck_after is None else now + view.recheck_after
        for issue in plan.issues:
            log.log(
                40 if issue.severity == "error" else 30,
                "plan issue",
                severity=issue.severity,
                message=issue.message,
                source=issue.source,
                resource_group=issue.resource_group,
                name=issue.name,
                revision=revision,
            )
        for key, why in view.failed.items():
            self.book.record_invalid(key, why, revision)
            log.warning(
                "manifest invalid; group stalled and never pruned",
                resource_group=key[0],
                name=key[1],
                action="none",
                revision=revision,
                error=why,
            )

        to_apply: list[Change] = []
        for change in plan.changes:
            self._decide(change, view=view, revision=revision, now=now, record=record, to_apply=to_apply)
        if view.complete and not plan.errors and view.focus is None:
            # Only a complete picture forgets a group: an unreadable manifest or resource group is not gone.
            self.book.forget_except([c.key for c in plan.changes], within=view.owned)

        if not to_apply:
            record.result = "failed" if plan.errors else "ok"
            record.error = _errors_summary(plan.errors)
            return
        self.applying = True
        self._emit_revision(revision, "pending", f"applying {len(to_apply)} change(s)")
        for change in to_apply:
            self.book.begin(change, revision)
            log.info(
                "applying",
                resource_group=change.resource_group,
                name=change.name,
                action=change.action.value,
                revision=revision,
                paths=list(change.changed_paths)[:10],
            )
        # Written before the first write to Azure: a kill from here on is reported by the next run.
        self._save()
        if self.sharing is not None:
            await self.sharing.flush()
        applied = await self._apply(view, to_apply, revision)
        failed = self._record(applied, to_apply, revision)
        record.applied = sum(1 for o in applied.result.outcomes if o.result is Result.SUCCEEDED)
        record.result = "failed" if (failed or plan.errors) else "ok"
        record.error = record.error or _errors_summary(plan.errors)

    def _decide(
        self,
        change: Change,
        *,
        view: PlanView,
        revision: str,
        now: float,
        record: PassRecord,
        to_apply: list[Change],
    ) -> None:
        fields = {"resource_group": change.resource_group, "name": change.name, "action": change.action.value}
        if change.action is Action.DELETE and (not view.complete or change.key in view.failed):
            # A manifest that fails to load must never get its live group deleted.
            record.deferred += 1
            self.metrics.skipped.labels(why="not_pruned").inc()
            log.warning("not pruned: manifests did not all load", **fields, revision=revision)
            return
        if change.action is Action.NOOP:
            self.book.record_noop(change, revision)
            return
        if change.action is Action.CONFLICT:
            self.book.record_held(change, Reason.CONFLICT, change.reason or "exists and is not managed by us")
            log.warning(
                "conflict: group exists and is not ours", **fields, revision=revision, reason=change.reason
            )
            return
        if not change.changes_something:
            self.book.record_held(change, Reason.HELD, change.held or "held by policy")
            log.info("held", **fields, revision=revision, held=change.held)
            return
        if self.book.is_drift(change, revision):
            self._drift.add(change.key)
            self.metrics.drift.labels(action=change.action.value).inc()
            log.warning("drift detected", **fields, revision=revision, paths=list(change.changed_paths)[:10])
        if self.dry_run:
            record.deferred += 1
            self.metrics.skipped.labels(why="dry_run").inc()
            self.book.record_held(change, Reason.PLANNED, "--dry-run: planned, not applied")
            log.info("planned (dry run)", **fields, revision=revision)
            return
        refused = self._refusal(change.resource_group)
        if refused is not None:
            record.deferred += 1
            self.metrics.skipped.labels(why="standby").inc()
            self.book.record_held(change, Reason.PLANNED, refused)
            log.debug("planned (standby)", **fields, revision=revision, why=refused)
            return
        decision = self.book.admit(change, revision, now)
        if not decision.apply:
            record.deferred += 1
            why = "stalled" if "stalled" in decision.why else "backoff"
            self.metrics.skipped.labels(why=why).inc()
            log.info("deferred", **fields, revision=revision, why=decision.why)
            return
        to_apply.append(change)

    async def _apply(self, view: PlanView, changes: list[Change], revision: str) -> ApplyView:
        def on_event(event: ProgressLike) -> None:
            log.info(
                "progress",
                resource_group=event.resource_group,
                name=event.name,
                action=str(getattr(event.action, "value", event.action)),
                phase=str(getattr(event.phase, "value", event.phase)),
                message=event.message,
                revision=revision,
            )

        try:
            return await self.engine.apply(view, changes, on_event)
        except asyncio.CancelledError:
            for change in changes:
                self.book.record_interrupted(change)
            log.warning(
                "apply interrupted; recorded as unfinished",
                groups=[f"{c.resource_group}/{c.name}" for c in changes],
                revision=revision,
            )
            raise
        except Exception as err:  # an engine failure fails these groups, retryably
            message = f"apply failed: {type(err).__name__}: {err}"
            outcomes = tuple(
                GroupOutcome(
                    resource_group=c.resource_group,
                    name=c.name,
                    action=c.action,
                    result=Result.FAILED,
                    message=message,
                    retryable=True,
                )
                for c in changes
            )
            return ApplyView(result=ApplyResult(revision=revision, outcomes=outcomes))

    def _record(self, applied: ApplyView, changes: list[Change], revision: str) -> bool:
        by_key = {c.key: c for c in changes}
        now = self.clock()
        failed = False
        seen: set[Key] = set()
        written: list[Change] = []
        for outcome in applied.result.outcomes:
            key = (outcome.resource_group.lower(), outcome.name.lower())
            change = by_key.get(key)
            if change is None:
                continue
            seen.add(key)
            fenced = self._refusal(change.resource_group) is not None
            if (self.draining or fenced) and outcome.failed:
                # Refused or cut by the shutdown or a lost lease: not the group's fault; the next run (or
                # the replica that holds the lease now) picks it up.
                self.book.record_interrupted(change)
                self.metrics.actions.labels(action=outcome.action.value, result="interrupted").inc()
                log.warning(
                    "not finished: shutting down" if self.draining else "not finished: the lease was lost",
                    resource_group=change.resource_group,
                    name=change.name,
                    action=outcome.action.value,
                    revision=revision,
                )
                continue
            self.book.record_outcome(change, outcome, revision, now)
            self.metrics.actions.labels(action=outcome.action.value, result=outcome.result.value).inc()
            fields = {
                "resource_group": change.resource_group,
                "name": change.name,
                "action": outcome.action.value,
                "revision": revision,
                "result": outcome.result.value,
                "duration_s": round(outcome.duration_s, 3),
                "attempts": outcome.attempts,
            }
            self._notify_outcome(change, outcome, revision)
            if outcome.result is Result.SUCCEEDED:
                written.append(change)
            if outcome.failed:
                failed = True
                log.error("group failed", **fields, retryable=outcome.retryable, error=outcome.message)
            elif outcome.interrupted_after_delete:
                log.warning("replace interrupted after delete", **fields)
            else:
                log.info("group done", **fields)
        self._observed_after(written, revision)
        for key in applied.unconverged & seen:
            self.book.record_unconverged(by_key[key], now)
            failed = True
            log.warning(
                "not converged after apply",
                resource_group=by_key[key].resource_group,
                name=by_key[key].name,
                action=by_key[key].action.value,
                revision=revision,
            )
        for key, change in by_key.items():
            if key not in seen:
                # The executor returned nothing for it (it stopped early): the next pass picks it up.
                self.book.record_interrupted(change)
        return failed

    def _observed_after(self, written: Sequence[Change], revision: str) -> None:
        """What successful writes tell of their groups until the next list: a write succeeds only once ARM
        reports the group Succeeded; a prune leaves nothing."""
        if not written:
            return
        observed = dict(self.observed)
        for change in written:
            if change.action is Action.DELETE:
                observed.pop(change.key, None)
            elif change.action is not Action.TAGS:
                observed[change.key] = LiveSummary("Succeeded", None, revision)
        self.observed = observed

    # -- notifications (DESIGN section 14) --------------------------------------------------------------

    def _phases(self) -> dict[Key, tuple[Phase, Reason]]:
        return {key: (s.phase, s.reason) for key, s in self.book.groups.items()}

    def _event(self, kind: EventKind, summary: str, **fields: Any) -> None:
        assert self.notify is not None  # callers check
        self.notify(Event(kind=kind, instance=self.instance, at=self.clock(), summary=summary, **fields))

    def _emit_revision(self, revision: str, state: str, summary: str) -> None:
        if self.notify is not None and not self.dry_run:
            severity = "error" if state in ("failure", "error") else "info"
            self._event(
                EventKind.REVISION, summary, revision=revision, severity=severity, detail={"state": state}
            )

    def _notify_outcome(self, change: Change, outcome: GroupOutcome, revision: str) -> None:
        if self.notify is None:
            return
        where = {"resource_group": change.resource_group, "name": change.name, "revision": revision}
        address = f"{change.resource_group}/{change.name}"
        detail: dict[str, str | int | float | bool | None] = {"result": outcome.result.value}
        if outcome.failed:
            detail["error"] = outcome.message[:500]
        if outcome.action is Action.REPLACE:
            if outcome.result is Result.SUCCEEDED:
                self._event(
                    EventKind.REPLACE,
                    f"{address} was replaced (deleted and created again)",
                    **where,
                    severity="warning",
                    detail=detail,
                )
            else:
                self._event(
                    EventKind.REPLACE, f"replacing {address} failed", **where, severity="error", detail=detail
                )
        elif outcome.action is Action.DELETE and outcome.result is Result.SUCCEEDED:
            self._event(
                EventKind.PRUNE,
                f"{address} was pruned: its manifest is gone",
                **where,
                severity="warning",
                detail=detail,
            )
        if change.key in self._drift and outcome.result is Result.SUCCEEDED:
            paths = ", ".join(change.changed_paths[:5])
            self._event(
                EventKind.DRIFT_CORRECTED,
                f"{address} had drifted from its manifest; put back",
                **where,
                severity="warning",
                detail={**detail, "paths": paths},
            )

    def _notify_pass(self, record: PassRecord, before: dict[Key, tuple[Phase, Reason]]) -> None:
        """Transitions of the pass: stalled, conflict, recovered; and the revision's result."""
        revision = record.revision
        for key, state in self.book.groups.items():
            old = before.get(key)
            if old is not None and old == (state.phase, state.reason):
                continue
            if self._refusal(state.resource_group) is not None:
                continue  # another replica holds this group's shard and tells about it
            where = {"resource_group": state.resource_group, "name": state.name, "revision": revision}
            address = f"{state.resource_group}/{state.name}"
            if state.phase is Phase.STALLED and (old is None or old[0] is not Phase.STALLED):
                if state.reason is Reason.CONFLICT:
                    self._event(
                        EventKind.CONFLICT,
                        f"{address} exists and is not managed by this reconciler",
                        **where,
                        severity="error",
                        detail={"reason": state.message[:500]},
                    )
                else:
                    self._event(
                        EventKind.STALLED,
                        f"{address} is stalled: {state.reason.value}",
                        **where,
                        severity="error",
                        detail={"reason": state.reason.value, "message": state.message[:500]},
                    )
            elif (
                state.phase is Phase.READY
                and old is not None
                and (old[0] is Phase.STALLED or old[1] in (Reason.RETRYABLE_ERROR, Reason.NOT_CONVERGED))
            ):
                self._event(
                    EventKind.RECOVERED, f"{address} is Ready again", **where, detail={"was": old[1].value}
                )
        if revision is None:
            return
        if record.result == "ok" and record.deferred == 0:
            self._emit_revision(revision, "success", "in sync: every group matches this revision")
        elif record.result == "failed":
            counts = self.book.counts()
            stalled = counts[Phase.STALLED.value] + counts[Phase.RECONCILING.value]
            self._emit_revision(
                revision, "failure", f"not applied in full: {stalled} group(s) failed or stalled"
            )
        elif record.result == "error":
            self._emit_revision(revision, "error", "the pass failed; see the daemon's log")

    def _refusal(self, resource_group: str) -> str | None:
        return self.sharing.refusal(resource_group) if self.sharing is not None else None

    def _save(self) -> None:
        if self.sharing is not None:
            self.sharing.mark_dirty()
        if self.store is None:
            return
        try:
            self.store.save(self.book.to_json())
        except OSError as err:
            log.error("cannot write the state file", path=str(self.store.path), error=str(err))


def _errors_summary(errors: Sequence[PlanIssue]) -> str | None:
    """`last_pass.error` for a pass whose manifests or resource groups had errors: the first, and a count."""
    if not errors:
        return None
    first = errors[0]
    where = f"{first.source}: " if first.source else ""
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}{first.message}{more}"
