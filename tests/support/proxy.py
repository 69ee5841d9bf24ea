"""A loopback HTTP proxy that tunnels CONNECT, for the adapter's proxy and write-fence tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class ConnectProxy:
    """An HTTP proxy on loopback that tunnels `CONNECT host:port` and records each tunnel and the
    credentials it was asked with."""

    def __init__(self, on_connect: Callable[[], None] | None = None) -> None:
        self.on_connect = on_connect  # called as each tunnel is asked for (a test's clock moves there)
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
        if self.on_connect is not None:
            self.on_connect()
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
