"""Observation: what lives in Azure, at the cost of one list call per resource group and page.

Called by the engine's passes. Retryable failures of a list are retried through the one retry layer,
`reconciler.cloud.retry` (backoff that honours Retry-After); a resource group that cannot be observed is
reported, and nothing in it is planned (planning against unknown state could create duplicates or prune
what exists).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from reconciler.cloud.errors import GatewayError
from reconciler.cloud.gateway import Gateway
from reconciler.cloud.retry import RetryPolicy, Sleep, call_with_retry
from reconciler.model.observed import ObservedGroup


@dataclass(frozen=True)
class Observation:
    groups: tuple[ObservedGroup, ...] = ()
    # Resource group -> why it could not be listed (after retries).
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def observed_resource_groups(self) -> frozenset[str]:
        return frozenset(g.resource_group.lower() for g in self.groups)


async def observe(
    gateway: Gateway,
    resource_groups: Iterable[str],
    *,
    policy: RetryPolicy | None = None,
    sleep: Sleep = asyncio.sleep,
    concurrency: int = 8,
) -> Observation:
    """List every resource group concurrently (bounded); never one GET per group."""
    policy = policy or RetryPolicy()
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
