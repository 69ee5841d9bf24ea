"""An ARM list page (`{"value": [...], "nextLink": ...}`) read item by item, each with its own JSON text.

Called by the adapter (`reconciler.cloud.azure`) for every list page it decodes: it keeps a listed group's
body as that text (`reconciler.model.observed.PackedBody`) rather than as decoded JSON, and the text is cut
out of the page as the page is decoded, never encoded again. The items are decoded by the standard library's
scanner (the C one), so the values are exactly `json.loads`'s; a page of any other shape (or that is not
JSON, or names `value` twice) is decoded by `json.loads` whole and its items encoded again, so the answer is
the same for any page, only slower.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

# The decoder's scanner (the C one json.loads itself uses); typeshed leaves out this attribute it sets.
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_SPACE = re.compile(r"[ \t\n\r]*")


def page_items(raw: bytes) -> tuple[list[tuple[Any, str]], Any] | None:
    """Each item of the page's `value` list with its JSON text, and the page's `nextLink` (None when it has
    none); None when `raw` is not a JSON object."""
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    except UnicodeDecodeError:
        return None
    try:
        found = _split(text)
    except (StopIteration, ValueError):  # not JSON where an item or key was due
        found = None
    if found is not None:
        return found
    try:
        page = json.loads(text)
    except ValueError:
        return None
    if not isinstance(page, Mapping):
        return None
    items = page.get("value")
    listed = items if isinstance(items, list) else []
    return [(item, _text(item)) for item in listed], page.get("nextLink")


# `"nextLink": "..."` as the last member of the page's object, as ARM writes it (after `value`). A key of
# that name inside an item is followed by more of the item and the page: it never ends the bytes.
_NEXT_AT_END = re.compile(rb'"nextLink"[ \t\n\r]*:[ \t\n\r]*("(?:[^"\\]|\\.)*")[ \t\n\r]*}[ \t\n\r]*\Z')
# How far from the end the link is looked for (a nextLink with its skip token is well under this).
_TAIL = 16384


def next_link_at_end(raw: bytes) -> str | None:
    """The `nextLink` a page ends with, read off its last bytes without decoding the page (so that the next
    page can be asked for first); None when the page does not end with one. A hint: the caller follows it
    only if the decoded page names the same link."""
    found = _NEXT_AT_END.search(raw, max(0, len(raw) - _TAIL))
    if found is None:
        return None
    try:
        link = json.loads(found.group(1))
    except ValueError:
        return None
    return link if isinstance(link, str) and link else None


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _skip(text: str, i: int) -> int:
    found = _SPACE.match(text, i)
    return found.end() if found is not None else i


def _split(text: str) -> tuple[list[tuple[Any, str]], Any] | None:
    """The fast way: one scan of the text, items cut out where the scanner says they end."""
    items: list[tuple[Any, str]] = []
    next_link: Any = None
    keys: set[str] = set()
    opened = _open(text, 0, "{", "}")
    if opened is None:
        return None
    i, done = opened
    while not done:
        if text[i : i + 1] != '"':
            return None
        key, i = _SCAN(text, i)
        if key in keys:
            return None  # json.loads keeps the last of a repeated key: leave that to it
        keys.add(key)
        i = _skip(text, i)
        if text[i : i + 1] != ":":
            return None
        if key == "value":
            listed = _open(text, i + 1, "[", "]")
            if listed is None:
                return None  # not a list: what that lists is json.loads's page's business
            i, end = listed
            while not end:
                start = i
                item, i = _SCAN(text, i)
                items.append((item, text[start:i]))
                step = _next(text, i, "]")
                if step is None:
                    return None
                i, end = step
        else:
            value, i = _SCAN(text, _skip(text, i + 1))
            if key == "nextLink":
                next_link = value
        step = _next(text, i, "}")
        if step is None:
            return None
        i, done = step
    if _skip(text, i) != len(text):
        return None
    return items, next_link


def _open(text: str, i: int, opener: str, closer: str) -> tuple[int, bool] | None:
    """At `opener` (after spaces): where its first member starts, and whether it is empty (then: past its
    `closer`); None when something else is there."""
    i = _skip(text, i)
    if text[i : i + 1] != opener:
        return None
    i = _skip(text, i + 1)
    if text[i : i + 1] == closer:
        return i + 1, True
    return i, False


def _next(text: str, i: int, closer: str) -> tuple[int, bool] | None:
    """After a member: where the next one starts, or past `closer` and True; None for anything else."""
    i = _skip(text, i)
    mark = text[i : i + 1]
    if mark == closer:
        return i + 1, True
    if mark != ",":
        return None
    return _skip(text, i + 1), False
