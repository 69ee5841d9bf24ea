"""End to end: three `reconcile daemon` processes of one instance, the emulator and Azurite on loopback.

Every write to Azure names its replica and lease tenure in the User-Agent (the write guard adds it), and the
emulator's request log keeps it: that is how these tests count who wrote. Events are followed through each
daemon's JSON log lines as they come.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.test_e2e import JOB, Repo, manifest, start_daemon
from tests.e2e.harness import DaemonProcess, EmulatorProcess
from tests.support.azurite import Azurite
from tests.support.writers import assert_one_writer_at_a_time, labelled_writes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

RG = "rg-e2e"
LEASE = 15.0


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess(tmp_path, "--no-throttling")
    yield emu
    emu.stop()


class Fleet:
    def __init__(
        self, tmp_path: Path, repo: Repo, emulator: EmulatorProcess, azurite: Azurite, container: str
    ):
        self.tmp_path = tmp_path
        self.repo = repo
        self.emulator = emulator
        self.azurite = azurite
        self.container = container
        self.daemons: dict[str, DaemonProcess] = {}

    def start(self, name: str, *extra: str) -> DaemonProcess:
        self.daemons[name] = start_daemon(
            self.tmp_path,
            self.repo,
            self.emulator,
            "--coordination",
            self.azurite.container_url(self.container),
            "--replica-id",
            name,
            *extra,
            state_dir=self.tmp_path / f"state-{name}",
            env_extra={"RECONCILER_STORAGE_CONNECTION_STRING": self.azurite.connection_string()},
        )
        return self.daemons[name]

    def status(self, name: str) -> dict[str, Any]:
        return dict(json.loads(self.daemons[name].get("/status")[1]))

    def leader(self) -> str:
        leaders = [
            n
            for n, d in self.daemons.items()
            if d.proc.poll() is None and self.status(n)["coordination"]["leader"]
        ]
        assert len(leaders) == 1, leaders
        return leaders[0]

    def finish(self) -> None:
        for daemon in self.daemons.values():
            daemon.finish()


def writes(emulator: EmulatorProcess) -> list[dict[str, Any]]:
    """The writes to Azure in the emulator's log, each with who sent it."""
    return labelled_writes(emulator.control("GET", "requests?offset=0")["requests"])


def acquired(event: dict[str, Any]) -> bool:
    return event.get("event") == "shard acquired; leading it"


def resumed_or_acquired(event: dict[str, Any]) -> bool:
    return acquired(event) or event.get("event") == "lease renewed again; writing"


def group_done(name: str, action: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("event") == "group done" and e.get("name") == name and e.get("action") == action


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)


@pytest.fixture
def fleet(
    tmp_path: Path, emulator: EmulatorProcess, azurite: Azurite, blob_container: str
) -> Iterator[Fleet]:
    repo = Repo(tmp_path / "repo")
    repo.commit({"manifests/web.yaml": manifest("web", "nginx:1.25")}, "web")
    made = Fleet(tmp_path, repo, emulator, azurite, blob_container)
    yield made
    made.finish()


def start_three(fleet: Fleet) -> str:
    first = fleet.start("r1")
    first.wait_for(acquired, timeout=30)
    first.wait_for(group_done("web", "create"), timeout=60)
    for name in ("r2", "r3"):
        fleet.start(name).wait_for(lambda e: e.get("event") == "pass finished", timeout=60)
    return fleet.leader()


def test_three_replicas_one_writer_sigkill_failover_applies_the_next_commit_and_keeps_history(
    fleet: Fleet, emulator: EmulatorProcess
) -> None:
    leader = start_three(fleet)
    assert leader == "r1"
    standby = fleet.status("r2")
    (web,) = [g for g in standby["groups"] if g["name"] == "web"]
    assert web["message"] == "matches its manifest", "a standby plans (and observes) like the leader"
    assert standby["coordination"]["owners"][0]["owner"] == "r1"
    metrics = fleet.daemons["r2"].get("/metrics")[1]
    assert "aci_reconciler_leader 0.0" in metrics
    assert "aci_reconciler_leader 1.0" in fleet.daemons["r1"].get("/metrics")[1]
    assert fleet.daemons["r2"].get("/readyz")[0] == 200, "a standby that could take over is ready"
    assert {w["replica"] for w in writes(emulator)} == {"r1"}, "exactly one process wrote"
    # The leader's book (with web's history) reaches the container within a tick of the pass.
    wait_until(lambda: _book_names(fleet) >= {"web"}, 10, "the shared book holds web")

    fleet.daemons["r1"].proc.kill()
    killed = time.monotonic()
    fleet.repo.commit({"manifests/web.yaml": manifest("web", "nginx:1.27")}, "bump")
    survivors = [fleet.daemons["r2"], fleet.daemons["r3"]]
    new_leader = _first_to(survivors, acquired, LEASE + 5)
    took = time.monotonic() - killed
    assert took <= LEASE + 5, f"took {took:.1f}s"
    new_leader.wait_for(group_done("web", "update"), timeout=30)
    assert emulator.get(RG, "web")["properties"]["containers"][0]["properties"]["image"] == "nginx:1.27"
    name = next(n for n, d in fleet.daemons.items() if d is new_leader)
    (web,) = [g for g in fleet.status(name)["groups"] if g["name"] == "web"]
    assert [h["action"] for h in web["history"]][:2] == ["create", "update"], web["history"]
    by_replica = {w["replica"] for w in writes(emulator)}
    assert by_replica == {"r1", name}
    assert None not in by_replica
    assert_one_writer_at_a_time(writes(emulator))


