"""Deterministic walk of a manifest directory: which files to read, in which order, and what went wrong.

Called by `reconciler.source.loader`. Rules:

- entries are visited in sorted order (files of a directory before its subdirectories), so the same tree
  always loads the same way;
- manifests are `*.yaml`, `*.yml` and `*.json` (any case); `_defaults.yaml` (or `.yml`/`.json`) is a
  directory's defaults file and comes first; other files are ignored;
- hidden files and directories (`.git/`, `.github/`, `.#x` locks) and editors' temporary files (`x~`, `#x#`,
  `x.swp`) are skipped;
- symlinks are followed only when their target stays inside the root; a link out of the root, a broken link,
  a link loop, or a second path to an already visited file or directory is an error for that path;
- a file or directory that vanishes (or cannot be read) while walking is an error for that path, never a
  crash.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from reconciler.model.text import plain

_OUTSIDE = "symlink leads outside the manifest directory; not followed"
# Deeper trees are a mistake (or an attack); the walk recurses once per level.
MAX_DIRECTORY_DEPTH = 64
MANIFEST_SUFFIXES = frozenset({".yaml", ".yml", ".json"})
DEFAULTS_STEM = "_defaults"


@dataclass(frozen=True, slots=True)
class WalkItem:
    """One step of the walk: enter/leave a directory, a defaults file, a manifest file, or an error."""

    kind: Literal["enter", "leave", "defaults", "manifest", "error"]
    path: Path
    message: str = ""


def is_skipped(name: str) -> bool:
    """Hidden entries and editors' temporary files are never manifests."""
    return (
        name.startswith((".", "#"))
        or name.endswith(("~", ".swp", ".swo", ".swx", ".tmp", ".bak"))
        or (name.startswith("#") and name.endswith("#"))
    )


def _inside(root_real: str, real: str) -> bool:
    return real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep)


def _describe_os_error(exc: OSError, what: str) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"{what} vanished while loading"
    if isinstance(exc, PermissionError):
        return f"cannot read {what}: permission denied"
    if isinstance(exc, NotADirectoryError):
        return f"{what} changed while loading (it is no longer a directory)"
    if exc.errno == 40:  # ELOOP
        return "symlink loop (the link leads back to itself)"
    return f"cannot read {what}: {exc.strerror or exc}"


def walk(root: Path) -> Iterator[WalkItem]:
    """The walk of `root` (a directory, or a single manifest file)."""
    try:
        root_real = os.path.realpath(root)
        st = os.stat(root)
    except FileNotFoundError:
        yield WalkItem("error", root, "the manifest directory does not exist")
        return
    except OSError as exc:
        yield WalkItem("error", root, _describe_os_error(exc, "the manifest directory"))
        return
    if stat.S_ISREG(st.st_mode):
        yield WalkItem("manifest", root)
        return
    if not stat.S_ISDIR(st.st_mode):
        yield WalkItem("error", root, "not a directory or a regular file")
        return
    seen_files: dict[tuple[int, int], Path] = {}
    seen_dirs: dict[tuple[int, int], Path] = {(st.st_dev, st.st_ino): root}
    walker = _Walker(root_real, seen_dirs, seen_files)
    yield from walker.walk_dir(root, [(st.st_dev, st.st_ino)])


@dataclass(slots=True)
class _Walker:
    root_real: str
    seen_dirs: dict[tuple[int, int], Path]
    seen_files: dict[tuple[int, int], Path]

    def walk_dir(self, directory: Path, ancestors: list[tuple[int, int]]) -> Iterator[WalkItem]:
        root_real, seen_dirs, seen_files = self.root_real, self.seen_dirs, self.seen_files
        if len(ancestors) > MAX_DIRECTORY_DEPTH:
            yield WalkItem("error", directory, f"nested more than {MAX_DIRECTORY_DEPTH} directories deep")
            return
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield WalkItem("error", directory, _describe_os_error(exc, "directory"))
            return
        yield WalkItem("enter", directory)
        defaults: list[Path] = []
        files: list[Path] = []
        subdirs: list[tuple[Path, tuple[int, int]]] = []
        for entry in entries:
            name = entry.name
            if is_skipped(name):
                continue
            path = directory / name
            try:
                is_link = entry.is_symlink()
                st = entry.stat(follow_symlinks=True)
            except FileNotFoundError:
                if is_link:
                    yield WalkItem("error", path, "broken symlink (its target does not exist)")
                else:
                    yield WalkItem("error", path, "vanished while loading")
                continue
            except OSError as exc:
                yield WalkItem("error", path, _describe_os_error(exc, "it"))
                continue
            key = (st.st_dev, st.st_ino)
            if stat.S_ISDIR(st.st_mode):
                if is_link and not _inside(root_real, os.path.realpath(path)):
                    yield WalkItem("error", path, _OUTSIDE)
                elif key in ancestors:
                    yield WalkItem("error", path, f"symlink loop: leads back to {plain(seen_dirs[key])}")
                elif key in seen_dirs:
                    yield WalkItem(
                        "error",
                        path,
                        f"the same directory as {plain(seen_dirs[key])} (a symlink); not read twice",
                    )
                else:
                    seen_dirs[key] = path
                    subdirs.append((path, key))
                continue
            suffix = os.path.splitext(name)[1].lower()
            if suffix not in MANIFEST_SUFFIXES:
                continue
            if not stat.S_ISREG(st.st_mode):
                yield WalkItem("error", path, "not a regular file")
                continue
            if is_link and not _inside(root_real, os.path.realpath(path)):
                yield WalkItem("error", path, _OUTSIDE)
                continue
            if key in seen_files:
                yield WalkItem(
                    "error", path, f"the same file as {plain(seen_files[key])} (a link); not read twice"
                )
                continue
            seen_files[key] = path
            if os.path.splitext(name)[0] == DEFAULTS_STEM:
                defaults.append(path)
            else:
                files.append(path)
        for path in defaults[1:]:
            yield WalkItem(
                "error", path, f"a second defaults file in this directory (also {plain(defaults[0].name)})"
            )
        for path in defaults[:1]:
            yield WalkItem("defaults", path)
        for path in files:
            yield WalkItem("manifest", path)
        for path, key in subdirs:
            yield from self.walk_dir(path, [*ancestors, key])
        yield WalkItem("leave", directory)
