"""End to end: `reconcile daemon` in a subprocess on a git repository of manifests, against the emulator.

The emulator and the daemon are separate processes on loopback. The test follows the daemon through its JSON
log lines on stderr (read as they come, no polling of a clock) and checks Azure's side through the emulator's
control surface and the real SDK.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import DaemonProcess, EmulatorProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

RG = "rg-e2e"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.invalid",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}

MANIFEST = """\
name: {name}
resourceGroup: {rg}
location: westeurope
tags: {{app: {name}}}
properties:
  osType: Linux
  restartPolicy: Always
  containers:
  - name: {name}
    properties:
      image: {image}
      resources: {{requests: {{cpu: {cpu}, memoryInGB: 1.5}}}}
      ports: [{{port: 80}}]
  ipAddress: {{type: Public, ports: [{{port: 80, protocol: TCP}}]}}
"""


def manifest(name: str, image: str, cpu: float = 1) -> str:
    return MANIFEST.format(name=name, rg=RG, image=image, cpu=cpu)


class Repo:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir()
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        env = {**os.environ, **GIT_ENV, "HOME": str(self.path)}
        out = subprocess.run(
            ["git", "-C", str(self.path), *args], check=True, capture_output=True, text=True, env=env
        )
        return out.stdout.strip()

    def commit(self, files: dict[str, str], message: str) -> str:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD")


def groups(emulator: EmulatorProcess) -> list[dict[str, Any]]:
    """The emulator's groups in this test's resource group."""
    return [g for g in emulator.control("GET", "groups")["value"] if f"/resourceGroups/{RG}/" in g["id"]]


def requests(emulator: EmulatorProcess) -> list[dict[str, Any]]:
    return list(emulator.control("GET", "requests?offset=0")["requests"])


def pass_finished(event: dict[str, Any]) -> bool:
    return event.get("event") == "pass finished"


def group_done(name: str, action: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("event") == "group done" and e.get("name") == name and e.get("action") == action


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess(tmp_path, "--no-throttling")
    yield emu
    emu.stop()


def start_daemon(
    tmp_path: Path,
    repo: Repo,
    emulator: EmulatorProcess,
    *extra: str,
    state_dir: Path | None = None,
    env_extra: dict[str, str] | None = None,
) -> DaemonProcess:
    """A daemon process on the emulator, following `repo` (polled every 0.3 s), logging JSON."""
    env = {
        **os.environ,
        "RECONCILER_SECRET_KEY": "0123456789abcdef" * 4,
        "HOME": str(tmp_path),
        "NO_COLOR": "1",
        **(env_extra or {}),
    }
    env.pop("AZURE_SUBSCRIPTION_ID", None)
    args = [
        "--endpoint",
        emulator.endpoint,
        "--ca-cert",
        str(emulator.ca_cert),
        "--credential",
        "static",
        "--git-url",
        f"file://{repo.path}",
        "--git-interval",
        "0.3s",
        "-f",
        "manifests",
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        str(state_dir or tmp_path / "daemon-state"),
        "--log-format",
        "json",
        "--lro-timeout",
        "60",
        *extra,
    ]
    return DaemonProcess(args, env)


def sdk_client(emulator: EmulatorProcess) -> Any:
    from azure.core.credentials import AccessToken
    from azure.mgmt.containerinstance import ContainerInstanceManagementClient

    class Token:
        def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
            return AccessToken("e2e-token", int(time.time()) + 3600)

    return ContainerInstanceManagementClient(
        Token(),
        "00000000-0000-0000-0000-000000000000",
        base_url=emulator.endpoint,
        connection_verify=str(emulator.ca_cert),
    )


def test_daemon_applies_commits_corrects_drift_serves_endpoints_and_stops_on_sigterm(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    repo = Repo(tmp_path / "repo")
    first = repo.commit(
        {
            "manifests/web.yaml": manifest("web", "nginx:1.25"),
            "manifests/api.yaml": manifest("api", "httpd:2.4"),
        },
        "two groups",
    )
    daemon = start_daemon(
        tmp_path, repo, emulator, "--interval", "2s", "--jitter", "0", "--grace-period", "10s"
    )
    try:
        event = daemon.wait_for(pass_finished, timeout=30)
        assert event["result"] == "ok", daemon.log_tail()
        assert event["revision"] == first
        assert sorted(g["id"].rsplit("/", 1)[1] for g in groups(emulator)) == ["api", "web"]
        assert daemon.get("/readyz")[0] == 200
        assert daemon.get("/healthz")[0] == 200

        # A commit reaches Azure within 3 seconds.
        committed_at = time.time()
        second = repo.commit({"manifests/web.yaml": manifest("web", "nginx:1.27")}, "new image")
        daemon.wait_for(group_done("web", "update"), timeout=10)
        puts = [
            r
            for r in requests(emulator)
            if r["method"] == "PUT"
            and r["route"] == "containerGroup"
            and r["path"].endswith("/web")
            and r["time"] >= committed_at
        ]
        assert puts, "the emulator saw the PUT"
        assert puts[0]["time"] - committed_at < 3.0
        status = json.loads(daemon.get("/status")[1])
        web = next(g for g in status["groups"] if g["name"] == "web")
        assert web["last_applied_revision"] == second

        # Out of band: someone changes the image through the SDK; the next resync puts it back.
        client = sdk_client(emulator)
        live = client.container_groups.get(RG, "web")
        live.containers[0].image = "nginx:evil"
        client.container_groups.begin_create_or_update(RG, "web", live).result()
        daemon.wait_for(lambda e: e.get("event") == "drift detected" and e.get("name") == "web", timeout=15)
        daemon.wait_for(group_done("web", "update"), timeout=15)
        assert client.container_groups.get(RG, "web").containers[0].image == "nginx:1.27"

        status_code, metrics = daemon.get("/metrics")
        assert status_code == 200
        assert 'aci_reconciler_drift_detected_total{action="update"}' in metrics
        assert 'aci_reconciler_actions_total{action="update",result="succeeded"}' in metrics
        assert "aci_reconciler_pass_duration_seconds_count" in metrics
        status = json.loads(daemon.get("/status")[1])
        assert {g["name"]: g["state"] for g in status["groups"]} == {"api": "Ready", "web": "Ready"}
        assert status["git"]["revision"] == second
        assert status["last_plan"]["revision"] == second
        assert "0123456789abcdef" not in daemon.log_tail()
    finally:
        stopped_at = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        code = daemon.proc.wait(20)
    assert code == 0, daemon.log_tail()
    assert time.monotonic() - stopped_at < 10.0, "within the grace period"
    assert len(groups(emulator)) == 2


def test_sigkill_in_the_middle_of_a_replace_converges_after_restart(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit(
        {
            "manifests/web.yaml": manifest("web", "nginx:1.25"),
            "manifests/api.yaml": manifest("api", "httpd:2.4"),
        },
        "two groups",
    )
    daemon = start_daemon(tmp_path, repo, emulator, "--interval", "1m")
    try:
        assert daemon.wait_for(pass_finished, timeout=30)["result"] == "ok", daemon.log_tail()
        # Deletes now take a while, so the kill lands between the delete and the create.
        emulator.control("PATCH", "config", {"delete_delay": 2.0})
        repo.commit({"manifests/web.yaml": manifest("web", "nginx:1.25", cpu=2)}, "more cpu: replace")
        daemon.wait_for(
            lambda e: (
                e.get("event") == "progress" and e.get("name") == "web" and e.get("phase") == "deleting"
            ),
            timeout=10,
        )
        deadline = time.monotonic() + 10
        # The DELETE is on the wire once the emulator has logged it; only then is the kill mid-replace.
        while not any(r["method"] == "DELETE" and r["path"].endswith("/web") for r in requests(emulator)):
            assert time.monotonic() < deadline, "the daemon never sent the DELETE"
            time.sleep(0.02)
    finally:
        daemon.proc.kill()
        daemon.proc.wait(10)
    assert daemon.proc.returncode == -signal.SIGKILL
    left = {g["id"].rsplit("/", 1)[1]: g["provisioningState"] for g in groups(emulator)}
    assert left.get("web") in (None, "Deleting"), f"killed between the delete and the create: {left}"

    emulator.control("PATCH", "config", {"delete_delay": 0.0})
    again = start_daemon(tmp_path, repo, emulator, "--interval", "1m")
    try:
        unfinished = again.wait_for(
            lambda e: e.get("event", "").startswith("unfinished by the previous run"), 20
        )
        assert unfinished["name"] == "web"
        assert unfinished["action"] == "replace"
        event = again.wait_for(pass_finished, timeout=30)
        if event["result"] != "ok":  # the first pass may still see the group deleting; the next one finishes
            event = again.wait_for(pass_finished, timeout=30)
        names = sorted(g["id"].rsplit("/", 1)[1] for g in groups(emulator))
        assert names == ["api", "web"], "no group lost, none duplicated"
        client = sdk_client(emulator)
        assert client.container_groups.get(RG, "web").containers[0].resources.requests.cpu == 2
        status = json.loads(again.get("/status")[1])
        assert {g["name"]: g["state"] for g in status["groups"]} == {"api": "Ready", "web": "Ready"}
    finally:
        again.proc.send_signal(signal.SIGTERM)
        assert again.proc.wait(20) == 0, again.log_tail()


def test_second_sigterm_exits_at_once_and_the_restart_reports_the_unfinished(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"manifests/web.yaml": manifest("web", "nginx:1.25")}, "one group")
    # Creates take 30 s: the first SIGTERM finds an apply in flight and waits for it; the second does not.
    emulator.control("PATCH", "config", {"provisioning_delay": 30.0})
    daemon = start_daemon(tmp_path, repo, emulator, "--grace-period", "60s")
    try:
        daemon.wait_for(lambda e: e.get("event") == "applying" and e.get("name") == "web", timeout=30)
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.wait_for(lambda e: e.get("event") == "waiting for the pass in flight", timeout=10)
        assert daemon.proc.poll() is None, "the first signal waits for the apply in flight"
        signalled = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        code = daemon.proc.wait(10)
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert code == 130
    assert time.monotonic() - signalled < 5.0
    saved = json.loads((tmp_path / "daemon-state" / "daemon-state.json").read_text())
    assert [(g["name"], g["in_flight"]) for g in saved["groups"]] == [("web", "create")]

    emulator.control("PATCH", "config", {"provisioning_delay": 0.0})
    again = start_daemon(tmp_path, repo, emulator)
    try:
        event = again.wait_for(lambda e: e.get("event", "").startswith("unfinished by the previous run"), 20)
        assert (event["name"], event["action"]) == ("web", "create")
        assert again.wait_for(pass_finished, timeout=30)["result"] in ("ok", "failed")
    finally:
        again.proc.send_signal(signal.SIGTERM)
        assert again.proc.wait(20) == 0, again.log_tail()


def test_sigterm_lets_the_create_in_flight_finish_then_exits_0(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"manifests/web.yaml": manifest("web", "nginx:1.25")}, "one group")
    emulator.control("PATCH", "config", {"provisioning_delay": 2.0})
    daemon = start_daemon(tmp_path, repo, emulator, "--grace-period", "20s")
    try:
        daemon.wait_for(lambda e: e.get("event") == "applying" and e.get("name") == "web", timeout=30)
        signalled = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        code = daemon.proc.wait(25)
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
    assert code == 0, daemon.log_tail()
    assert time.monotonic() - signalled < 20.0
    done = [e for e in daemon.events if e.get("event") == "group done" and e.get("name") == "web"]
    assert done, daemon.log_tail()
    assert done[0]["result"] == "succeeded"
    saved = json.loads((tmp_path / "daemon-state" / "daemon-state.json").read_text())
    assert [(g["name"], g["in_flight"], g["state"]) for g in saved["groups"]] == [("web", None, "Ready")]
    assert [g["provisioningState"] for g in groups(emulator)] == ["Succeeded"]


def test_signed_webhook_fetches_and_applies_at_once(tmp_path: Path, emulator: EmulatorProcess) -> None:
    import hashlib
    import hmac

    secret = tmp_path / "hook-secret"
    secret.write_text("e2e-webhook-secret\n")
    repo = Repo(tmp_path / "repo")
    repo.commit({"manifests/web.yaml": manifest("web", "nginx:1.25")}, "one group")
    daemon = start_daemon(
        tmp_path, repo, emulator, "--git-interval", "10m", "--webhook-secret-file", str(secret)
    )
    try:
        assert daemon.wait_for(pass_finished, timeout=30)["result"] == "ok", daemon.log_tail()
        repo.commit({"manifests/web.yaml": manifest("web", "nginx:1.27")}, "new image")
        body = b'{"ref": "refs/heads/main"}'

        def post(signature: str) -> int:
            request = urllib.request.Request(daemon.url + "/hook", data=body, method="POST")
            request.add_header("X-GitHub-Event", "push")
            request.add_header("X-Hub-Signature-256", signature)
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return int(response.status)
            except urllib.error.HTTPError as err:
                return err.code

        assert post("sha256=" + "0" * 64) == 401
        good = "sha256=" + hmac.new(b"e2e-webhook-secret", body, hashlib.sha256).hexdigest()
        assert post(good) == 202
        daemon.wait_for(group_done("web", "update"), timeout=10)
        assert "e2e-webhook-secret" not in "".join(daemon.raw)
    finally:
        daemon.proc.send_signal(signal.SIGTERM)
        assert daemon.proc.wait(20) == 0, daemon.log_tail()


def test_daemon_prunes_a_group_whose_resource_group_no_manifest_names_any_more(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit(
        {
            "manifests/web.yaml": manifest("web", "nginx:1.25"),
            "manifests/solo.yaml": MANIFEST.format(name="solo", rg="rg-solo", image="nginx:1.25", cpu=1),
        },
        "a group in its own resource group",
    )
    daemon = start_daemon(tmp_path, repo, emulator, "--interval", "0", "--grace-period", "10s")
    try:
        event = daemon.wait_for(pass_finished, timeout=30)
        assert event["result"] == "ok", daemon.log_tail()
        assert any(
            g["id"].endswith("/rg-solo/providers/Microsoft.ContainerInstance/containerGroups/solo")
            for g in emulator.control("GET", "groups")["value"]
        )
        repo.git("rm", "-q", "manifests/solo.yaml")
        repo.git("commit", "-q", "-m", "solo is gone")
        daemon.wait_for(group_done("solo", "delete"), timeout=15)
        assert not any("/rg-solo/" in g["id"] for g in emulator.control("GET", "groups")["value"])
        assert [g["id"].rsplit("/", 1)[1] for g in groups(emulator)] == ["web"]
    finally:
        code = daemon.finish()
    assert code == 0, daemon.log_tail()


JOB = """\
name: migrate
resourceGroup: {rg}
location: westeurope
properties:
  osType: Linux
  restartPolicy: Never
  containers:
  - name: migrate
    properties:
      image: busybox:1.36
      command: ["sh", "-c", "echo migrating {version}; echo done; exit {code}"]
      resources: {{requests: {{cpu: 0.5, memoryInGB: 0.5}}}}
