"""Property: whatever secrets a PUT carries, no answer of the emulator and no log entry ever holds one."""

from __future__ import annotations

import asyncio
import json
import ssl
import string
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.emulator.server import Emulator, EmulatorConfig
from tests.emulator.conftest import AUTH, Q, body, group_path

pytestmark = pytest.mark.timeout(120)

secret = st.text(alphabet=string.ascii_letters + string.digits + "+/=!$", min_size=10, max_size=30).map(
    lambda s: "S3CR3T" + s
)


@st.composite
def bodies_with_secrets(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    secrets: list[str] = []

    def take() -> str:
        value = draw(secret)
        secrets.append(value)
        return value

    props: dict[str, Any] = {}
    volumes: list[dict[str, Any]] = []
    if draw(st.booleans()):
        props["imageRegistryCredentials"] = [{"server": "r.azurecr.io", "username": "u", "password": take()}]
    if draw(st.booleans()):
        volumes.append({"name": "sec", "secret": {f"k{i}": take() for i in range(draw(st.integers(1, 3)))}})
    if draw(st.booleans()):
        volumes.append(
            {
                "name": "files",
                "azureFile": {"shareName": "s", "storageAccountName": "a", "storageAccountKey": take()},
            }
        )
    if volumes:
        props["volumes"] = volumes
    if draw(st.booleans()):
        props["diagnostics"] = {"logAnalytics": {"workspaceId": "w", "workspaceKey": take()}}
    payload = body(**props)
    envs = [{"name": f"S{i}", "secureValue": take()} for i in range(draw(st.integers(0, 3)))]
    payload["properties"]["containers"][0]["properties"]["environmentVariables"] = [
        {"name": "PLAIN", "value": "visible"},
        *envs,
    ]
    return payload, secrets


async def _exchange(emu: Emulator, payload: dict[str, Any]) -> list[str]:
    """Every answer the emulator gives about a group over its life, as text."""
    context = ssl.create_default_context(cafile=str(emu.ca_cert_path))
    texts: list[str] = []
    async with aiohttp.ClientSession(base_url=emu.endpoint, connector=aiohttp.TCPConnector(ssl=context)) as s:

        async def call(method: str, path: str, **kw: Any) -> aiohttp.ClientResponse:
            async with s.request(method, path, headers=AUTH, **kw) as r:
                texts.append(await r.text())
                texts.append(json.dumps(dict(r.headers)))
                return r

        created = await call("PUT", group_path("web"), params=Q, json=payload)
        await call("GET", created.headers["Azure-AsyncOperation"])
        await call("PUT", group_path("web"), params=Q, json=payload)  # an identical update
        await call("GET", group_path("web"), params=Q)
        await call("GET", group_path("web").rsplit("/", 1)[0], params=Q)
        await call("PATCH", group_path("web"), params=Q, json={"tags": {"a": "b"}})
        await call("DELETE", group_path("web"), params=Q)
        for control in ("/_emulator/requests", "/_emulator/counters", "/_emulator/groups"):
            await call("GET", control)
    return texts


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("certs")


@settings(max_examples=25, deadline=None)
@given(case=bodies_with_secrets())
def test_no_answer_or_log_ever_holds_a_secret(cert_dir: Path, case: tuple[dict[str, Any], list[str]]) -> None:
    payload, secrets = case

    async def run() -> list[str]:
        async with Emulator(EmulatorConfig(cert_dir=cert_dir)) as emu:
            texts = await _exchange(emu, payload)
            texts.append(json.dumps([e.to_json() for e in emu.request_log]))
            return texts

    everything = "\n".join(asyncio.run(run()))
    assert "visible" in everything
    for value in secrets:
        assert value not in everything
