"""What the status page shows, as plain data: pure functions of what `/status` is made of (the daemon part of
its JSON, the state book's groups, the last plan's entries, which never hold a secret value), the summaries
of the last list call, a group's live read and the clock.

Called by `reconciler.daemon.ui.routes`; the templates only lay these out. The fleet scans the groups once and
builds rows only for those it shows, so a refresh stays cheap on a large fleet.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from reconciler.model.plan import Change
from reconciler.render.blocks import Block

PHASES = ("Ready", "Reconciling", "Stalled")
MAX_ROWS = 500  # the rest are counted; a search narrows them down (and each refresh stays small)


def iso(at: float | None) -> str | None:
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def ago(at: float | None, now: float) -> str:
    if at is None:
        return "never"
    delta = max(0.0, now - at)
    if delta < 60:
        return f"{delta:.0f}s ago"
    if delta < 3600:
        return f"{delta / 60:.0f}m ago"
    if delta < 86400:
        return f"{delta / 3600:.1f}h ago"
    return f"{delta / 86400:.1f}d ago"


Key = tuple[str, str]


class HistoryLike(Protocol):
    """One outcome of a group's history (`reconciler.daemon.state.OutcomeRecord`)."""

    @property
    def at(self) -> float: ...
    @property
    def action(self) -> str: ...
    @property
    def result(self) -> str: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def revision(self) -> str: ...
    @property
    def message(self) -> str: ...


class GroupLike(Protocol):
    """What a row reads of a group (`reconciler.daemon.state.GroupState`)."""

    resource_group: str
    name: str
    message: str
    last_applied_revision: str | None
    last_attempted_revision: str | None
    last_error: str | None
    failures: int
    next_retry_at: float | None
    in_flight: str | None

    @property
    def phase(self) -> Any: ...
    @property
    def reason(self) -> Any: ...
    @property
    def history(self) -> Sequence[HistoryLike]: ...
    @property
    def key(self) -> Key: ...


def just_applied(change: Change | None, group: GroupLike) -> bool:
    """The last pass applied this group's planned change (the plan predates the apply)."""
    return (
        change is not None
        and change.changes_something
        and str(group.reason) == "Applied"
        and group.last_applied_revision is not None
    )


def drift_of(change: Change | None, group: GroupLike) -> str:
    """The row's sync column: what the last plan says of the group."""
    if change is None:
        return "unknown"
    action = change.action.value
    if action == "noop":
        return "in sync"
    if just_applied(change, group):
        return f"in sync ({action} applied)"
    if change.held:
        return f"{action} (held)"
    return {"create": "missing", "delete": "to prune", "conflict": "not ours"}.get(
        action, f"drifted: {action}"
    )


def _matches(group: GroupLike, drift: str, query: str, phase: str) -> bool:
    if phase and str(group.phase) != phase:
        return False
    if not query:
        return True
    haystack = " ".join((group.resource_group, group.name, str(group.reason), drift, group.message))
    return query.lower() in haystack.lower()


def row(group: GroupLike, change: Change | None, live: Any, now: float) -> dict[str, Any]:
    history = group.history
    last = history[-1] if history else None
    return {
        "resource_group": group.resource_group,
        "name": group.name,
        "phase": str(group.phase),
        "reason": str(group.reason),
        "message": group.message,
        "drift": drift_of(change, group),
        "provisioning_state": getattr(live, "provisioning_state", None),
        "instance_state": getattr(live, "instance_state", None),
        "revision": group.last_applied_revision or getattr(live, "revision", None),
        "last_change": (
            {"action": last.action, "result": last.result, "at": iso(last.at), "ago": ago(last.at, now)}
            if last is not None
            else None
        ),
    }


def fleet(
    status: Mapping[str, Any],
    groups: Iterable[GroupLike],
    changes: Mapping[Key, Change],
    observed: Mapping[Key, Any],
    *,
    now: float,
    query: str = "",
    phase: str = "",
) -> dict[str, Any]:
    """The fleet page: counts over every group, rows (sorted by address) for the first `MAX_ROWS` that
    match the search and the phase; rows are built only for those, so a large fleet costs one scan."""
    counts = dict.fromkeys(PHASES, 0)
    total = 0
    matching: list[GroupLike] = []
    for group in sorted(groups, key=lambda g: g.key):
        total += 1
        counts[str(group.phase)] = counts.get(str(group.phase), 0) + 1
        if (query or phase) and not _matches(group, drift_of(changes.get(group.key), group), query, phase):
            continue
        matching.append(group)
    rows = [row(g, changes.get(g.key), observed.get(g.key), now) for g in matching[:MAX_ROWS]]
    last_pass = status.get("last_pass")
    return {
        "instance": status.get("instance"),
        "total": total,
        "counts": counts,
        "rows": rows,
        "matching": len(matching),
        "query": query,
        "phase": phase,
        "phases": PHASES,
        "jobs": [_job(j, now) for j in status.get("jobs", ())],
        "daemon": daemon(status, now),
        "generated_at": now,
        "generated": iso(now),
        "last_pass_at": last_pass.get("finished_at") if last_pass else None,
    }


