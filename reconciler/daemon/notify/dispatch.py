"""Delivering events to receivers in the background, so that no pass ever waits on a notification.

`Notifier.emit` is synchronous and returns at once (the worker, the job scheduler and the coordination call
it from the event loop): per receiver it applies the filters (event kinds, minimum severity, resource
groups), the deduplication window, and puts the event on that receiver's bounded queue (the oldest is dropped
when a receiver is down long enough to fill it, and counted). One task per receiver sends: a token bucket
keeps it under `rateLimitPerMinute`, each request has a timeout, and failures are classified where they
enter: connection errors, timeouts, 408, 429 and 5xx are retried with exponential backoff and jitter
(honouring `Retry-After`), other 4xx are dropped at once (retrying a rejected payload cannot help). Started
and stopped by `reconciler.daemon.runner`; `aclose` gives queued events a short grace, then cancels.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import random
import re
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from reconciler.daemon.notify import payloads
from reconciler.daemon.notify.config import NotificationsConfig, Receiver
from reconciler.daemon.notify.events import SEVERITY_ORDER, Event, EventKind

log = structlog.get_logger("reconciler.daemon.notify")

QUEUE_LIMIT = 500
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
_SHA = re.compile(r"^[0-9a-f]{40}$")

Sleep = Callable[[float], Awaitable[None]]
Redact = Callable[[str], str]
# (receiver, delivered) -> None: for metrics
OnResult = Callable[[str, str], None]


class DeliveryError(Exception):
    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class Request:
    url: str
    body: bytes
    headers: dict[str, str]


def build_request(receiver: Receiver, event: Event, redact: Redact, now: float) -> Request | None:
    """The HTTP request that delivers `event` to `receiver`; None when this receiver cannot say anything
    about it (a commit status needs a revision that is a commit)."""
    headers = {"Content-Type": "application/json", "User-Agent": "aci-reconciler"}
    if receiver.type == "webhook":
        delivery = str(uuid.uuid4())
        body = _dumps(payloads.webhook_body(event, delivery, redact))
        stamp = int(now)
        assert receiver.secret is not None  # required by config
        headers.update(
            {
                "X-Reconciler-Event": event.kind.value,
                "X-Reconciler-Delivery": delivery,
                payloads.TIMESTAMP_HEADER: str(stamp),
                payloads.SIGNATURE_HEADER: payloads.sign(receiver.secret, stamp, body),
            }
        )
        return Request(receiver.url, body, headers)
    if receiver.type == "slack":
        return Request(receiver.url, _dumps(payloads.slack_body(event, redact)), headers)
    if receiver.type == "teams":
        return Request(receiver.url, _dumps(payloads.teams_body(event, redact)), headers)
    if event.kind is not EventKind.REVISION or not event.revision or not _SHA.match(event.revision):
        return None
    assert receiver.secret is not None  # required by config
    headers.update(
        {
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {receiver.secret.decode()}",
            "X-GitHub-Api-Version": "2022-11-28",
        }
    )
    context = f"{receiver.context}/{event.instance}"
    body = _dumps(payloads.github_status(event, context, receiver.target_url, redact))
    return Request(receiver.url + event.revision, body, headers)


def _dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def wanted(receiver: Receiver, event: Event) -> bool:
    """The receiver's filters: kinds, minimum severity, resource groups (shell patterns, any case)."""
    if event.kind not in receiver.kinds:
        return False
    if SEVERITY_ORDER[event.severity] < SEVERITY_ORDER[receiver.min_severity]:
        return False
    if receiver.resource_groups and event.resource_group is not None:
        rg = event.resource_group.lower()
        return any(fnmatch.fnmatchcase(rg, pattern) for pattern in receiver.resource_groups)
    return True


Send = Callable[[Request, float], Awaitable[None]]


