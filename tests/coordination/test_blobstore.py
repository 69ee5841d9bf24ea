"""The Blob Storage adapter against Azurite through the real SDK: every protocol error reached for real, the
round trips the coordinator relies on, and the URL and credential checks."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from reconciler.cloud.blobstore import BlobCoordinationStore, open_store, split_container_url
from reconciler.cloud.coordination import (
    ConditionFailedError,
    CoordinationError,
    LeaseLostError,
    LeaseTakenError,
    StorageUnavailableError,
    StoreConfigError,
)
from tests.support.azurite import Azurite, TcpProxy


def lease() -> str:
    return str(uuid.uuid4())


@pytest.fixture
async def store(azurite: Azurite, blob_container: str) -> AsyncIterator[BlobCoordinationStore]:
    opened = open_store(
        azurite.container_url(blob_container), connection_string=azurite.connection_string(), timeout=2.0
    )
    yield opened
    await opened.close()


async def test_a_lease_excludes_others_until_released(store: BlobCoordinationStore) -> None:
    mine, theirs = lease(), lease()
    etag = await store.acquire_lease("a/lease", duration=15, lease_id=mine)
    assert etag
    with pytest.raises(LeaseTakenError):
        await store.acquire_lease("a/lease", duration=15, lease_id=theirs)
    await store.acquire_lease("a/lease", duration=15, lease_id=mine)  # the holder acquiring again renews
    await store.renew_lease("a/lease", lease_id=mine)
    await store.release_lease("a/lease", lease_id=mine)
    await store.acquire_lease("a/lease", duration=15, lease_id=theirs)  # at once, no expiry to wait for
    await store.release_lease("a/lease", lease_id=mine)  # releasing what we lost is not an error


async def test_reads_writes_and_listings_round_trip_with_metadata_and_lease_state(
    store: BlobCoordinationStore,
) -> None:
    assert await store.read("p/missing") is None
    first = await store.write("p/one", b"{}", create_only=True, metadata={"owner": "r1"})
    state = await store.read("p/one")
    assert state is not None
    assert (state.data, state.etag, dict(state.metadata), state.leased) == (
        b"{}",
        first,
        {"owner": "r1"},
        False,
    )
    held = lease()
    await store.acquire_lease("p/two", duration=15, lease_id=held)
    second = await store.write("p/two", b"x", lease_id=held, metadata={"owner": "r2"})
    await store.write("p/two", b"y", etag=second, lease_id=held)
    entries = await store.list("p/")
    assert [(e.name, e.leased) for e in entries] == [("p/one", False), ("p/two", True)]
    assert dict(entries[1].metadata) == {}  # a write without metadata replaces it, as Blob Storage does
    await store.delete("p/one")
    await store.delete("p/one")
    assert [e.name for e in await store.list("p/")] == ["p/two"]


ErrorCase = Callable[[BlobCoordinationStore, Azurite, str], Awaitable[object]]


async def _taken(store: BlobCoordinationStore, azurite: Azurite, container: str) -> object:
    await store.acquire_lease("t", duration=15, lease_id=lease())
    return await store.acquire_lease("t", duration=15, lease_id=lease())


async def _renew_after_break(store: BlobCoordinationStore, azurite: Azurite, container: str) -> object:
    held = lease()
    await store.acquire_lease("b", duration=15, lease_id=held)
    azurite.break_lease(container, "b")
    return await store.renew_lease("b", lease_id=held)


async def _write_without_lease(store: BlobCoordinationStore, azurite: Azurite, container: str) -> object:
    await store.acquire_lease("w", duration=15, lease_id=lease())
    return await store.write("w", b"x")


async def _write_with_another_lease(store: BlobCoordinationStore, azurite: Azurite, container: str) -> object:
    await store.acquire_lease("w2", duration=15, lease_id=lease())
    return await store.write("w2", b"x", lease_id=lease())


async def _stale_etag(store: BlobCoordinationStore, azurite: Azurite, container: str) -> object:
    old = await store.write("e", b"1")
    await store.write("e", b"2")
    return await store.write("e", b"3", etag=old)


async def _create_existing(store: BlobCoordinationStore, azurite: Azurite, container: str) -> object:
    await store.write("c", b"1")
    return await store.write("c", b"2", create_only=True)


async def _missing_container(store: BlobCoordinationStore, azurite: Azurite, container: str) -> object:
    other = open_store(
        azurite.container_url("nosuchcontainer"), connection_string=azurite.connection_string()
    )
    try:
        return await other.list("")
    finally:
        await other.close()


@pytest.mark.parametrize(
    ("case", "error", "words"),
    [
        (_taken, LeaseTakenError, "LeaseAlreadyPresent"),
        (_renew_after_break, LeaseLostError, "lease b"),
        (_write_without_lease, LeaseLostError, "LeaseIdMissing"),
        (_write_with_another_lease, LeaseLostError, "LeaseIdMismatch"),
        (_stale_etag, ConditionFailedError, "ConditionNotMet"),
        (_create_existing, ConditionFailedError, "write c"),
        (_missing_container, StoreConfigError, "az storage container create"),
    ],
)
async def test_each_storage_answer_is_classified_where_it_enters(  # noqa: PLR0917 - fixtures and a table
    store: BlobCoordinationStore,
    azurite: Azurite,
    blob_container: str,
    case: ErrorCase,
    error: type[CoordinationError],
    words: str,
) -> None:
    with pytest.raises(error) as caught:
        await case(store, azurite, blob_container)
    assert words in str(caught.value)
    assert "Eby8" not in str(caught.value), "the account key never shows"


async def test_a_stopped_storage_service_is_unavailable_within_the_timeout(
    azurite: Azurite, blob_container: str
) -> None:
    store = open_store(
        azurite.container_url(blob_container), connection_string=azurite.connection_string(), timeout=1.0
    )
    try:
        await store.write("k", b"kept")
        azurite.stop()
        started = time.monotonic()
        with pytest.raises(StorageUnavailableError):
            await store.renew_lease("k", lease_id=lease())
        assert time.monotonic() - started < 3.0
        azurite.start()
        state = await store.read("k")
        assert state is not None
        assert state.data == b"kept", "a restart keeps the blobs"
    finally:
        azurite.start()
        await store.close()


async def test_a_cut_connection_is_unavailable_within_the_timeout(
    azurite: Azurite, blob_container: str
) -> None:
    proxy = TcpProxy(azurite.port)
    store = open_store(
        azurite.container_url(blob_container, port=proxy.port),
        connection_string=azurite.connection_string(port=proxy.port),
        timeout=1.0,
    )
    try:
        await store.write("k", b"1")
        proxy.cut()
        started = time.monotonic()
        with pytest.raises(StorageUnavailableError):
            await store.read("k")
        assert time.monotonic() - started < 3.0
        proxy.restore()
        state = await store.read("k")
        assert state is not None
    finally:
        await store.close()
        proxy.close()


async def test_the_container_is_created_when_missing(azurite: Azurite) -> None:
    azurite.start()
    store = open_store(
        azurite.container_url(f"made{uuid.uuid4().hex[:8]}"), connection_string=azurite.connection_string()
    )
    try:
        await store.ensure_container()
        await store.ensure_container()
        assert await store.list("") == []
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("not a url", "give a blob container URL"),
        ("https://acct.blob.core.windows.net", "give a blob container URL"),
        ("https://acct.blob.core.windows.net/c?sv=2020&sig=SECRET", "without a query"),
        ("https://other.blob.core.windows.net/cont", "different storage accounts"),
        ("https://<storage-account>.blob.core.windows.net/aci-reconciler", "replace the <...> placeholder"),
        ("https://acct blob.core.windows.net/aci-reconciler", "is not a host name"),
        # Answered at once: a host pattern that backtracks took minutes on these.
        ("https://" + "a" * 40 + "!.blob.core.windows.net/aci-reconciler", "is not a host name"),
        ("https://" + "ab" * 30 + "-.blob.core.windows.net/aci-reconciler", "is not a host name"),
        ("https://acct.blob.core.windows.net/Aci", "is not a blob container name"),
        ("https://acct.blob.core.windows.net/ab", "is not a blob container name"),
        ("https://acct.blob.core.windows.net/a--b", "is not a blob container name"),
        ("https://acct.blob.core.windows.net/ab-", "is not a blob container name"),
        ("https://acct.blob.core.windows.net/" + "a" * 64, "is not a blob container name"),
    ],
)
def test_bad_urls_and_mismatched_accounts_are_refused_with_the_fix(url: str, words: str) -> None:
    connection = (
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net"
    )
    with pytest.raises(StoreConfigError) as caught:
        open_store(url, connection_string=connection)
    assert words in str(caught.value)
    assert "SECRET" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "account_url", "container"),
    [
        (
            "https://acct.blob.core.windows.net/aci-reconciler",
            "https://acct.blob.core.windows.net",
            "aci-reconciler",
        ),
        ("https://acct.blob.core.windows.net/abc/", "https://acct.blob.core.windows.net", "abc"),
        (
            "http://127.0.0.1:10000/devstoreaccount1/c0ffee",
            "http://127.0.0.1:10000/devstoreaccount1",
            "c0ffee",
        ),
        (
            "https://acct.blob.core.chinacloudapi.cn/" + "a" * 63,
            "https://acct.blob.core.chinacloudapi.cn",
            "a" * 63,
        ),
        ("http://[::1]:10000/devstoreaccount1/a-b-c", "http://[::1]:10000/devstoreaccount1", "a-b-c"),
    ],
)
def test_container_urls_of_azure_clouds_and_emulators_are_accepted(
    url: str, account_url: str, container: str
) -> None:
    assert split_container_url(url)[:2] == (account_url, container)
