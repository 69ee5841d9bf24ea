"""Value formatting and secret redaction shared by every renderer (text, markdown, JSON).

Called by `reconciler.render.text`, `.markdown` and `.json`; `format_value` is exported for the CLI/daemon.
Redaction here is defence in depth: planning already marks secret fields `sensitive=True` and never stores
their values, but a renderer must not leak a secret even when handed a FieldChange that was built carelessly.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from enum import Enum
from typing import Any

from reconciler.model.outcome import ApplyResult, GroupOutcome, Result
from reconciler.model.plan import ACTION_ORDER, SENSITIVE, Action, Change, FieldChange, Plan

# Keys whose values ACI treats as secret (`x-ms-secret` in the 2023-05-01 spec, plus the fields a GET strips:
# storage keys, secret volumes, extension protected settings). Compared case-insensitively because manifests
# may spell keys in any case ARM accepts.
SENSITIVE_KEYS = frozenset(
    {
        "securevalue",
        "password",
        "storageaccountkey",
        "workspacekey",
        "workspaceresourceid",
        "protectedsettings",
        "secret",
    }
)

# Keyed lists and maps: the pointer segment after one of these is a user-chosen key (a container named
# `secret`, a tag called `password`), not a field name, so it must not trigger redaction by itself.
_KEY_PARENTS = frozenset(
    {
        "containers",
        "initcontainers",
        "environmentvariables",
        "volumes",
        "volumemounts",
        "imageregistrycredentials",
        "extensions",
        "ports",
        "subnetids",
        "tags",
        "metadata",
        "zones",
    }
)

# `reconciler.planning.normalise.SECURE`, repeated because render may not import planning (same layer).
SECURE_MARKER: dict[str, Any] = {"secure": True}

DEFAULT_WIDTH = 72

# Characters that must not reach a terminal or a PR comment raw: C0/C1 controls (ANSI escape sequences),
# bidirectional overrides ("trojan source") and the line/paragraph separators (categories Cc, Zl, Zp).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_UNSAFE_KEEP_NEWLINES = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _escape_char(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape_unsafe(text: str, *, keep_newlines: bool = False) -> str:
    """Replaces control, bidi and separator characters with `\\uXXXX` so data cannot drive the terminal."""
    return (_UNSAFE_KEEP_NEWLINES if keep_newlines else _UNSAFE).sub(_escape_char, text)


def pointer_segments(path: str) -> list[str]:
    """Splits a JSON Pointer into unescaped segments (`~1` is `/`, `~0` is `~`)."""
    if not path:
        return []
    parts = path.split("/")
    if parts[0] == "":
        parts = parts[1:]
    return [p.replace("~1", "/").replace("~0", "~") for p in parts]


def is_sensitive_path(path: str) -> bool:
    """True when a pointer names a secret field or something inside one, keys of keyed lists aside."""
    after_parent = False
    for seg in pointer_segments(path):
        low = seg.lower()
        if not after_parent and low in SENSITIVE_KEYS:
            return True
        after_parent = not after_parent and low in _KEY_PARENTS
    return False


def jsonable(value: Any) -> Any:
    """Turns a canonical-form value into plain JSON types (tuples, Decimals, enums, NaN included)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        if isinstance(value, (set, frozenset)):
            items.sort(key=lambda v: json.dumps(v, sort_keys=True, default=str))
        return items
    return str(value)


def redact(value: Any) -> Any:
    """A copy of a JSON value with every secret key's value replaced by `(sensitive)`, at any depth.

    Planning's canonical marker for "a secret is here" (`{"secure": true}`) shows as `(sensitive)` too.
    """
    if isinstance(value, Mapping) and dict(value) == SECURE_MARKER:
        return SENSITIVE
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            out[key] = SENSITIVE if key.lower() in SENSITIVE_KEYS and v is not None else redact(v)
        return out
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def field_is_sensitive(fc: FieldChange) -> bool:
    return fc.sensitive or is_sensitive_path(fc.path)


def safe_before_after(fc: FieldChange) -> tuple[Any, Any]:
    """The values of a change as they may be shown: `(sensitive)` for secrets, redacted otherwise."""
    if field_is_sensitive(fc):
        return (
            None if fc.kind == "add" else SENSITIVE,
            None if fc.kind == "remove" else SENSITIVE,
        )
    return redact(jsonable(fc.before)), redact(jsonable(fc.after))


def _dumps_compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(", ", ": "), allow_nan=False)


