"""The leases this replica holds, and the fence that keeps it from writing under a lease that may be gone.

`LeaseTable` is the one place that decides whether this process may write to a resource group now. The Azure
adapter asks it right before every write request (`writing`, the `reconciler.cloud.gateway.WriteGuard`
protocol); the worker asks it which groups to apply and which to only plan (`refusal`); the passes ask it
which resource groups to plan (`owned_filter`). `reconciler.daemon.coordination.coordinator` fills it.

Fencing by time (DESIGN section 13): a lease acquired or renewed by a call *sent* at monotonic time t is
valid at the store until at least t + duration (the store starts counting when the call arrives, later).
Writes are allowed until t + duration - margin, so a write request sent at the last allowed moment has
`margin` seconds to reach Azure before any other replica can hold the lease. Nothing here reads a wall
clock, so clock skew between machines does not matter; only the rate of this machine's monotonic clock
does, which drifts by parts per million.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from reconciler.cloud.errors import FencedError
from reconciler.daemon.coordination.shards import shard_of


@dataclass
class Hold:
    """One shard lease this replica holds."""

    shard: int
    blob: str
    lease_id: str
    # Monotonic send time of the last acquire or renew that succeeded, and the fence it implies.
    renewed_at: float
    valid_until: float
    # The shard's state book: its ETag as last read or written here, and what was last written (without
    # the last pass's timing, which alone does not make a write).
    etag: str | None = None
    written: bytes | None = None
    # Its book is adopted: writes may start.
    ready: bool = False
    # Being given back: no new write starts; released once none is in flight.
    yielding: bool = False
    in_flight: int = 0
    # The fence has stopped its writes (reported once).
    fenced: bool = False
    # Why a renewal found the lease gone; the coordinator's tick drops the hold.
    lost: str | None = None
    # Counts this process's acquisitions: tells two tenures under the same lease id apart in the logs.
    tenure_number: int = 1

    @property
    def tenure(self) -> str:
        return f"{self.shard}.{self.lease_id[:8]}.{self.tenure_number}"


class LeaseTable:
    def __init__(self, replica: str, shards: int, *, margin: float, monotonic: Callable[[], float]) -> None:
        self.replica = replica
        self.shards = shards
        self.margin = margin
        self.monotonic = monotonic
        self.holds: dict[int, Hold] = {}
        # Who holds the other shards, as last listed (for messages and /status).
        self.owners: dict[int, str | None] = {}

    def shard_of(self, resource_group: str) -> int:
        return shard_of(resource_group, self.shards)

    def writable(self, shard: int) -> bool:
        hold = self.holds.get(shard)
        return (
            hold is not None
            and hold.ready
            and not hold.yielding
            and self.monotonic() < hold.valid_until - self.margin
        )

    @property
    def leading(self) -> bool:
        """True while this replica may write to at least one shard."""
        return any(self.writable(s) for s in self.holds)

    def owned(self) -> list[int]:
        return sorted(s for s in self.holds if self.writable(s))

    def refusal(self, resource_group: str) -> str | None:
        """Why this replica must not write to `resource_group` now; None when it may."""
        shard = self.shard_of(resource_group)
        if self.writable(shard):
            return None
        where = "the lease" if self.shards == 1 else f"the lease of shard {shard}"
        hold = self.holds.get(shard)
        if hold is not None and hold.yielding:
            return f"standby: giving back {where} to balance the replicas"
        if hold is not None:
            return f"standby: {where} was not renewed in time (fenced {self.margin:g}s before it expires)"
        owner = self.owners.get(shard)
        holder = f"replica {owner} holds {where}" if owner else f"no replica holds {where} yet"
        return f"standby: {holder}"

    def owned_filter(self) -> Callable[[str], bool] | None:
        """What a pass plans: the resource groups of the shards writable now, or None (everything) when this
        replica holds none, so that a standby plans the whole instance and can take over at once."""
        shards = frozenset(self.owned())
        if not shards:
            return None
        count = self.shards
        return lambda resource_group: shard_of(resource_group, count) in shards

    @contextlib.contextmanager
    def writing(self, resource_group: str | None) -> Iterator[str]:
        """The write guard (see `reconciler.cloud.gateway.WriteGuard`)."""
        hold = self.holds[self.check(resource_group)]
        hold.in_flight += 1
        try:
            yield f"aci-reconciler-replica/{self.replica} lease/{hold.tenure}"
        finally:
            hold.in_flight -= 1

    def check(self, resource_group: str | None) -> int:
        """The shard of `resource_group` when this replica may write to it now; raises `FencedError` else."""
        if resource_group is None:
            raise FencedError("not written: a write outside any resource group is not this daemon's to make")
        shard = self.shard_of(resource_group)
        if not self.writable(shard):
            why = self.refusal(resource_group) or "standby"
            raise FencedError(f"not written: replica {self.replica}: {why} (resource group {resource_group})")
        return shard
