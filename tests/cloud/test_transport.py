"""The adapter's transport: the proxy of the environment is honoured (a loopback CONNECT proxy sees the
tunnel and its credentials), `NO_PROXY` is, and the environment is read once per host, not per request."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp.client
import aiohttp.helpers
import pytest

from tests.inprocess import in_process

PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
NO_PROXY_VARIABLES = ("NO_PROXY", "no_proxy")


class ConnectProxy:
    """An HTTP proxy on loopback that tunnels `CONNECT host:port` and records each tunnel and the
    credentials it was asked with."""

    def __init__(self) -> None:
        self.tunnels: list[tuple[str, str | None]] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        method, target, _ = head[0].split(" ", 2)
        auth = next(
            (h.split(":", 1)[1].strip() for h in head[1:] if h.lower().startswith("proxy-authorization:")),
            None,
        )
        self.tunnels.append((target, auth))
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        host, port = target.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
            sink.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


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
