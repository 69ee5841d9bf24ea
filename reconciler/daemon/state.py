"""Per-group state of the daemon (Ready / Reconciling / Stalled) and the policy of what each pass may apply.

The worker (`reconciler.daemon.worker`) asks `StateBook.admit` which planned changes to apply, records each
group's outcome, and persists the book under `--state-dir` (JSON, written atomically) so that a restart can
report what a killed or stopped daemon left unfinished. Correctness after a crash never depends on that file:
every pass re-observes Azure. `/status` and the metrics read the book. The book also holds the job scheduler's
run ledger (`reconciler.daemon.jobs.ledger`, under the file's `jobs` key), which is what keeps a scheduled
job slot from running twice.

Policy: a stalled group (invalid manifest, rejected update, authorisation) is left out until its manifest
fingerprint or the revision changes; a retryable failure backs off exponentially per group, with a cap and
jitter, and only that group waits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.daemon.jobs.ledger import JobLedger, entries_json
from reconciler.model.outcome import GroupOutcome, Result
from reconciler.model.plan import Action, Change
from reconciler.model.text import shown

STATE_FILE_VERSION = 1
HISTORY_LENGTH = 10

Key = tuple[str, str]

log = structlog.get_logger("reconciler.daemon.state")


class _Entry(BaseModel):
    """The schema of the state file's entries: strict types, finite numbers, unknown keys ignored."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="ignore")


class _OutcomeIn(_Entry):
    at: float
    action: str
    result: str
    duration_s: float = Field(default=0.0, ge=0)
    revision: str = ""
    message: str = ""


class _GroupIn(_Entry):
    resource_group: Annotated[str, Field(min_length=1, max_length=90)]
    name: Annotated[str, Field(min_length=1, max_length=63)]
    state: str = "Reconciling"
    reason: str = "Progressing"
    message: str = ""
    last_applied_revision: str | None = None
    last_attempted_revision: str | None = None
    last_error: str | None = None
    stalled_on: Annotated[list[str], Field(min_length=2, max_length=2)] | None = None
    failures: int = Field(default=0, ge=0, le=1_000_000)
    next_retry_at: float | None = None
    in_flight: str | None = None
    applied_fingerprint: str | None = None
    history: list[Any] = Field(default_factory=list)


class Phase(StrEnum):
    READY = "Ready"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"


class Reason(StrEnum):
    IN_SYNC = "InSync"
    APPLIED = "Applied"
    PROGRESSING = "Progressing"
    BACKING_OFF = "BackingOff"
    RETRYABLE_ERROR = "RetryableError"
    NOT_CONVERGED = "NotConverged"
    APPLY_REJECTED = "ApplyRejected"
    INVALID_MANIFEST = "InvalidManifest"
    CONFLICT = "Conflict"
    HELD = "Held"
    PLANNED = "Planned"  # --dry-run: the change is reported, never applied
    INTERRUPTED = "Interrupted"
    NOT_ATTEMPTED = "NotAttempted"