def format_value(value: Any, *, width: int = DEFAULT_WIDTH) -> str:
    """A value as people read it in a plan: JSON scalars, short inline JSON, long containers folded.

    Strings are quoted JSON strings, numbers and booleans JSON literals, `null` for None. Lists and objects
    stay on one line while they fit in `width` characters and are folded to indented multi-line JSON
    otherwise (callers indent the continuation lines). Nested secret keys are redacted; the output never
    holds raw control characters.
    """
    plain = redact(jsonable(value))
    if isinstance(plain, str) and plain == SENSITIVE:
        return SENSITIVE
    text = _dumps_compact(plain)
    if isinstance(plain, (list, dict)) and plain and len(text) > width:
        text = json.dumps(plain, ensure_ascii=False, sort_keys=True, indent=2, allow_nan=False)
    return escape_unsafe(text, keep_newlines=True)  # json.dumps escapes newlines in strings; these are folds


def clean(text: str) -> str:
    """Free text from the plan (names, reasons, messages) made safe for one line of terminal or markdown."""
    return escape_unsafe(text.replace("\r\n", "\n").replace("\n", " "))


def address(change: Change | GroupOutcome) -> str:
    return clean(f"{change.resource_group}/{change.name}")


def sorted_changes(changes: Iterable[Change]) -> list[Change]:
    """Changes in a stable order: by resource group and name (as Terraform orders by address), then action."""
    order = {a: i for i, a in enumerate(ACTION_ORDER)}
    return sorted(changes, key=lambda c: (c.key, order[c.action]))


def counts(plan: Plan) -> tuple[dict[Action, int], int]:
    """Counts of the changes that will be acted on per action, and the number held back by policy."""
    acted = dict.fromkeys(ACTION_ORDER, 0)
    held = 0
    for c in plan.changes:
        if c.held is not None and c.action in (
            Action.CREATE,
            Action.UPDATE,
            Action.REPLACE,
            Action.TAGS,
            Action.DELETE,
        ):
            held += 1
        else:
            acted[c.action] += 1
    return acted, held


_SUMMARY_WORDS: tuple[tuple[Action, str], ...] = (
    (Action.CREATE, "to create"),
    (Action.UPDATE, "to update in place"),
    (Action.TAGS, "to update tags"),
    (Action.REPLACE, "to replace"),
    (Action.DELETE, "to delete"),
)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def summary_line(plan: Plan) -> str:
    """`Plan: 1 to create, 2 to update in place, 1 held, 1 conflict.` or `No changes. ...`."""
    acted, held = counts(plan)
    parts = [f"{acted[a]} {words}" for a, words in _SUMMARY_WORDS if acted[a]]
    if held:
        parts.append(f"{held} held")
    if acted[Action.CONFLICT]:
        parts.append(plural(acted[Action.CONFLICT], "conflict"))
    n_errors = len(plan.errors)
    if not parts and not n_errors:
        return "No changes. Azure matches the manifests."
    if not parts:
        return f"No changes planned, but the plan has {plural(n_errors, 'error')}."
    line = "Plan: " + ", ".join(parts)
    if n_errors:
        line += f"; {plural(n_errors, 'error')}"
    return line + "."


DONE: dict[Action, str] = {
    Action.CREATE: "created",
    Action.UPDATE: "updated",
    Action.REPLACE: "replaced",
    Action.TAGS: "tags updated",
    Action.DELETE: "deleted",
    Action.CONFLICT: "conflict",
    Action.NOOP: "unchanged",
}


def apply_counts(result: ApplyResult) -> dict[str, int]:
    """Counts per kind of outcome, every key present: created ... deleted, failed, recreate_failed (a
    replace that deleted the group and could not create it again), held, skipped, conflict, unchanged. A
    succeeded noop counts as unchanged; a conflict is never counted as skipped."""
    keys = [*(DONE[a].replace(" ", "_") for a in DONE if a not in (Action.CONFLICT, Action.NOOP))]
    counts = dict.fromkeys(
        [*keys, "failed", "recreate_failed", "held", "skipped", "conflict", "unchanged"], 0
    )
    for o in result.outcomes:
        if o.result is Result.RECREATE_FAILED:
            counts["recreate_failed"] += 1
        elif o.result is Result.FAILED:
            counts["failed"] += 1
        elif o.result is Result.HELD:
            counts["held"] += 1
        elif o.action is Action.CONFLICT:
            counts["conflict"] += 1
        elif o.action is Action.NOOP:
            counts["unchanged"] += 1
        elif o.result is Result.SKIPPED:
            counts["skipped"] += 1
        else:
            counts[DONE[o.action].replace(" ", "_")] += 1
    return counts
