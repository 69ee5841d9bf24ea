"""Shared fixtures for tests that talk to the emulator; other packages' tests may import them.

- `FakeClock`: injectable time (`EmulatorConfig(clock=clock)`), moved with `clock.advance(seconds)`.
- `FakeCredential`: a trivial async token credential; `NoCredential` sends no token at all.
- `emulator_config` (override it in a module to change settings) and `emulator`: a started emulator.
- `aci_client`: a factory for the real async SDK client pointed at an emulator.
- `raw_session`: an aiohttp session that trusts the emulator's CA, for raw HTTP checks (`https_session(emu)`
  for an emulator a test starts itself).
- `group_model(...)`: a small, valid SDK ContainerGroup (a job's container runs its `command` in the
  emulator's simulation: `command=["sleep", "inf"]` keeps it running until a test ends it).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.mgmt.containerinstance import models
from azure.mgmt.containerinstance.aio import ContainerInstanceManagementClient

from reconciler.emulator.server import Emulator, EmulatorConfig

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
RG = "rg-test"


class FakeClock:
    """Time that moves only when a test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeCredential:
    """An async token credential that hands out a fixed token without any network."""

    def __init__(self, token: str = "fake-token") -> None:
        self.token = token
        self.calls = 0

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        return AccessToken(self.token, int(time.time()) + 3600)

    async def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        self.calls += 1
        return AccessTokenInfo(self.token, int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> FakeCredential:
        return self

    async def __aexit__(self, *args: object) -> None:
        return None


def group_model(
    *,
    image: str = "nginx:1.25",
    cpu: float = 1.0,
    memory: float = 1.5,
    restart_policy: str = "Always",
    location: str = "westeurope",
    tags: dict[str, str] | None = None,
    env: list[models.EnvironmentVariable] | None = None,
    dns_label: str | None = None,
    command: list[str] | None = None,
) -> models.ContainerGroup:
    ip = None
    if dns_label is not None:
        ip = models.IpAddress(
            type="Public", dns_name_label=dns_label, ports=[models.Port(port=80, protocol="TCP")]
        )
    return models.ContainerGroup(
        location=location,
        tags=tags,
        os_type="Linux",
        restart_policy=restart_policy,
        ip_address=ip,
        containers=[
            models.Container(
                name="app",
                image=image,
                command=command,
                ports=[models.ContainerPort(port=80)] if dns_label is not None else None,
                environment_variables=env,
                resources=models.ResourceRequirements(
                    requests=models.ResourceRequests(cpu=cpu, memory_in_gb=memory)
                ),
            )
        ],
    )


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig()


@pytest.fixture
async def emulator(emulator_config: EmulatorConfig) -> AsyncIterator[Emulator]:
    async with Emulator(emulator_config) as emu:
        yield emu


ClientFactory = Callable[..., Awaitable[ContainerInstanceManagementClient]]


@pytest.fixture
async def aci_client() -> AsyncIterator[ClientFactory]:
    """`await aci_client(emu, credential=None, **client_kwargs)` -> an SDK client closed after the test."""
    clients: list[ContainerInstanceManagementClient] = []

    async def make(emu: Emulator, credential: Any = None, **kwargs: Any) -> ContainerInstanceManagementClient:
        client = ContainerInstanceManagementClient(
            credential or FakeCredential(),
            SUBSCRIPTION,
            base_url=emu.endpoint,
            connection_verify=str(emu.ca_cert_path),
            **kwargs,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


@asynccontextmanager
async def https_session(emu: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    """An aiohttp session on `emu`'s endpoint that trusts its CA, for raw HTTP checks."""
    context = ssl.create_default_context(cafile=str(emu.ca_cert_path))
    async with aiohttp.ClientSession(
        base_url=emu.endpoint, connector=aiohttp.TCPConnector(ssl=context)
    ) as session:
        yield session


@pytest.fixture
async def raw_session(emulator: Emulator) -> AsyncIterator[aiohttp.ClientSession]:
    async with https_session(emulator) as session:
        yield session


def group_path(name: str, rg: str = RG, sub: str = SUBSCRIPTION) -> str:
    provider = "providers/Microsoft.ContainerInstance/containerGroups"
    return f"/subscriptions/{sub}/resourceGroups/{rg}/{provider}/{name}"


AUTH = {"Authorization": "Bearer test-token"}
Q = {"api-version": "2023-05-01"}


def body(*, image: str = "nginx:1.25", cpu: float = 1, memory: float = 1.5, **props: Any) -> dict[str, Any]:
    """A raw ARM PUT body with one container."""
    return {
        "location": "westeurope",
        "properties": {
            "osType": "Linux",
            "containers": [
                {
                    "name": "app",
                    "properties": {
                        "image": image,
                        "resources": {"requests": {"cpu": cpu, "memoryInGB": memory}},
                    },
                }
            ],
            **props,
        },
    }
