"""The lines of one plan entry, independent of output format: what text and markdown both print per group.

Called by `reconciler.render.text` and `reconciler.render.markdown`. A block is a header sentence, comment
lines (reason, held), and one `DiffLine` per field change; creates and deletes list only the main fields of
the group, since every leaf of a new group would bury what matters.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from reconciler.model.plan import SENSITIVE, Action, Change, FieldChange
from reconciler.render.values import (
    address,
    clean,
    escape_unsafe,
    field_is_sensitive,
    format_value,
    is_sensitive_path,
    jsonable,
    safe_before_after,
)

Sign = Literal["+", "-", "~"]

SYMBOLS: dict[Action, str] = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.TAGS: "~",
    Action.REPLACE: "-/+",
    Action.DELETE: "-",
    Action.CONFLICT: "!",
    Action.NOOP: " ",
}

LEGEND: dict[str, str] = {
    "+": "create",
    "~": "update in place",
    "-/+": "replace (delete, then create)",
    "-": "delete",
    "!": "conflict (not touched)",
}

_HEADERS: dict[Action, str] = {
    Action.CREATE: "will be created",
    Action.UPDATE: "will be updated in place",
    Action.TAGS: "tags will be updated",
    Action.REPLACE: "must be replaced",
    Action.DELETE: "will be deleted",
    Action.CONFLICT: "exists and is not managed by this reconciler (failIfExists)",
    Action.NOOP: "is up to date",
}

# The fields that say what a new (or deleted) group is: images, sizes, ports, network identity; in this order.
# `(/properties)?` after a container's key: planning may hand over whole elements with or without the wrapper.
_CONTAINER = r"/properties/containers/[^/]+(/properties)?"
_MAIN_FIELDS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(f"^(?:{p})$", re.IGNORECASE)
    for p in (
        r"/location",
        r"/zones(/.*)?",
        r"/sku|/properties/sku",
        r"/properties/osType",
        r"/properties/restartPolicy",
        r"/properties/priority",
        rf"{_CONTAINER}/(image|resources/(requests|limits)/(cpu|memoryInGB|gpu(/.*)?)|ports(/.*)?)",
        r"/properties/initContainers/[^/]+(/properties)?/image",
        r"/properties/ipAddress/(type|dnsNameLabel|ports(/.*)?)",
        r"/properties/subnetIds(/.*)?",
    )
)


def main_field_rank(path: str) -> int | None:
    """Where a leaf of a new group is listed among its main fields, or None when it is not one of them."""
    for rank, pattern in enumerate(_MAIN_FIELDS):
        if pattern.match(path):
            return rank
    return None


@dataclass(frozen=True)
class DiffLine:
    """One field line: `sign path = value` where value is already safe to print (may span lines)."""

    sign: Sign
    path: str
    value: str
    forces_replacement: bool = False


@dataclass(frozen=True)
class Block:
    change: Change
    symbol: str
    header: str  # `rg/name will be created (adopting)`
    comments: tuple[str, ...]
    lines: tuple[DiffLine, ...]
    hidden: int  # fields of a create/delete not listed


def header(change: Change) -> str:
    text = f"{address(change)} {_HEADERS[change.action]}"
    if change.adopt:
        text += " (adopting)"
    return text


def _escape_segment(seg: str) -> str:
    return seg.replace("~", "~0").replace("/", "~1")


def _leaves(path: str, value: Any) -> Iterator[tuple[str, Any]]:
    """Flattens a value into leaf pointers, stopping at main fields (a port list stays one line).

    Lists of named objects are addressed by name, like plan paths; planning's canonical form already holds
    keyed lists as maps keyed the same way.
    """
    if main_field_rank(path) is not None:
        yield path, _display_main(path, value)
    elif isinstance(value, dict) and value:
        for k in value:  # manifest order: containers are listed as people wrote them
            yield from _leaves(f"{path}/{_escape_segment(str(k))}", value[k])
    elif (
        isinstance(value, list)
        and value
        and all(isinstance(v, dict) and isinstance(v.get("name"), str) for v in value)
    ):
        for v in value:
            rest = {k: x for k, x in v.items() if k != "name"}
            yield from _leaves(f"{path}/{_escape_segment(v['name'])}", rest)
    else:
        yield path, value


def _display_main(path: str, value: Any) -> Any:
    # Canonical ports are a map keyed by port number (`80`, or `53:UDP` when one port has two protocols);
    # people wrote (and read) them as a list of `{port, protocol}`.
    if (
        path.lower().endswith("/ports")
        and isinstance(value, dict)
        and all(isinstance(v, dict) for v in value.values())
    ):
        ports = []
        for key, element in value.items():
            number = str(key).split(":", 1)[0]
            with_number = {"port": int(number), **element} if number.isdigit() else element
            ports.append(element if "port" in element else with_number)
        return ports
    return value


def _diff_value(fc: FieldChange) -> str:
    if field_is_sensitive(fc):
        return SENSITIVE
    before, after = safe_before_after(fc)
    if fc.kind == "add":
        return format_value(after)
    if fc.kind == "remove":
        return f"{format_value(before)} -> null"
    return f"{format_value(before)} -> {format_value(after)}"


_SIGNS: dict[str, Sign] = {"add": "+", "remove": "-", "change": "~"}


def _field_lines(change: Change) -> list[DiffLine]:
    replace_paths = set(change.replace_paths)
    return [
        DiffLine(
            sign=_SIGNS[fc.kind],
            path=escape_unsafe(fc.path),
            value=_diff_value(fc),
            forces_replacement=fc.forces_replacement or fc.path in replace_paths,
        )
        for fc in sorted(change.fields, key=lambda f: f.path)
    ]


def _summary_lines(change: Change, sign: Sign) -> tuple[list[DiffLine], int]:
    """The main fields of a group being created (`+`) or deleted (`-`), and how many leaves were left out."""
    shown: list[tuple[int, DiffLine]] = []
    hidden = 0
    for fc in change.fields:
        if field_is_sensitive(fc):
            hidden += 1
            continue
        value = jsonable(fc.after if sign == "+" else fc.before)
        if value is None:
            value = jsonable(fc.before if sign == "+" else fc.after)
        for path, leaf in _leaves(fc.path, value):
            rank = main_field_rank(path)
            if rank is not None and not is_sensitive_path(path):
                shown.append((rank, DiffLine(sign=sign, path=escape_unsafe(path), value=format_value(leaf))))
            elif leaf not in (None, {}, []):
                hidden += 1
    shown.sort(key=lambda r: r[0])  # stable: manifest order within a rank
    return [line for _, line in shown], hidden


def build_block(change: Change) -> Block:
    comments: list[str] = []
    if change.reason:
        comments.append(clean(change.reason))
    if change.held is not None:
        comments.append(f"held: {clean(change.held)}")
    if change.action is Action.CREATE:
        lines, hidden = _summary_lines(change, "+")
    elif change.action is Action.DELETE:
        lines, hidden = _summary_lines(change, "-")
    else:
        lines, hidden = _field_lines(change), 0
    return Block(
        change=change,
        symbol=SYMBOLS[change.action],
        header=header(change),
        comments=tuple(comments),
        lines=tuple(lines),
        hidden=hidden,
    )