def test_sigterm_hands_over_within_two_seconds(fleet: Fleet, emulator: EmulatorProcess) -> None:
    leader = start_three(fleet)
    others = [d for n, d in fleet.daemons.items() if n != leader]
    stopping = time.monotonic()
    fleet.daemons[leader].proc.terminate()
    _first_to(others, acquired, 10)
    took = time.monotonic() - stopping
    assert took <= 2.0, f"took {took:.2f}s"
    assert fleet.daemons[leader].proc.wait(10) == 0
    assert any(e.get("event") == "leases released" for e in fleet.daemons[leader].events)


def test_a_job_ledger_survives_the_failover_and_the_run_is_not_repeated(
    fleet: Fleet, emulator: EmulatorProcess
) -> None:
    fleet.repo.commit({"manifests/migrate.yaml": JOB.format(rg=RG, version="v1", code=0)}, "a migration")
    leader = start_three(fleet)
    fleet.daemons[leader].wait_for(lambda e: e.get("event") == "job run finished", timeout=60)
    wait_until(lambda: "migrate" in _book_jobs(fleet), 10, "the shared ledger holds the run")
    fleet.daemons[leader].proc.kill()
    others = {n: d for n, d in fleet.daemons.items() if n != leader}
    new_leader = _first_to(list(others.values()), acquired, LEASE + 5)
    new_leader.wait_for(lambda e: e.get("event") == "pass finished", timeout=30)
    name = next(n for n, d in others.items() if d is new_leader)
    (job,) = fleet.status(name)["jobs"]
    runs = [r for r in job["history"] if r["result"] != "skipped"]
    assert [(r["trigger"], r["result"]) for r in runs] == [("change", "succeeded")]
    assert not any(e.get("event") == "job run started" for e in new_leader.events)


