"""What the status page shows, as plain data: pure functions of the daemon's `/status` JSON (the same data,
already free of secrets), the live summaries of the last list call and the clock.

Called by `reconciler.daemon.ui.routes`; the templates only lay these out. Keeping the page a function of the
JSON means the page can never show something `/status` does not (and `/status` never holds a secret value).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from reconciler.render.blocks import Block

PHASES = ("Ready", "Reconciling", "Stalled")
MAX_ROWS = 2000  # the rest are counted; a search narrows them down


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


def _key(resource_group: str, name: str) -> tuple[str, str]:
    return (resource_group.lower(), name.lower())


def plan_index(status: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    plan = status.get("last_plan") or {}
    return {_key(c["resource_group"], c["name"]): c for c in plan.get("changes", ())}


def just_applied(change: Mapping[str, Any] | None, group: Mapping[str, Any]) -> bool:
    """The last pass applied this group's planned change (the plan predates the apply)."""
    return (
        change is not None
        and bool(change.get("changes_something"))
        and group.get("reason") == "Applied"
        and group.get("last_applied_revision") is not None
    )


def drift_of(change: Mapping[str, Any] | None, group: Mapping[str, Any]) -> str:
    """The row's sync column: what the last plan says of the group."""
    if change is None:
        return "unknown"
    action = change["action"]
    if action == "noop":
        return "in sync"
    if just_applied(change, group):
        return f"in sync ({action} applied)"
    if change.get("held"):
        return f"{action} (held)"
    return {"create": "missing", "delete": "to prune", "conflict": "not ours"}.get(
        action, f"drifted: {action}"
    )


def _matches(row: Mapping[str, Any], query: str, phase: str) -> bool:
    if phase and row["phase"] != phase:
        return False
    if not query:
        return True
    haystack = " ".join(str(row[k] or "") for k in ("resource_group", "name", "reason", "drift", "message"))
    return query.lower() in haystack.lower()


def fleet(
    status: Mapping[str, Any],
    observed: Mapping[tuple[str, str], Any],
    *,
    now: float,
    query: str = "",
    phase: str = "",
) -> dict[str, Any]:
    changes = plan_index(status)
    rows: list[dict[str, Any]] = []
    for group in status.get("groups", ()):
        key = _key(group["resource_group"], group["name"])
        change = changes.get(key)
        live = observed.get(key)
        history = group.get("history") or []
        last = history[-1] if history else None
        rows.append(
            {
                "resource_group": group["resource_group"],
                "name": group["name"],
                "phase": group["state"],
                "reason": group["reason"],
                "message": group["message"],
                "drift": drift_of(change, group),
                "provisioning_state": getattr(live, "provisioning_state", None),
                "instance_state": getattr(live, "instance_state", None),
                "revision": group.get("last_applied_revision") or getattr(live, "revision", None),
                "last_change": (
                    {
                        "action": last["action"],
                        "result": last["result"],
                        "at": iso(last["at"]),
                        "ago": ago(last["at"], now),
                    }
                    if last
                    else None
                ),
            }
        )
    counts = {p: sum(1 for r in rows if r["phase"] == p) for p in PHASES}
    shown = [r for r in rows if _matches(r, query, phase)]
    last_pass = status.get("last_pass")
    return {
        "instance": status.get("instance"),
        "total": len(rows),
        "counts": counts,
        "rows": shown[:MAX_ROWS],
        "matching": len(shown),
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
    observed: Mapping[tuple[str, str], Any],
    resource_group: str,
    name: str,
    *,
    now: float,
    live: Mapping[str, Any] | None,
    diff: Block | None = None,
) -> dict[str, Any] | None:
    """One group's page; None when the daemon does not know the group. `diff`: the plan's block of the
    group's last planned change (the same lines `reconcile plan` prints)."""
    key = _key(resource_group, name)
    found = next(
        (g for g in status.get("groups", ()) if _key(g["resource_group"], g["name"]) == key),
        None,
    )
    if found is None:
        return None
    change = plan_index(status).get(key)
    row = fleet({**status, "groups": [found]}, observed, now=now)["rows"][0]
    stalled = found["state"] == "Stalled"
    return {
        **row,
        "instance": status.get("instance"),
        "stalled": stalled,
        "why": found.get("last_error") or found["message"] if stalled or found.get("last_error") else None,
        "last_attempted_revision": found.get("last_attempted_revision"),
        "failures": found.get("failures"),
        "next_retry": iso(found.get("next_retry_at")),
        "in_flight": found.get("in_flight"),
        "change": _change(change, diff),
        "just_applied": just_applied(change, found),
        "history": [
            {**h, "when": iso(h.get("at")), "ago": ago(h.get("at"), now)}
            for h in reversed(found.get("history", ()))
        ],
        "live": live,
        "generated_at": now,
        "generated": iso(now),
        "daemon": daemon(status, now),
    }


_SIGN_WORDS = {"+": "add", "-": "remove", "~": "change"}


def _change(change: Mapping[str, Any] | None, diff: Block | None) -> dict[str, Any] | None:
    if change is None:
        return None
    return {
        "action": change["action"],
        "header": diff.header if diff is not None else change["action"],
        "symbol": diff.symbol if diff is not None else "",
        "reason": change.get("reason"),
        "comments": list(diff.comments) if diff is not None else [],
        "held": change.get("held"),
        "source": change.get("source"),
        "changes_something": change.get("changes_something"),
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
