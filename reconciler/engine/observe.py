"""Observation: what lives in Azure, at the cost of one list call per resource group and page.

Called by the engine's passes. Retryable failures of a list are retried here with backoff that honours
Retry-After; a resource group that cannot be observed is reported, and nothing in it is planned (planning
against unknown state could create duplicates or prune what exists).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from reconciler.cloud.errors import GatewayError
from reconciler.cloud.gateway import Gateway
from reconciler.model.observed import ObservedGroup

Sleep = Callable[[float], Awaitable[None]]
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Full-jitter exponential backoff, never shorter than the server's Retry-After."""
        backoff = rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        return max(backoff, retry_after or 0.0)


@dataclass(frozen=True)
class Observation:
    groups: tuple[ObservedGroup, ...] = ()
    # Resource group -> why it could not be listed (after retries).
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def observed_resource_groups(self) -> frozenset[str]:
        return frozenset(g.resource_group.lower() for g in self.groups)


async def call_with_retry(
    call: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    sleep: Sleep = asyncio.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run `call`, retrying retryable gateway errors; stalled errors and cancellation propagate at once."""
    rng = rng or random.Random()
    attempt = 1
    while True:
        try:
            return await call()
        except GatewayError as err:
            if not err.retryable or attempt >= policy.max_attempts:
                raise
            await sleep(policy.delay(attempt, err.retry_after, rng))
            attempt += 1


async def observe(
    gateway: Gateway,
    resource_groups: Iterable[str],
    *,
    policy: RetryPolicy = RetryPolicy(),
    sleep: Sleep = asyncio.sleep,
    concurrency: int = 8,
) -> Observation:
    """List every resource group concurrently (bounded); never one GET per group."""
    wanted = sorted({rg.lower(): rg for rg in resource_groups}.values(), key=str.lower)
    bound = asyncio.Semaphore(concurrency)
    groups: list[ObservedGroup] = []
    failed: dict[str, str] = {}

    async def one(rg: str) -> None:
        async with bound:
            try:
                found = await call_with_retry(lambda: gateway.list_groups(rg), policy=policy, sleep=sleep)
            except GatewayError as err:
                failed[rg] = str(err)
                return
        groups.extend(found)

    async with asyncio.TaskGroup() as tasks:
        for rg in wanted:
            tasks.create_task(one(rg), name=f"observe:{rg}")
    groups.sort(key=lambda g: (g.resource_group.lower(), g.name.lower()))
    return Observation(groups=tuple(groups), failed=failed)
