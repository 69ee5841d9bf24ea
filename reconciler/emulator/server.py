"""The emulator's HTTPS server: ARM's REST API for Microsoft.ContainerInstance/containerGroups.

Used by tests (in process: `async with Emulator(EmulatorConfig()) as emu`), by benchmarks, and by
`reconcile emulator` / `python -m reconciler.emulator` (see `cli.py`). It imports nothing else from
`reconciler` so that it cannot share the reconciler's bugs.

`Emulator` is the `EmulatorCore` (state and in-process API, `core.py`) with a life cycle: it serves HTTPS
on loopback with a CA it generates, a plain-http port for the managed-identity endpoint, and writes the
state file. Each request goes to one of three places:

- `/subscriptions/...`: ARM's API, through `arm/pipeline.py` (which documents the paths served);
- `/msi/token`: the managed-identity token endpoint (`identity.py`);
- `/_emulator/...`: the control and inspection surface for tests in other processes (`control.py`).

Requests are counted and logged here (bodies and query strings never are), and an `ArmError` raised
anywhere becomes ARM's error body.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from types import TracebackType

from aiohttp import web

from reconciler.emulator import control, identity
from reconciler.emulator.arm.pipeline import FAULT_KEY, handle_arm
from reconciler.emulator.certs import CertPaths, ensure_certificates, server_ssl_context
from reconciler.emulator.config import IDENTITY_PATH, MAX_BODY, EmulatorConfig, RequestLogEntry
from reconciler.emulator.core import EmulatorCore
from reconciler.emulator.errors import ArmError
from reconciler.emulator.routing import match_route
from reconciler.emulator.store import StateSaveError, write_atomic

__all__ = ["Emulator", "EmulatorConfig"]


class Emulator(EmulatorCore):
    """The emulator: start/stop, the endpoint and CA file, plus the core's run-time control API."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        super().__init__(config)
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._identity_port = 0
        self._certs: CertPaths | None = None
        self._temp_cert_dir: Path | None = None
        self._persist_task: asyncio.Task[None] | None = None
        self._saved_version = -1
        self._stopping = False
        self._stop_event = asyncio.Event()

    # -- life cycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        cfg = self.config
        if cfg.state_file is not None and cfg.state_file.exists():
            self.store.load(cfg.state_file)
        self._saved_version = self.store.version
        cert_dir = cfg.cert_dir
        if cert_dir is None and cfg.state_file is not None:
            cert_dir = cfg.state_file.with_name(cfg.state_file.name + ".tls")
        if cert_dir is None:
            self._temp_cert_dir = cert_dir = Path(tempfile.mkdtemp(prefix="aci-emulator-"))
        self._certs = await asyncio.to_thread(ensure_certificates, cert_dir)
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # In-flight requests (a slow fault, a latency sleep) get a short grace period at stop, not 60 s.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        try:
            site = web.TCPSite(self._runner, cfg.host, cfg.port, ssl_context=server_ssl_context(self._certs))
            await site.start()
            identity_site = web.TCPSite(self._runner, cfg.host, cfg.identity_port)
            await identity_site.start()
        except BaseException:
            await self.stop()  # a port in use must not leave a half-started server behind
            raise
        self._port = _bound_port(site)
        self._identity_port = _bound_port(identity_site)
        if cfg.state_file is not None:
            self._persist_task = asyncio.create_task(
                self._persist_loop(cfg.state_file), name="emulator-persist"
            )

    async def stop(self) -> None:
        self._stopping = True
        self._stop_event.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        try:
            if self._persist_task is not None:
                self.changed.set()
                task, self._persist_task = self._persist_task, None
                await task  # raises StateSaveError when the last state could not be written
        finally:
            if self._temp_cert_dir is not None:
                shutil.rmtree(self._temp_cert_dir, ignore_errors=True)
                self._temp_cert_dir = None

    async def _persist_loop(self, path: Path) -> None:
        # Debounced: at most one snapshot per interval, and a last one at stop. The snapshot is taken
        # on the loop (requests cannot change the store half-way); only the file write runs in a
        # thread. The pause grows with the cost of a snapshot, so a large store does not starve requests.
        pause = self.config.persist_interval
        while True:
            await self.changed.wait()
            self.changed.clear()
            if self.store.version != self._saved_version:
                version = self.store.version
                started = time.perf_counter()
                payload = self.store.snapshot()
                pause = max(self.config.persist_interval, 10 * (time.perf_counter() - started))
                try:
                    await asyncio.to_thread(write_atomic, path, payload)
                    self._saved_version = version
                except StateSaveError:
                    # The file still holds the previous state and the store is unchanged in memory: the next
                    # change or the stop writes it again (below, even when this write failed while the stop
                    # was already under way), and the stop raises if that last write fails too.
                    pass
            if self._stopping:
                if self.store.version != self._saved_version:
                    await asyncio.to_thread(write_atomic, path, self.store.snapshot())
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), pause)

    async def flush(self) -> None:
        """Write the state file now (when there is one), e.g. before another process reads it."""
        path = self.config.state_file
        if path is not None and self.store.version != self._saved_version:
            version = self.store.version
            await asyncio.to_thread(write_atomic, path, self.store.snapshot())
            self._saved_version = version

    # -- where it listens --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def endpoint(self) -> str:
        return f"https://{self.config.host}:{self._port}"

    @property
    def identity_endpoint(self) -> str:
        return f"http://{self.config.host}:{self._identity_port}{IDENTITY_PATH}"

    @property
    def ca_cert_path(self) -> Path:
        if self._certs is None:
            raise RuntimeError("the emulator has not been started")
        return self._certs.ca

    # -- every request -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        path = request.path
        route_name = "unknown"
        response: web.StreamResponse
        try:
            if path.startswith("/_emulator/") or path == "/_emulator":
                route_name = "control"
                response = await control.handle_control(self, request)
            elif path == IDENTITY_PATH:
                route_name = "identity.token"
                response = identity.token(self, request)
            elif not request.secure:
                raise ArmError(400, "HttpsRequired", "The ARM API is served over https only.")
            else:
                route = match_route(path)
                route_name = route.name if route else "unknown"
                response = await handle_arm(self, request, route)
        except ArmError as err:
            response = _error(err)
        fault = request.get(FAULT_KEY)
        if route_name == "control":
            return response  # the control surface is not traffic: it stays out of counters and log
        self.counters[f"{request.method} {route_name}"] += 1
        self.counters[f"status {response.status}"] += 1
        self.request_log.append(
            RequestLogEntry(
                self.now(),
                request.method,
                path,
                route_name,
                response.status,
                time.perf_counter() - started,
                fault,
                request.headers.get("User-Agent", "")[:256],
            )
        )
        if self.store.version != self._saved_version:
            self.changed.set()
        if fault == "reset_after" and request.transport is not None:
            request.transport.abort()
        return response


def _error(err: ArmError) -> web.Response:
    headers = {"x-ms-request-id": str(uuid.uuid4()), **err.headers}
    if err.status == 401:
        headers["WWW-Authenticate"] = (
            'Bearer authorization_uri="https://login.microsoftonline.com/common", '
            'error="invalid_token", error_description="The authentication failed because of missing '
            "'Authorization' header.\""
        )
    return web.json_response(err.body(), status=err.status, headers=headers)


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp exposes the bound port only through the asyncio server
    sockets = getattr(server, "sockets", None) or []
    if not sockets:
        raise RuntimeError("the emulator's socket is not bound")
    return int(sockets[0].getsockname()[1])
