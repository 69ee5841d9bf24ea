"""Token buckets that keep the executor within ACI's container group create/delete quotas.

ACI's documented default limits per subscription (Microsoft Learn, "Resource availability & quota limits
for ACI", changeable limits table): container group creates 300 per hour and 100 per 5 minutes; deletes
300 per hour and 100 per 5 minutes. Going over them makes Azure answer 429 for a long while, so the executor
paces itself instead. Used by `reconciler.execution.executor`; a daemon keeps one `QuotaBudget` across passes
so that the budget spans them. Time is injected (`clock`, `sleep`), so tests never wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RateLimit:
    """At most `count` operations in any `per_seconds` window (as a bucket: burst `count`, steady refill)."""

    count: int
    per_seconds: float

    def __post_init__(self) -> None:
        if self.count < 1 or self.per_seconds <= 0:
            raise ValueError(f"a rate limit needs count >= 1 and a positive window, got {self}")


ACI_CREATE_LIMITS: tuple[RateLimit, ...] = (RateLimit(100, 300.0), RateLimit(300, 3600.0))
ACI_DELETE_LIMITS: tuple[RateLimit, ...] = (RateLimit(100, 300.0), RateLimit(300, 3600.0))


_EPSILON = 1e-9


class TokenBucket:
    """A bucket of `limit.count` tokens refilled at `count / per_seconds` tokens per second.

    `acquire` takes one token, waiting (with the injected sleep) until one is there. Waiters are served in
    arrival order. Cancelling a waiter takes nothing.
    """

    def __init__(self, limit: RateLimit, *, clock: Clock, sleep: Sleep) -> None:
        self.limit = limit
        self._rate = limit.count / limit.per_seconds
        self._tokens = float(limit.count)
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated)
        self._updated = now
        self._tokens = min(float(self.limit.count), self._tokens + elapsed * self._rate)

    @property
    def available(self) -> float:
        self._refill()
        return self._tokens

    def wait_needed(self) -> float:
        """Seconds until a token is available (0 when one is there now)."""
        self._refill()
        # The epsilon absorbs float rounding of the refill; without it a wait of 1e-16 s could repeat forever.
        return 0.0 if self._tokens >= 1.0 - _EPSILON else (1.0 - self._tokens) / self._rate

    async def acquire(self) -> float:
        """Take one token; return how long we waited for it (by the injected clock)."""
        started = self._clock()
        async with self._lock:
            while True:
                wait = self.wait_needed()
                if wait <= 0.0:
                    self._tokens = max(0.0, self._tokens - 1.0)
                    return self._clock() - started
                await self._sleep(wait)


class RateLimiter:
    """Several buckets that must all give a token (e.g. 100 per 5 minutes and 300 per hour)."""

    def __init__(self, limits: Sequence[RateLimit], *, clock: Clock, sleep: Sleep) -> None:
        self.buckets = tuple(TokenBucket(limit, clock=clock, sleep=sleep) for limit in limits)

    def wait_needed(self) -> float:
        return max((b.wait_needed() for b in self.buckets), default=0.0)

    async def acquire(self) -> None:
        for bucket in self.buckets:
            await bucket.acquire()


class QuotaBudget:
    """The create and delete budgets of one subscription. Keep one across passes (the daemon does)."""

    def __init__(
        self,
        *,
        creates: Sequence[RateLimit] = ACI_CREATE_LIMITS,
        deletes: Sequence[RateLimit] = ACI_DELETE_LIMITS,
        clock: Clock,
        sleep: Sleep,
    ) -> None:
        self.creates = RateLimiter(creates, clock=clock, sleep=sleep)
        self.deletes = RateLimiter(deletes, clock=clock, sleep=sleep)
