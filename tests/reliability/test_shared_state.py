"""Two processes on one `--local DIR`: the directory's lock makes them take turns, so neither loses the
other's groups; `--no-wait` refuses at once; a daemon on DIR holds it for as long as it runs; a full disk is a
clear error that leaves the previous state intact.

The overlap is made deterministic, not timed: the test holds DIR's lock itself, starts both runs, reads the
line each prints when it starts waiting, and only then lets them go.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler import cli
from reconciler.emulator import store
from reconciler.locking import hold_directory_lock
from tests.e2e.harness import DaemonProcess, write
from tests.e2e.test_cli_apply import SECRETS, group_yaml

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "RECONCILER_"))}
    return {**env, **SECRETS, "NO_COLOR": "1"}


def start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", *args],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def saved_groups(state_dir: Path) -> list[str]:
    state = json.loads((state_dir / "emulator-state.json").read_text())
    return sorted(g["name"] for g in state["groups"])


@pytest.fixture
def two_sources(tmp_path: Path) -> Path:
    write(tmp_path / "one/a.yaml", group_yaml("alpha"))
    write(tmp_path / "two/b.yaml", group_yaml("beta"))
    return tmp_path


def test_two_runs_on_one_local_dir_take_turns_and_both_groups_are_kept(two_sources: Path) -> None:
    cwd, state = two_sources, two_sources / "state"
    with hold_directory_lock(state, wait=False):
        runs = [
            start(cwd, "--local", str(state), "-f", "one", "--instance", "one"),
            start(cwd, "--local", str(state), "-f", "two", "--instance", "two"),
        ]
        for proc in runs:
            assert proc.stderr is not None
            line = proc.stderr.readline()  # blocks until this run waits for the lock the test holds
            assert line.startswith(f"waiting for the lock on {state} held by pid {os.getpid()}"), line
    results = [proc.communicate(timeout=90) for proc in runs]
    for proc, (out, err) in zip(runs, results, strict=True):
        assert proc.returncode == 0, out + err
        assert "Apply complete: 1 created." in out
    assert saved_groups(state) == ["alpha", "beta"]
    for instance, name in (("one", "alpha"), ("two", "beta")):
        status = run(cwd, "status", "--local", str(state), "-f", instance, "--instance", instance, "-o=json")
        assert status.returncode == 0, status.stderr
        assert [(g["name"], g["sync"]) for g in json.loads(status.stdout)["groups"]] == [(name, "in sync")]


def test_no_wait_refuses_at_once_and_names_the_holder(two_sources: Path) -> None:
    cwd, state = two_sources, two_sources / "state"
    with hold_directory_lock(state, wait=False):
        for argv in (
            ("--local", str(state), "--no-wait", "-f", "one"),
            ("status", "--local", str(state), "--no-wait", "-f", "one"),
            ("--local", str(state), "export", "alpha", "--resource-group", "rg-e2e", "--no-wait"),
        ):
            refused = run(cwd, *argv)
            assert refused.returncode == 1, refused
            assert refused.stderr.startswith(f"error: {state} is in use by pid {os.getpid()}"), refused.stderr
            assert "Traceback" not in refused.stderr
    assert not (state / "emulator-state.json").exists()  # nothing was read or written meanwhile


def test_a_daemon_on_a_local_dir_holds_it_while_it_runs(two_sources: Path) -> None:
    cwd, state = two_sources, two_sources / "state"
    daemon = DaemonProcess(
        [
            "--local",
            str(state),
            "-f",
            str(cwd / "one"),
            "--listen",
            "127.0.0.1:0",
            "--state-dir",
            str(cwd / "daemon-state"),
            "--log-format",
            "json",
            "--interval",
            "0",
        ],
        cli_env(),
    )
    try:
        first = daemon.wait_for(lambda e: e.get("event") == "pass finished")
        assert first["result"] == "ok", daemon.log_tail()
        refused = run(cwd, "--local", str(state), "--no-wait", "-f", "two", "--instance", "two")
        assert refused.returncode == 1
        assert f"in use by pid {daemon.proc.pid}" in refused.stderr
    finally:
        assert daemon.finish() == 0, daemon.log_tail()
    after = run(cwd, "--local", str(state), "--no-wait", "-f", "two", "--instance", "two")
    assert after.returncode == 0, after.stderr
    assert saved_groups(state) == ["alpha", "beta"]


def test_a_full_disk_at_the_end_of_a_local_run_is_a_clear_error_and_the_previous_state_stays(
    two_sources: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cwd, state = two_sources, two_sources / "state"
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(cli.gc, "freeze", lambda: None)  # main() tunes the collector for a whole process
    monkeypatch.setattr(cli.gc, "set_threshold", lambda *_: None)
    for name, value in cli_env().items():
        monkeypatch.setenv(name, value)
    assert cli.main(["--local", str(state), "-f", "one", "--instance", "one"]) == 0
    before = (state / "emulator-state.json").read_text()
    real_replace = os.replace

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).name == "emulator-state.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_replace(src, dst)

    monkeypatch.setattr(store.os, "replace", replace)
    capsys.readouterr()
    assert cli.main(["--local", str(state), "-f", "two", "--instance", "two"]) == 1
    err = capsys.readouterr().err
    assert f"error: cannot save the emulator state to {state / 'emulator-state.json'} (No space left" in err
    assert "the previous state is kept" in err
    assert "Traceback" not in err
    assert (state / "emulator-state.json").read_text() == before
    assert sorted(p.name for p in state.iterdir() if p.name.startswith(".emulator-state")) == []
