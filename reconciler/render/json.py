"""JSON of plans and apply results: the machine-readable output of the CLI (`-o json`) and `/status`.

Called by the CLI and the daemon. The shape is a public interface versioned by `format_version` ("1"): fields
may be added, never renamed or removed. Secrets never appear: a sensitive field's values are "(sensitive)"
(null where the field is being added or removed), and `Change.desired` is never read.

Plan (`plan_to_json`)::

    {"format_version": "1", "revision": str, "instance": str, "has_changes": bool, "reads": int|null,
     "changes": [{"resource_group": str, "name": str,
                  "action": "create|update|replace|tags|delete|conflict|noop", "adopt": bool,
                  "changed_paths": [pointer], "replace_paths": [pointer], "reason": str,
                  "held": str|null, "changes_something": bool, "source": "path:line:col"|null,
                  "fields": [{"path": pointer, "kind": "add|remove|change", "before": json, "after": json,
                              "sensitive": bool, "forces_replacement": bool}]}],
     "issues": [{"severity": "warning|error", "message": str, "source": str|null,
                 "resource_group": str|null, "name": str|null}],
     "summary": {"create": n, "update": n, "tags": n, "replace": n, "delete": n, "conflict": n, "noop": n,
                 "held": n, "errors": n, "warnings": n, "has_changes": bool}}

Changes are ordered by resource group and name, fields by path, issues errors first; keys are sorted in the
rendered text. Apply results (`apply_to_json`) have `format_version`, `revision`, `ok`, `outcomes` (one
object per group: resource_group, name, action, result, message, retryable, attempts, duration_s,
interrupted_after_delete) and `summary` (created, updated, replaced, tags_updated, deleted, failed,
recreate_failed, held, skipped, conflict, unchanged).
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.model.outcome import ApplyResult
from reconciler.model.plan import ACTION_ORDER, FORMAT_VERSION, Change, FieldChange, Plan, PlanIssue
from reconciler.render.values import (
    apply_counts,
    counts,
    field_is_sensitive,
    jsonable,
    safe_before_after,
    sorted_changes,
)


def _field_json(fc: FieldChange, change: Change) -> dict[str, Any]:
    before, after = safe_before_after(fc)
    return {
        "path": fc.path,
        "kind": fc.kind,
        "before": before,
        "after": after,
        "sensitive": field_is_sensitive(fc),
        "forces_replacement": fc.forces_replacement or fc.path in change.replace_paths,
    }


def change_to_json(change: Change) -> dict[str, Any]:
    """One plan entry; `desired` (which may hold resolved secrets) is deliberately absent."""
    return {
        "resource_group": change.resource_group,
        "name": change.name,
        "action": change.action.value,
        "adopt": change.adopt,
        "changed_paths": list(change.changed_paths),
        "replace_paths": list(change.replace_paths),
        "reason": change.reason,
        "held": change.held,
        "changes_something": change.changes_something,
        "source": change.source,
        "fields": [_field_json(fc, change) for fc in sorted(change.fields, key=lambda f: f.path)],
    }


def _issue_json(issue: PlanIssue) -> dict[str, Any]:
    return {
        "severity": issue.severity,
        "message": issue.message,
        "source": issue.source,
        "resource_group": issue.resource_group,
        "name": issue.name,
    }


def plan_to_json(plan: Plan) -> dict[str, Any]:
    """The plan as plain JSON data (format_version "1"); see the module docstring for the guarantees.

    `summary` counts every action (zeros included) over all entries, plus `held` (entries whose action is
    held back by policy), `errors`, `warnings` and `has_changes`; `has_changes` is also top level.
    """
    _, held = counts(plan)
    summary: dict[str, Any] = {a.value: 0 for a in ACTION_ORDER}
    for c in plan.changes:
        summary[c.action.value] += 1
    summary["held"] = held
    summary["errors"] = len(plan.errors)
    summary["warnings"] = len(plan.warnings)
    summary["has_changes"] = plan.has_changes
    return {
        "format_version": FORMAT_VERSION,
        "revision": plan.revision,
        "instance": plan.instance,
        "has_changes": plan.has_changes,
        "reads": plan.reads,
        "changes": [change_to_json(c) for c in sorted_changes(plan.changes)],
        "issues": [
            _issue_json(i)
            for i in sorted(plan.issues, key=lambda i: (i.severity != "error", i.source or "", i.message))
        ],
        "summary": summary,
    }


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(jsonable(data), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def render_plan_json(plan: Plan) -> str:
    """`plan_to_json` serialised: indent 2, sorted keys, UTF-8 text, a trailing newline. Deterministic."""
    return _dumps(plan_to_json(plan))


def apply_to_json(result: ApplyResult) -> dict[str, Any]:
    """Apply outcomes as plain JSON data, with `ok` and a `summary` of counts (every key present)."""
    return {
        "format_version": FORMAT_VERSION,
        "revision": result.revision,
        "ok": result.ok,
        "outcomes": [
            {
                "resource_group": o.resource_group,
                "name": o.name,
                "action": o.action.value,
                "result": o.result.value,
                "message": o.message,
                "retryable": o.retryable,
                "attempts": o.attempts,
                "duration_s": round(o.duration_s, 3),
                "interrupted_after_delete": o.interrupted_after_delete,
            }
            for o in sorted(result.outcomes, key=lambda o: (o.resource_group.lower(), o.name.lower()))
        ],
        "summary": apply_counts(result),
    }


def render_apply_json(result: ApplyResult) -> str:
    """`apply_to_json` serialised like `render_plan_json`."""
    return _dumps(apply_to_json(result))
