"""Positioned problems found while loading manifests: `SourceError` (errors and warnings alike).

Every part of `reconciler.source` reports through these; the CLI prints them (`path:line:col: message`, the
format editors and CI annotate) and the daemon keeps them in its status. A message never contains a secret
value, only the names of variables, files and fields. The rendered line is always one bounded line: input
quoted in a message goes through `reconciler.model.text.shown`, and `str()` escapes the path and the message
again with the same function, so no file name or value (newlines, escape sequences, megabytes) can forge or
flood the output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from reconciler.model.text import plain

# The longest message a line carries; the quoted values in it are already bounded, this bounds their number.
MAX_MESSAGE_CHARS = 2000
MAX_PATH_CHARS = 1024

# A position in a file: 1-based line and column.
Pos = tuple[int, int]

# Where an error about a whole file (or directory) points: its first character.
FILE_START: Pos = (1, 1)


@dataclass(frozen=True, slots=True)
class SourceError:
    """One problem (or warning) at a place in a manifest file; `str()` gives `path:line:col: message`."""

    path: Path
    line: int
    column: int
    message: str

    def __post_init__(self) -> None:
        # Bounded and escaped where it is made: the engine and the daemon carry `message` into plans, JSON
        # and /status without going through str().
        object.__setattr__(self, "message", plain(self.message, limit=MAX_MESSAGE_CHARS))

    def __str__(self) -> str:
        where = plain(self.path, limit=MAX_PATH_CHARS)
        return f"{where}:{self.line}:{self.column}: {plain(self.message, limit=MAX_MESSAGE_CHARS)}"

    @classmethod
    def at(cls, path: Path, pos: Pos, message: str) -> SourceError:
        return cls(path=path, line=pos[0], column=pos[1], message=message)


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """Where something was written: a file and a 1-based line and column."""

    path: Path
    line: int
    column: int

    def __str__(self) -> str:
        return f"{plain(self.path, limit=MAX_PATH_CHARS)}:{self.line}:{self.column}"
