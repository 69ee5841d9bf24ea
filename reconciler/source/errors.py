"""Positioned problems found while loading manifests: `SourceError` (errors and warnings alike).

Every part of `reconciler.source` reports through these; the CLI prints them (`path:line:col: message`, the
format editors and CI annotate) and the daemon keeps them in its status. A message never contains a secret
value, only the names of variables, files and fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"

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
        return f"{self.path}:{self.line}:{self.column}"
