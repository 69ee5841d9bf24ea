"""The daemon's HTTP endpoints (aiohttp): `/healthz`, `/readyz`, `/metrics`, `/status`, `POST /hook` and the
status page (`/`, `/groups/...`, from `reconciler.daemon.ui.routes`; with sign-in configured, `/status` asks
for it too).

Built by `reconciler.daemon.cli` around a `DaemonView` (what the worker, the state book and the git source
know) and served on `--listen` (127.0.0.1:9440 by default). `/status` renders the last plan with the project's
JSON renderer, which never shows secret values, and under `jobs` every job template the scheduler knows: its
policy, next run, active runs, last run and history (log tails already masked and redacted). The webhook
checks GitHub's `X-Hub-Signature-256` HMAC-SHA256 with a constant-time comparison before it does anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

from reconciler.daemon.coordination.coordinator import Coordinator
from reconciler.daemon.jobs import JobScheduler
from reconciler.daemon.metrics import CONTENT_TYPE, DaemonMetrics
from reconciler.daemon.state import GroupState, StateBook
from reconciler.daemon.ui.auth import UiSettings
from reconciler.daemon.ui.routes import Inspector, add_routes, guard
from reconciler.daemon.worker import Worker
from reconciler.model.plan import Change, Plan

log = structlog.get_logger("reconciler.daemon.http")

# How long the loop may go without a heartbeat before /healthz fails (the heartbeat ticks every second).
HEARTBEAT_STALE_S = 30.0
MAX_HOOK_BODY = 5 * 1024 * 1024  # GitHub caps webhook payloads at 25 MB; pushes are far smaller


_SIGNATURE_PREFIX = "sha256="
_SIGNATURE_LENGTH = len(_SIGNATURE_PREFIX) + 64
# One log line per window for rejected webhook calls: anyone can send them, so they must not flood the log.
HOOK_REJECTION_LOG_WINDOW_S = 60.0


def signature_problem(secret: bytes, body: bytes, header: str | None) -> str | None:
    """Why GitHub's `X-Hub-Signature-256: sha256=<64 hex>` does not sign `body`, as a fixed phrase that quotes
    nothing of the header; None when it does (compared in constant time).

    aiohttp decodes header bytes that are not UTF-8 into lone surrogates: the ASCII check refuses those
    before anything encodes them."""
    if header is None or not header.strip():
        return "missing signature"
    header = header.strip()
    if not header.isascii() or len(header) != _SIGNATURE_LENGTH or not header.startswith(_SIGNATURE_PREFIX):
        return "malformed signature"
    digest = header[len(_SIGNATURE_PREFIX) :]
    if any(c not in "0123456789abcdefABCDEF" for c in digest):
        return "malformed signature"
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), digest.lower().encode()):
        return "signature does not match"
    return None


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """True when `header` is GitHub's valid signature of `body` under `secret`."""
    return signature_problem(secret, body, header) is None


@dataclass
class RejectionLog:
    """At most one warning per window about rejected webhook calls, with how many were not logged."""

    monotonic: Callable[[], float]
    window: float = HOOK_REJECTION_LOG_WINDOW_S
    _last: float | None = None
    _suppressed: int = 0

    def rejected(self, reason: str, remote: str | None) -> None:
        now = self.monotonic()
        if self._last is not None and now - self._last < self.window:
            self._suppressed += 1
            return
        log.warning(
            "webhook rejected",
            reason=reason,
            remote=(remote or "")[:64],
            suppressed=self._suppressed,
            window_s=self.window,
        )
        self._last, self._suppressed = now, 0


def _render_plan(plan: Plan) -> dict[str, Any]:
    from reconciler.render import plan_to_json

    return plan_to_json(plan)


@dataclass
class DaemonView:
    worker: Worker
    book: StateBook
    metrics: DaemonMetrics
    instance: str
    clock: Callable[[], float]
    monotonic: Callable[[], float]
    # Set by the heartbeat task; compared with `monotonic()`.
    heartbeat: float
    worker_alive: Callable[[], bool]
    on_hook: Callable[[], None] | None = None
    hook_secret: bytes | None = None
    git: Callable[[], dict[str, Any]] | None = None
    shutting_down: bool = False
    jobs: JobScheduler | None = None
    coordination: Coordinator | None = None
    ui: UiSettings = field(default_factory=UiSettings)
    # Reads a group's containers, events and log tail for its page; None: the page shows what passes saw.
    inspector: Inspector | None = None

    def page_status(self) -> dict[str, Any]:
        return status_json(self, groups=False)

    def groups(self) -> Iterable[GroupState]:
        return self.book.groups.values()

    def group_state(self, resource_group: str, name: str) -> GroupState | None:
        return self.book.groups.get((resource_group.lower(), name.lower()))

    def changes(self) -> Mapping[tuple[str, str], Change]:
        return self.worker.plan_index()

    def observed(self) -> Mapping[tuple[str, str], Any]:
        return self.worker.observed

    def ready(self) -> bool:
        """Serving its purpose: the first pass is done and, with coordination, the store answers (so a
        standby could take over now)."""
        if not self.worker.first_pass_done.is_set() or self.shutting_down:
            return False
        return self.coordination is None or self.coordination.reachable