reconcile:
  job: {{runOnChange: true, keep: on-failure}}
"""


def test_daemon_runs_a_run_on_change_job_once_per_spec_and_shows_the_run_in_status(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"manifests/migrate.yaml": JOB.format(rg=RG, version="v1", code=0)}, "a migration")
    daemon = start_daemon(tmp_path, repo, emulator)
    try:
        finished = daemon.wait_for(lambda e: e.get("event") == "job run finished", timeout=60)
        assert finished.get("result") == "succeeded", daemon.log_tail()
        assert emulator.get(RG, "migrate") is None  # keep: on-failure, and it succeeded
        status = json.loads(daemon.get("/status")[1])
        (job,) = status["jobs"]
        (run,) = [r for r in job["history"] if r["result"] != "skipped"]
        assert (run["trigger"], run["exit_code"]) == ("change", 0)
        assert run["log_tail"] == ["migrating v1", "done"]
        metrics = daemon.get("/metrics")[1]
        assert 'aci_reconciler_job_runs_total{job="rg-e2e/migrate",result="succeeded"} 1.0' in metrics

        repo.commit({"manifests/migrate.yaml": JOB.format(rg=RG, version="v2", code=3)}, "the next one")
        finished = daemon.wait_for(lambda e: e.get("event") == "job run finished", timeout=60)
        assert (finished.get("result"), finished.get("exit_code")) == ("failed", 3), daemon.log_tail()
        assert emulator.get(RG, "migrate") is not None  # kept: it failed
    finally:
        assert daemon.finish() == 0, daemon.log_tail()
    # A restart runs nothing again: both specs are in the ledger.
    again = start_daemon(tmp_path, repo, emulator)
    try:
        again.wait_for(lambda e: e.get("event") == "pass finished", timeout=60)
        status = json.loads(again.get("/status")[1])
        runs = [r for r in status["jobs"][0]["history"] if r["result"] != "skipped"]
        assert len(runs) == 2
    finally:
        assert again.finish() == 0
    assert not any(e.get("event") == "job run started" for e in again.events)
