"""`apply_plan` against an ARM-like write bucket on simulated time: throttled groups pace themselves.

The bucket refills one token per second, as ARM's write bucket does when it runs dry, and answers 429 with
Retry-After otherwise. Time is a discrete-event clock: a sleeper wakes when every task is blocked and its
wake-up is the earliest, so concurrent sleeps overlap as on a real clock, and no test waits on one.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import random
from typing import Any

from reconciler.cloud.errors import RetryableError
from reconciler.execution import ApplyOptions, apply_plan
from reconciler.model.observed import ObservedGroup
from reconciler.model.outcome import Result
from reconciler.model.plan import Action
from tests.execution.conftest import change, plan
from tests.fakes.gateway import FakeGateway


class EventClock:
    """Simulated time: `sleep` parks a task until `run` advances the clock to its wake-up."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + max(0.0, seconds), next(self._seq), future))
        await future

    async def run(self, main: Any) -> Any:
        task = asyncio.ensure_future(main)
        while not task.done():
            for _ in range(50):  # let every runnable task reach its next sleep
                await asyncio.sleep(0)
            if self._sleepers and not task.done():
                wake, _, future = heapq.heappop(self._sleepers)
                self.now = max(self.now, wake)
                future.set_result(None)
        return task.result()


class BucketGateway(FakeGateway):
    """PUTs draw from a bucket of `size` tokens refilled at `rate` per second; a dry bucket answers 429."""

    def __init__(self, clock: EventClock, *, size: int, rate: float) -> None:
        super().__init__()
        self.clock = clock
        self.tokens = float(size)
        self.size = size
        self.rate = rate
        self.updated = 0.0
        self.throttled = 0

    async def create_or_update(
        self,
        resource_group: str,
        name: str,
        body: dict[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the Gateway contract; the fake never waits on time
    ) -> ObservedGroup:
        now = self.clock()
        self.tokens = min(self.size, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            self.throttled += 1
            raise RetryableError("SubscriptionRequestsThrottled", status=429, retry_after=1.0)
        self.tokens -= 1
        group = await super().create_or_update(resource_group, name, body, timeout=timeout)
        await self.clock.sleep(2.0)  # provisioning
        return group


def test_throttled_writes_pace_themselves_so_no_group_runs_out_of_attempts() -> None:
    clock = EventClock()
    fake = BucketGateway(clock, size=4, rate=1.0)
    changes = [change(Action.CREATE, f"g{i}") for i in range(24)]
    options = ApplyOptions(concurrency=8, max_attempts=3, rng=random.Random(0))

    result = asyncio.run(
        clock.run(apply_plan(plan(*changes), fake, options=options, sleep=clock.sleep, clock=clock))
    )

    assert [o.result for o in result.outcomes] == [Result.SUCCEEDED] * 24
    # Paced at about the refill rate: 20 tokens beyond the burst take about 20 s, not much more.
    assert clock.now < 40
    # Each throttled group waited its turn instead of retrying into an empty bucket again and again.
    assert fake.throttled < 24


def test_pacing_fades_once_writes_succeed_again() -> None:
    clock = EventClock()
    fake = BucketGateway(clock, size=1000, rate=1.0)
    fake.fail("put", RetryableError("throttled", status=429, retry_after=1.0), name="g0", times=1)
    changes = [change(Action.CREATE, f"g{i}") for i in range(60)]
    options = ApplyOptions(concurrency=10, rng=random.Random(0))

    result = asyncio.run(
        clock.run(apply_plan(plan(*changes), fake, options=options, sleep=clock.sleep, clock=clock))
    )

    assert all(o.result is Result.SUCCEEDED for o in result.outcomes)
    # Unthrottled, 60 groups at 10 at a time take 6 rounds of 2 s; one 429 costs a few seconds, not a
    # pace of one write per second for the rest of the apply (that would be 60 s).
    assert clock.now < 25
