"""Without --coordination, a second live daemon of an instance is refused: the heartbeat tag's decisions, the
heartbeat through the real adapter and the emulator's Tags API, and two daemon processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from reconciler.cloud.azure import AzureGateway
from reconciler.daemon.duplicate import DuplicateDaemonError, Heartbeat, decode, encode, tag_name, verdict
from reconciler.emulator.server import Emulator
from tests.daemon.test_e2e import Repo, manifest, start_daemon
from tests.e2e.harness import EmulatorProcess
from tests.inprocess import in_process

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "kind", "holder"),
    [
        (None, "free", None),
        ("", "free", None),
        (encode("other", NOW + 60), "other", "other"),
        (encode("other", NOW - 1), "free", "other"),
        (encode("me", NOW + 60), "ours", "me"),
        (encode("me", NOW - 600), "ours", "me"),
        ("garbage", "free", None),
        ("host;notanumber", "free", None),
        (";123", "free", None),
        ("host-with;semicolon;" + str(int(NOW + 60)), "other", "host-with;semicolon"),
    ],
)
def test_the_heartbeat_value_decides_who_may_run(value: str | None, kind: str, holder: str | None) -> None:
    found = verdict(value, "me", NOW)
    assert (found.kind, found.holder) == (kind, holder)


def test_values_round_trip_and_the_tag_name_names_the_instance() -> None:
    assert decode(encode("host-1a2b", NOW)) == ("host-1a2b", NOW)
    assert tag_name("prod") == "aci-reconciler.heartbeat.prod"


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[Emulator, AzureGateway]]:
    async with in_process(tmp_path / "tls") as pair:
        yield pair


def heartbeat(gateway: AzureGateway, replica: str, clock: Clock, sleep: object = asyncio.sleep) -> Heartbeat:
    return Heartbeat(
        gateway, "rg-home", instance="prod", replica=replica, interval=30, clock=clock, sleep=sleep
    )  # type: ignore[arg-type]


async def test_a_second_daemon_is_refused_until_the_first_releases_or_expires(
    gateway: tuple[Emulator, AzureGateway],
) -> None:
    _, gw = gateway
    clock = Clock()
    first, second = heartbeat(gw, "host-a", clock), heartbeat(gw, "host-b", clock)
    await first.claim()
    with pytest.raises(DuplicateDaemonError) as refused:
        await second.claim()
    text = str(refused.value)
    assert "replica host-a" in text
    assert "rg-home" in text
    assert "--allow-duplicate" in text
    assert "--coordination" in text
    clock.now += 91  # three intervals without a renewal: the first is gone
    await second.claim()
    await second.release()
    assert await gw.get_resource_group_tags("rg-home") == {}
    await first.claim()
    await first.release()
    await heartbeat(gw, "host-c", clock).claim()


async def test_the_same_daemon_restarted_takes_its_heartbeat_back_at_once(
    gateway: tuple[Emulator, AzureGateway],
) -> None:
    _, gw = gateway
    clock = Clock()
    await heartbeat(gw, "host-a", clock).claim()  # then killed: nothing released
    await heartbeat(gw, "host-a", clock).claim()


async def test_a_racing_start_stops_the_daemon_whose_heartbeat_was_overwritten(
    gateway: tuple[Emulator, AzureGateway],
) -> None:
    _, gw = gateway
    clock = Clock()
    ticks: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(_: float) -> None:
        await ticks.get()

    first = heartbeat(gw, "host-a", clock, sleep)
    await first.claim()
    conflicts: list[str] = []
    task = asyncio.create_task(first.run(conflicts.append), name="test-heartbeat")
    ticks.put_nowait(None)
    await asyncio.sleep(0.05)
    tags = await gw.get_resource_group_tags("rg-home")
    assert decode(tags[tag_name("prod")]) == ("host-a", NOW + 90), "renewed every interval"
    await gw.update_resource_group_tags("rg-home", {tag_name("prod"): encode("host-b", NOW + 90)}, "Merge")
    ticks.put_nowait(None)
    await asyncio.wait_for(task, 5)
    assert len(conflicts) == 1
    assert "replica host-b" in conflicts[0]


async def test_the_tags_api_merges_replaces_and_deletes_like_arm(
    gateway: tuple[Emulator, AzureGateway],
) -> None:
    _, gw = gateway
    assert await gw.get_resource_group_tags("rg-t") == {}
    assert await gw.update_resource_group_tags("rg-t", {"a": "1", "b": "2"}, "Merge") == {"a": "1", "b": "2"}
    assert await gw.update_resource_group_tags("RG-T", {"b": "3"}, "Merge") == {"a": "1", "b": "3"}
    assert await gw.update_resource_group_tags("rg-t", {"b": "other"}, "Delete") == {"a": "1", "b": "3"}
    assert await gw.update_resource_group_tags("rg-t", {"b": "3"}, "Delete") == {"a": "1"}
    assert await gw.update_resource_group_tags("rg-t", {"c": "4"}, "Replace") == {"c": "4"}


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess(tmp_path, "--no-throttling")
    yield emu
    emu.stop()


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_a_second_daemon_process_refuses_to_start_until_the_first_stops(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"manifests/web.yaml": manifest("web", "nginx:1.25")}, "web")
    first = start_daemon(tmp_path / "one", repo, emulator)
    try:
        first.wait_for(lambda e: e.get("event") == "heartbeat tag held", timeout=60)
        second = start_daemon(tmp_path / "two", repo, emulator)
        assert second.proc.wait(60) == 1
        second.finish()
        assert "another daemon of instance 'default' is running" in second.log_tail()
        allowed = start_daemon(tmp_path / "three", repo, emulator, "--allow-duplicate", "--dry-run")
        allowed.wait_for(lambda e: e.get("event") == "pass finished", timeout=60)
        assert allowed.finish() == 0
    finally:
        assert first.finish() == 0
    again = start_daemon(tmp_path / "two", repo, emulator)
    try:
        again.wait_for(lambda e: e.get("event") == "heartbeat tag held", timeout=60)
    finally:
        assert again.finish() == 0
