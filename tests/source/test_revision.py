"""The revision: git commit (+ -dirty) inside a work tree, else a digest of the files' content."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from reconciler.source import revision as revision_module
from reconciler.source.revision import content_digest
from tests.source.conftest import Loader, Writer, manifest

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(cwd: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_CONFIG_GLOBAL": "/dev/null",
        "GIT_CONFIG_NOSYSTEM": "1",
        "PATH": "/usr/bin:/bin:/usr/local/bin",
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_digest_outside_git_depends_on_paths_and_content_only(write: Writer, load: Loader) -> None:
    write("a.yaml", manifest("a"))
    first = load().revision
    assert first.startswith("sha256:")
    assert len(first) == len("sha256:") + 64
    assert load().revision == first
    write("b.yaml", "# a comment\n")
    second = load().revision
    assert second != first
    write("b.yaml", "# another comment\n")
    assert load().revision != second


def test_digest_is_independent_of_order_and_unambiguous() -> None:
    assert content_digest([("a", b"1"), ("b", b"2")]) == content_digest([("b", b"2"), ("a", b"1")])
    assert content_digest([("a", b"bc")]) != content_digest([("ab", b"c")])


@needs_git
def test_git_checkout_reports_head_and_dirty(tmp_path: Path) -> None:
    from reconciler.source import Defaults, load_manifests

    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    (repo / "manifests" / "a.yaml").write_text(manifest("a"))
    (repo / "other.txt").write_text("x")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "init")
    head = git(repo, "rev-parse", "HEAD")
    root = repo / "manifests"

    def rev() -> str:
        return load_manifests(root, defaults=Defaults(), environ={}).revision

    assert rev() == head
    (repo / "other.txt").write_text("changed outside the manifests")
    assert rev() == head
    (root / "b.yaml").write_text(manifest("b"))
    assert rev() == f"{head}-dirty"
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "b")
    assert rev() == git(repo, "rev-parse", "HEAD")


@needs_git
def test_git_repository_without_commits_falls_back_to_digest(tmp_path: Path) -> None:
    from reconciler.source import Defaults, load_manifests

    git(tmp_path, "init", "-q")
    (tmp_path / "a.yaml").write_text(manifest("a"))
    assert load_manifests(tmp_path, defaults=Defaults(), environ={}).revision.startswith("sha256:")


def test_missing_git_falls_back_to_digest(
    write: Writer, load: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_git(*args: object, **kwargs: object) -> object:
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    write("a.yaml", manifest("a"))
    assert load().revision.startswith("sha256:")


def test_hung_git_falls_back_to_digest(write: Writer, load: Loader, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []

    def slow_git(*args: object, timeout: float, **kwargs: object) -> object:
        seen.append(timeout)
        raise subprocess.TimeoutExpired("git", timeout)

    monkeypatch.setattr(subprocess, "run", slow_git)
    write("a.yaml", manifest("a"))
    assert load().revision.startswith("sha256:")
    assert seen == [revision_module.GIT_TIMEOUT_SECONDS]
