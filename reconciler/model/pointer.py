"""JSON Pointers (RFC 6901) as the reconciler uses them: paths into an ARM body in which the elements of
keyed lists (containers, volumes, environment variables...) are addressed by their key, not their index.

Used by the manifest model (secret pointers, `reconcile.ignore` validation), planning and rendering.
"""

from __future__ import annotations

from collections.abc import Iterable

from reconciler.model.text import shown


class PointerSyntaxError(ValueError):
    """A string that is not a JSON Pointer; the message says why and how to write one."""


def escape(token: str) -> str:
    """Escape one reference token: `~` becomes `~0`, `/` becomes `~1` (RFC 6901 section 3)."""
    return token.replace("~", "~0").replace("/", "~1")


def unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def join(tokens: Iterable[str | int]) -> str:
    """The pointer of a path of (unescaped) tokens: `join(["properties", "volumes", "a/b"])`."""
    parts = [str(t) for t in tokens]
    if not parts:
        return ""
    text = "/".join(parts)
    if "~" in text or text.count("/") >= len(parts):
        # A token holds a character to escape: a "/" in one shows as more separators than there are gaps.
        text = "/".join(map(escape, parts))
    return "/" + text


def split(pointer: str) -> list[str]:
    """The unescaped tokens of a pointer; raises `PointerSyntaxError` when it is not one."""
    check(pointer)
    if pointer == "":
        return []
    return [unescape(t) for t in pointer[1:].split("/")]


def check(pointer: str) -> None:
    """Raise `PointerSyntaxError` unless `pointer` is a syntactically valid JSON Pointer."""
    if pointer == "":
        return
    if not pointer.startswith("/"):
        raise PointerSyntaxError(
            f"{shown(pointer)} is not a JSON Pointer: it must start with '/' "
            "(for example '/properties/containers/web')"
        )
    i = pointer.find("~")
    while i != -1:
        if i + 1 >= len(pointer) or pointer[i + 1] not in "01":
            raise PointerSyntaxError(
                f"{shown(pointer)} is not a JSON Pointer: '~' must be followed by 0 or 1 "
                "(write '~0' for '~' and '~1' for '/' inside a name)"
            )
        i = pointer.find("~", i + 2)