def fingerprint(change: Change) -> str:
    """What identifies "the same desired state" of a group, without the revision and without secrets.

    The write tags carry the spec fingerprint and the keyed hash of the secrets that planning computed, so a
    rotated secret counts as a change; the revision tag is left out because the revision is compared apart.
    """
    tags = {k: v for k, v in change.write_tags.items() if not k.endswith("revision")}
    material = json.dumps(
        {"action": change.action.value, "tags": tags, "paths": list(change.changed_paths)}, sort_keys=True
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BackoffPolicy:
    base: float = 10.0
    cap: float = 600.0
    jitter: float = 0.2  # +/- this fraction

    def delay(self, failures: int, rng: random.Random, retry_after: float | None = None) -> float:
        raw = min(self.cap, self.base * 2 ** max(0, failures - 1))
        spread = raw * (1.0 + rng.uniform(-self.jitter, self.jitter)) if self.jitter > 0 else raw
        return float(max(min(spread, self.cap), retry_after or 0.0))


@dataclass(frozen=True)
class OutcomeRecord:
    at: float
    action: str
    result: str
    duration_s: float
    revision: str
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "action": self.action,
            "result": self.result,
            "duration_s": round(self.duration_s, 3),
            "revision": self.revision,
            "message": self.message,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OutcomeRecord:
        return cls(
            at=float(data["at"]),
            action=str(data["action"]),
            result=str(data["result"]),
            duration_s=float(data.get("duration_s", 0.0)),
            revision=str(data.get("revision", "")),
            message=str(data.get("message", "")),
        )


@dataclass
class GroupState:
    resource_group: str
    name: str
    phase: Phase = Phase.RECONCILING
    reason: Reason = Reason.PROGRESSING
    message: str = ""
    last_applied_revision: str | None = None
    last_attempted_revision: str | None = None
    last_error: str | None = None
    # What the group was stalled on: (fingerprint, revision); a different pair lets it be tried again.
    stalled_on: tuple[str, str] | None = None
    failures: int = 0  # consecutive retryable failures
    next_retry_at: float | None = None
    # The action being applied when the state was last written; set on a restart means it was cut short.
    in_flight: str | None = None
    # The fingerprint that was last applied successfully: a later plan for the same one is drift.
    applied_fingerprint: str | None = None
    # The last `HISTORY_LENGTH` outcomes, oldest first. A tuple, replaced on each outcome: most groups of a
    # large fleet have none, and an empty deque costs 760 bytes apiece.
    history: tuple[OutcomeRecord, ...] = ()
    # The plan entry `applied_fingerprint` was last computed from (never saved): the daemon's plan memo
    # hands back the same entry for a group unchanged since, so a converged fleet is not hashed every pass.
    fingerprinted: Change | None = field(default=None, repr=False, compare=False)

    @property
    def key(self) -> Key:
        return (self.resource_group.lower(), self.name.lower())

    def remember(self, outcome: OutcomeRecord) -> None:
        self.history = (*self.history[-(HISTORY_LENGTH - 1) :], outcome)

    def set(self, phase: Phase, reason: Reason, message: str = "") -> None:
        self.phase = phase
        self.reason = reason
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return {
            "resource_group": self.resource_group,
            "name": self.name,
            "state": self.phase.value,
            "reason": self.reason.value,
            "message": self.message,
            "last_applied_revision": self.last_applied_revision,
            "last_attempted_revision": self.last_attempted_revision,
            "last_error": self.last_error,
            "stalled_on": list(self.stalled_on) if self.stalled_on else None,
            "failures": self.failures,
            "next_retry_at": self.next_retry_at,
            "in_flight": self.in_flight,
            "applied_fingerprint": self.applied_fingerprint,
            "history": [h.to_json() for h in self.history],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GroupState:
        """A group from the state file; `ValueError` (pydantic's `ValidationError` included) when it does not
        fit the schema. A history entry that does not fit is dropped alone."""
        item = _GroupIn.model_validate(data)
        state = cls(
            resource_group=item.resource_group,
            name=item.name,
            phase=Phase(item.state),
            reason=Reason(item.reason),
            message=item.message,
            last_applied_revision=item.last_applied_revision,
            last_attempted_revision=item.last_attempted_revision,
            last_error=item.last_error,
            stalled_on=(item.stalled_on[0], item.stalled_on[1]) if item.stalled_on else None,
            failures=item.failures,
            next_retry_at=item.next_retry_at,
            in_flight=item.in_flight,
            applied_fingerprint=item.applied_fingerprint,
        )
        for entry in item.history[-HISTORY_LENGTH:]:
            with contextlib.suppress(ValidationError):
                record = _OutcomeIn.model_validate(entry)
                state.remember(OutcomeRecord(**record.model_dump()))
        return state


@dataclass(frozen=True)
class Decision:
    """Why a planned change is or is not applied this pass."""

    change: Change
    apply: bool
    why: str = ""


class StateBook:
    """Every group's state, keyed by (resource group, name) in lower case."""

    def __init__(self, *, backoff: BackoffPolicy | None = None, rng: random.Random | None = None) -> None:
        self.groups: dict[Key, GroupState] = {}
        self.backoff = backoff or BackoffPolicy()
        self.rng = rng or random.Random()
        # Found in the state file at start-up: what a previous run left unfinished, for people to see.
        self.unfinished_at_start: list[dict[str, Any]] = []
        self.jobs = JobLedger()

    def get(self, resource_group: str, name: str) -> GroupState:
        key = (resource_group.lower(), name.lower())
        state = self.groups.get(key)
        if state is None:
            state = GroupState(resource_group=resource_group, name=name)
            self.groups[key] = state
        return state

    def counts(self) -> dict[str, int]:
        counts = {p.value: 0 for p in Phase}
        for state in self.groups.values():
            counts[state.phase.value] += 1
        return counts

    def next_retry(self) -> float | None:
        times = [s.next_retry_at for s in self.groups.values() if s.next_retry_at is not None]
        return min(times) if times else None

    # -- the policy -------------------------------------------------------------------------------------

    def admit(self, change: Change, revision: str, now: float) -> Decision:
        """Whether this pass may apply `change` (one that changes something)."""
        state = self.groups.get(change.key)
        if state is None:
            return Decision(change, True)
        if state.phase is Phase.STALLED and state.stalled_on == (fingerprint(change), revision):
            return Decision(
                change,
                False,
                f"stalled ({state.reason.value}): waiting for its manifest or revision to change",
            )
        if state.next_retry_at is not None and state.next_retry_at > now:
            return Decision(change, False, f"backing off after {state.failures} failure(s)")
        return Decision(change, True)

    def is_drift(self, change: Change, revision: str) -> bool:
        """A change planned for what was already applied: Azure moved, not the manifest."""
        state = self.groups.get(change.key)
        return (
            state is not None
            and state.applied_fingerprint is not None
            and state.last_applied_revision == revision
            and state.applied_fingerprint == _applied_fingerprint_of(change)
        )

    def begin(self, change: Change, revision: str) -> None:
        state = self.get(change.resource_group, change.name)
        state.last_attempted_revision = revision
        state.in_flight = change.action.value
        state.set(Phase.RECONCILING, Reason.PROGRESSING, f"{change.action.value} in progress")

    def record_outcome(
        self, change: Change, outcome: GroupOutcome, revision: str, now: float
    ) -> GroupState | None:
        """Update a group from what applying its change did; returns None when the group is gone (pruned)."""
        state = self.get(change.resource_group, change.name)
        state.in_flight = None
        state.remember(
            OutcomeRecord(
                at=now,
                action=outcome.action.value,
                result=outcome.result.value,
                duration_s=outcome.duration_s,
                revision=revision,
                message=outcome.message,
            )
        )
        if outcome.result is Result.SUCCEEDED:
            if change.action is Action.DELETE:
                del self.groups[change.key]
                return None
            state.last_applied_revision = revision
            state.applied_fingerprint = _applied_fingerprint_of(change)
            state.fingerprinted = change
            state.last_error = None
            state.failures = 0
            state.next_retry_at = None
            state.stalled_on = None
            state.set(Phase.READY, Reason.APPLIED, f"{change.action.value} succeeded")
        elif outcome.failed:  # FAILED, or RECREATE_FAILED (retryable: the next pass creates it)
            state.last_error = outcome.message
            if outcome.retryable:
                self._back_off(state, now, outcome.message)
            else:
                state.failures = 0
                state.next_retry_at = None
                state.stalled_on = (fingerprint(change), revision)
                state.set(Phase.STALLED, Reason.APPLY_REJECTED, outcome.message)
        elif outcome.result is Result.HELD:
            state.set(Phase.READY, Reason.HELD, change.held or outcome.message)
        elif outcome.interrupted_after_delete:
            state.in_flight = change.action.value
            state.set(
                Phase.RECONCILING,
                Reason.INTERRUPTED,
                "replace interrupted after the delete; the next pass creates the group",
            )
        else:
            state.set(Phase.RECONCILING, Reason.NOT_ATTEMPTED, outcome.message or "not attempted this pass")
        return state

    def record_unconverged(self, change: Change, now: float) -> None:
        state = self.get(change.resource_group, change.name)
        self._back_off(state, now, "still differs from its manifest after apply")
        state.set(Phase.RECONCILING, Reason.NOT_CONVERGED, "still differs from its manifest after apply")

    def record_interrupted(self, change: Change) -> None:
        state = self.get(change.resource_group, change.name)
        state.in_flight = change.action.value
        state.set(
            Phase.RECONCILING,
            Reason.INTERRUPTED,
            f"{change.action.value} interrupted by shutdown; the next pass re-observes and finishes it",
        )

    def _back_off(self, state: GroupState, now: float, message: str) -> None:
        state.failures += 1
        delay = self.backoff.delay(state.failures, self.rng)
        state.next_retry_at = now + delay
        state.stalled_on = None
        state.set(Phase.RECONCILING, Reason.RETRYABLE_ERROR, f"{message}; retrying in {delay:.0f}s")

    def record_noop(self, change: Change, revision: str) -> None:
        state = self.get(change.resource_group, change.name)
        state.last_error = None
        state.failures = 0
        state.next_retry_at = None
        state.stalled_on = None
        state.in_flight = None
        # In sync at this revision is applied at this revision (as Flux's lastAppliedRevision).
        state.last_applied_revision = revision
        if change.write_tags and state.fingerprinted is not change:
            state.applied_fingerprint = _applied_fingerprint_of(change)
            state.fingerprinted = change
        state.set(Phase.READY, Reason.IN_SYNC, "matches its manifest")

    def record_held(self, change: Change, reason: Reason, message: str) -> None:
        state = self.get(change.resource_group, change.name)
        phase = Phase.STALLED if reason is Reason.CONFLICT else Phase.READY
        if reason is Reason.PLANNED:
            phase = Phase.RECONCILING
        state.set(phase, reason, message)

    def record_invalid(self, key: Key, message: str, revision: str) -> None:
        state = self.get(*key) if key not in self.groups else self.groups[key]
        state.last_error = message
        state.last_attempted_revision = revision
        state.stalled_on = ("invalid", revision)
        state.next_retry_at = None
        state.set(Phase.STALLED, Reason.INVALID_MANIFEST, message)

    def forget_except(self, keys: Iterable[Key], within: Callable[[str], bool] | None = None) -> None:
        """Drop groups that neither the plan nor the manifests mention any more; with `within`, only among
        the resource groups it selects (those the plan covered: a shard taken over meanwhile keeps its
        book)."""
        keep = set(keys)
        for key in list(self.groups):
            if key not in keep and (within is None or within(key[0])):
                del self.groups[key]

    # -- persistence ------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_FILE_VERSION,
            "groups": [s.to_json() for s in sorted(self.groups.values(), key=lambda s: s.key)],
            "jobs": self.jobs.to_json(),
        }

    def restore(self, data: Mapping[str, Any], *, now: float | None = None) -> list[dict[str, Any]]:
        """Load a saved book; returns (and remembers) the groups whose apply was cut short.

        Damage only loses the report of unfinished work: whatever does not fit the schema (another version,
        a wrong type, an unknown phase) is dropped with one log line, and the rest is kept. The run ledger
        is read the same way; its runs left running are recorded as interrupted at `now`."""
        if data.get("version") != STATE_FILE_VERSION:
            log.warning("state file of another version ignored", version=shown(data.get("version")))
            return []
        self.jobs.restore(data.get("jobs"), now=now)
        groups = data.get("groups")
        items = groups if isinstance(groups, list) else []
        dropped: list[str] = [] if isinstance(groups, list) or groups is None else ["groups is not a list"]
        unfinished: list[dict[str, Any]] = []
        for item in items:
            try:
                state = GroupState.from_json(item)
            except (ValueError, TypeError) as err:
                dropped.append(str(err).splitlines()[0] if str(err) else type(err).__name__)
                continue
            if state.in_flight:
                unfinished.append(
                    {
                        "resource_group": state.resource_group,
                        "name": state.name,
                        "action": state.in_flight,
                        "revision": state.last_attempted_revision,
                    }
                )
                state.set(
                    Phase.RECONCILING,
                    Reason.INTERRUPTED,
                    f"{state.in_flight} was cut short by the previous run; "
                    "this run re-observes and finishes it",
                )
            self.groups[state.key] = state
        if dropped:
            log.warning("state file entries dropped", count=len(dropped), first=shown(dropped[0]))
        self.unfinished_at_start = unfinished
        return unfinished

    # -- shards (DESIGN section 13) -----------------------------------------------------------------------

    def drop(self, within: Callable[[str], bool]) -> None:
        """Forget the groups and jobs of the resource groups `within` selects (a shard given up)."""
        for key in [k for k in self.groups if within(k[0])]:
            del self.groups[key]
        for key in [k for k in self.jobs.jobs if within(k[0])]:
            del self.jobs.jobs[key]
        self.unfinished_at_start = [u for u in self.unfinished_at_start if not within(u["resource_group"])]

    def adopt(
        self, data: Mapping[str, Any], within: Callable[[str], bool], *, now: float | None = None
    ) -> list[dict[str, Any]]:
        """Take over the groups and jobs of a shard from its saved book (`restore`'s format), replacing what
        this book held for them; entries outside `within` are ignored. Returns the groups whose apply the
        previous holder left unfinished; job runs it left running are recorded as interrupted, so their
        slot is not run again."""
        self.drop(within)
        saved = StateBook(backoff=self.backoff, rng=self.rng)
        unfinished = [u for u in saved.restore(data, now=now) if within(u["resource_group"])]
        self.groups.update({k: v for k, v in saved.groups.items() if within(k[0])})
        self.jobs.jobs.update({k: v for k, v in saved.jobs.jobs.items() if within(k[0])})
        self.unfinished_at_start.extend(unfinished)
        return unfinished


_GROUP_DEFAULTS = {
    name: info.get_default(call_default_factory=True)
    for name, info in _GroupIn.model_fields.items()
    if not info.is_required()
}


def compact_group(item: Mapping[str, Any]) -> dict[str, Any]:
    """A saved group without the fields at their defaults (`GroupState.from_json` restores them): the shared
    books hold thousands of converged groups, most of whose fields are empty."""
    return {k: v for k, v in item.items() if k not in _GROUP_DEFAULTS or v != _GROUP_DEFAULTS[k]}


def split_saved(data: Mapping[str, Any], shard: Callable[[str], int]) -> dict[int, dict[str, Any]]:
    """A saved book (`StateBook.to_json`) cut into one book per shard; shards with nothing are left out."""
    books: dict[int, dict[str, Any]] = {}

    def book(index: int) -> dict[str, Any]:
        return books.setdefault(index, {"version": STATE_FILE_VERSION, "groups": [], "jobs": []})

    for part in ("groups", "jobs"):
        items = data.get(part)
        for item in items if isinstance(items, list) else []:
            resource_group = item.get("resource_group") if isinstance(item, Mapping) else None
            if isinstance(resource_group, str):
                book(shard(resource_group))[part].append(item)
    return books


def _applied_fingerprint_of(change: Change) -> str:
    # Drift compares what is applied, whatever action got it there.
    tags = {k: v for k, v in change.write_tags.items() if not k.endswith("revision")}
    return hashlib.sha256(json.dumps(tags, sort_keys=True).encode()).hexdigest()[:16]


class StateStore:
    """The state file under `--state-dir`, replaced atomically so a crash never leaves half a file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / "daemon-state.json"
        self._written: bytes | None = None  # digest of the text last written

    def load(self) -> dict[str, Any] | None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as err:
            log.warning("state file unreadable, starting without it", path=str(self.path), error=shown(err))
            return None
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as err:
            # A damaged file only loses the report of what was unfinished; the next pass converges anyway.
            log.warning("state file damaged, starting without it", path=str(self.path), error=shown(err))
            return None
        if not isinstance(data, dict):
            log.warning("state file damaged, starting without it", path=str(self.path), error="not an object")
            return None
        return data

    def save(self, data: Mapping[str, Any]) -> None:
        """Write `data` unless it is what this store last wrote (a converged pass changes nothing)."""
        # Compact, in one piece: `indent` (and `json.dump`'s chunks) take the pure-Python encoder, 3x slower
        # on a large fleet's state.
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
        digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
        if digest == self._written and self.path.exists():
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".daemon-state.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._written = digest


def read_job_ledger(directory: Path) -> list[dict[str, Any]]:
    """The run ledger in the state file under `directory` (a daemon's `--state-dir`), job by job as the file
    holds it (schedule, cursors, runs oldest first), for `reconcile status` beside or after a daemon. Runs
    the daemon has in flight read as `running`; a missing or damaged file reads as no jobs."""
    data = StateStore(directory).load()
    if data is None or data.get("version") != STATE_FILE_VERSION:
        return []
    return entries_json(data)
