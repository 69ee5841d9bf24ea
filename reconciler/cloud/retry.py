"""The reconciler's one retry layer: attempts, exponential backoff with full jitter, and Retry-After.

The Azure adapter disables the SDK's own retry policy (`retry_total=0`), so every Azure call is attempted
exactly as often as this module says, Retry-After is honoured once, and attempts can be counted and reported.
Called by the executor (`reconciler.execution`) around each write and by `reconciler.cloud.observe` around
list/get calls. Time is injected (`sleep`), so tests never wait on a real clock.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from reconciler.cloud.errors import GatewayError, RetryableError

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a retryable error.

    `max_attempts` counts the first try. Without Retry-After the wait before attempt n+1 is uniform in
    `[0, min(cap, base * 2**(n-1))]` ("full jitter", so many clients throttled together spread out). With
    Retry-After the wait is exactly what the server asked, unless it exceeds `max_retry_after`: then we give
    up on this pass rather than block a worker for that long (the daemon's next pass tries again).
    """

    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    max_retry_after: float = 300.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.backoff_base < 0 or self.backoff_cap < 0:
            raise ValueError("backoff_base and backoff_cap must not be negative")

    def delay(self, attempt: int, error: GatewayError) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based) before trying again."""
        if error.retry_after is not None:
            return error.retry_after
        ceiling = min(self.backoff_cap, self.backoff_base * (2 ** max(0, attempt - 1)))
        return self.rng.uniform(0.0, ceiling)


@dataclass
class Attempts:
    """A mutable counter shared across the steps of one group (a replace is a delete and a create)."""

    count: int = 0


class RetryExhaustedError(RetryableError):
    """A retryable error that kept failing for `max_attempts` (or asked to wait longer than allowed)."""


async def call_with_retry(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    sleep: Sleep = asyncio.sleep,
    attempts: Attempts | None = None,
    on_retry: Callable[[int, GatewayError, float], None] | None = None,
    before_attempt: Callable[[], Awaitable[None]] | None = None,
) -> T:
    """Run `call` until it succeeds, raises a stalled error, or the attempt budget is spent.

    Only `GatewayError`s with `retryable=True` are retried; anything else (stalled errors, bugs,
    `asyncio.CancelledError`) propagates at once. `on_retry(attempt, error, delay)` is told before each
    wait; `before_attempt` runs before every attempt (the executor takes a quota token there).
    """
    counter = attempts if attempts is not None else Attempts()
    local = 0
    while True:
        local += 1
        counter.count += 1
        if before_attempt is not None:
            await before_attempt()
        try:
            return await call()
        except GatewayError as exc:
            if not exc.retryable:
                raise
            if local >= policy.max_attempts:
                raise RetryExhaustedError(
                    f"{exc.message} (gave up after {local} attempts)",
                    status=exc.status,
                    code=exc.code,
                    retry_after=exc.retry_after,
                ) from exc
            wait = policy.delay(local, exc)
            if wait > policy.max_retry_after:
                raise RetryExhaustedError(
                    f"{exc.message} (Azure asked to retry after {wait:.0f}s; more than the "
                    f"{policy.max_retry_after:.0f}s this pass waits)",
                    status=exc.status,
                    code=exc.code,
                    retry_after=exc.retry_after,
                ) from exc
            if on_retry is not None:
                on_retry(local, exc, wait)
            await sleep(wait)
