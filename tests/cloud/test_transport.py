"""The adapter's transport: the proxy of the environment is honoured (a loopback CONNECT proxy sees the
tunnel and its credentials), `NO_PROXY` is, and the environment is read once per host, not per request."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp.client
import aiohttp.helpers
import pytest

from tests.inprocess import in_process
from tests.support.proxy import ConnectProxy

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
NO_PROXY_VARIABLES = ("NO_PROXY", "no_proxy")


@contextlib.asynccontextmanager
async def proxied(
    monkeypatch: pytest.MonkeyPatch, *, no_proxy: str | None = None
) -> AsyncIterator[ConnectProxy]:
    for name in PROXY_VARIABLES + NO_PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    async with ConnectProxy() as proxy:
        monkeypatch.setenv("HTTPS_PROXY", f"http://reconciler:s3cret@127.0.0.1:{proxy.port}")
        if no_proxy is not None:
            monkeypatch.setenv("NO_PROXY", no_proxy)
        yield proxy


async def test_requests_go_through_the_https_proxy_of_the_environment_with_its_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with proxied(monkeypatch) as proxy, in_process(tmp_path) as (emu, gateway):
        assert await gateway.list_subscription_groups() == []
        assert await gateway.get_group("rg", "missing") is None
    host = emu.endpoint.removeprefix("https://")
    expected_auth = "Basic " + base64.b64encode(b"reconciler:s3cret").decode()
    assert proxy.tunnels, "no request went through the proxy"
    assert set(proxy.tunnels) == {(host, expected_auth)}


async def test_a_host_named_by_no_proxy_is_reached_directly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with proxied(monkeypatch, no_proxy="127.0.0.1") as proxy, in_process(tmp_path) as (_, gateway):
        assert await gateway.list_subscription_groups() == []
    assert proxy.tunnels == []


async def test_the_environment_is_read_once_per_host_not_once_per_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours: list[object] = []
    per_request: list[object] = []
    lookup = aiohttp.helpers.get_env_proxy_for_url

    def counted(into: list[object]) -> object:
        def wrapper(url: object) -> object:
            into.append(url)
            return lookup(url)  # type: ignore[arg-type]  # yarl.URL, as aiohttp passes it

        return wrapper

    monkeypatch.setattr(aiohttp.helpers, "get_env_proxy_for_url", counted(ours))
    monkeypatch.setattr(aiohttp.client, "get_env_proxy_for_url", counted(per_request))
    async with proxied(monkeypatch, no_proxy="127.0.0.1"), in_process(tmp_path) as (_, gateway):
        for _ in range(5):
            await gateway.list_subscription_groups()
    assert per_request == []  # aiohttp's own look-up (a worker thread per request) is off
    assert len(ours) == 1
