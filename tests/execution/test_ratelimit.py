"""Token buckets of `reconciler.execution.ratelimit`, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.execution.ratelimit import ACI_CREATE_LIMITS, RateLimit, RateLimiter, TokenBucket
from tests.execution.conftest import FakeClock, settle


async def test_bucket_allows_a_burst_then_paces_at_the_refill_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(RateLimit(3, 30.0), clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(5):
        await bucket.acquire()
        times.append(clock.now)
    assert times == pytest.approx([0.0, 0.0, 0.0, 10.0, 20.0])


async def test_cancelled_waiter_takes_no_token() -> None:
    clock = FakeClock()
    blocked = asyncio.Event()

    async def never(_: float) -> None:
        blocked.set()
        await asyncio.Event().wait()

    bucket = TokenBucket(RateLimit(1, 60.0), clock=clock, sleep=never)
    await bucket.acquire()
    waiter = asyncio.create_task(bucket.acquire())
    await settle(blocked.is_set)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    clock.now = 60.0
    assert bucket.available == pytest.approx(1.0)


async def test_limiter_needs_every_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter((RateLimit(2, 10.0), RateLimit(3, 100.0)), clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(4):
        await limiter.acquire()
        times.append(clock.now)
    # The 2-per-10s bucket alone would allow the 4th at 10s; the 3-per-100s one only at 33.3s.
    assert times[3] >= 100.0 / 3 - 1e-6


def test_aci_documented_create_quota_is_the_default() -> None:
    assert RateLimit(100, 300.0) in ACI_CREATE_LIMITS
    assert RateLimit(300, 3600.0) in ACI_CREATE_LIMITS


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="rate limit"):
        RateLimit(0, 10.0)


@settings(max_examples=40)
@given(
    count=st.integers(min_value=1, max_value=5),
    window=st.floats(min_value=1.0, max_value=100.0),
    n=st.integers(min_value=1, max_value=20),
)
def test_no_window_ever_holds_more_than_the_limit_plus_refill(count: int, window: float, n: int) -> None:
    clock = FakeClock()
    bucket = TokenBucket(RateLimit(count, window), clock=clock, sleep=clock.sleep)

    async def take() -> list[float]:
        times = []
        for _ in range(n):
            await bucket.acquire()
            times.append(clock.now)
        return times

    times = asyncio.run(take())
    # After the burst of `count`, tokens come at `count / window` per second: the k-th (0-based) is
    # never given before (k - count + 1) * window / count.
    for k, t in enumerate(times):
        assert t >= (k - count + 1) * window / count - 1e-6
