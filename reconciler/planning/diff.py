"""Field-level diff of two canonical container-group bodies, honouring `reconcile.ignore`.

Called by `reconciler.planning.plan` with the canonical forms of `reconciler.planning.normalise` (desired
first, observed second). The comparison is complete: a field the manifest omits compares as "absent", because
a PUT without it resets it (the canonical form already fills the defaults Azure applies to omitted fields).
The exceptions are the values the server chooses itself (`normalise.SERVER_CHOSEN`: an allocated IP, a
generated confidential-compute policy), compared only when the manifest states them.

Paths are JSON Pointers (RFC 6901) into the ARM body in which keyed-list elements are addressed by their key
(`/properties/containers/web/properties/image`). `ignore` pointers match by prefix; a `*` segment matches any
one segment; a numeric segment that is not itself a key addresses the n-th element of a keyed list in the
manifest's order (`/properties/containers/0/properties/image`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from reconciler.model.plan import FieldChange
from reconciler.planning.normalise import SECURE, SERVER_CHOSEN

_ABSENT = object()

# Where a change of secret values is reported. Azure never returns a secret, so the only evidence of a change
# is the one keyed hash of all secret values in the `aci-reconciler.secrets` tag: which secret changed is not
# knowable, and naming every secret path (the old behaviour) blamed fields that had not changed, including the
# Log Analytics workspace key, whose table row then forced a needless replace (issue 9, finding 7). One
# synthetic path, matched by no row of the classification table, makes a secret change an update in place.
# Per-secret hash tags were the alternative; they were rejected because tags are a shared, small budget
# (ARM allows 50 per resource, the manifest's own tags included) and a group may carry dozens of secrets.
SECRETS_PATH = "/properties/(secrets)"


def escape(segment: str) -> str:
    """One JSON Pointer reference token (RFC 6901: `~` -> `~0`, `/` -> `~1`)."""
    return segment.replace("~", "~0").replace("/", "~1")


def unescape(segment: str) -> str:
    return segment.replace("~1", "/").replace("~0", "~")


def pointer(segments: Iterable[str]) -> str:
    return "".join("/" + escape(s) for s in segments)


def split_pointer(path: str) -> tuple[str, ...]:
    """The segments of a JSON Pointer; raises ValueError for a string that is not one."""
    if path == "":
        return ()
    if not path.startswith("/"):
        raise ValueError(f"{path!r} is not a JSON Pointer: it must start with '/'")
    return tuple(unescape(s) for s in path[1:].split("/"))


def _advance(patterns: Sequence[tuple[str, ...]], key: str, position: int | None) -> list[tuple[str, ...]]:
    """The remainders of the ignore patterns that match one more segment `key` (at `position` in the
    desired map, when the parent is a map of the desired side)."""
    out: list[tuple[str, ...]] = []
    for pattern in patterns:
        if not pattern:
            continue
        head = pattern[0]
        if head in ("*", key) or (
            position is not None and head.isdigit() and int(head) == position and head != key
        ):
            out.append(pattern[1:])
    return out


def diff(
    desired: Mapping[str, Any],
    observed: Mapping[str, Any],
    *,
    ignore: Iterable[str] = (),
    server_chosen: Iterable[str] = SERVER_CHOSEN,
) -> list[FieldChange]:
    """Every difference between two canonical bodies, as `FieldChange`s, in a deterministic order.

    A subtree present on one side only is one `add`/`remove` of the whole subtree; values that differ in type
    or are lists are one `change`. A change of a secure leaf (to, from or between the secure marker) is
    `sensitive` and carries no values. Raises ValueError for an `ignore` entry that is not a JSON Pointer.
    """
    patterns = [split_pointer(p) for p in ignore]
    chosen = (
        _SERVER_CHOSEN if server_chosen is SERVER_CHOSEN else frozenset(map(split_pointer, server_chosen))
    )
    if not patterns and desired == _without_chosen(desired, observed, chosen):
        return []  # a converged group: one comparison in C instead of a walk down to its allocated IP
    walk = _Walk(chosen=chosen)
    _walk(walk, desired, observed, (), patterns)
    return walk.out


_SERVER_CHOSEN = frozenset(map(split_pointer, SERVER_CHOSEN))


def _without_chosen(desired: Any, observed: Any, chosen: frozenset[tuple[str, ...]]) -> Any:
    """`observed` without the server-chosen values that `desired` does not state, and without the maps that
    held nothing else: equal to `desired` exactly when `_walk` finds no difference (with no ignore pointer).
    Copies only the maps on the way to what it removes."""
    for path in chosen:
        observed = _strip(desired, observed, path)
    return observed


def _strip(desired: Any, observed: Any, path: tuple[str, ...]) -> Any:
    if not path or not isinstance(observed, Mapping) or path[0] not in observed:
        return observed
    head, rest = path[0], path[1:]
    stated = desired.get(head, _ABSENT) if isinstance(desired, Mapping) else _ABSENT
    if not rest:
        if stated is not _ABSENT:
            return observed
        return {k: v for k, v in observed.items() if k != head}
    child = observed[head]
    stripped = _strip({} if stated is _ABSENT else stated, child, rest)
    if stripped is child:
        return observed
    out = dict(observed)
    if stated is _ABSENT and isinstance(stripped, Mapping) and not stripped:
        del out[head]  # it held only the server's choice (`confidentialComputeProperties: {ccePolicy}`)
    else:
        out[head] = stripped
    return out


def secret_changes(
    secret_paths: Iterable[str],
    want_hash: str | None,
    have_hash: str | None,
    *,
    ignore: Iterable[str] = (),
    desired: Mapping[str, Any] | None = None,
) -> list[FieldChange]:
    """The change of a group's secret values, from the keyed hash of the manifest's (`want_hash`) and the
    live group's hash tag (`have_hash`): nothing when they agree, else one sensitive change at `SECRETS_PATH`.

    Dropped when every secret path lies under a `reconcile.ignore` pointer (the hash covers only those).
    """
    if want_hash == have_hash:
        return []
    paths = list(secret_paths)
    ignore = list(ignore)
    if paths and ignore and all(is_ignored(p, ignore, desired or {}) for p in paths):
        return []
    kind: Literal["add", "remove", "change"]
    if have_hash is None:
        kind = "add"
    elif not paths:
        kind = "remove"
    else:
        kind = "change"
    return [FieldChange(path=SECRETS_PATH, kind=kind, sensitive=True)]


def is_ignored(path: str, ignore: Iterable[str], desired: Mapping[str, Any]) -> bool:
    """True when `path` lies at or under one of the `ignore` pointers, with the matching rules of `diff`
    (numeric segments resolved against the order of `desired`, the canonical desired body)."""
    patterns = [split_pointer(p) for p in ignore]
    node: Any = desired
    for segment in split_pointer(path):
        if any(len(p) == 0 for p in patterns):
            return True
        positions = {k: i for i, k in enumerate(node)} if isinstance(node, Mapping) else {}
        patterns = _advance(patterns, segment, positions.get(segment))
        node = node.get(segment) if isinstance(node, Mapping) else None
    return any(len(p) == 0 for p in patterns)


@dataclass
class _Walk:
    chosen: frozenset[tuple[str, ...]]
    out: list[FieldChange] = field(default_factory=list)

    def run(
        self, desired: Any, observed: Any, path: tuple[str, ...], patterns: list[tuple[str, ...]]
    ) -> None:
        _walk(self, desired, observed, path, patterns)


def _chosen_below(chosen: frozenset[tuple[str, ...]], path: tuple[str, ...]) -> bool:
    return any(len(c) > len(path) and c[: len(path)] == path for c in chosen)


def _walk(
    ctx: _Walk,
    desired: Any,
    observed: Any,
    path: tuple[str, ...],
    patterns: list[tuple[str, ...]],
) -> None:
    if desired == observed:
        return  # equal subtrees hold no difference (one comparison in C; most of a converged fleet)
    if patterns and any(len(p) == 0 for p in patterns):
        return  # an ignore pointer ends here: the live value of this subtree is never diffed
    if desired is _ABSENT and path in ctx.chosen:
        return  # the server picked it because the manifest did not
    # The secure marker is a leaf: plain <-> secure is one sensitive change, not two half-changes.
    if (
        (type(desired) is dict or isinstance(desired, Mapping))
        and (type(observed) is dict or isinstance(observed, Mapping))
        and SECURE not in (desired, observed)
    ):
        keys = list(desired)
        keys += [k for k in observed if k not in desired]
        positions = {k: i for i, k in enumerate(desired)}
        for key in keys:
            _walk(
                ctx,
                desired.get(key, _ABSENT),
                observed.get(key, _ABSENT),
                (*path, key),
                _advance(patterns, key, positions.get(key)),
            )
        return
    one_sided = desired is _ABSENT or observed is _ABSENT
    present = observed if desired is _ABSENT else desired
    if one_sided and isinstance(present, Mapping) and _chosen_below(ctx.chosen, path):
        # A subtree present on one side only, holding a server-chosen value: the server may have created
        # it just to hold that value (`confidentialComputeProperties: {ccePolicy}` for an omitted policy).
        inner = _Walk(chosen=ctx.chosen)
        _walk(
            inner,
            {} if desired is _ABSENT else desired,
            {} if observed is _ABSENT else observed,
            path,
            patterns,
        )
        if not inner.out:
            return
    # Canonical values never hold a secret (only the marker), so a subtree that contains markers keeps its
    # values; a change of a secure leaf itself is sensitive and shows none (its plain side may be about to
    # become a secret).
    sensitive = SECURE in (desired, observed)
    before = None if observed is _ABSENT or sensitive else observed
    after = None if desired is _ABSENT or sensitive else desired
    kind: Literal["add", "remove", "change"]
    if observed is _ABSENT:
        kind = "add"
    elif desired is _ABSENT:
        kind = "remove"
    else:
        kind = "change"
    ctx.out.append(
        FieldChange(path=pointer(path), kind=kind, before=before, after=after, sensitive=sensitive)
    )
