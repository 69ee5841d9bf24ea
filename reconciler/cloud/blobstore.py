"""The coordination store on Azure Blob Storage: `CoordinationStore` (`reconciler.cloud.coordination`) on the
azure-storage-blob async client, one container per deployment (`--coordination URL`).

Built by `open_store` from `reconciler.daemon.cli` (the daemon's composition) and by the tests, which run it
against Azurite, Microsoft's storage emulator, through this same SDK.

Design choices, so the integrator knows what to expect:

- Credentials: a connection string (`RECONCILER_STORAGE_CONNECTION_STRING`) when given, else
  `DefaultAzureCredential` (workload or managed identity; the role `Storage Blob Data Contributor` on the
  container is enough). The container URL names the container; a connection string must point at the same
  account, so a typo cannot silently coordinate through another account.
- No retries inside the SDK and short timeouts, each call also bounded by `asyncio.timeout`: the lease loop
  must learn of an outage within seconds, because its fence counts from the last renewal that succeeded.
  Retrying is the caller's business (the next tick).
- Every SDK error is classified here into the protocol's errors; messages name the blob and the service's
  error code, never a key, a SAS or a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob.aio import BlobLeaseClient, BlobServiceClient, ContainerClient

from reconciler.cloud.coordination import (
    BlobEntry,
    BlobState,
    ConditionFailedError,
    CoordinationError,
    LeaseLostError,
    LeaseTakenError,
    StorageUnavailableError,
    StoreConfigError,
)

T = TypeVar("T")

_LEASE_TAKEN = frozenset({"LeaseAlreadyPresent", "LeaseIsBreakingAndCannotBeAcquired"})
_LEASE_LOST = frozenset(
    {
        "LeaseIdMismatchWithBlobOperation",
        "LeaseIdMismatchWithLeaseOperation",
        "LeaseIdMissing",
        "LeaseLost",
        "LeaseNotPresentWithBlobOperation",
        "LeaseNotPresentWithLeaseOperation",
        "LeaseIsBrokenAndCannotBeRenewed",
        "LeaseIsBreakingAndCannotBeChanged",
        "LeaseAlreadyBroken",
    }
)
_CONDITION = frozenset({"ConditionNotMet", "BlobAlreadyExists", "TargetConditionNotMet"})
_CONFIG = frozenset(
    {
        "ContainerNotFound",
        "AuthorizationFailure",
        "AuthorizationPermissionMismatch",
        "AuthenticationFailed",
        "InvalidAuthenticationInfo",
        "AccountIsDisabled",
        "InvalidResourceName",
    }
)


def classify(err: BaseException, what: str) -> CoordinationError:
    """The protocol's error for an exception of the SDK (or the transport) during `what`."""
    if isinstance(err, CoordinationError):
        return err
    if isinstance(err, TimeoutError | ServiceRequestError | ServiceResponseError | OSError):
        return StorageUnavailableError(f"{what}: the storage service did not answer ({type(err).__name__})")
    if isinstance(err, ClientAuthenticationError) and not isinstance(err, HttpResponseError):
        return StoreConfigError(f"{what}: no credential for the storage account ({type(err).__name__})")
    if not isinstance(err, HttpResponseError):
        return StorageUnavailableError(f"{what}: {type(err).__name__}")
    raw = getattr(err, "error_code", None) or ""
    code = str(getattr(raw, "value", raw))
    status = err.status_code or 0
    label = f"{what}: {code or 'HTTP'} (HTTP {status})"
    if code in _LEASE_TAKEN:
        return LeaseTakenError(label)
    if code in _LEASE_LOST:
        return LeaseLostError(label)
    if code in _CONDITION or status == 412:
        return ConditionFailedError(label)
    if code in _CONFIG or status in (401, 403) or (status == 404 and code != "BlobNotFound"):
        return StoreConfigError(label + _config_hint(code, status))
    if status == 409 and isinstance(err, ResourceExistsError):
        return ConditionFailedError(label)
    if status == 429 or status >= 500 or status == 408:
        return StorageUnavailableError(label)
    return StoreConfigError(label)


def _config_hint(code: str, status: int) -> str:
    if code == "ContainerNotFound" or status == 404:
        return (
            "; the container does not exist: create it (az storage container create --account-name ACCOUNT "
            "--name CONTAINER --auth-mode login)"
        )
    return (
        "; the daemon's identity needs the role 'Storage Blob Data Contributor' on the container (or give "
        "RECONCILER_STORAGE_CONNECTION_STRING)"
    )


