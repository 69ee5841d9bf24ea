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


# A file's stat as the walk saw it: device, inode, size, mtime (ns), ctime (ns).
Stamp = tuple[int, int, int, int, int]


def stamp_of(st: os.stat_result) -> Stamp:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class WalkItem:
    """One step of the walk: enter/leave a directory, a defaults file, a manifest file, or an error.

    `text` is the path as `str(path)` gives it; `path`, the `Path`, is made when first asked: a daemon's
    load cache takes an unchanged file by its text, and pathlib's objects cost more than the rest of the
    walk's work on such a file."""

    __slots__ = ("_path", "directory", "kind", "message", "real", "relative", "stamp", "text")

    def __init__(
        self,
        kind: Literal["enter", "leave", "defaults", "manifest", "error"],
        path: Path | str,
        message: str = "",
        *,
        real: str = "",
        relative: str = "",
        stamp: Stamp | None = None,
        directory: Path | None = None,
    ) -> None:
        self.kind = kind
        self._path = path if isinstance(path, Path) else None
        self.text = str(path)
        self.message = message
        # Of files: the real path (symlinks resolved) and the path relative to the walked root, in POSIX
        # form ("." for a root that is a file). Known as the walk goes, so the loader never asks the file
        # system (`os.path.realpath` stats every component) or pathlib for them per file.
        self.real = real
        self.relative = relative
        self.stamp = stamp
        # Of a file found in a directory: that directory (one object for all its files).
        self.directory = directory

    @property
    def path(self) -> Path:
        found = self._path
        if found is None:
            found = self._path = Path(self.text)
        return found

    def __repr__(self) -> str:
        return f"WalkItem({self.kind!r}, {self.text!r}, {self.message!r})"


def child_text(directory: str, name: str) -> str:
    """`str(Path(directory) / name)` for `directory` as `str` gives a `Path` and `name` an entry of it (no
    separator, not `.` or `..`), without making either `Path`."""
    if directory == ".":
        return name
    return directory + name if directory.endswith("/") else f"{directory}/{name}"


def is_skipped(name: str) -> bool:
    """Hidden entries and editors' temporary files are never manifests."""
    return (
        name.startswith((".", "#"))
        or name.endswith(("~", ".swp", ".swo", ".swx", ".tmp", ".bak"))
        or (name.startswith("#") and name.endswith("#"))
    )


def file_kind(name: str) -> Literal["defaults", "manifest"] | None:
    """What a file of this name is to the walk (its name only: hidden and temporary files aside)."""
    # `os.path.splitext`'s reading (a name of leading dots then a suffix has none), in fewer steps: it runs
    # for every file of the tree on every pass.
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem.strip(".") or f".{suffix.lower()}" not in MANIFEST_SUFFIXES:
        return None
    return "defaults" if stem == DEFAULTS_STEM else "manifest"


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
        yield WalkItem("manifest", root, real=root_real, relative=".", stamp=stamp_of(st))
        return
    if not stat.S_ISDIR(st.st_mode):
        yield WalkItem("error", root, "not a directory or a regular file")
        return
    seen_files: dict[tuple[int, int], str] = {}
    seen_dirs: dict[tuple[int, int], Path] = {(st.st_dev, st.st_ino): root}
    walker = _Walker(root_real, seen_dirs, seen_files)
    yield from walker.walk_dir(root, [(st.st_dev, st.st_ino)], root_real, "")


@dataclass(slots=True)
class _Walker:
    root_real: str
    seen_dirs: dict[tuple[int, int], Path]
    seen_files: dict[tuple[int, int], str]

    def walk_dir(
        self, directory: Path, ancestors: list[tuple[int, int]], real_dir: str, relative_dir: str
    ) -> Iterator[WalkItem]:
        """`real_dir`: `directory` with its links resolved; `relative_dir`: its path under the root ("" for
        the root itself), POSIX."""
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
        defaults: list[tuple[str, str, str, Stamp]] = []
        files: list[tuple[str, str, str, Stamp]] = []
        subdirs: list[tuple[Path, tuple[int, int], str, str]] = []
        directory_text = str(directory)
        for entry in entries:
            name = entry.name
            if is_skipped(name):
                continue
            path = child_text(directory_text, name)
            relative = f"{relative_dir}/{name}" if relative_dir else name
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
            real = os.path.realpath(path) if is_link else child_text(real_dir, name)
            if stat.S_ISDIR(st.st_mode):
                if is_link and not _inside(root_real, real):
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
                    subdir = Path(path)
                    seen_dirs[key] = subdir
                    subdirs.append((subdir, key, real, relative))
                continue
            kind = file_kind(name)
            if kind is None:
                continue
            if not stat.S_ISREG(st.st_mode):
                yield WalkItem("error", path, "not a regular file")
                continue
            if is_link and not _inside(root_real, real):
                yield WalkItem("error", path, _OUTSIDE)
                continue
            if key in seen_files:
                yield WalkItem(
                    "error", path, f"the same file as {plain(seen_files[key])} (a link); not read twice"
                )
                continue
            seen_files[key] = path
            found = (path, real, relative, stamp_of(st))
            if kind == "defaults":
                defaults.append(found)
            else:
                files.append(found)
        for path, _, _, _ in defaults[1:]:
            yield WalkItem(
                "error",
                path,
                f"a second defaults file in this directory (also {plain(os.path.basename(defaults[0][0]))})",
            )
        for path, real, relative, stamp in defaults[:1]:
            yield WalkItem("defaults", path, real=real, relative=relative, stamp=stamp, directory=directory)
        for path, real, relative, stamp in files:
            yield WalkItem("manifest", path, real=real, relative=relative, stamp=stamp, directory=directory)
        for subdir, key, real, relative in subdirs:
            yield from self.walk_dir(subdir, [*ancestors, key], real, relative)
        yield WalkItem("leave", directory)
