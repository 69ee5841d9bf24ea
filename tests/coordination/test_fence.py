"""The lease fence: when a replica may write, what it says when it may not, and that the Azure adapter asks
it before every write request (and never before a read) and labels the writes it lets through."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken

from reconciler.cloud.azure import AzureGateway, StaticTokenCredential, Target, connect
from reconciler.cloud.errors import NOT_LEADER, FencedError
from reconciler.daemon.coordination.fence import Hold, LeaseTable
from reconciler.daemon.coordination.shards import shard_of
from reconciler.emulator.server import Emulator, EmulatorConfig
from tests.cloud.test_emulator_roundtrip import SUB, body
from tests.support.proxy import ConnectProxy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def holding(table: LeaseTable, shard: int, *, renewed_at: float, duration: float = 15.0) -> Hold:
    hold = Hold(
        shard=shard,
        blob=f"s{shard}",
        lease_id="0123456789abcdef",
        renewed_at=renewed_at,
        valid_until=renewed_at + duration,
        ready=True,
    )
    table.holds[shard] = hold
    return hold


def test_writes_stop_margin_seconds_before_the_lease_could_expire() -> None:
    clock = Clock()
    table = LeaseTable("r1", 1, margin=5.0, monotonic=clock)
    holding(table, 0, renewed_at=clock.now)
    assert table.leading
    assert table.refusal("rg") is None
    clock.now += 9.9
    assert table.writable(0)
    clock.now += 0.1  # 10 s after the renewal was sent: 5 s before the store may let the lease go
    assert not table.writable(0)
    assert not table.leading
    why = table.refusal("rg")
    assert why is not None
    assert "not renewed in time" in why


def test_a_lease_not_yet_adopted_or_being_given_back_is_not_written_under() -> None:
    clock = Clock()
    table = LeaseTable("r1", 2, margin=5.0, monotonic=clock)
    hold = holding(table, 0, renewed_at=clock.now)
    hold.ready = False
    assert not table.writable(0)
    hold.ready, hold.yielding = True, True
    rg = next(f"rg-{i}" for i in range(100) if shard_of(f"rg-{i}", 2) == 0)
    why = table.refusal(rg)
    assert why is not None
    assert "giving back" in why


def test_a_standby_names_the_replica_that_holds_the_lease() -> None:
    table = LeaseTable("r2", 1, margin=5.0, monotonic=Clock())
    table.owners = {0: "r1"}
    assert table.refusal("rg") == "standby: replica r1 holds the lease"
    assert table.owned_filter() is None  # a standby plans everything
    with pytest.raises(FencedError) as caught, table.writing("rg"):
        pass
    assert caught.value.code == NOT_LEADER
    assert not caught.value.retryable
    assert "r2" in str(caught.value)
    assert "r1" in str(caught.value)


def test_the_owned_filter_selects_the_resource_groups_of_the_writable_shards() -> None:
    clock = Clock()
    table = LeaseTable("r1", 4, margin=5.0, monotonic=clock)
    holding(table, 1, renewed_at=clock.now)
    holding(table, 3, renewed_at=clock.now - 11)  # fenced already
    owned = table.owned_filter()
    assert owned is not None
    groups = [f"rg-{i}" for i in range(200)]
    assert {g for g in groups if owned(g)} == {g for g in groups if shard_of(g, 4) == 1}


def test_writes_in_flight_are_counted_until_their_answer_arrives() -> None:
    clock = Clock()
    table = LeaseTable("r1", 1, margin=5.0, monotonic=clock)
    hold = holding(table, 0, renewed_at=clock.now)
    with table.writing("rg") as label:
        assert hold.in_flight == 1
        assert label == "aci-reconciler-replica/r1 lease/0.01234567.1"
    assert hold.in_flight == 0
    with pytest.raises(RuntimeError), table.writing("rg"):
        raise RuntimeError("the request failed")
    assert hold.in_flight == 0


@pytest.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[Emulator]:
    async with Emulator(EmulatorConfig(cert_dir=tmp_path / "tls", provisioning_delay=0.0)) as emu:
        yield emu


def _gateway(emulator: Emulator, table: LeaseTable) -> AzureGateway:
    target = Target(
        subscription_id=SUB,
        endpoint=emulator.endpoint,
        ca_cert=emulator.ca_cert_path,
        credential="static",
        poll_interval=0.0,
    )
    return connect(target, write_guard=table)


async def test_the_adapter_sends_no_write_without_the_lease_and_reads_freely(emulator: Emulator) -> None:
    table = LeaseTable("standby-1", 1, margin=5.0, monotonic=Clock())
    gateway = _gateway(emulator, table)
    try:
        assert await gateway.list_groups("rg") == []
        with pytest.raises(FencedError):
            await gateway.create_or_update("rg", "web", body(), timeout=30)
        with pytest.raises(FencedError):
            await gateway.delete("rg", "web", timeout=30)
        with pytest.raises(FencedError):
            await gateway.stop("rg", "web")
    finally:
        await gateway.close()
    methods = [e.method for e in emulator.request_log]
    assert methods == ["GET"]


async def test_the_adapter_labels_each_write_with_the_replica_and_its_lease(emulator: Emulator) -> None:
    clock = Clock()
    table = LeaseTable("leader-1", 1, margin=5.0, monotonic=clock)
    holding(table, 0, renewed_at=clock.now)
    gateway = _gateway(emulator, table)
    try:
        await gateway.create_or_update("rg", "web", body(), timeout=30)
        await gateway.patch_tags("rg", "web", {"a": "b"})
        clock.now += 10.5  # the renewal never came: fenced from here on
        with pytest.raises(FencedError):
            await gateway.delete("rg", "web", timeout=30)
    finally:
        await gateway.close()
    writes = [e for e in emulator.request_log if e.method != "GET"]
    assert [e.method for e in writes] == ["PUT", "PATCH"]
    assert all("aci-reconciler-replica/leader-1 lease/0.01234567.1" in e.user_agent for e in writes)
    reads = [e for e in emulator.request_log if e.method == "GET"]
    assert all("aci-reconciler-replica" not in e.user_agent for e in reads)


class SlowTokens(StaticTokenCredential):
    """A token that takes `delay` seconds of `clock` to come (a refresh from a slow identity endpoint, or a
    starved event loop)."""

    def __init__(self, clock: Clock, delay: float) -> None:
        super().__init__("token")
        self.clock = clock
        self.delay = delay

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.clock.now += self.delay
        return await super().get_token(*scopes, **kwargs)


async def test_a_write_whose_token_comes_after_the_fence_is_never_sent(emulator: Emulator) -> None:
    clock = Clock()
    table = LeaseTable("leader-1", 1, margin=5.0, monotonic=clock)
    holding(table, 0, renewed_at=clock.now)  # writable until 1010
    target = Target(
        subscription_id=SUB, endpoint=emulator.endpoint, ca_cert=emulator.ca_cert_path, poll_interval=0.0
    )
    gateway = connect(target, write_guard=table, credential=SlowTokens(clock, delay=10.5))
    try:
        with pytest.raises(FencedError, match="not renewed in time"):
            await gateway.create_or_update("rg", "web", body(), timeout=30)
    finally:
        await gateway.close()
    assert [e.method for e in emulator.request_log] == []
    assert table.holds[0].in_flight == 0


async def test_a_write_whose_connection_opens_after_the_fence_is_never_sent(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    table = LeaseTable("leader-1", 1, margin=5.0, monotonic=clock)
    holding(table, 0, renewed_at=clock.now)  # writable until 1010

    def slow_connection() -> None:
        clock.now += 10.5  # the TCP, TLS and proxy round trips took this long

    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with ConnectProxy(on_connect=slow_connection) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        gateway = _gateway(emulator, table)
        try:
            with pytest.raises(FencedError, match="not renewed in time"):
                await gateway.create_or_update("rg", "web", body(), timeout=30)
        finally:
            await gateway.close()
    assert proxy.tunnels, "the request went through the proxy"
    assert [e.method for e in emulator.request_log] == []
    assert table.holds[0].in_flight == 0
