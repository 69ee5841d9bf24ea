"""`reconcile run` and `reconcile logs` end to end: the real CLI process against the emulator process, whose
containers run a simulation of their command (reconciler/emulator/README.md), on a real clock.

What a user relies on: the log on stdout in order, the job's exit code, 124 on timeout with the group stopped
and deleted, a signal that cleans up, `--keep`, a re-run that uses ACI's `start`, secrets masked.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.harness import EmulatorProcess, run_cli, write

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

RG = "rg-jobs"
SECRET = "pa55-w0rd-e2e-canary"

JOB = """\
name: {name}
resourceGroup: {rg}
location: westeurope
properties:
  osType: Linux
  restartPolicy: Never
  containers:
  - name: main
    properties:
      image: busybox:1.36
      command: {command}
      environmentVariables:
      - name: DB_PASSWORD
        secureValueFrom: {{env: JOB_SECRET}}
      resources: {{requests: {{cpu: 0.5, memoryInGB: 0.5}}}}
"""


def job(root: Path, name: str, script: str) -> None:
    write(
        root / "manifests" / f"{name}.yaml",
        JOB.format(name=name, rg=RG, command=json.dumps(["sh", "-c", script])),
    )


def run(emulator: EmulatorProcess, root: Path, *args: str) -> tuple[int, str, str]:
    out = run_cli(emulator, "run", *args, cwd=root, env={"JOB_SECRET": SECRET})
    return out.code, out.stdout, out.stderr


def exists(emulator: EmulatorProcess, name: str) -> bool:
    return emulator.get(RG, name) is not None


def test_a_job_prints_its_lines_in_order_on_stdout_and_exits_with_its_code(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    job(tmp_path, "three", "echo one; echo two; sleep 1; echo three; exit 3")
    code, stdout, stderr = run(emulator, tmp_path, "three")
    assert code == 3, stderr
    assert stdout == "one\ntwo\nthree\n"
    assert "exit code 3" in stderr
    assert not exists(emulator, "three")


def test_a_timeout_exits_124_with_the_group_stopped_and_deleted(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    job(tmp_path, "slow", "echo started; sleep 600")
    emulator.reset_counters()
    code, _stdout, stderr = run(emulator, tmp_path, "slow", "--timeout", "3s")
    assert code == 124, stderr
    counters = emulator.counters()
    assert counters.get("POST containerGroup.stop") == 1
    assert counters.get("DELETE containerGroup") == 1
    assert not exists(emulator, "slow")


def test_sigterm_during_a_run_stops_and_deletes_its_group(emulator: EmulatorProcess, tmp_path: Path) -> None:
    job(tmp_path, "killed", "echo started; sleep 600")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "RECONCILER_"))},
        "RECONCILER_ENDPOINT": emulator.endpoint,
        "RECONCILER_CA_CERT": str(emulator.ca_cert),
        "RECONCILER_CREDENTIAL": "static",
        "RECONCILER_SECRET_KEY": "e2e-test-key-0123456789abcdef",
        "JOB_SECRET": SECRET,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "reconciler.cli", "run", "killed"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "started\n"  # the job runs: its first line arrived
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert not exists(emulator, "killed")


def test_keep_on_failure_keeps_only_the_failed_runs(emulator: EmulatorProcess, tmp_path: Path) -> None:
    job(tmp_path, "good", "echo fine")
    job(tmp_path, "bad", "echo broken; exit 2")
    assert run(emulator, tmp_path, "good", "--keep", "on-failure")[0] == 0
    assert run(emulator, tmp_path, "bad", "--keep", "on-failure")[0] == 2
    assert not exists(emulator, "good")
    assert exists(emulator, "bad")


def test_a_rerun_of_an_unchanged_terminated_job_uses_start_not_delete_and_create(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    job(tmp_path, "again", "echo hello")
    assert run(emulator, tmp_path, "again", "--keep", "always")[0] == 0
    emulator.reset_counters()
    code, stdout, stderr = run(emulator, tmp_path, "again", "--keep", "always")
    assert (code, stdout) == (0, "hello\n"), stderr
    counters = emulator.counters()
    assert counters.get("POST containerGroup.start") == 1
    assert counters.get("PUT containerGroup", 0) == 0
    assert counters.get("DELETE containerGroup", 0) == 0


def test_a_secret_the_job_prints_never_appears_in_the_streamed_log(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    job(tmp_path, "leaky", 'echo "password is $DB_PASSWORD"')
    code, stdout, stderr = run(emulator, tmp_path, "leaky", "--keep", "always")
    assert code == 0, stderr
    assert stdout == "password is ***\n"
    assert SECRET not in stdout + stderr
    logs = run_cli(
        emulator, "logs", "leaky", "--resource-group", RG, cwd=tmp_path, env={"JOB_SECRET": SECRET}
    )
    assert logs.stdout == "password is ***\n"


def test_logs_prints_the_last_lines_of_a_kept_run(emulator: EmulatorProcess, tmp_path: Path) -> None:
    job(tmp_path, "lines", "echo a; echo b; echo c")
    assert run(emulator, tmp_path, "lines", "--keep", "always", "--no-logs")[0] == 0
    out = run_cli(emulator, "logs", "lines", "--tail", "2", cwd=tmp_path, env={"JOB_SECRET": SECRET})
    assert (out.code, out.stdout) == (0, "b\nc\n"), out


def test_a_job_name_no_manifest_defines_exits_125_naming_it(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    job(tmp_path, "exists", "echo hi")
    code, _, stderr = run(emulator, tmp_path, "missing")
    assert code == 125
    assert "missing" in stderr


def test_the_python_api_runs_a_job_and_returns_its_exit_codes_and_log(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    from reconciler.jobs import Target, run_job

    manifest = {
        "name": "api",
        "resourceGroup": RG,
        "location": "westeurope",
        "properties": {
            "osType": "Linux",
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "properties": {
                        "image": "busybox:1.36",
                        "command": ["sh", "-c", "echo from the api; exit 4"],
                        "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}},
                    },
                }
            ],
        },
    }
    seen: list[str] = []
    started = time.monotonic()
    result = run_job(
        manifest,
        target=Target.endpoint(emulator.endpoint, ca_cert=str(emulator.ca_cert)),
        on_log=lambda container, text: seen.append(f"{container}:{text}"),
        environ={"RECONCILER_SECRET_KEY": "e2e-test-key-0123456789abcdef"},
    )
    assert result.exit_code == 4
    assert result.exit_codes == {"main": 4}
    assert result.logs == {"main": "from the api\n"}
    assert seen == ["main:from the api\n"]
    assert time.monotonic() - started < 60
    assert not exists(emulator, "api")


def test_the_python_api_runs_a_manifest_file_on_the_embedded_emulator_and_raises_on_failure_with_check(
    tmp_path: Path,
) -> None:
    from reconciler.jobs import JobFailed, Target, run_job

    job(tmp_path, "local", 'echo "secret is $DB_PASSWORD"; exit 7')
    with pytest.raises(JobFailed) as failed:
        run_job(
            tmp_path / "manifests" / "local.yaml",
            target=Target.local(tmp_path / ".reconciler"),
            check=True,
            keep="on-failure",
            environ={"JOB_SECRET": SECRET},
        )
    run = failed.value.run
    assert (run.exit_code, run.logs) == (7, {"main": "secret is ***\n"})
    assert run.result.kept
    assert "exit code 7" in str(failed.value)
    assert SECRET not in repr(run)