class _Lane:
    """One receiver: its queue, dedup memory and rate budget."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.queue: deque[Event] = deque()
        self.ready = asyncio.Event()
        self.seen: dict[str, float] = {}
        self.tokens = float(receiver.rate_limit_per_minute)
        self.refilled: float | None = None
        self.dropped = 0
        # Set while nothing is queued or being delivered (shutdown waits for it).
        self.idle = asyncio.Event()
        self.idle.set()


class Notifier:
    def __init__(
        self,
        config: NotificationsConfig,
        *,
        redact: Redact,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        send: Send | None = None,
        on_result: OnResult | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """`send`: how a request goes out (default: aiohttp); tests give their own or local receivers."""
        self.lanes = [_Lane(r) for r in config.receivers]
        self.redact = redact
        self.monotonic = monotonic
        self.clock = clock
        self.sleep = sleep
        self._send = send
        self.on_result = on_result
        self.rng = rng or random.Random()
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.sent = 0
        self.failed = 0

    @property
    def enabled(self) -> bool:
        return bool(self.lanes)

    def emit(self, event: Event) -> None:
        """Queue `event` for every receiver that wants it; never waits, never raises."""
        now = self.monotonic()
        for lane in self.lanes:
            receiver = lane.receiver
            if not wanted(receiver, event):
                continue
            key = event.dedup_key
            last = lane.seen.get(key)
            if last is not None and now - last < receiver.dedup_window_s:
                self._result(receiver.name, "deduplicated")
                continue
            lane.seen[key] = now
            if len(lane.seen) > 4 * QUEUE_LIMIT:
                cutoff = now - receiver.dedup_window_s
                lane.seen = {k: t for k, t in lane.seen.items() if t >= cutoff}
            if len(lane.queue) >= QUEUE_LIMIT:
                lane.queue.popleft()
                lane.dropped += 1
                self._result(receiver.name, "dropped")
            lane.queue.append(event)
            lane.idle.clear()
            lane.ready.set()

    def start(self) -> None:
        for lane in self.lanes:
            self._tasks.append(asyncio.create_task(self._run(lane), name=f"notify:{lane.receiver.name}"))

    async def aclose(self, grace: float = 5.0) -> None:
        """Give the queues `grace` seconds to empty, then stop every sender."""
        if self._tasks:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    for lane in self.lanes:
                        await lane.idle.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _result(self, receiver: str, result: str) -> None:
        if self.on_result is not None:
            self.on_result(receiver, result)

    async def _run(self, lane: _Lane) -> None:
        while True:
            if not lane.queue:
                lane.ready.clear()
                lane.idle.set()
                await lane.ready.wait()
                continue
            await self._take_token(lane)
            event = lane.queue.popleft()
            await self._deliver(lane.receiver, event)

    async def _take_token(self, lane: _Lane) -> None:
        rate = lane.receiver.rate_limit_per_minute / 60.0
        while True:
            now = self.monotonic()
            if lane.refilled is not None:
                lane.tokens = min(
                    lane.receiver.rate_limit_per_minute, lane.tokens + (now - lane.refilled) * rate
                )
            lane.refilled = now
            if lane.tokens >= 1.0:
                lane.tokens -= 1.0
                return
            await self.sleep((1.0 - lane.tokens) / rate)

    async def _deliver(self, receiver: Receiver, event: Event) -> None:
        request = build_request(receiver, event, self.redact, self.clock())
        if request is None:
            return
        for attempt in range(1, receiver.max_attempts + 1):
            try:
                await self._post(request, receiver.timeout_s)
            except DeliveryError as err:
                last = attempt == receiver.max_attempts
                if not err.retryable or last:
                    self.failed += 1
                    self._result(receiver.name, "failed")
                    log.warning(
                        "notification not delivered",
                        receiver=receiver.name,
                        kind=event.kind.value,
                        attempts=attempt,
                        error=self.redact(str(err)),
                    )
                    return
                delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempt - 1))
                delay *= 1.0 + self.rng.uniform(-0.2, 0.2)
                await self.sleep(max(delay, err.retry_after or 0.0))
                # A new webhook signature each attempt: the timestamp must be fresh.
                request = build_request(receiver, event, self.redact, self.clock()) or request
            else:
                self.sent += 1
                self._result(receiver.name, "sent")
                log.debug("notification delivered", receiver=receiver.name, kind=event.kind.value)
                return

    async def _post(self, request: Request, limit_s: float) -> None:
        if self._send is not None:
            await self._send(request, limit_s)
            return
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                request.url,
                data=request.body,
                headers=request.headers,
                timeout=aiohttp.ClientTimeout(total=limit_s),
                allow_redirects=False,
            ) as response:
                await response.read()
                check_status(response.status, response.headers.get("Retry-After"))
        except TimeoutError:
            raise DeliveryError(f"no answer within {limit_s:g}s", retryable=True) from None
        except aiohttp.ClientError as err:
            raise DeliveryError(f"cannot reach the receiver: {type(err).__name__}", retryable=True) from None


def check_status(status: int, retry_after: str | None) -> None:
    """Classifies a receiver's answer: 2xx delivered; 408, 429 and 5xx retryable; any other refused."""
    if 200 <= status < 300:
        return
    wait: float | None = None
    if retry_after is not None and retry_after.strip().isdigit():
        wait = min(float(retry_after.strip()), BACKOFF_CAP_S * 5)
    if status in (408, 429) or status >= 500:
        raise DeliveryError(f"the receiver answered {status}", retryable=True, retry_after=wait)
    raise DeliveryError(f"the receiver refused it with {status}", retryable=False)