def _job(job: Mapping[str, Any], now: float) -> dict[str, Any]:
    runs = job.get("history") or []
    return {
        "resource_group": job["resource_group"],
        "name": job["name"],
        "schedule": (job.get("policy") or {}).get("schedule"),
        "next_run": job.get("next_run"),
        "active": len(job.get("active") or ()),
        "runs": [
            {
                "result": r.get("result"),
                "exit_code": r.get("exit_code"),
                "at": iso(r.get("started_at")),
                "ago": ago(r.get("started_at"), now),
                "trigger": r.get("trigger"),
                "duration_s": r.get("duration_s"),
            }
            for r in runs[:5]
        ],
    }


def _pass(record: Mapping[str, Any] | None, now: float) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "number": record.get("number"),
        "result": record.get("result"),
        "revision": record.get("revision"),
        "started": iso(record.get("started_at")),
        "ago": ago(record.get("finished_at") or record.get("started_at"), now),
        "duration_s": record.get("duration_s"),
        "applied": record.get("applied"),
        "deferred": record.get("deferred"),
        "error": record.get("error"),
        "triggers": sorted({t.get("kind", "") for t in record.get("triggers", ())}),
    }


def daemon(status: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The revision, triggers, last passes, git and coordination panel."""
    coordination = status.get("coordination")
    return {
        "ready": status.get("ready"),
        "shutting_down": status.get("shutting_down"),
        "dry_run": status.get("dry_run"),
        "revision": status.get("revision"),
        "current_pass": _pass(status.get("current_pass"), now),
        "passes": [_pass(p, now) for p in reversed(status.get("recent_passes") or ())],
        "pending_triggers": [
            {"kind": t.get("kind"), "reason": t.get("reason")} for t in status.get("pending_triggers", ())
        ],
        "git": status.get("git"),
        "coordination": (
            {
                "replica": coordination.get("replica"),
                "leader": coordination.get("leader"),
                "reachable": coordination.get("reachable"),
                "owned": coordination.get("owned"),
                "owners": coordination.get("owners"),
                "replicas": coordination.get("replicas"),
            }
            if coordination
            else None
        ),
        "unfinished_at_start": status.get("unfinished_at_start") or [],
    }


def group(
    status: Mapping[str, Any],
    state: GroupLike,
    change: Change | None,
    live_summary: Any,
    *,
    now: float,
    live: Mapping[str, Any] | None,
    diff: Block | None = None,
) -> dict[str, Any]:
    """One group's page. `diff`: the plan's block of the group's last planned change (the same lines
    `reconcile plan` prints); `live`: what Azure said when the page was asked for."""
    base = row(state, change, live_summary, now)
    if live is not None and live.get("ok"):
        base = {
            **base,
            "provisioning_state": live.get("provisioning_state"),
            "instance_state": live.get("instance_state"),
        }
    stalled = str(state.phase) == "Stalled"
    return {
        **base,
        "instance": status.get("instance"),
        "stalled": stalled,
        "why": (state.last_error or state.message) if stalled or state.last_error else None,
        "last_attempted_revision": state.last_attempted_revision,
        "failures": state.failures,
        "next_retry": iso(state.next_retry_at),
        "in_flight": state.in_flight,
        "change": _change(change, diff),
        "just_applied": just_applied(change, state),
        "history": [
            {
                "at": h.at,
                "action": h.action,
                "result": h.result,
                "duration_s": h.duration_s,
                "revision": h.revision,
                "message": h.message,
                "when": iso(h.at),
                "ago": ago(h.at, now),
            }
            for h in reversed(state.history)
        ],
        "live": live,
        "generated_at": now,
        "generated": iso(now),
        "daemon": daemon(status, now),
    }


_SIGN_WORDS = {"+": "add", "-": "remove", "~": "change"}


def _change(change: Change | None, diff: Block | None) -> dict[str, Any] | None:
    if change is None:
        return None
    return {
        "action": change.action.value,
        "header": diff.header if diff is not None else change.action.value,
        "symbol": diff.symbol if diff is not None else "",
        "reason": change.reason,
        "comments": list(diff.comments) if diff is not None else [],
        "held": change.held,
        "source": change.source,
        "changes_something": change.changes_something,
        "lines": [
            {
                "sign": line.sign,
                "kind": _SIGN_WORDS.get(line.sign, line.sign),
                "path": line.path,
                "value": line.value,
                "forces_replacement": line.forces_replacement,
            }
            for line in (diff.lines if diff is not None else ())
        ],
        "hidden": diff.hidden if diff is not None else 0,
    }
