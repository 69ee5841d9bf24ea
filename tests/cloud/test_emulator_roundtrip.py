"""The real adapter (and the executor on it) against the in-process ARM emulator on 127.0.0.1.

Not the CLI e2e tests (those drive a subprocess); these check that `AzureGateway` speaks the protocol the
emulator serves the way Azure does: TLS with a private CA, a bearer token, Azure-AsyncOperation polling,
paging, secrets stripped on GET, rejected updates, faults.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.cloud.azure import AzureGateway, Target, connect
from reconciler.cloud.errors import RetryableError, StalledError
from reconciler.emulator.limits import FaultSettings
from reconciler.emulator.server import Emulator, EmulatorConfig
from reconciler.execution import ApplyOptions, apply_plan
from reconciler.model.outcome import Result
from reconciler.model.plan import Action, Change, Plan
from tests.execution.conftest import SECRET, manifest

SUB = "00000000-0000-0000-0000-000000000000"
TAGS = {"managed-by": "aci-reconciler", "aci-reconciler.instance": "test"}


def body(image: str = "nginx", cpu: float = 1.0, os_type: str = "Linux") -> dict[str, Any]:
    return {
        "location": "westeurope",
        "tags": dict(TAGS),
        "properties": {
            "osType": os_type,
            "containers": [
                {
                    "name": "app",
                    "properties": {
                        "image": image,
                        "resources": {"requests": {"cpu": cpu, "memoryInGB": 1.5}},
                        "environmentVariables": [{"name": "PW", "secureValue": SECRET}],
                    },
                }
            ],
        },
    }


@pytest.fixture
async def emulator(tmp_path: Path) -> AsyncIterator[Emulator]:
    config = EmulatorConfig(cert_dir=tmp_path / "tls", provisioning_delay=0.0, page_size=2)
    async with Emulator(config) as emu:
        yield emu


@pytest.fixture
async def gateway(emulator: Emulator) -> AsyncIterator[tuple[AzureGateway, list[tuple[str, str]]]]:
    seen: list[tuple[str, str]] = []
    gw = connect(
        Target(
            subscription_id=SUB,
            endpoint=emulator.endpoint,
            ca_cert=emulator.ca_cert_path,
            credential="static",
            poll_interval=0.02,
        ),
        on_request=lambda op, status, _: seen.append((op, status)),
    )
    yield gw, seen
    await gw.close()


async def test_create_list_patch_delete_roundtrip(gateway: tuple[AzureGateway, Any]) -> None:
    gw, seen = gateway
    assert await gw.list_groups("rg") == []
    for name in ("a", "b", "c"):
        created = await gw.create_or_update("rg", name, body(), timeout=30)
        assert created.provisioning_state == "Succeeded"
        assert SECRET not in str(created.body)
    listed = await gw.list_groups("rg")
    assert sorted(g.name for g in listed) == ["a", "b", "c"]
    assert seen.count(("list", "200")) == 1 + 2  # the empty list, then two pages of two and one
    patched = await gw.patch_tags("rg", "a", {**TAGS, "x": "1"})
    assert patched.tags["x"] == "1"
    got = await gw.get_group("rg", "a")
    assert got is not None
    assert got.instance_state is not None
    await gw.delete("rg", "a", timeout=30)
    assert await gw.get_group("rg", "a") is None
    await gw.delete("rg", "a", timeout=30)  # deleting a missing group is fine


async def test_subscription_list_sees_every_resource_group_in_pages(
    gateway: tuple[AzureGateway, Any],
) -> None:
    gw, seen = gateway
    for rg, name in (("rg-a", "x"), ("rg-b", "y"), ("rg-b", "z"), ("Rg-C", "w")):
        await gw.create_or_update(rg, name, body(), timeout=30)
    seen.clear()
    listed = await gw.list_subscription_groups()
    assert sorted((g.resource_group.lower(), g.name) for g in listed) == [
        ("rg-a", "x"),
        ("rg-b", "y"),
        ("rg-b", "z"),
        ("rg-c", "w"),
    ]
    assert seen == [("list", "200"), ("list", "200")]  # four groups, pages of two


async def test_rejected_in_place_update_is_stalled(gateway: tuple[AzureGateway, Any]) -> None:
    gw, _ = gateway
    await gw.create_or_update("rg", "web", body(), timeout=30)
    with pytest.raises(StalledError) as info:
        await gw.create_or_update("rg", "web", body(cpu=2.0), timeout=30)
    assert SECRET not in str(info.value)


async def test_injected_throttling_is_retryable_with_retry_after(
    emulator: Emulator, gateway: tuple[AzureGateway, Any]
) -> None:
    gw, _ = gateway
    emulator.faults.set(FaultSettings(rate=1.0, kinds=("429",), methods=("GET",), count=1, retry_after=3))
    with pytest.raises(RetryableError) as info:
        await gw.list_groups("rg")
    assert info.value.retry_after == 3.0
    assert await gw.list_groups("rg") == []


async def test_executor_replaces_through_the_real_adapter(gateway: tuple[AzureGateway, Any]) -> None:
    gw, _ = gateway
    desired = manifest("web", "rg")
    first = Change(resource_group="rg", name="web", action=Action.CREATE, write_tags=TAGS, desired=desired)
    replace = Change(
        resource_group="rg",
        name="web",
        action=Action.REPLACE,
        write_tags=TAGS,
        desired=manifest("web", "rg", image="nginx:1.27"),
    )

    async def no_wait(_: float) -> None:
        return None

    options = ApplyOptions(rng=random.Random(0))
    for change in (first, replace):
        result = await apply_plan(
            Plan(revision="r", instance="test", changes=(change,)), gw, options=options, sleep=no_wait
        )
        assert result.ok, result.outcomes
        assert result.outcomes[0].result is Result.SUCCEEDED
    live = await gw.get_group("rg", "web")
    assert live is not None
    assert live.body["properties"]["containers"][0]["properties"]["image"] == "nginx:1.27"
    assert live.tags == TAGS


async def test_endpoint_with_an_untrusted_certificate_stalls_with_the_fix(emulator: Emulator) -> None:
    gw = connect(Target(subscription_id=SUB, endpoint=emulator.endpoint, credential="static"))
    try:
        with pytest.raises(StalledError, match="ca-cert"):
            await gw.list_groups("rg")
    finally:
        await gw.close()


def _client_connections_to(port: int) -> int:
    """Established TCP connections of this process's host towards `port` (Linux /proc/net/tcp)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state = fields[2], fields[3]
        if state == "01" and int(remote.rsplit(":", 1)[1], 16) == port:
            count += 1
    return count


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="counts connections through Linux /proc")
async def test_requests_to_an_endpoint_with_a_private_ca_reuse_one_connection(
    gateway: tuple[AzureGateway, Any], emulator: Emulator
) -> None:
    gw, _ = gateway
    await gw.create_or_update("rg", "reuse", body(), timeout=30)
    port = int(emulator.endpoint.rsplit(":", 1)[1])
    for _ in range(8):
        assert await gw.get_group("rg", "reuse") is not None
    # One TLS context per CA file: sequential requests share one pooled connection (before: one each).
    assert _client_connections_to(port) == 1
