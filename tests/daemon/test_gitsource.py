"""The git source against real local repositories: fetch, atomic switch of checkouts, pruning, the poller."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from reconciler.daemon.gitsource import GitError, GitSource, redact_url, run_git_poller
from reconciler.daemon.triggers import Coalescer, TriggerKind
from tests.daemon.fakes import FakeClock, settle

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=GIT_ENV
    ).stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str = "change") -> str:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    repo = tmp_path / "remote"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    return repo


async def test_sync_exports_the_commit_and_points_current_at_it(remote: Path, tmp_path: Path) -> None:
    sha = commit(remote, {"manifests/web.yaml": "name: web\n"})
    source = GitSource(str(remote), tmp_path / "work")
    assert await source.sync() == sha
    assert source.current_sha() == sha
    assert (source.tree() / "manifests" / "web.yaml").read_text() == "name: web\n"
    assert not (source.tree() / ".git").exists()
    assert await source.sync() is None, "nothing new: no switch"


async def test_new_commit_switches_atomically_and_prunes_old_checkouts(remote: Path, tmp_path: Path) -> None:
    source = GitSource(str(remote), tmp_path / "work", keep=2)
    shas = []
    for i in range(4):
        shas.append(commit(remote, {"manifests/web.yaml": f"image: v{i}\n"}))
        assert await source.sync() == shas[-1]
        assert (source.current / "manifests" / "web.yaml").read_text() == f"image: v{i}\n"
    assert source.current.is_symlink()
    kept = sorted(p.name for p in source.checkouts.iterdir())
    assert kept == sorted(shas[-2:]), "the current and the previous checkout stay"


async def test_follows_the_given_branch(remote: Path, tmp_path: Path) -> None:
    commit(remote, {"a.yaml": "main\n"})
    git(remote, "checkout", "-q", "-b", "release")
    release = commit(remote, {"a.yaml": "release\n"})
    git(remote, "checkout", "-q", "main")
    source = GitSource(str(remote), tmp_path / "work", ref="release")
    assert await source.sync() == release
    assert (source.tree() / "a.yaml").read_text() == "release\n"


async def test_unknown_ref_is_a_clear_error(remote: Path, tmp_path: Path) -> None:
    commit(remote, {"a.yaml": "x\n"})
    source = GitSource(str(remote), tmp_path / "work", ref="no-such-branch")
    with pytest.raises(GitError, match="no-such-branch"):
        await source.sync()
    assert source.current_sha() is None


async def test_git_errors_never_show_credentials(tmp_path: Path) -> None:
    source = GitSource("https://user:s3cret-token@127.0.0.1:9/repo.git", tmp_path / "work", timeout=20)
    with pytest.raises(GitError) as caught:
        await source.sync()
    assert "s3cret-token" not in str(caught.value)
    assert source.display_url == "https://***@127.0.0.1:9/repo.git"
    assert redact_url("see ssh://git:pw@host/x and https://h/y") == "see ssh://***@host/x and https://h/y"


async def test_a_hung_git_command_times_out(tmp_path: Path) -> None:
    fake_git = tmp_path / "git"
    fake_git.write_text("#!/bin/sh\nexec sleep 30\n")
    fake_git.chmod(0o755)
    source = GitSource("file:///x", tmp_path / "work", git=str(fake_git), timeout=0.2)
    with pytest.raises(GitError, match="timed out"):
        await source.sync()


async def test_poller_fires_on_a_new_commit_and_when_poked(remote: Path, tmp_path: Path) -> None:
    first = commit(remote, {"a.yaml": "1\n"})
    clock = FakeClock()
    fired = asyncio.Event()
    coalescer = Coalescer(on_fire=lambda trigger: fired.set())
    poke = asyncio.Event()
    source = GitSource(str(remote), tmp_path / "work")
    task = asyncio.create_task(
        run_git_poller(source, coalescer, interval=60, sleep=clock.sleep, clock=clock.time, poke=poke),
        name="test-git-poller",
    )

    async def until(count: int) -> None:
        # Real git subprocesses run meanwhile; the poller's own interval never elapses.
        while coalescer.fired < count:
            await asyncio.wait_for(fired.wait(), 20)
            fired.clear()
        await settle()

    await until(1)
    batch = await coalescer.next()
    assert batch is not None
    assert batch[0].kind is TriggerKind.GIT
    assert first[:12] in batch[0].reason

    second = commit(remote, {"a.yaml": "2\n"})
    poke.set()  # the webhook: fetch now, not in 60 s
    await until(2)
    assert source.current_sha() == second
    assert clock.now == clock.start, "no interval elapsed"

    poke.set()  # a re-delivery with nothing new still runs a pass
    await until(3)
    batch = await coalescer.next()
    assert batch is not None
    assert [t.kind for t in batch] == [TriggerKind.GIT, TriggerKind.WEBHOOK]

    third = commit(remote, {"a.yaml": "3\n"})
    await settle()
    await clock.advance(60)
    await until(4)
    assert source.current_sha() == third
    coalescer.close()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_poller_after_a_restart_runs_a_pass_on_the_commit_already_checked_out(
    remote: Path, tmp_path: Path
) -> None:
    sha = commit(remote, {"a.yaml": "1\n"})
    assert await GitSource(str(remote), tmp_path / "work").sync() == sha
    clock = FakeClock()
    fired = asyncio.Event()
    coalescer = Coalescer(on_fire=lambda trigger: fired.set())
    restarted = GitSource(str(remote), tmp_path / "work")
    task = asyncio.create_task(
        run_git_poller(
            restarted, coalescer, interval=60, sleep=clock.sleep, clock=clock.time, poke=asyncio.Event()
        ),
        name="test-git-poller",
    )
    await asyncio.wait_for(fired.wait(), 20)
    batch = await coalescer.next()
    assert batch is not None
    assert batch[0].kind is TriggerKind.GIT
    assert sha[:12] in batch[0].reason
    coalescer.close()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