def status_json(view: DaemonView, *, groups: bool = True) -> dict[str, Any]:
    """`/status`; `groups=False` leaves out the per-group parts (`groups`, `last_plan`), which the status page
    reads from the book and the plan directly."""
    worker = view.worker
    last = worker.last_pass
    plan = worker.last_plan
    return {
        "instance": view.instance,
        "ready": view.ready(),
        "shutting_down": view.shutting_down,
        "revision": worker.revision,
        "dry_run": worker.dry_run,
        "last_pass": last.to_json() if last else None,
        "recent_passes": [p.to_json() for p in worker.recent_passes],
        "current_pass": worker.current.to_json() if worker.current else None,
        "pending_triggers": [t.to_json() for t in worker.coalescer.pending],
        "next_retry_at": view.book.next_retry(),
        "counts": view.book.counts(),
        "groups": [s.to_json() for s in sorted(view.book.groups.values(), key=lambda s: s.key)]
        if groups
        else [],
        "unfinished_at_start": view.book.unfinished_at_start,
        "git": view.git() if view.git else None,
        "job_runs": view.jobs.mode if view.jobs is not None else None,
        "jobs": view.jobs.status_json() if view.jobs is not None else [],
        "last_plan": _render_plan(plan) if plan is not None and groups else None,
        "coordination": view.coordination.status_json() if view.coordination is not None else None,
    }


def build_app(view: DaemonView, *, body_timeout: float = 30.0) -> web.Application:
    app = web.Application(client_max_size=MAX_HOOK_BODY)
    rejections = RejectionLog(view.monotonic)

    async def healthz(request: web.Request) -> web.Response:
        del request
        age = view.monotonic() - view.heartbeat
        alive = view.worker_alive() and age <= HEARTBEAT_STALE_S
        body = {"status": "ok" if alive else "unhealthy", "heartbeat_age_s": round(age, 3)}
        return web.json_response(body, status=200 if alive else 503)

    async def readyz(request: web.Request) -> web.Response:
        del request
        ready = view.ready()
        body: dict[str, Any] = {"status": "ready" if ready else "not ready"}
        if view.coordination is not None:
            body["leader"] = view.coordination.table.leading
            body["coordination_store_reachable"] = view.coordination.reachable
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(request: web.Request) -> web.Response:
        del request
        view.metrics.set_groups(view.book.counts())
        if view.coordination is not None:
            # A lease can lapse between ticks (fencing by time): read it now.
            table = view.coordination.table
            view.metrics.leader.set(1 if table.leading else 0)
            view.metrics.shards_owned.set(len(table.owned()))
        response = web.Response(body=view.metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response

    async def status(request: web.Request) -> web.Response:
        del request
        return web.Response(text=json.dumps(status_json(view), indent=2), content_type="application/json")

    async def hook(request: web.Request) -> web.Response:
        if view.hook_secret is None or view.on_hook is None:
            return web.json_response(
                {"error": "webhook disabled: start the daemon with --webhook-secret-file"}, status=404
            )
        try:
            async with asyncio.timeout(body_timeout):
                body = await request.read()
        except TimeoutError:
            rejections.rejected("body not received in time", request.remote)
            return web.json_response({"error": "request body not received in time"}, status=408)
        problem = signature_problem(view.hook_secret, body, request.headers.get("X-Hub-Signature-256"))
        if problem is not None:
            rejections.rejected(problem, request.remote)
            return web.json_response({"error": "bad or missing X-Hub-Signature-256"}, status=401)
        event = request.headers.get("X-GitHub-Event", "push")
        if event == "ping":
            return web.json_response({"status": "pong"})
        if view.shutting_down:
            return web.json_response({"error": "shutting down"}, status=503)
        view.on_hook()
        log.info("webhook accepted", github_event=event, delivery=request.headers.get("X-GitHub-Delivery"))
        return web.json_response({"status": "accepted"}, status=202)

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/status", guard(view.ui, page=False)(status))
    app.router.add_post("/hook", hook)
    add_routes(app, view, view.ui, clock=view.clock)
    return app
