"""Reliability against hostile git settings of the daemon (issue 10, findings 6 and 7), on the real process.

Refs and URLs that git would read as options or as a command (`--upload-pack=…`, `ext::sh -c …`, a host
`-oProxyCommand=…`) and refs git itself refuses stop `reconcile daemon` at start with a one-line error naming
the option; the command never runs. A token in `--git-url` is in no file of the git cache (mode 0700), and in
no log line, `/status` or `/metrics` of a daemon that fetched with it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.harness import DaemonProcess, EmulatorProcess
from tests.reliability.support import daemon_env

# Each case: the daemon options (MARKER is replaced by a path the command would create) and what the
# one-line error must say.
HOSTILE = [
    (["--git-ref", "--upload-pack=touch MARKER"], "--git-ref"),
    (["--git-ref=--upload-pack=touch MARKER"], "--git-ref"),
    (["--git-ref=-utouch MARKER"], "--git-ref"),
    (["--git-ref", "main..evil"], "not a git ref name"),
    (["--git-ref", "main@{1}"], "not a git ref name"),
    (["--git-ref", "ma\x01in"], "control character"),
    (["--git-ref", "refs/heads/x.lock"], "not a git ref name"),
    (["--git-url", "--upload-pack=touch MARKER"], "--git-url"),
    (["--git-url=-uMARKER"], "--git-url"),
    (["--git-url", "ext::sh -c touch% MARKER"], "transport"),
    (["--git-url", "ssh://-oProxyCommand=touch%20MARKER/r.git"], "starts with '-'"),
    (["--git-url", "https://example.invalid/r.git\n--upload-pack=touch MARKER"], "control character"),
    (["--git-url", "git://example.invalid/r.git"], "scheme"),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("options", "says"), HOSTILE)
def test_hostile_git_refs_and_urls_stop_the_daemon_with_an_error_and_run_nothing(
    tmp_path: Path, options: list[str], says: str
) -> None:
    marker = tmp_path / "pwned"
    argv = [o.replace("MARKER", str(marker)) for o in options]
    if not any(o.startswith("--git-url") for o in argv):
        argv = ["--git-url", f"file://{tmp_path / 'repo'}", *argv]
    result = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "daemon", "--local", "-f", "manifests", *argv],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=daemon_env(home=tmp_path),
        timeout=60,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    assert says in lines[0]
    assert not marker.exists()


def _git(repo: Path, *args: str) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "HOME": str(repo),
    }
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_a_token_in_the_git_url_is_in_no_cache_file_log_status_or_metric(tmp_path: Path) -> None:
    token = "ghp-canary-t0ken-4f9a1c"
    repo = tmp_path / "repo"
    (repo / "manifests").mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "manifests" / "README.md").write_text("no manifests yet\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "first")
    emulator = EmulatorProcess(tmp_path, "--no-throttling")
    state = tmp_path / "daemon-state"
    daemon = DaemonProcess(
        [
            "--endpoint",
            emulator.endpoint,
            "--ca-cert",
            str(emulator.ca_cert),
            "--credential",
            "static",
            "--git-url",
            f"file://bot:{token}@{repo}",
            "-f",
            "manifests",
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            str(state),
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ],
        daemon_env(home=tmp_path),
    )
    try:
        event = daemon.wait_for(lambda e: e.get("event") == "pass finished", timeout=60)
        assert event.get("revision"), daemon.log_tail()
        status = daemon.get("/status")[1]
        metrics = daemon.get("/metrics")[1]
        assert json.loads(status)["git"]["url"] == f"file://{repo}"
        for text in (status, metrics):
            assert token not in text
        cache = state / "git"
        assert (cache.stat().st_mode & 0o777) == 0o700
        files = [p for p in cache.rglob("*") if p.is_file() and not p.is_symlink()]
        assert (cache / "cache.git" / "config") in files
        assert [p for p in files if token.encode() in p.read_bytes()] == []
    finally:
        assert daemon.finish() == 0, daemon.log_tail()
        emulator.stop()
    assert token not in "".join(daemon.raw)
    assert token not in daemon.stdout