class BlobCoordinationStore:
    def __init__(
        self,
        container: ContainerClient,
        location: str,
        *,
        timeout: float,
        credential: AsyncTokenCredential | None = None,
        service: BlobServiceClient | None = None,
    ) -> None:
        """`credential`, `service`: what `open_store` made for it, closed with the store."""
        self._container = container
        self._location = location
        self._timeout = timeout
        self._credential = credential
        self._service = service

    @property
    def location(self) -> str:
        return self._location

    async def _call(self, what: str, call: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._timeout):
                return await call
        except (AzureError, TimeoutError, OSError) as err:
            raise classify(err, what) from None

    async def ensure_container(self) -> None:
        """Create the container when it is missing; a principal that may not (data-plane roles cannot create
        containers) gets a `StoreConfigError` naming the command that does."""
        exists = await self._call(f"container {self._location}", self._container.exists())
        if exists:
            return
        try:
            await self._call(f"create container {self._location}", self._container.create_container())
        except ConditionFailedError:
            return  # created meanwhile by another replica
        except StoreConfigError as err:
            raise StoreConfigError(f"{err}{_config_hint('ContainerNotFound', 404)}") from None

    async def acquire_lease(self, name: str, *, duration: int, lease_id: str) -> str:
        if not 15 <= duration <= 60:
            raise ValueError("a blob lease lasts 15 to 60 seconds")
        blob = self._container.get_blob_client(name)
        # It may exist (and be leased): the acquire below says what matters.
        with contextlib.suppress(ConditionFailedError, LeaseLostError, LeaseTakenError):
            await self._call(f"create {name}", blob.upload_blob(b"", overwrite=False))
        lease = BlobLeaseClient(blob, lease_id=lease_id)
        await self._call(f"lease {name}", lease.acquire(lease_duration=duration))
        properties = await self._call(f"read {name}", blob.get_blob_properties())
        return _etag(properties.etag)

    async def renew_lease(self, name: str, *, lease_id: str) -> None:
        lease = BlobLeaseClient(self._container.get_blob_client(name), lease_id=lease_id)
        try:
            await self._call(f"renew lease {name}", lease.renew())
        except StoreConfigError as err:
            if "BlobNotFound" in str(err) or "(HTTP 404)" in str(err):
                raise LeaseLostError(f"renew lease {name}: the blob is gone") from None
            raise

    async def release_lease(self, name: str, *, lease_id: str) -> None:
        lease = BlobLeaseClient(self._container.get_blob_client(name), lease_id=lease_id)
        try:
            await self._call(f"release lease {name}", lease.release())
        except LeaseLostError:
            pass  # not ours any more: nothing to give back
        except StoreConfigError as err:
            if "(HTTP 404)" not in str(err):
                raise

    async def read(self, name: str) -> BlobState | None:
        blob = self._container.get_blob_client(name)
        try:
            downloader = await self._call(f"read {name}", blob.download_blob())
        except StoreConfigError as err:
            if "BlobNotFound" in str(err) or "(HTTP 404)" in str(err):
                return None
            raise
        data = await self._call(f"read {name}", downloader.readall())
        properties = downloader.properties
        return BlobState(
            name=name,
            data=bytes(data),
            etag=_etag(properties.etag),
            metadata=dict(properties.metadata or {}),
            leased=_leased(properties),
        )

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
        kwargs: dict[str, Any] = {"overwrite": not create_only}
        if etag is not None and not create_only:
            kwargs.update(etag=etag, match_condition=_if_match())
        if lease_id is not None:
            kwargs["lease"] = lease_id
        if metadata is not None:
            kwargs["metadata"] = dict(metadata)
        blob = self._container.get_blob_client(name)
        result = await self._call(f"write {name}", blob.upload_blob(data, **kwargs))
        return _etag(result.get("etag"))

    async def list(self, prefix: str) -> list[BlobEntry]:
        async def collect() -> list[BlobEntry]:
            found: list[BlobEntry] = []
            async for item in self._container.list_blobs(name_starts_with=prefix, include=["metadata"]):
                found.append(
                    BlobEntry(
                        name=item.name,
                        etag=_etag(item.etag),
                        metadata=dict(item.metadata or {}),
                        leased=_leased(item),
                    )
                )
            return sorted(found, key=lambda e: e.name)

        return await self._call(f"list {prefix}", collect())

    async def delete(self, name: str, *, lease_id: str | None = None) -> None:
        blob = self._container.get_blob_client(name)
        kwargs: dict[str, Any] = {"lease": lease_id} if lease_id is not None else {}
        try:
            await self._call(f"delete {name}", blob.delete_blob(**kwargs))
        except StoreConfigError as err:
            if "(HTTP 404)" not in str(err):
                raise

    async def close(self) -> None:
        await self._container.close()
        if self._service is not None:
            await self._service.close()
        if self._credential is not None:
            await self._credential.close()