def test_a_leader_cut_off_from_storage_stops_writing_before_its_lease_expires_then_stands_by(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    own = Azurite()  # stopped by this test: not the session's
    own.start()
    try:
        container = own.create_container()
        repo = Repo(tmp_path / "repo")
        repo.commit({"manifests/web.yaml": manifest("web", "nginx:1.25")}, "web")
        fleet = Fleet(tmp_path, repo, emulator, own, container)
        try:
            leader = start_three(fleet)
            own.stop()
            cut = time.time()
            fenced = fleet.daemons[leader].wait_for(
                lambda e: e.get("event") == "lease not renewed in time; writes stopped before it can expire",
                timeout=LEASE,
            )
            assert fenced
            # A change committed now is not applied by anyone while storage is gone.
            repo.commit({"manifests/web.yaml": manifest("web", "nginx:1.26")}, "while cut off")
            fleet.daemons[leader].wait_for(lambda e: e.get("event") == "pass finished", timeout=30)
            late = [w for w in writes(emulator) if w["time"] > cut + LEASE - 5]
            assert late == [], "no write after the fence (the lease could expire at cut + 15s)"
            unready = fleet.daemons[leader]
            wait_until(lambda: unready.get("/readyz")[0] == 503, 10, "not ready without storage")
            own.start()
            # Storage back before the lease expired at the store: the leader's renewal resumes its writes;
            # after it: whoever acquires the lease first.
            writer = _first_to(list(fleet.daemons.values()), resumed_or_acquired, LEASE + 10)
            writer.wait_for(group_done("web", "update"), timeout=30)
            assert_one_writer_at_a_time(writes(emulator))
        finally:
            fleet.finish()
    finally:
        own.stop()


def _first_to(
    daemons: list[DaemonProcess], predicate: Callable[[dict[str, Any]], bool], timeout: float
) -> DaemonProcess:
    """The first of `daemons` to log a matching event (each is checked for what it has logged so far)."""
    deadline = time.monotonic() + timeout
    seen = [len(d.events) for d in daemons]
    while time.monotonic() < deadline:
        for index, daemon in enumerate(daemons):
            events = daemon.events[seen[index] :]
            if any(predicate(e) for e in events):
                return daemon
        time.sleep(0.05)
    raise AssertionError(f"none within {timeout}s:\n" + "\n".join(d.log_tail(10) for d in daemons))


def _book(fleet: Fleet) -> dict[str, Any]:
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(fleet.azurite.connection_string()) as service:
        container = service.get_container_client(fleet.container)
        data = (
            container.get_blob_client("instances/default/shards-1/shard-0000.json").download_blob().readall()
        )
    return dict(json.loads(data)) if data else {}


def _book_names(fleet: Fleet) -> set[str]:
    return {g["name"] for g in _book(fleet).get("groups", [])}


def _book_jobs(fleet: Fleet) -> set[str]:
    return {j["name"] for j in _book(fleet).get("jobs", []) if j.get("runs")}


def spread_manifests(count: int) -> dict[str, str]:
    return {
        f"manifests/app{i}.yaml": manifest(f"app{i}", "nginx:1.25").replace(
            f"resourceGroup: {RG}", f"resourceGroup: rg-s{i}"
        )
        for i in range(count)
    }


def test_twelve_shards_over_three_replicas_four_each_and_a_killed_replicas_share_is_taken_over(
    tmp_path: Path, emulator: EmulatorProcess, azurite: Azurite, blob_container: str
) -> None:
    from reconciler.daemon.coordination.shards import shard_of

    repo = Repo(tmp_path / "repo")
    repo.commit(spread_manifests(24), "24 groups in 24 resource groups")
    fleet = Fleet(tmp_path, repo, emulator, azurite, blob_container)
    try:
        for name in ("a", "b", "c"):
            fleet.start(name, "--shards", "12").wait_for(lambda e: e.get("event") == "listening", timeout=30)

        killed_names: set[str] = set()

        def owned() -> dict[str, int]:
            return {
                name: len(fleet.status(name)["coordination"]["owned"])
                for name in fleet.daemons
                if name not in killed_names
            }

        wait_until(lambda: sorted(owned().values()) == [4, 4, 4], 30, "4 shards each")
        wait_until(
            lambda: len([g for g in emulator.control("GET", "groups")["value"] if "/rg-s" in g["id"]]) == 24,
            60,
            "24 groups",
        )
        # Each replica sees the others' leases at its next listing (every poll interval), not at once.
        wait_until(
            lambda: {o["owner"] for o in fleet.status("a")["coordination"]["owners"]} == {"a", "b", "c"},
            10,
            "replica a to see every shard's owner",
        )
        for write in writes(emulator):
            rg = write["path"].split("/resourceGroups/")[1].split("/")[0]
            assert int(write["tenure"].split(".")[0]) == shard_of(rg, 12), write
        fleet.daemons["c"].proc.kill()
        killed_names.add("c")
        killed = time.monotonic()
        wait_until(
            lambda: sorted(owned().values()) == [6, 6], LEASE + 5, "the killed replica's shards taken over"
        )
        assert time.monotonic() - killed <= LEASE + 5
        assert_one_writer_at_a_time(writes(emulator))
    finally:
        fleet.finish()


def test_a_webhook_that_reached_a_standby_makes_the_leader_fetch_and_apply_at_once(
    fleet: Fleet, tmp_path: Path
) -> None:
    import hashlib
    import hmac
    import urllib.request

    secret = tmp_path / "hook-secret"
    secret.write_text("relay-secret\n")
    slow = ("--git-interval", "1h", "--webhook-secret-file", str(secret))
    leader = fleet.start("r1", *slow)
    leader.wait_for(group_done("web", "create"), timeout=60)
    standby = fleet.start("r2", *slow)
    standby.wait_for(lambda e: e.get("event") == "pass finished", timeout=60)
    assert fleet.leader() == "r1"
    fleet.repo.commit({"manifests/web.yaml": manifest("web", "nginx:1.27")}, "new image")
    body = b'{"ref": "refs/heads/main"}'
    request = urllib.request.Request(standby.url + "/hook", data=body, method="POST")
    request.add_header("X-GitHub-Event", "push")
    request.add_header(
        "X-Hub-Signature-256", "sha256=" + hmac.new(b"relay-secret", body, hashlib.sha256).hexdigest()
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202
    # Only the standby was told, and the leader polls git hourly: the relay through storage brings it.
    leader.wait_for(group_done("web", "update"), timeout=15)
