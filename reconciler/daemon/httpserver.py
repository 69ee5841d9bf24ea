"""Serving the daemon's aiohttp app on a socket with limits that a hostile or broken client cannot exhaust.

Called by `reconciler.daemon.runner` (and the HTTP tests) instead of aiohttp's `TCPSite`. aiohttp closes idle
keep-alive connections between requests, but a connection that never completes its first request (it sends
nothing, or half a header and then stalls) is never timed out, and every such connection holds a file
descriptor: a few hundred of them made `/healthz` hang and a pass fail with "Too many open files". So each
connection goes through `GuardedProtocol`:

- its first request's headers must arrive within `header_timeout` of the connection opening, else it is
  closed (later requests on the connection are bounded by aiohttp's `keepalive_timeout`, which also closes a
  connection idling in half a header between requests);
- at most `max_connections` are open at once; at the cap, the oldest connection that has not yet sent a whole
  request is dropped to make room, so a flood of idle connections cannot lock out a probe, and a new
  connection is refused only when every open one is serving a request;
- header lines and fields are bounded by aiohttp (`max_line_size`, `max_field_size`, `max_headers`), bodies by
  the app's `client_max_size`, and the webhook reads its body under `body_timeout`.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

log = structlog.get_logger("reconciler.daemon.http")


@dataclass(frozen=True)
class HttpLimits:
    """The documented limits of the daemon's HTTP server (deploy/README.md)."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 5.0
    max_connections: int = 256
    max_line_size: int = 8190
    max_field_size: int = 8190
    max_headers: int = 64


class ConnectionGuard:
    """Counts the open connections and knows which have not yet sent a whole request (oldest first)."""

    def __init__(self, limits: HttpLimits) -> None:
        self.limits = limits
        self.open = 0
        self.refused = 0
        self.dropped = 0
        self._waiting: OrderedDict[int, GuardedProtocol] = OrderedDict()

    def admit(self, conn: GuardedProtocol) -> bool:
        if self.open >= self.limits.max_connections:
            if not self._waiting:
                self.refused += 1
                return False
            _, oldest = self._waiting.popitem(last=False)
            self.dropped += 1
            oldest.close()
        self.open += 1
        self._waiting[id(conn)] = conn
        return True

    def request_started(self, conn: GuardedProtocol) -> None:
        self._waiting.pop(id(conn), None)

    def closed(self, conn: GuardedProtocol) -> None:
        self._waiting.pop(id(conn), None)
        self.open -= 1


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's request handler behind a first-request deadline and the connection cap."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""
        self._admitted = False
        self._started = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A TCP server's transports are always `asyncio.Transport` (they have `abort`).
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if not self._guard.admit(self):
            transport.abort()
            return
        self._admitted = True
        self._deadline = asyncio.get_running_loop().call_later(self._guard.limits.header_timeout, self.close)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if not self._admitted:
            return
        if not self._started:
            seen = self._tail + data
            # The end of the first request's headers (bare LF line ends are accepted by the parser too).
            if b"\r\n\r\n" in seen or b"\n\n" in seen:
                self._started = True
                self._guard.request_started(self)
                if self._deadline is not None:
                    self._deadline.cancel()
                    self._deadline = None
            self._tail = seen[-3:]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._admitted else None

    def pause_writing(self) -> None:
        if self._admitted:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._admitted:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._admitted:
            self._admitted = False
            self._guard.closed(self)
            self._inner.connection_lost(exc)

    def close(self) -> None:
        """Drop a connection that did not send its first request in time (or was evicted at the cap)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()


def raise_open_file_limit(wanted: int = 65536) -> None:
    """Raise the soft limit of open files towards the hard one: each connection holds a descriptor, and the
    default soft limit of 1024 is low for a daemon that also talks to Azure concurrently."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


async def serve(
    app: web.Application, host: str, port: int, limits: HttpLimits = HttpLimits()
) -> tuple[web.AppRunner, asyncio.Server, ConnectionGuard]:
    """Start `app` on host:port behind the guard. Stop it with `server.close()` then `runner.cleanup()`."""
    kwargs: dict[str, Any] = {
        "keepalive_timeout": limits.keepalive_timeout,
        "max_line_size": limits.max_line_size,
        "max_field_size": limits.max_field_size,
        "max_headers": limits.max_headers,
    }
    runner = web.AppRunner(app, access_log=None, handle_signals=False, **kwargs)
    await runner.setup()
    handler_factory = runner.server
    if handler_factory is None:
        raise RuntimeError("aiohttp's AppRunner.setup() made no server")
    guard = ConnectionGuard(limits)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: GuardedProtocol(handler_factory(), guard), host, port, reuse_address=True
    )
    return runner, server, guard