def _etag(value: Any) -> str:
    """ETags in one form, quoted: Blob Storage quotes them in headers but not in listings."""
    text = str(value or "")
    return text if text.startswith('"') else f'"{text}"'


def _leased(item: Any) -> bool:
    lease = getattr(item, "lease", None)
    state = getattr(lease, "state", None)
    return str(state or "").lower() == "leased"


def _if_match() -> Any:
    from azure.core import MatchConditions

    return MatchConditions.IfNotModified


def _account_of(host_and_path: tuple[str, list[str]]) -> str:
    host, parts = host_and_path
    # Azurite and other emulators put the account first in the path; Azure puts it in the host name.
    if host.split(":")[0] in ("127.0.0.1", "localhost", "::1") or host.split(".")[0].isdigit():
        return parts[0] if parts else ""
    return host.split(".")[0]


# Labels joined by dots, each matched one way only: a pattern that may split a label in two backtracks
# exponentially on a long host name with one bad character at the end.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?(?::[0-9]{{1,5}})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{{1,5}})?")
# Azure's rule for container names: 3 to 63 lowercase letters, digits and single hyphens, no hyphen at an end.
_CONTAINER = re.compile(r"(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*")


def split_container_url(url: str) -> tuple[str, str, str]:
    """(account URL, container, display URL) of a container URL; `StoreConfigError` when it names none."""
    parts = urlsplit(url.strip())
    shown = repr(url.split("?", maxsplit=1)[0])
    segments = [p for p in parts.path.split("/") if p]
    if parts.scheme not in ("https", "http") or not parts.netloc or not segments:
        raise StoreConfigError(
            f"--coordination {shown}: give a blob container URL, "
            "https://ACCOUNT.blob.core.windows.net/CONTAINER"
        )
    if parts.query:
        raise StoreConfigError(
            "--coordination: give the container URL without a query (no SAS token in a URL: it would be "
            "logged); put credentials in RECONCILER_STORAGE_CONNECTION_STRING"
        )
    if "<" in url or ">" in url:
        raise StoreConfigError(
            f"--coordination {shown}: replace the <...> placeholder with your storage account "
            "(https://ACCOUNT.blob.core.windows.net/CONTAINER)"
        )
    if not _HOST.fullmatch(parts.netloc):
        raise StoreConfigError(
            f"--coordination {shown}: {parts.netloc!r} is not a host name; give "
            "https://ACCOUNT.blob.core.windows.net/CONTAINER"
        )
    container = segments[-1]
    if not _CONTAINER.fullmatch(container):
        raise StoreConfigError(
            f"--coordination {shown}: {container!r} is not a blob container name (3 to 63 lowercase "
            "letters, digits and single hyphens, starting and ending with a letter or digit)"
        )
    account_path = "/".join(segments[:-1])
    account_url = urlunsplit((parts.scheme, parts.netloc, f"/{account_path}" if account_path else "", "", ""))
    display = urlunsplit((parts.scheme, parts.netloc, "/" + "/".join(segments), "", ""))
    return account_url, container, display


def open_store(
    url: str,
    *,
    connection_string: str | None = None,
    credential: AsyncTokenCredential | None = None,
    timeout: float = 5.0,
) -> BlobCoordinationStore:
    """The container at `url`. No I/O happens until the first call."""
    account_url, container, display = split_container_url(url)
    options: dict[str, Any] = {
        "retry_total": 0,
        "connection_timeout": timeout,
        "read_timeout": timeout,
    }
    if connection_string:
        try:
            service = BlobServiceClient.from_connection_string(connection_string, **options)
        except ValueError:
            raise StoreConfigError(
                "RECONCILER_STORAGE_CONNECTION_STRING is not a storage connection string"
            ) from None
        given = urlsplit(str(service.url))
        wanted = urlsplit(account_url)
        given_account = _account_of((given.netloc, [p for p in given.path.split("/") if p]))
        wanted_account = _account_of((wanted.netloc, [p for p in wanted.path.split("/") if p]))
        if given.netloc.lower() != wanted.netloc.lower() or given_account != wanted_account:
            raise StoreConfigError(
                f"--coordination {display} and RECONCILER_STORAGE_CONNECTION_STRING name different storage "
                f"accounts ({wanted_account} at {wanted.netloc} vs {given_account} at {given.netloc}); make "
                "them agree"
            )
        return BlobCoordinationStore(
            service.get_container_client(container), display, timeout=timeout, service=service
        )
    owned: AsyncTokenCredential | None = None
    if credential is None:
        from azure.identity.aio import DefaultAzureCredential

        credential = owned = DefaultAzureCredential()
    client = ContainerClient(account_url, container, credential=credential, **options)
    return BlobCoordinationStore(client, display, timeout=timeout, credential=owned)
