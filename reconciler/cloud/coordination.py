"""What replicas of one daemon instance need from a shared store to coordinate: leased blobs, conditional
writes, listings. The protocol, its records and its errors, classified where they enter.

Implemented by `reconciler.cloud.blobstore.BlobCoordinationStore` on Azure Blob Storage (tested against
Azurite); used by `reconciler.daemon.coordination` (leases, fencing, shard balancing, the shared state book).

Semantics are Blob Storage's, which the daemon's safety argument rests on (DESIGN section 13):

- A lease is exclusive: while one holder's lease is active, acquiring it again with another id fails
  (`LeaseTakenError`) and writing the blob without the lease id fails; the holder renews it before
  `duration` seconds pass, or anyone may acquire it after they do. The store's clock decides expiry.
- A write conditioned on an ETag fails (`ConditionFailedError`) when the blob changed since that ETag; one
  conditioned on absence fails when the blob exists.
- Every failure to reach the store (connection refused or reset, timeout, 5xx, 429) is
  `StorageUnavailableError`, retryable; the caller never learns whether such a write landed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol


class CoordinationError(Exception):
    """A failed call to the coordination store. Messages name the blob, never a credential."""


class StorageUnavailableError(CoordinationError):
    """The store could not be reached or answered 5xx/429: retry later; a write's outcome is unknown."""


class LeaseTakenError(CoordinationError):
    """Another holder has an active lease on the blob."""


class LeaseLostError(CoordinationError):
    """Our lease id is no longer the blob's lease (it expired and was taken, or was broken or released)."""


class ConditionFailedError(CoordinationError):
    """The blob's ETag is not the one the write was conditioned on (or it exists, for a create)."""


class StoreConfigError(CoordinationError):
    """The store refuses us for a reason retrying will not fix: bad URL, no permission, missing container."""


@dataclass(frozen=True)
class BlobState:
    """One blob as read: its content, ETag, metadata and whether any lease on it is active now."""

    name: str
    data: bytes
    etag: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    leased: bool = False


@dataclass(frozen=True)
class BlobEntry:
    """One blob as listed (no content)."""

    name: str
    etag: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    leased: bool = False


class CoordinationStore(Protocol):
    @property
    def location(self) -> str:
        """Where the store is (the container URL, without credentials), for logs and /status."""
        ...

    async def ensure_container(self) -> None:
        """Create the container when it is missing; `StoreConfigError` (naming the fix) when the principal
        may not."""
        ...

    async def acquire_lease(self, name: str, *, duration: int, lease_id: str) -> str:
        """Take a lease of `duration` seconds (15..60, Blob Storage's bounds) on blob `name`, creating the
        blob empty when it does not exist. Returns the blob's ETag. `LeaseTakenError` when another lease
        is active; acquiring with the id already holding the lease renews it."""
        ...

    async def renew_lease(self, name: str, *, lease_id: str) -> None:
        """Renew our lease for another full duration. `LeaseLostError` when it is no longer ours."""
        ...

    async def release_lease(self, name: str, *, lease_id: str) -> None:
        """Give the lease up so another may acquire it at once. Releasing a lease we lost is not an error."""
        ...

    async def read(self, name: str) -> BlobState | None:
        """The blob, or None when it does not exist."""
        ...

    async def write(
        self,
        name: str,
        data: bytes,
        *,
        etag: str | None = None,
        create_only: bool = False,
        lease_id: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        """Replace the blob's content (and metadata, when given); return the new ETag.

        `etag`: only if the blob is still at that ETag; `create_only`: only if it does not exist (both:
        `ConditionFailedError` otherwise). `lease_id`: required when the blob is leased (`LeaseLostError`
        when the lease is not ours)."""
        ...

    async def list(self, prefix: str) -> list[BlobEntry]:
        """The blobs whose names start with `prefix`, with metadata and lease state, sorted by name."""
        ...

    async def delete(self, name: str, *, lease_id: str | None = None) -> None:
        """Delete the blob; deleting a missing blob is not an error."""
        ...

    async def close(self) -> None: ...


# (container URL, connection string or None) -> the store, opened without I/O. The CLI (the composition root)
# hands `reconciler.cloud.blobstore.open_store` to the daemon as this.
StoreOpener = Callable[[str, str | None], CoordinationStore]
