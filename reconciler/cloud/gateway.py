"""The gateway protocol: everything the reconciler asks of Azure, and nothing more.

Implemented by `reconciler.cloud.azure.AzureGateway` (the real SDK) and by in-memory fakes in tests.
Execution and the engine depend on this protocol, never on the SDK. Every method raises
`reconciler.cloud.errors.GatewayError` (retryable or stalled) and lets `asyncio.CancelledError` through.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from reconciler.model.observed import ObservedGroup


@dataclass
class ListCursor:
    """How far a paged list got: the groups of the pages read so far and the link to the next page.

    Give the same cursor to the list call again after it failed, and the chain goes on from the page that
    failed instead of page 1: a list longer than ARM's read budget is then slower, never impossible.
    """

    next_link: str | None = None
    groups: list[ObservedGroup] = field(default_factory=list)
    pages: int = 0  # pages read
    links: set[str] = field(default_factory=set)  # the page links followed (a nextLink loop is an error)
    # Told each page's groups as the page is taken whole, before the next is asked for (the engine plans
    # them while the rest of the chain is read). A gateway that never calls it is slower, not wrong.
    on_page: Callable[[Sequence[ObservedGroup]], None] | None = None


class Gateway(Protocol):
    async def list_groups(
        self, resource_group: str, *, cursor: ListCursor | None = None
    ) -> list[ObservedGroup]:
        """All groups of a resource group: one list call per page. A missing resource group is empty.
        With `cursor`, the list starts where the cursor is and records its progress in it."""
        ...

    async def list_subscription_groups(self, *, cursor: ListCursor | None = None) -> list[ObservedGroup]:
        """All groups of the subscription, every resource group in one paged list (one call per page).

        Each group's `resource_group` is the one named in its id, in the case Azure returned it. Raises a
        `StalledError` with status 403 when the principal may not read the whole subscription. `cursor` as
        for `list_groups`.
        """
        ...

    async def get_group(self, resource_group: str, name: str) -> ObservedGroup | None:
        """One group with its instance view, or None when it does not exist."""
        ...

    async def create_or_update(
        self,
        resource_group: str,
        name: str,
        body: dict[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the contract passes the LRO deadline; applied inside
    ) -> ObservedGroup:
        """PUT the full body and wait for the long-running operation to finish (or `timeout` seconds)."""
        ...

    async def patch_tags(self, resource_group: str, name: str, tags: dict[str, str]) -> ObservedGroup:
        """PATCH the tags only; ACI does not restart the group."""
        ...

    async def delete(
        self,
        resource_group: str,
        name: str,
        *,
        timeout: float,  # noqa: ASYNC109 - the contract passes the deadline; applied inside
    ) -> ObservedGroup | None:
        """Delete and wait until gone; None once it is gone. Deleting a missing group is not an error.

        When a group stands at the name again after the delete finished (someone re-created it while this
        call waited), that group is returned instead of waiting for it to go away.
        """
        ...

    async def logs(
        self,
        resource_group: str,
        name: str,
        container: str,
        *,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> str:
        """What the container printed (its current run), the last `tail` lines when given, each line
        prefixed with Azure's time of writing when `timestamps`."""
        ...

    async def start(
        self,
        resource_group: str,
        name: str,
        *,
        timeout: float,  # noqa: ASYNC109 - the contract passes the LRO deadline; applied inside
    ) -> None:
        """Start a stopped or terminated group again with ACI's `start` (no PUT, same spec) and wait for its
        operation (or `timeout` seconds). Starting a running group changes nothing."""
        ...

    async def stop(self, resource_group: str, name: str) -> None:
        """Stop every container of the group (ACI's `stop`; synchronous). The group stays, stopped."""
        ...

    async def close(self) -> None: ...


class WriteGuard(Protocol):
    """Asked by the Azure adapter right before it sends any request that writes (PUT, PATCH, POST,
    DELETE), so that a replica whose lease may have expired never sends one (DESIGN section 13).

    `writing(resource_group)` raises `reconciler.cloud.errors.FencedError` when the write may not be sent;
    otherwise it returns a context held while the request is in flight (so a lease is given up only when no
    write under it is still travelling), whose value is appended to the request's User-Agent: it names the
    replica and the lease tenure, which makes every write attributable in Azure's activity log."""

    def writing(self, resource_group: str | None) -> AbstractContextManager[str]: ...

    def check(self, resource_group: str | None) -> None:
        """Raise `FencedError` when a write to `resource_group` may no longer be sent. Asked again inside
        `writing`, once the request's connection is ready: fetching a token or opening a connection may have
        taken it past the fence."""
        ...


class TagStore(Protocol):
    """The tags of a resource group, through ARM's Tags API (`Microsoft.Resources/tags/default`): where a
    daemon without `--coordination` keeps its heartbeat (`reconciler.daemon.duplicate`). Implemented by the
    Azure adapter; needs `Microsoft.Resources/tags/read` and `.../write` on that resource group."""

    async def get_resource_group_tags(self, resource_group: str) -> dict[str, str]: ...

    async def update_resource_group_tags(
        self, resource_group: str, tags: Mapping[str, str], operation: str
    ) -> dict[str, str]:
        """`operation`: Merge (add or change these), Replace (exactly these) or Delete (remove these)."""
        ...
