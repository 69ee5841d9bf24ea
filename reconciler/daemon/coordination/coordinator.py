"""Replicas of one daemon instance sharing the work through a coordination store (Azure Blob Storage):
leader election, shard balancing and the shared state book (DESIGN section 13).

`reconciler.daemon.runner.Daemon` runs one `Coordinator` when `--coordination` is given. Each tick (every
`poll` seconds) it renews the leases it holds, lists the instance's blobs (the replicas' heartbeat leases and
the shard leases with their holders), and claims or gives back shards by the rule in
`reconciler.daemon.coordination.shards.rebalance`. With one shard (the default) that is leader election.

Each shard's blob holds that shard's state book (group phases, history, backoff, stalls, the job run ledger,
the last pass), written by the lease holder only, with the lease id and the ETag it last saw: Blob Storage
itself refuses a writer whose lease is gone. A replica that acquires a shard adopts its book before it may
write there, so a new leader continues where the last one stopped; a job run is recorded in the shard's book
before it starts (`flush_for`), so a slot is never run by two leaders.

Container layout under `instances/<instance>/`: `layout.json` (the shard count), `replicas/<id>` (one leased
blob per live replica), `shards-<N>/shard-<k>.json` (the shard leases and books). Changing `--shards` moves
every book to the new layout when no replica holds a lease of the old one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from reconciler.cloud.coordination import (
    BlobEntry,
    ConditionFailedError,
    CoordinationError,
    CoordinationStore,
    LeaseLostError,
    LeaseTakenError,
    StorageUnavailableError,
    StoreConfigError,
)
from reconciler.daemon.coordination.fence import Hold, LeaseTable
from reconciler.daemon.coordination.shards import (
    COOLDOWN_TICKS,
    MAX_SHARDS,
    hook_blob,
    instance_prefix,
    layout_blob,
    rebalance,
    replica_blob,
    replicas_prefix,
    shard_blob,
    shard_in,
    shard_of,
    shards_prefix,
)
from reconciler.daemon.state import STATE_FILE_VERSION, StateBook, compact_group, split_saved

log = structlog.get_logger("reconciler.daemon.coordination")

Sleep = Callable[[float], Awaitable[None]]
BOOK_VERSION = 1


class CoordinationStartError(Exception):
    """The daemon cannot join its instance's replicas; the message says why and what to do."""


class LedgerUnavailableError(Exception):
    """A job run was not started because its shard's book could not be written first."""


@dataclass(frozen=True)
class CoordinationSettings:
    replica: str
    # The container URL (`--coordination`), for the CLI that opens the store.
    url: str = ""
    shards: int = 1
    lease_duration: int = 15
    renew_every: float = 5.0
    margin: float = 5.0
    poll: float = 1.0

    def problems(self) -> list[str]:
        found: list[str] = []
        if not 15 <= self.lease_duration <= 60:
            found.append("--lease-duration must be 15s to 60s (Blob Storage's bounds for a lease)")
        if not 1 <= self.shards <= MAX_SHARDS:
            found.append(f"--shards must be 1 to {MAX_SHARDS}")
        if self.renew_every <= 0 or self.margin < 1:
            found.append("--lease-renew must be longer than 0s and --lease-margin at least 1s")
        elif self.renew_every + self.margin + self.poll >= self.lease_duration:
            found.append(
                f"--lease-renew ({self.renew_every:g}s) + --lease-margin ({self.margin:g}s) + the poll "
                f"({self.poll:g}s) must be shorter than --lease-duration ({self.lease_duration}s), or a "
                "healthy leader would stop writing between two renewals"
            )
        return found


@dataclass
class _Replica:
    """What this replica knows of the others, as last listed."""

    live: set[str] = field(default_factory=set)
    owners: dict[int, str | None] = field(default_factory=dict)
    free_ticks: dict[int, int] = field(default_factory=dict)
    cooldown: dict[int, int] = field(default_factory=dict)


