"""The revision of a manifest tree: the git commit when it is a git checkout, else a content digest.

Called by `reconciler.source.loader`; the engine writes it into the ownership tags and the status.

- In a git work tree: `git rev-parse HEAD`, plus `-dirty` when the files under the root differ from HEAD
  (`git status --porcelain -- <root>`, untracked files included).
- Otherwise (no git, not a checkout, no commit yet, git too slow): `sha256:` + the digest of the sorted
  (relative path, content) pairs of the files that were read.

git runs with a timeout, never prompts, and never takes the index lock (`GIT_OPTIONAL_LOCKS=0`), so a
reconciler watching a checkout cannot get in the way of a `git pull` in it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

GIT_TIMEOUT_SECONDS = 10.0


def content_digest(files: Iterable[tuple[str, bytes]]) -> str:
    """`sha256:<hex>` of the (relative path, content) pairs, independent of their order."""
    h = hashlib.sha256()
    for rel, data in sorted(files):
        encoded = rel.encode("utf-8", "surrogateescape")
        h.update(len(encoded).to_bytes(8, "big"))
        h.update(encoded)
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return "sha256:" + h.hexdigest()


def _git(args: list[str], cwd: Path) -> str | None:
    env = {
        **os.environ,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_OPTIONAL_LOCKS": "0",
        "GIT_ASKPASS": "",
        "SSH_ASKPASS": "",
        "LC_ALL": "C",
    }
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=GIT_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout.decode("utf-8", "replace")


def git_revision(root: Path) -> str | None:
    """`<commit>` or `<commit>-dirty` when `root` is inside a git work tree with a commit, else None."""
    directory = root if root.is_dir() else root.parent
    inside = _git(["rev-parse", "--is-inside-work-tree"], directory)
    if inside is None or inside.strip() != "true":
        return None
    head = _git(["rev-parse", "--verify", "--quiet", "HEAD"], directory)
    if head is None or not head.strip():
        return None
    status = _git(["status", "--porcelain", "--untracked-files=all", "--", str(root.resolve())], directory)
    if status is None:
        return None
    commit = head.strip()
    return f"{commit}-dirty" if status.strip() else commit


def revision(root: Path, files: Iterable[tuple[str, bytes]]) -> str:
    """The revision of `root`: git when possible, else the digest of `files` (relative path, content)."""
    return git_revision(root) or content_digest(files)
