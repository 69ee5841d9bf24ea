"""How user-facing messages quote input: one function, `shown`, escapes and bounds every quoted value.

Called wherever a message repeats something read from input (a file name, a key, a value, a group name):
the manifest model's error texts, `reconciler.source` (walk, loader, defaults, substitution, secrets) and the
CLI's `validate` output. Input is hostile as often as it is mistaken: a file name with a newline must not
be able to forge a line of output, an escape sequence must not repaint a terminal, and a 4 MB name must not
make a 4 MB line.
"""

from __future__ import annotations

from typing import Any

# Longest quoted value kept whole; longer ones keep their start and say how much was cut.
MAX_SHOWN_CHARS = 120

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    known = _ESCAPES.get(char)
    if known is not None:
        return known
    if char.isprintable():
        return char
    # Controls, line and paragraph separators, zero-width and bidi format characters, unassigned code
    # points and lone surrogates (undecodable bytes of a file name): shown as their code.
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def plain(value: Any, *, limit: int = MAX_SHOWN_CHARS) -> str:
    """`value` as text with control characters escaped and at most `limit` characters kept, unquoted."""
    text = value if isinstance(value, str) else str(value)
    cut = len(text) - limit
    head = text[:limit] if cut > 0 else text
    out = "".join(_escape(c) for c in head) if not head.isprintable() else head
    if cut > 0:
        out += f"…(+{cut:,} chars)"
    return out


def shown(value: Any, *, limit: int = MAX_SHOWN_CHARS) -> str:
    """`value` quoted for a message: `'text'`, escaped and bounded (see `plain`)."""
    return f"'{plain(value, limit=limit)}'"


# Longest log line printed whole (`reconcile run`, `reconcile logs`): a container may print a megabyte line.
MAX_LOG_LINE_CHARS = 16_384


def plain_line(line: str) -> str:
    """One line of a container's log as the CLI prints it: tabs kept, every other control, bidi or format
    character escaped (a log must not repaint the terminal or forge lines), bounded."""
    if "\t" not in line:
        return plain(line, limit=MAX_LOG_LINE_CHARS)
    return "\t".join(plain(part, limit=MAX_LOG_LINE_CHARS) for part in line.split("\t"))