class Coordinator:
    def __init__(
        self,
        store: CoordinationStore,
        table: LeaseTable,
        settings: CoordinationSettings,
        *,
        instance: str,
        book: StateBook,
        snapshot: Callable[[], Mapping[str, Any]],
        clock: Callable[[], float],
        sleep: Sleep,
        on_change: Callable[[str], None],
        on_fatal: Callable[[str], None],
        keeper_store: Callable[[], CoordinationStore] | None = None,
        on_hook: Callable[[], None] | None = None,
    ) -> None:
        """`keeper_store`: opens a second store for a thread that only renews leases (`LeaseKeeper`), so
        that a pass keeping the event loop busy (planning thousands of groups) cannot starve renewals
        into fencing; None renews in the tick. `on_hook`: a webhook reached another replica (see
        `relay_hook`)."""
        self.store = store
        self.table = table
        self.settings = settings
        self.instance = instance
        self.book = book
        self.snapshot = snapshot
        self.clock = clock
        self.sleep = sleep
        self.on_change = on_change
        self.on_fatal = on_fatal
        self.monotonic = table.monotonic
        self.on_hook = on_hook
        self._hook_pending = False
        self._hook_etag: str | None = None
        self._listed = False
        self._renew_error: str | None = None
        self._renew_fatal: str | None = None
        self.keeper: LeaseKeeper | None = None
        self.keeper_store = keeper_store
        self._replica_lease = str(uuid.uuid4())
        self._lease_base = uuid.uuid4()
        self._tenures = 0
        self._replica_until = 0.0
        self._replica_renewed = -1e18
        self._replica_blocked_since: float | None = None
        self._view = _Replica()
        self._layout_etag: str | None = None
        self._lock = asyncio.Lock()
        self._dirty = True
        self._closed = False
        self.last_contact: float | None = None
        self.last_error: str | None = None
        self.ticks = 0
        self.transitions = 0

    # -- what the daemon asks ---------------------------------------------------------------------------

    @property
    def reachable(self) -> bool:
        """The store answered recently enough that this replica could hold a lease now: within the window a
        leader may go without renewing before its fence stops it (renewal interval plus margin)."""
        window = self.settings.lease_duration - self.settings.margin
        return self.last_contact is not None and self.monotonic() - self.last_contact < window

    def mark_dirty(self) -> None:
        self._dirty = True

    def status_json(self) -> dict[str, Any]:
        table = self.table
        owners = []
        for shard in range(self.settings.shards):
            hold = table.holds.get(shard)
            owner = self.settings.replica if hold is not None else self._view.owners.get(shard)
            owners.append(
                {
                    "shard": shard,
                    "owner": owner,
                    "writable": table.writable(shard),
                    "tenure": hold.tenure if hold is not None else None,
                }
            )
        return {
            "store": self.store.location,
            "replica": self.settings.replica,
            "leader": table.leading,
            "shards": self.settings.shards,
            "owned": table.owned(),
            "replicas": sorted(self._view.live | {self.settings.replica}),
            "owners": owners,
            "reachable": self.reachable,
            "last_error": self.last_error,
            "lease_duration_s": self.settings.lease_duration,
            "lease_renew_s": self.settings.renew_every,
            "lease_margin_s": self.settings.margin,
            "transitions": self.transitions,
        }

    # -- lifecycle --------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the layout (moving the books when `--shards` changed) and make the first tick, so that the
        first pass already knows what this replica owns. A store that cannot be reached is not fatal: the
        replica stands by until it can; one that refuses us is (`CoordinationStartError`)."""
        try:
            await self._check_layout()
        except StoreConfigError as err:
            raise CoordinationStartError(f"coordination store {self.store.location}: {err}") from None
        except StorageUnavailableError as err:
            self._failed(err)
        if self.keeper_store is not None and self.keeper is None:
            self.keeper = LeaseKeeper(self, self.keeper_store)
            self.keeper.start()
        await self.tick()

    async def run(self) -> None:
        """Tick until cancelled (the daemon's shutdown cancels it, then calls `close`)."""
        while True:
            await self.sleep(self.settings.poll)
            try:
                await self.tick()
            except Exception as err:  # a bug in one tick must not end coordination; the fence holds anyway
                log.exception("coordination tick failed", error=f"{type(err).__name__}: {err}")

    def drain(self) -> None:
        """Shutdown begins: keep renewing what is held (a pass may still be finishing), claim nothing."""
        self._closed = True

    async def stop_keeper(self) -> None:
        if self.keeper is not None:
            await asyncio.to_thread(self.keeper.stop)
            self.keeper = None

    async def close(self) -> None:
        """Shutdown, after the last pass and job runs ended: write the books, then give every lease back so
        that a standby takes over at once instead of after the lease expires."""
        self._closed = True
        await self.stop_keeper()  # first: no renewal may land after a release
        with contextlib.suppress(CoordinationError):
            await self.flush()
        releases = [(hold.blob, hold.lease_id) for hold in self.table.holds.values()]
        releases.append((replica_blob(self.instance, self.settings.replica), self._replica_lease))
        self.table.holds.clear()
        async with asyncio.TaskGroup() as group:
            for blob, lease in releases:
                group.create_task(self._release_quietly(blob, lease), name=f"coordination-release {blob}")
        log.info("leases released", replica=self.settings.replica, count=len(releases) - 1)

    async def _release_quietly(self, blob: str, lease_id: str) -> None:
        try:
            await self.store.release_lease(blob, lease_id=lease_id)
        except CoordinationError as err:
            log.warning("lease not released; it expires by itself", blob=blob, error=str(err))

    # -- one tick ---------------------------------------------------------------------------------------

    async def tick(self) -> None:
        self.ticks += 1
        if self._layout_etag is None:
            try:
                await self._check_layout()
            except CoordinationStartError as err:
                self.on_fatal(str(err))
                return
            except CoordinationError as err:
                self._failed(err)
                return
        if self.keeper is None:
            await self.renew_due(self.store)
        self._take_renewals()
        self._expire()
        self._note_fenced()
        await self._send_hook()
        try:
            entries = await self.store.list(instance_prefix(self.instance))
        except CoordinationError as err:
            self._failed(err)
            return
        self._contact()
        if self._layout_changed(entries):
            return
        self._read_listing(entries)
        self._note_hook(entries)
        if self._closed:
            return
        view = self._view
        moves = rebalance(
            me=self.settings.replica,
            shards=self.settings.shards,
            live=view.live,
            owners=view.owners,
            mine=list(self.table.holds),
            free_ticks=view.free_ticks,
            cooldown=[s for s, n in view.cooldown.items() if n > 0],
        )
        for shard in moves.give:
            hold = self.table.holds.get(shard)
            if hold is not None and not hold.yielding:
                hold.yielding = True
                log.info("giving a shard back to balance", shard=shard, replica=self.settings.replica)
                self.on_change(f"shard {shard} given back")
        await self._release_yielded()
        for shard in moves.claim:
            await self._claim(shard)
        for shard in list(view.cooldown):
            view.cooldown[shard] -= 1
            if view.cooldown[shard] <= 0:
                del view.cooldown[shard]
        if self._dirty:
            try:
                await self.flush()
            except CoordinationError as err:
                self._failed(err)

    # -- webhooks ---------------------------------------------------------------------------------------

    def relay_hook(self) -> None:
        """A webhook reached this replica. A load balancer hands each webhook to one replica, but every
        replica must fetch (each applies its own shards, and a standby's plan should be current): the next
        tick rewrites the hook blob, and the others fetch when they see its ETag change (within a poll
        interval or two). Replicas that miss it still fetch at their `--git-interval`."""
        self._hook_pending = True

    async def _send_hook(self) -> None:
        if not self._hook_pending:
            return
        self._hook_pending = False
        try:
            self._hook_etag = await self.store.write(
                hook_blob(self.instance), b"{}", metadata={"replica": self.settings.replica}
            )
        except CoordinationError as err:
            self._failed(err)

    def _note_hook(self, entries: list[BlobEntry]) -> None:
        name = hook_blob(self.instance)
        entry = next((e for e in entries if e.name == name), None)
        first, self._listed = not self._listed, True
        if entry is None or entry.etag == self._hook_etag:
            return
        self._hook_etag = entry.etag
        # The first listing only learns where the blob stands: a webhook from before this replica started
        # is not news.
        sender = entry.metadata.get("replica")
        if not first and sender != self.settings.replica and self.on_hook is not None:
            log.info("webhook relayed by another replica; fetching", replica=sender)
            self.on_hook()

    def _contact(self) -> None:
        if self.last_error is not None:
            log.info("coordination store reachable again", store=self.store.location)
        self.last_contact = self.monotonic()
        self.last_error = None

    def _failed(self, err: Exception) -> None:
        text = str(err) or type(err).__name__
        if self.last_error is None:
            log.warning(
                "coordination store unreachable; writes stop before the leases can expire",
                store=self.store.location,
                error=text,
                margin_s=self.settings.margin,
            )
        self.last_error = text

    def _read_listing(self, entries: list[BlobEntry]) -> None:
        view = self._view
        live: set[str] = set()
        owners: dict[int, str | None] = {}
        replicas = replicas_prefix(self.instance)
        for entry in entries:
            if entry.name.startswith(replicas) and entry.leased:
                live.add(entry.name[len(replicas) :])
                continue
            shard = shard_in(entry.name, self.instance, self.settings.shards)
            if shard is not None:
                owner = (entry.metadata.get("owner") or "(unknown)") if entry.leased else None
                if owner == self.settings.replica and shard not in self.table.holds:
                    # Our lease, lost to an outage but perhaps still ours at the store: try to take it back.
                    owner = None
                owners[shard] = owner
        live.discard(self.settings.replica)
        for shard in range(self.settings.shards):
            free = owners.get(shard) is None and shard not in self.table.holds
            view.free_ticks[shard] = view.free_ticks.get(shard, 0) + 1 if free else 0
        view.live = live
        view.owners = owners
        self.table.owners = owners

    # -- leases -----------------------------------------------------------------------------------------

    async def _heartbeat(self, store: CoordinationStore) -> None:
        """Acquire (or renew) this replica's own lease: the others count it as alive while it is active."""
        sent = self.monotonic()
        await store.acquire_lease(
            replica_blob(self.instance, self.settings.replica),
            duration=self.settings.lease_duration,
            lease_id=self._replica_lease,
        )
        self._replica_renewed = sent
        self._replica_until = sent + self.settings.lease_duration

    async def renew_due(self, store: CoordinationStore) -> None:
        """Renew what is due through `store`. Runs in the tick, or in the lease keeper's thread: it only
        records what happened (`Hold.renewed_at`, `Hold.lost`, `_renew_error`, `_renew_fatal`), and the tick
        acts on it (`_take_renewals`), so nothing here touches the book or the daemon."""
        now = self.monotonic()
        try:
            holds = list(self.table.holds.values())
        except RuntimeError:  # changed by the tick while copied (keeper thread): next round
            return
        due = [h for h in holds if now - h.renewed_at >= self.settings.renew_every]
        async with asyncio.TaskGroup() as group:
            if now - self._replica_renewed >= self.settings.renew_every:
                group.create_task(self._renew_heartbeat(store), name="coordination-renew-replica")
            for hold in due:
                group.create_task(self._renew(store, hold), name=f"coordination-renew shard {hold.shard}")

    async def _renew_heartbeat(self, store: CoordinationStore) -> None:
        try:
            await self._heartbeat(store)
        except LeaseTakenError:
            if self._waiting_for_predecessor():
                return
            self._renew_fatal = (
                f"another process is running as replica {self.settings.replica}; give each replica its own "
                "--replica-id (or leave it out)"
            )
        except CoordinationError as err:
            self._renew_error = str(err) or type(err).__name__

    def _waiting_for_predecessor(self) -> bool:
        """Our replica lease is held under another lease id. Before we ever held it, that is most likely the
        last process of this replica (restarted in place: same pod name, same host), killed with its lease
        still running: wait for it to run out, trying every second. Still held after a whole lease
        duration and the margin, or taken from us after we held it: another live process has our id."""
        if self._replica_until > 0.0:
            return False
        now = self.monotonic()
        if self._replica_blocked_since is None:
            self._replica_blocked_since = now
            log.info(
                "this replica's lease is still held by an earlier process of it; waiting for it to run out",
                replica=self.settings.replica,
                up_to_s=self.settings.lease_duration + self.settings.margin,
            )
        if now - self._replica_blocked_since > self.settings.lease_duration + self.settings.margin:
            return False
        self._replica_renewed = now - self.settings.renew_every + 1.0
        return True

    async def _renew(self, store: CoordinationStore, hold: Hold) -> None:
        sent = self.monotonic()
        try:
            await store.renew_lease(hold.blob, lease_id=hold.lease_id)
        except LeaseLostError:
            hold.lost = "its lease was lost (taken by another replica, or broken)"
            return
        except CoordinationError as err:
            self._renew_error = str(err) or type(err).__name__
            return
        hold.renewed_at = sent
        hold.valid_until = sent + self.settings.lease_duration

    def _take_renewals(self) -> None:
        """Act on what the renewals recorded."""
        fatal, self._renew_fatal = self._renew_fatal, None
        if fatal is not None:
            self.on_fatal(fatal)
        error, self._renew_error = self._renew_error, None
        if error is not None:
            self._failed(StorageUnavailableError(error))
        for hold in list(self.table.holds.values()):
            if hold.lost is not None:
                self._lose(hold, hold.lost)

    def _expire(self) -> None:
        now = self.monotonic()
        for hold in list(self.table.holds.values()):
            if now >= hold.valid_until:
                self._lose(hold, "its lease expired: it could not be renewed in time")

    def _note_fenced(self) -> None:
        """Say (once per tenure) when the fence has stopped the writes of a lease not renewed in time."""
        for hold in self.table.holds.values():
            fenced = hold.ready and not hold.yielding and not self.table.writable(hold.shard)
            if fenced and not hold.fenced:
                log.warning(
                    "lease not renewed in time; writes stopped before it can expire",
                    shard=hold.shard,
                    replica=self.settings.replica,
                    tenure=hold.tenure,
                    margin_s=self.settings.margin,
                )
                self.on_change(f"shard {hold.shard} fenced")
            elif hold.fenced and not fenced and self.table.writable(hold.shard):
                log.info("lease renewed again; writing", shard=hold.shard, replica=self.settings.replica)
                self.on_change(f"shard {hold.shard} renewed")
            hold.fenced = fenced

    def _lose(self, hold: Hold, why: str) -> None:
        if self.table.holds.get(hold.shard) is not hold:
            return
        del self.table.holds[hold.shard]
        self.book.drop(self._within(hold.shard))
        self.transitions += 1
        log.warning("shard lost; standing by", shard=hold.shard, replica=self.settings.replica, why=why)
        self.on_change(f"shard {hold.shard} lost")

    async def _claim(self, shard: int) -> None:
        blob = shard_blob(self.instance, self.settings.shards, shard)
        # One lease id per shard for this process's life: after an outage the store may still hold our lease,
        # and acquiring with the same id takes it back at once instead of waiting for it to expire.
        lease_id = str(uuid.uuid5(self._lease_base, str(shard)))
        sent = self.monotonic()
        try:
            await self.store.acquire_lease(blob, duration=self.settings.lease_duration, lease_id=lease_id)
        except LeaseTakenError:
            return
        except CoordinationError as err:
            self._failed(err)
            return
        self._tenures += 1
        hold = Hold(
            shard=shard,
            blob=blob,
            lease_id=lease_id,
            renewed_at=sent,
            valid_until=sent + self.settings.lease_duration,
            tenure_number=self._tenures,
        )
        self.table.holds[shard] = hold
        self._view.free_ticks[shard] = 0
        try:
            await self._adopt(hold)
        except CoordinationError as err:
            # Not ready: it writes nothing; the next tick renews it and tries the book again, or loses it.
            log.warning("shard acquired but its book could not be read", shard=shard, error=str(err))
            self._failed(err)
            with contextlib.suppress(CoordinationError):
                await self.store.release_lease(blob, lease_id=lease_id)
            self.table.holds.pop(shard, None)
            return
        self.transitions += 1
        log.info(
            "shard acquired; leading it",
            shard=shard,
            shards=self.settings.shards,
            replica=self.settings.replica,
            tenure=hold.tenure,
        )
        self.on_change(f"shard {shard} acquired")

    async def _adopt(self, hold: Hold) -> None:
        """Read the shard's book, take it over, and write it back under our lease with us as its owner."""
        state = await self.store.read(hold.blob)
        data = _parse_book(state.data if state is not None else b"", hold.blob)
        unfinished = self.book.adopt(data, self._within(hold.shard), now=self.clock())
        for item in unfinished:
            log.warning(
                "unfinished by the previous leader; this replica re-observes and converges",
                resource_group=item["resource_group"],
                name=item["name"],
                action=item["action"],
                revision=item["revision"],
            )
        hold.etag = state.etag if state is not None else None
        async with self._lock:
            await self._write(hold, self._books(self.snapshot())(hold.shard))
        hold.ready = True

    async def _release_yielded(self) -> None:
        for hold in list(self.table.holds.values()):
            if not hold.yielding or hold.in_flight:
                continue
            async with self._lock:
                with contextlib.suppress(CoordinationError):
                    await self._write(hold, self._books(self.snapshot())(hold.shard))
            with contextlib.suppress(CoordinationError):
                await self.store.release_lease(hold.blob, lease_id=hold.lease_id)
            self.table.holds.pop(hold.shard, None)
            self.book.drop(self._within(hold.shard))
            self._view.cooldown[hold.shard] = COOLDOWN_TICKS
            self.transitions += 1
            log.info("shard given back", shard=hold.shard, replica=self.settings.replica)

    # -- the shared book --------------------------------------------------------------------------------

    def _within(self, shard: int) -> Callable[[str], bool]:
        count = self.settings.shards
        return lambda resource_group: shard_of(resource_group, count) == shard

    def _books(self, saved: Mapping[str, Any]) -> Callable[[int], dict[str, Any]]:
        """The book of each shard out of a saved `StateBook` (cut once, however many shards are asked for)."""
        parts = split_saved(saved, lambda rg: shard_of(rg, self.settings.shards))
        return lambda shard: self._book(shard, parts.get(shard, {}), saved.get("last_pass"))

    def _book(self, shard: int, part: Mapping[str, Any], last: Any) -> dict[str, Any]:
        return {
            "version": STATE_FILE_VERSION,
            "book": BOOK_VERSION,
            "instance": self.instance,
            "shards": self.settings.shards,
            "shard": shard,
            "groups": [compact_group(g) for g in part.get("groups", [])],
            "jobs": part.get("jobs", []),
            "last_pass": last if isinstance(last, dict) else None,
        }

    async def _write(self, hold: Hold, book: Mapping[str, Any]) -> None:
        """Write a shard's book under our lease and its last ETag, unless only the last pass's timing changed
        (every pass would rewrite every book: megabytes a pass at 50,000 groups); raises on failure (after
        dropping the shard when the lease is gone)."""
        last = book.get("last_pass")
        if isinstance(last, dict):
            last = {k: last.get(k) for k in ("revision", "result", "error")}
        key = _dump({**book, "last_pass": last})
        if key == hold.written:
            return
        data = _dump(book)
        metadata = {"owner": self.settings.replica}
        try:
            try:
                etag = await self.store.write(
                    hold.blob, data, etag=hold.etag, lease_id=hold.lease_id, metadata=metadata
                )
            except ConditionFailedError:
                # Under our lease only we write: the ETag moved because an earlier write of ours landed
                # after its answer was lost. Our book is the newer one.
                state = await self.store.read(hold.blob)
                etag = await self.store.write(
                    hold.blob,
                    data,
                    etag=state.etag if state is not None else None,
                    lease_id=hold.lease_id,
                    metadata=metadata,
                )
        except LeaseLostError:
            self._lose(hold, "the store refused its book: the lease is no longer ours")
            raise
        hold.etag = etag
        hold.written = key

    async def flush(self) -> None:
        """Write the books of the shards held whose content changed since they were last written."""
        if not self.table.holds:
            self._dirty = False
            return
        async with self._lock:
            self._dirty = False
            books = self._books(self.snapshot())
            failure: CoordinationError | None = None
            for hold in list(self.table.holds.values()):
                if not hold.ready:
                    continue
                try:
                    await self._write(hold, books(hold.shard))
                except CoordinationError as err:
                    failure = failure or err
            if failure is not None:
                self._dirty = True
                raise failure

    async def flush_for(self, resource_group: str) -> None:
        """The job scheduler's write-ahead: the book of `resource_group`'s shard is written now, with the
        run just recorded, or the run does not start."""
        shard = shard_of(resource_group, self.settings.shards)
        if not self.table.writable(shard):
            raise LedgerUnavailableError(
                f"not started: this replica no longer leads shard {shard}; the replica that does runs it"
            )
        try:
            await self.flush()
        except CoordinationError as err:
            raise LedgerUnavailableError(
                f"not started: the run ledger could not be written to the coordination store ({err}); "
                "a run it does not record could run twice after a failover"
            ) from None
        if not self.table.writable(shard):
            raise LedgerUnavailableError(f"not started: the lease of shard {shard} was lost meanwhile")

    # -- layout -----------------------------------------------------------------------------------------

    async def _check_layout(self) -> None:
        name = layout_blob(self.instance)
        wanted = json.dumps({"shards": self.settings.shards}).encode()
        state = await self.store.read(name)
        if state is None:
            try:
                self._layout_etag = await self.store.write(name, wanted, create_only=True)
                return
            except ConditionFailedError:
                state = await self.store.read(name)
                if state is None:
                    raise CoordinationStartError("the layout blob vanished meanwhile; start again") from None
        current = _layout_shards(state.data)
        if current == self.settings.shards:
            self._layout_etag = state.etag
            return
        if current is None:
            raise CoordinationStartError(f"{name} in {self.store.location} is damaged; delete it, then start")
        await self._move_layout(current, state.etag, wanted)

    async def _move_layout(self, old: int, etag: str, wanted: bytes) -> None:
        """Move every shard book from `old` shards to ours, holding every old lease meanwhile."""
        entries = await self.store.list(shards_prefix(self.instance, old))
        if any(e.leased for e in entries):
            raise CoordinationStartError(
                f"instance {self.instance} runs with --shards {old} (replicas hold its leases); start this "
                f"replica with --shards {old}, or stop every replica first and then restart them all with "
                f"--shards {self.settings.shards}"
            )
        lease_id = str(uuid.uuid4())
        held: list[str] = []
        merged: dict[str, list[Any]] = {"groups": [], "jobs": []}
        try:
            for entry in entries:
                if shard_in(entry.name, self.instance, old) is None:
                    continue
                await self.store.acquire_lease(entry.name, duration=60, lease_id=lease_id)
                held.append(entry.name)
                state = await self.store.read(entry.name)
                data = _parse_book(state.data if state is not None else b"", entry.name)
                for part, items in merged.items():
                    found = data.get(part)
                    items.extend(found if isinstance(found, list) else [])
            books = self._books({"version": STATE_FILE_VERSION, **merged})
            for shard in range(self.settings.shards):
                blob = shard_blob(self.instance, self.settings.shards, shard)
                new_lease = str(uuid.uuid4())
                new_etag = await self.store.acquire_lease(blob, duration=15, lease_id=new_lease)
                try:
                    await self.store.write(blob, _dump(books(shard)), etag=new_etag, lease_id=new_lease)
                finally:
                    await self.store.release_lease(blob, lease_id=new_lease)
            self._layout_etag = await self.store.write(layout_blob(self.instance), wanted, etag=etag)
        except LeaseTakenError:
            raise CoordinationStartError(
                f"another replica of {self.instance} started while the books were being moved; start again"
            ) from None
        except ConditionFailedError:
            raise CoordinationStartError(
                f"another replica of {self.instance} changed the layout meanwhile; start again"
            ) from None
        for name in held:
            with contextlib.suppress(CoordinationError):
                await self.store.delete(name, lease_id=lease_id)
        log.warning(
            "shard layout changed; every book moved",
            instance=self.instance,
            old_shards=old,
            shards=self.settings.shards,
            groups=len(merged["groups"]),
            jobs=len(merged["jobs"]),
        )

    def _layout_changed(self, entries: list[BlobEntry]) -> bool:
        name = layout_blob(self.instance)
        for entry in entries:
            if entry.name == name and self._layout_etag is not None and entry.etag != self._layout_etag:
                self.on_fatal(
                    f"the shard layout of instance {self.instance} was changed by another replica (restarted "
                    "with another --shards); this replica stops: restart it with the same --shards"
                )
                return True
        return False


class LeaseKeeper:
    """Renews a replica's leases from a thread with an event loop (and a store client) of its own.

    A pass planning tens of thousands of groups keeps the daemon's event loop busy for many seconds; if the
    renewals waited for it, the fence would stop the leader's writes in the middle of every large pass, or
    the lease would lapse and pass to a standby. Here they run on time whatever the main loop does. The
    thread records outcomes on the holds; the coordinator's tick acts on them."""

    def __init__(self, coordinator: Coordinator, open_store: Callable[[], CoordinationStore]) -> None:
        self.coordinator = coordinator
        self.open_store = open_store
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._main, name="coordination-lease-keeper", daemon=True)
        self.rounds = 0
        self._round_done = threading.Condition()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=30)

    def wait_rounds(self, count: int, timeout: float) -> bool:
        """Block until `count` rounds of renewals have finished (for tests and diagnostics)."""
        with self._round_done:
            return self._round_done.wait_for(lambda: self.rounds >= count, timeout=timeout)

    def _main(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        store = self.open_store()
        try:
            while not self._stopping.is_set():
                try:
                    await self.coordinator.renew_due(store)
                except Exception as err:  # a bug here must not end renewals; the fence holds anyway
                    log.exception("lease renewal failed", error=f"{type(err).__name__}: {err}")
                with self._round_done:
                    self.rounds += 1
                    self._round_done.notify_all()
                # Short naps: a stop is noticed at once, and a renewal is never late by more than this.
                await asyncio.sleep(0.25)
        finally:
            await store.close()


def _dump(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _layout_shards(data: bytes) -> int | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    shards = value.get("shards") if isinstance(value, dict) else None
    return shards if isinstance(shards, int) and 1 <= shards <= MAX_SHARDS else None


def _parse_book(data: bytes, blob: str) -> dict[str, Any]:
    """A shard book as stored, or an empty one when there is none yet or it cannot be read (logged: only
    the history is lost, the next pass converges anyway)."""
    if not data:
        return {"version": STATE_FILE_VERSION}
    try:
        value = json.loads(data)
    except (ValueError, RecursionError) as err:
        log.warning("shard book damaged, starting it afresh", blob=blob, error=str(err)[:200])
        return {"version": STATE_FILE_VERSION}
    if not isinstance(value, dict):
        log.warning("shard book damaged, starting it afresh", blob=blob, error="not an object")
        return {"version": STATE_FILE_VERSION}
    return value
