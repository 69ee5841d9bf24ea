"""Local receivers for the notification tests: one aiohttp server on loopback that answers as the test
scripts and records every request, with an asyncio event per arrival (tests wait on it, never on a clock)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receivers:
    url: str = ""
    got: list[Received] = field(default_factory=list)
    # Status codes to answer with, in order, per path; then 200 (GitHub: 201).
    script: dict[str, list[int]] = field(default_factory=dict)
    # Paths that never answer (a receiver that hangs).
    hang: set[str] = field(default_factory=set)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for(self, count: int, path: str | None = None) -> list[Received]:
        async with self.arrived:
            await self.arrived.wait_for(lambda: len(self.at(path)) >= count)
        return self.at(path)

    def at(self, path: str | None) -> list[Received]:
        return [r for r in self.got if path is None or r.path.startswith(path)]


@asynccontextmanager
async def receivers() -> AsyncIterator[Receivers]:
    state = Receivers()
    forever = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        async with state.arrived:
            state.got.append(Received(request.path, dict(request.headers), body))
            state.arrived.notify_all()
        for prefix in state.hang:
            if request.path.startswith(prefix):
                await forever.wait()
        for prefix, codes in state.script.items():
            if request.path.startswith(prefix) and codes:
                return web.Response(status=codes.pop(0), text="scripted")
        return web.Response(status=201 if "/statuses/" in request.path else 200, text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        forever.set()
        await runner.cleanup()
