"""Observation: what lives in Azure, in as few list calls as the API allows (DESIGN.md section 4).

Called by the engine's passes. The scope decides what is listed:

- `subscription` (the default): one paged subscription-wide list, so a managed group in a resource group
  that no manifest names any more is still seen (and pruned). When the principal may not read the whole
  subscription (403), the pass falls back to the resource groups the manifests name, and says so;
- `resource-groups`: the resource groups named (`--scope RG[,RG]`) plus those the manifests name, one paged
  list each, for principals that may read only some resource groups;
- `manifests`: only the resource groups the manifests name (the scope is inferred, and the plan says so).

A focused pass (`observe_keys`: the daemon's answer to a manifest file saved) reads only the groups of the
files that changed, one GET each: what they are now matters, and the rest of the fleet was listed by the
last full pass and will be by the next.

Retryable failures of a list are retried through the one retry layer, `reconciler.cloud.retry` (backoff that
honours Retry-After); a resource group that cannot be observed is reported, and nothing in it is planned
(planning against unknown state could create duplicates or prune what exists).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from reconciler.cloud.errors import GatewayError
from reconciler.cloud.gateway import Gateway, ListCursor
from reconciler.cloud.retry import Attempts, RetryExhaustedError, RetryPolicy, Sleep, call_with_retry
from reconciler.model.observed import ObservedGroup

ScopeMode = Literal["subscription", "resource-groups", "manifests"]
SUBSCRIPTION = "subscription"
MANIFESTS = "manifests"
# ARM's resource group names: letters, digits, underscores, parentheses, hyphens and periods, at most 90,
# not ending in a period.
_RESOURCE_GROUP = re.compile(r"^[\w().-]{1,90}$")


# Told the groups of a list page as it is read (`ListCursor.on_page`).
OnPage = Callable[[Sequence[ObservedGroup]], None]


class ScopeError(ValueError):
    """A `--scope` value that names no valid scope; the message says the fix."""


@dataclass(frozen=True)
class Scope:
    """What a pass observes. `resource_groups` are the explicitly named ones (mode `resource-groups`)."""

    mode: ScopeMode = "subscription"
    resource_groups: tuple[str, ...] = ()

    @classmethod
    def parse(cls, values: Sequence[str]) -> Scope:
        """From `--scope` values (each `subscription`, `manifests` or `RG[,RG...]`); empty: the default."""
        tokens = [t.strip() for value in values for t in value.split(",") if t.strip()]
        if not tokens:
            return cls()
        keywords = [t for t in tokens if t in (SUBSCRIPTION, MANIFESTS)]
        if keywords:
            if len(tokens) > 1:
                raise ScopeError(
                    f"--scope {keywords[0]} cannot be combined with other values; give either "
                    "'subscription', 'manifests' or resource group names"
                )
            return cls(mode="subscription" if keywords[0] == SUBSCRIPTION else "manifests")
        bad = [t for t in tokens if not _RESOURCE_GROUP.match(t) or t.endswith(".")]
        if bad:
            raise ScopeError(
                f"--scope: {bad[0]!r} is not a resource group name (letters, digits, _ ( ) - and ., "
                "at most 90, not ending in '.'); give 'subscription', 'manifests' or RG[,RG...]"
            )
        unique = {t.lower(): t for t in tokens}
        return cls(mode="resource-groups", resource_groups=tuple(sorted(unique.values(), key=str.lower)))

    def describe(self) -> str:
        if self.mode == "resource-groups":
            return "resource groups " + ", ".join(self.resource_groups)
        return self.mode


@dataclass(frozen=True)
class Observation:
    groups: tuple[ObservedGroup, ...] = ()
    # Resource group -> why it could not be listed (after retries).
    failed: dict[str, str] = field(default_factory=dict)
    # Why the whole subscription could not be listed (nothing is known then); None when it could.
    failed_all: str | None = None
    # Why the scope is only the resource groups the manifests name (the plan warns); None when it is not.
    inferred: str | None = None
    # The resource groups listed one by one (empty for the subscription-wide list).
    listed_resource_groups: tuple[str, ...] = ()
    # How many list requests the observation cost (pages read plus attempts refused): ARM's read budget used.
    reads: int = 0

    @property
    def observed_resource_groups(self) -> frozenset[str]:
        return frozenset(g.resource_group.lower() for g in self.groups)


def _sorted(groups: Iterable[ObservedGroup]) -> tuple[ObservedGroup, ...]:
    return tuple(sorted(groups, key=lambda g: (g.resource_group.lower(), g.name.lower())))


@dataclass
class ReadCount:
    """List requests sent, across the lists of one observation."""

    requests: int = 0


async def list_resuming(
    call: Callable[[ListCursor], Awaitable[list[ObservedGroup]]],
    *,
    policy: RetryPolicy,
    sleep: Sleep,
    reads: ReadCount | None = None,
    on_page: OnPage | None = None,
) -> list[ObservedGroup]:
    """A paged list under the retry policy, resumed from the page that failed, with a fresh attempt budget
    whenever pages were read since the last one: a chain longer than ARM's read budget is slower, never
    failing, while a page that keeps failing still ends it after `max_attempts`. `reads` counts the
    requests: every page read, plus one per refused attempt. `on_page` is told each page's groups once,
    as the page is read (`ListCursor.on_page`)."""
    cursor = ListCursor(on_page=on_page)
    attempts = Attempts()
    try:
        while True:
            read_before = cursor.pages
            try:
                found = await call_with_retry(
                    lambda: call(cursor), policy=policy, sleep=sleep, attempts=attempts
                )
            except RetryExhaustedError:
                if cursor.pages == read_before:
                    raise
                continue
            # The attempt that succeeded read its pages (a missing resource group: one answer, no page).
            attempts.count -= 1
            cursor.pages = max(cursor.pages, 1)
            return found
    finally:
        if reads is not None:
            reads.requests += cursor.pages + attempts.count


async def observe(
    gateway: Gateway,
    resource_groups: Iterable[str],
    *,
    policy: RetryPolicy | None = None,
    sleep: Sleep = asyncio.sleep,
    concurrency: int = 8,
    on_page: OnPage | None = None,
) -> Observation:
    """List every resource group concurrently (bounded); never one GET per group."""
    policy = policy or RetryPolicy()
    wanted = sorted({rg.lower(): rg for rg in resource_groups}.values(), key=str.lower)
    bound = asyncio.Semaphore(concurrency)
    groups: list[ObservedGroup] = []
    failed: dict[str, str] = {}
    reads = ReadCount()

    async def one(rg: str) -> None:
        async with bound:
            try:
                found = await list_resuming(
                    lambda cursor: gateway.list_groups(rg, cursor=cursor),
                    policy=policy,
                    sleep=sleep,
                    reads=reads,
                    on_page=on_page,
                )
            except GatewayError as err:
                failed[rg] = str(err)
                return
        groups.extend(found)

    async with asyncio.TaskGroup() as tasks:
        for rg in wanted:
            tasks.create_task(one(rg), name=f"observe:{rg}")
    return Observation(
        groups=_sorted(groups), failed=failed, listed_resource_groups=tuple(wanted), reads=reads.requests
    )


async def observe_keys(
    gateway: Gateway,
    keys: Iterable[tuple[str, str]],
    *,
    policy: RetryPolicy | None = None,
    sleep: Sleep = asyncio.sleep,
    concurrency: int = 8,
) -> Observation:
    """The live side of exactly these (resource group, name) groups, one GET each (concurrently, bounded;
    a missing group is simply absent). A group that cannot be read marks its resource group as failed, so
    nothing in it is planned, as when a list fails."""
    policy = policy or RetryPolicy()
    bound = asyncio.Semaphore(concurrency)
    groups: list[ObservedGroup] = []
    failed: dict[str, str] = {}
    reads = ReadCount()

    async def one(rg: str, name: str) -> None:
        async with bound:
            attempts = Attempts()
            try:
                found = await call_with_retry(
                    lambda: gateway.get_group(rg, name), policy=policy, sleep=sleep, attempts=attempts
                )
            except GatewayError as err:
                failed[rg] = f"reading {rg}/{name}: {err}"
                return
            finally:
                reads.requests += max(1, attempts.count)
        if found is not None:
            groups.append(found)

    wanted = sorted(set(keys))
    async with asyncio.TaskGroup() as tasks:
        for rg, name in wanted:
            tasks.create_task(one(rg, name), name=f"observe:{rg}/{name}")
    return Observation(groups=_sorted(groups), failed=failed, reads=reads.requests)


async def observe_scope(
    gateway: Gateway,
    scope: Scope,
    manifest_resource_groups: Iterable[str] | Callable[[], Awaitable[Iterable[str]]],
    *,
    policy: RetryPolicy | None = None,
    sleep: Sleep = asyncio.sleep,
    concurrency: int = 8,
    on_page: OnPage | None = None,
) -> Observation:
    """Observe `scope`; `manifest_resource_groups` are always included (their groups are planned). Given
    as a coroutine function (the manifests still loading), they are awaited only when needed: never for a
    subscription-wide list that Azure answers. `on_page` is told the groups of every list page as it is
    read (the engine plans them while the next pages are read)."""

    async def resource_groups() -> list[str]:
        if callable(manifest_resource_groups):
            return list(await manifest_resource_groups())
        return list(manifest_resource_groups)

    policy = policy or RetryPolicy()
    if scope.mode == "subscription":
        reads = ReadCount()
        try:
            found = await list_resuming(
                lambda cursor: gateway.list_subscription_groups(cursor=cursor),
                policy=policy,
                sleep=sleep,
                reads=reads,
                on_page=on_page,
            )
        except GatewayError as err:
            if err.status != 403:
                return Observation(failed_all=str(err), reads=reads.requests)
            # The principal may read only some resource groups: observe those the manifests name.
            named = await resource_groups()
            fallback = await observe(
                gateway, named, policy=policy, sleep=sleep, concurrency=concurrency, on_page=on_page
            )
            return replace(
                fallback,
                inferred=f"the subscription-wide list was refused ({err})",
                reads=fallback.reads + reads.requests,
            )
        return Observation(groups=_sorted(found), reads=reads.requests)
    named = await resource_groups()
    observed = await observe(
        gateway,
        [*named, *scope.resource_groups],
        policy=policy,
        sleep=sleep,
        concurrency=concurrency,
        on_page=on_page,
    )
    if scope.mode == "manifests":
        return replace(observed, inferred="--scope manifests was chosen")
    return observed
