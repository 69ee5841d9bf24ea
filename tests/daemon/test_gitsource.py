"""The git source against real local repositories: fetch, atomic switch of checkouts, pruning, the poller."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, given, settings

from reconciler.daemon.gitsource import GitError, GitSource, check_ref, check_url, redact_url, run_git_poller
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
    assert source.display_url == "https://127.0.0.1:9/repo.git"
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


# -- hostile refs and URLs (issue 10, finding 6) -------------------------------------------------------------

INJECTIONS = ["--upload-pack=touch {marker}", "--upload-pack=touch {marker};", "-u touch {marker}"]


@pytest.mark.parametrize("template", INJECTIONS)
async def test_a_ref_that_is_an_option_is_refused_and_runs_nothing(
    tmp_path: Path, remote: Path, template: str
) -> None:
    commit(remote, {"a.yaml": "a"})
    marker = tmp_path / "pwned"
    ref = template.format(marker=marker)
    with pytest.raises(ValueError, match=r"--git-ref .*option"):
        GitSource(str(remote), tmp_path / "work", ref=ref)
    # The second layer: even a ref that got past validation reaches git after `--`, as a refspec.
    source = GitSource(str(remote), tmp_path / "work2", ref="main")
    source.ref = ref
    with pytest.raises(GitError):
        await source.sync()
    assert not marker.exists()


@pytest.mark.parametrize("template", ["--upload-pack=touch {marker}", "-utouch {marker}"])
async def test_a_url_that_is_an_option_is_refused_and_even_past_validation_runs_nothing(
    tmp_path: Path, template: str
) -> None:
    marker = tmp_path / "pwned"
    url = template.format(marker=marker)
    with pytest.raises(ValueError, match=r"--git-url .*option"):
        GitSource(url, tmp_path / "work")
    source = GitSource("file:///nonexistent/repo", tmp_path / "work2")
    source.url = url
    with pytest.raises(GitError):
        await source.sync()
    assert not marker.exists()


async def test_an_ext_transport_url_is_refused_and_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(ValueError, match=r"transport.*run helper programs"):
        GitSource(f"ext::sh -c touch% {marker}", tmp_path / "work")
    with pytest.raises(ValueError, match="transport"):
        GitSource("ext::true", tmp_path / "work")
    assert not marker.exists()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "-oProxyCommand=x",
        "ext::sh",
        "fd::17",
        "http://example.invalid/r.git",
        "git://example.invalid/r.git",
        "ftp://example.invalid/r.git",
        "https://example.invalid/a b.git",
        "https://example.invalid/r.git\n--upload-pack=x",
        "https://example.invalid/r\x00.git",
        "ssh://-oProxyCommand=touch%20x/r.git",
        "ssh://-user@host/r.git",
        "https:///r.git",
        "relative/path",
    ],
)
def test_urls_git_could_run_a_command_from_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="--git-url"):
        check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/o/r.git",
        "https://x-access-token:t0k@github.com/o/r.git",
        "ssh://git@example.invalid:2222/o/r.git",
        "git@github.com:o/r.git",
        "github.com:o/r.git",
        "git@host:/srv/r.git",
        "file:///srv/r.git",
        "/srv/r.git",
    ],
)
def test_ordinary_remotes_are_accepted(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "-x",
        "--upload-pack=x",
        "a..b",
        "main@{1}",
        "@",
        "ma\x01in",
        "ma\x7fin",
        "a b",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[",
        "a\\b",
        "x.lock",
        ".hidden",
        "a/.b",
        "a//b",
        "a/",
        "/a",
        "a.",
    ],
)
def test_refs_git_would_refuse_or_read_as_options_are_refused(ref: str) -> None:
    with pytest.raises(ValueError, match=r"--git-ref .*not a git ref name"):
        check_ref(ref)


@pytest.mark.parametrize(
    "ref", ["main", "refs/heads/main", "v1.2.3", "feature/x-y", "release-2024", "0" * 40]
)
def test_ordinary_refs_are_accepted(ref: str) -> None:
    assert check_ref(ref) == ref


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from("ab/.-@{}~^:?*[\\ \x01lock"), max_size=12))
def test_the_ref_check_agrees_with_git_check_ref_format(ref: str) -> None:
    result = subprocess.run(
        ["git", "check-ref-format", "--allow-onelevel", ref], capture_output=True, env=GIT_ENV, check=False
    )
    git_accepts = result.returncode == 0 and not ref.startswith("-")
    try:
        check_ref(ref)
        ours = True
    except ValueError:
        ours = False
    assert ours == git_accepts, ref


def test_a_bad_ref_or_url_is_a_usage_error_of_the_daemon(tmp_path: Path) -> None:
    import argparse

    from reconciler.daemon.cli import DaemonUsageError, add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    parser.add_argument("-f", "--manifests", type=Path, default=Path("manifests"))
    parser.add_argument("--instance", default="default")
    add_arguments(parser, {})
    parse = parser.parse_args
    with pytest.raises(DaemonUsageError, match=r"--git-ref '--upload-pack=x'.*option"):
        config_from_args(parse(["--git-url", "https://h.invalid/r.git", "--git-ref=--upload-pack=x"]), {})
    with pytest.raises(DaemonUsageError, match=r"--git-url 'https://\*\*\*@h.invalid/r.git\?a b'"):
        config_from_args(parse(["--git-url", "https://u:tok@h.invalid/r.git?a b"]), {})


# -- credentials (issue 10, finding 7) ---------------------------------------------------------------------


async def test_a_token_in_the_url_is_in_no_file_of_the_cache_and_the_cache_is_private(tmp_path: Path) -> None:
    token = "s3cret-t0ken-xyz"
    work = tmp_path / "work"
    source = GitSource(f"https://user:{token}@127.0.0.1:9/repo.git?private_token={token}", work, timeout=20)
    with pytest.raises(GitError) as caught:
        await source.sync()
    assert token not in str(caught.value)
    files = [p for p in work.rglob("*") if p.is_file()]
    assert files, "the cache was created"
    assert [p for p in files if token.encode() in p.read_bytes()] == []
    assert (work.stat().st_mode & 0o777) == 0o700
    assert (
        git(work / "cache.git", "config", "remote.origin.url")
        == "https://127.0.0.1:9/repo.git?private_token=***"
    )
    # git still fetches from the real address: the environment-only rewrite gives it the token back.
    real = _get_url(work / "cache.git", source._child_env())
    assert real == f"https://127.0.0.1:9/repo.git?private_token={token}"


async def test_a_cache_written_by_an_older_release_loses_its_stored_token(
    tmp_path: Path, remote: Path
) -> None:
    commit(remote, {"a.yaml": "a"})
    work = tmp_path / "work"
    (work / "cache.git").mkdir(parents=True)
    git(work / "cache.git", "init", "-q", "--bare")
    git(work / "cache.git", "remote", "add", "origin", "https://u:old-t0ken-abc@127.0.0.1:9/r.git")
    work.chmod(0o755)
    await GitSource(f"file://{remote}", work).sync()
    assert b"old-t0ken-abc" not in (work / "cache.git" / "config").read_bytes()
    assert (work.stat().st_mode & 0o777) == 0o700


def _get_url(cache: Path, env: dict[str, str]) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(cache), "ls-remote", "--get-url", "origin"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.strip()


def _credential_fill(source: GitSource, url: str) -> str:
    parts = url.split("://", 1)
    host = parts[1].split("/", 1)[0]
    return subprocess.run(
        ["git", "credential", "fill"],
        input=f"protocol={parts[0]}\nhost={host}\n\n",
        capture_output=True,
        text=True,
        env={**source._child_env(), "HOME": "/nonexistent"},
        check=False,
    ).stdout


def test_git_gets_the_credential_of_the_url_from_the_helper_and_not_from_argv(tmp_path: Path) -> None:
    source = GitSource("https://bot:t%40ken-123@git.example.invalid/r.git", tmp_path / "work")
    assert source.url == "https://git.example.invalid/r.git"
    out = _credential_fill(source, "https://git.example.invalid")
    assert "username=bot\n" in out
    assert "password=t@ken-123\n" in out
    # Scoped to the remote's host: another host (a redirect) is not given it.
    assert "t@ken-123" not in _credential_fill(source, "https://elsewhere.example.invalid")
    assert all("t@ken-123" not in value for value in source.env.values())


def test_git_gets_the_credential_from_the_environment_or_a_file(tmp_path: Path) -> None:
    from_env = GitSource(
        "https://git.example.invalid/r.git",
        tmp_path / "a",
        environ={"RECONCILER_GIT_USERNAME": "bot", "RECONCILER_GIT_PASSWORD": "env-t0ken"},
    )
    assert "password=env-t0ken\n" in _credential_fill(from_env, "https://git.example.invalid")
    secret = tmp_path / "token"
    secret.write_text("file-t0ken-1\n")
    from_file = GitSource(
        "https://git.example.invalid/r.git",
        tmp_path / "b",
        environ={"RECONCILER_GIT_USERNAME": "bot", "RECONCILER_GIT_PASSWORD_FILE": str(secret)},
    )
    assert "password=file-t0ken-1\n" in _credential_fill(from_file, "https://git.example.invalid")
    secret.write_text("file-t0ken-2\n")  # a rotated secret is read on the next git command
    assert "password=file-t0ken-2\n" in _credential_fill(from_file, "https://git.example.invalid")


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("https://user:pw-123456@h.example/r.git", "pw-123456"),
        ("https://t0ken-abcdef@h.example/r.git", "t0ken-abcdef"),
        ("failed: https://h.example/r.git?access_token=abc123xyz&x=1", "abc123xyz"),
        ("https://h.example/r?token=abc123xyz", "abc123xyz"),
        ("https://h.example/r?private_token=abc123xyz", "abc123xyz"),
        ("https://h.example/r?a=1&sig=abc123xyz", "abc123xyz"),
        ("https://h.example/r?password=abc123xyz", "abc123xyz"),
        ("https://h.example/r?oauth_token=abc123xyz", "abc123xyz"),
    ],
)
def test_url_credentials_are_redacted_in_display_urls_errors_and_logs(text: str, secret: str) -> None:
    from reconciler.daemon.logging import REDACTOR

    assert secret not in redact_url(text)
    assert secret not in REDACTOR.scrub(text)
    assert "h.example" in redact_url(text)


def test_status_shows_the_git_url_without_credentials(tmp_path: Path) -> None:
    source = GitSource("https://u:pw-s3cret@h.example/r.git?access_token=tok-s3cret", tmp_path / "w")
    assert "s3cret" not in source.display_url
    assert source.display_url == "https://h.example/r.git?access_token=***"


# -- an empty commit (issue 9, "Also") ---------------------------------------------------------------------


async def test_a_commit_with_an_empty_tree_is_an_empty_checkout_with_a_plain_warning(
    tmp_path: Path, remote: Path
) -> None:
    git(remote, "commit", "-q", "--allow-empty", "-m", "empty")
    source = GitSource(f"file://{remote}", tmp_path / "work")
    sha = await source.sync()
    assert sha is not None
    assert list(source.tree().iterdir()) == []
    assert source.warning == (
        f"commit {sha[:12]} of file://{remote} has no files: nothing to reconcile; the empty-set guard "
        "refuses to prune the groups this instance manages unless --allow-empty is set"
    )
    assert source.last_error is None
    commit(remote, {"a.yaml": "a"})
    assert await source.sync() is not None
    assert source.warning is None
    assert (source.tree() / "a.yaml").read_text() == "a"
