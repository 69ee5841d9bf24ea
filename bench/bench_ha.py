"""High availability at fleet scale: 50,000 groups reconciled by 10 replicas sharing 20 shards through Blob
Storage (Azurite), the emulator adding ARM latency. Prints shard balance, takeover times and one replica's
memory and resync CPU, side by side with a replica that owns every shard.

Run: `.venv/bin/python bench/bench_ha.py [--quick] [--groups 50000] [--replicas 10] [--shards 20]`
(needs `npm ci` for Azurite). About 10 minutes at 50,000 groups on 2 cores; `--quick` is 5,000 groups.

Method. Two cores cannot run ten daemons that each load 50,000 manifests, so the fleet is one real
`reconcile daemon` process (measured) and nine *light replicas*: the daemon's own coordinator
(`reconciler.daemon.coordination`, real leases in Azurite, real shard books), in this process, planning
nothing. The balancing, the leases and the takeovers are exactly the daemon's; only the planning of the
other nine replicas is left out, and the measured replica plans its own share for real.

- **Memory and CPU**: the daemon's peak RSS (VmHWM) and the CPU seconds of one resync once its share has
  settled (a pass-to-pass window: the interval pass and the coordination around it), first alone (it owns
  all shards: a single leader of 50,000 groups), then as one of ten (it owns its share).
- **Balance**: shards per replica, read from the container (the holders' leases and owner metadata).
- **Takeover**: SIGKILL of a replica that holds shards -> every shard held again (its leases must expire:
  `--lease-duration` 15 s, standbys try every second); SIGTERM of the daemon -> every shard held again
  (it releases its leases on the way out).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import structlog
from common import ROOT, Daemon, emulator_process, resource_groups, seed, settings_for, table, write_manifests

from reconciler.cloud.blobstore import BlobCoordinationStore, open_store
from reconciler.daemon.coordination.coordinator import CoordinationSettings, Coordinator
from reconciler.daemon.coordination.fence import LeaseTable
from reconciler.daemon.coordination.shards import instance_prefix, shard_in
from reconciler.daemon.state import StateBook

ACCOUNT = "devstoreaccount1"
# Azurite's published development key, not a secret.
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
INSTANCE = "default"


class Storage:
    """Azurite on a free loopback port, its data in `work`."""

    def __init__(self, work: Path) -> None:
        binary = ROOT / "node_modules" / ".bin" / "azurite-blob"
        if not binary.exists():
            raise SystemExit("Azurite is missing: run `npm ci` at the repository root")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self.proc = subprocess.Popen(
            [
                *(str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(self.port)),
                *("--location", str(work), "--silent", "--skipApiVersionCheck", "--loose"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.connection_string = (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};"
        )
        self.url = f"http://127.0.0.1:{self.port}/{ACCOUNT}/bench-ha"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class LightReplica:
    """A replica's coordinator without its planning: it holds and balances shards like a daemon does."""

    def __init__(self, storage: Storage, name: str, shards: int) -> None:
        self.name = name
        self.store: BlobCoordinationStore = open_store(
            storage.url, connection_string=storage.connection_string
        )
        settings = CoordinationSettings(replica=name, shards=shards)
        self.table = LeaseTable(name, shards, margin=settings.margin, monotonic=time.monotonic)
        book = StateBook()
        self.coordinator = Coordinator(
            self.store,
            self.table,
            settings,
            instance=INSTANCE,
            book=book,
            snapshot=book.to_json,
            clock=time.time,
            sleep=asyncio.sleep,
            on_change=lambda _: None,
            on_fatal=lambda why: print(f"{name}: {why}"),
            # Renewals in a thread, as in the daemon: nine replicas share this process's event loop.
            keeper_store=lambda: open_store(storage.url, connection_string=storage.connection_string),
        )
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.coordinator.start()
        self.task = asyncio.create_task(self.coordinator.run(), name=f"light-replica-{self.name}")

    async def kill(self) -> None:
        """As SIGKILL would: stop at once, leases left to expire."""
        await self.coordinator.stop_keeper()
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.store.close()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            await self.coordinator.close()
        await self.store.close()


async def holders(store: BlobCoordinationStore, shards: int) -> dict[int, str | None]:
    """Each shard's holder as the container says (None: no active lease)."""
    owners: dict[int, str | None] = dict.fromkeys(range(shards))
    for entry in await store.list(instance_prefix(INSTANCE)):
        shard = shard_in(entry.name, INSTANCE, shards)
        if shard is not None and entry.leased:
            owners[shard] = entry.metadata.get("owner", "?")
    return owners


async def wait_for(predicate: Any, limit_s: float) -> float:
    """Seconds until `await predicate()` is true (polled every 0.1 s)."""
    started = time.monotonic()
    while not await predicate():
        if time.monotonic() - started > limit_s:
            return float("nan")
        await asyncio.sleep(0.1)
    return time.monotonic() - started


async def daemon_run(
    daemon: Daemon, probe: BlobCoordinationStore, shards: int, want: int
) -> dict[str, float]:
    """Once the daemon owns `want` shards: the CPU of one resync (a whole pass-to-pass window, the pass and
    the idle coordination around it) and the peak RSS so far."""

    async def owns() -> bool:
        return sum(1 for o in (await holders(probe, shards)).values() if o == "bench-daemon") == want

    settled = await wait_for(owns, 120)
    if math.isnan(settled):  # the replica never reached its share: what follows measures what it got
        print(f"warning: the daemon did not come to own {want} shards within 120 s")
    # The passes that acquisitions triggered end first; the window after them holds one interval resync.
    await daemon.wait_passes(await daemon.passes() + 1, limit_s=1800)
    cpu_start = daemon.cpu_seconds()
    await daemon.wait_passes(await daemon.passes() + 1, limit_s=1800)
    return {"cpu_s": daemon.cpu_seconds() - cpu_start, "rss_peak_mib": daemon.rss_peak_mb()}


async def main() -> None:
    # The light replicas log like daemons; only their warnings belong in a benchmark's output.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 groups")
    parser.add_argument("--groups", type=int, default=50_000)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--resource-groups", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument(
        "--scope", default="subscription", help="the daemon's --scope (manifests: each lists its own groups)"
    )
    args = parser.parse_args()
    n = 5000 if args.quick else args.groups
    shards = args.shards

    with tempfile.TemporaryDirectory(prefix="bench-ha-") as tmp:
        work = Path(tmp)
        manifests = work / "m"
        write_manifests(manifests, n, resource_groups(args.resource_groups))
        storage = Storage(work / "azurite")
        try:
            async with emulator_process(work / "emu") as emu:
                seeding = await seed(emu, settings_for(manifests))
                emu.set_config(latency=args.latency)
                print(
                    f"{n} groups in {args.resource_groups} resource groups (seeded in {seeding:.0f}s), "
                    f"{shards} shards, {args.replicas} replicas, "
                    f"{args.latency * 1000:.0f} ms per ARM request, --scope {args.scope}"
                )
                probe = open_store(storage.url, connection_string=storage.connection_string)
                await probe.ensure_container()
                env = {"RECONCILER_STORAGE_CONNECTION_STRING": storage.connection_string}
                flags = [
                    "--coordination",
                    storage.url,
                    "--shards",
                    str(shards),
                    "--replica-id",
                    "bench-daemon",
                ]
                flags += ["--interval", "20s", "--jitter", "0", "--no-watch", "--log-level", "warning"]
                flags += ["--scope", args.scope]

                # 1. The daemon alone: it leads every shard.
                async with Daemon(emu, manifests, work, *flags, env=env) as daemon:
                    alone = await daemon_run(daemon, probe, shards, shards)
                print(f"alone: {alone}", flush=True)

                # 2. One of ten.
                lights = [LightReplica(storage, f"light-{i}", shards) for i in range(args.replicas - 1)]
                for light in lights:
                    await light.start()
                async with Daemon(emu, manifests, work, *flags, env=env) as daemon:
                    share = shards // args.replicas
                    shared = await daemon_run(daemon, probe, shards, share)
                    print(f"one of {args.replicas}: {shared}", flush=True)
                    owners = await holders(probe, shards)
                    counts = [
                        sum(1 for o in owners.values() if o == r)
                        for r in ["bench-daemon"] + [x.name for x in lights]
                    ]
                    book_bytes = []
                    for entry in await probe.list(instance_prefix(INSTANCE)):
                        state = (
                            await probe.read(entry.name)
                            if shard_in(entry.name, INSTANCE, shards) is not None
                            else None
                        )
                        if state is not None:
                            book_bytes.append(len(state.data))

                    victim = next(x for x in lights if x.table.holds)

                    async def taken_from_victim() -> bool:
                        held = await holders(probe, shards)
                        return all(o is not None and o != victim.name for o in held.values())

                    await victim.kill()
                    lights.remove(victim)
                    kill_takeover = await wait_for(taken_from_victim, 60)

                    async def daemon_holds() -> bool:
                        return any(o == "bench-daemon" for o in (await holders(probe, shards)).values())

                    await wait_for(daemon_holds, 60)
                    assert daemon.proc is not None
                    daemon.check_alive()
                    daemon.proc.terminate()

                    async def none_by_daemon() -> bool:
                        held = await holders(probe, shards)
                        return all(o is not None and o != "bench-daemon" for o in held.values())

                    term_takeover = await wait_for(none_by_daemon, 60)
                for light in lights:
                    await light.stop()
                await probe.close()
        finally:
            storage.stop()
            shutil.rmtree(work / "azurite", ignore_errors=True)

    print()
    print(
        table(
            ["replica", "shards owned", "resync CPU s", "peak RSS MiB"],
            [
                ["alone (1 of 1)", shards, f"{alone['cpu_s']:.1f}", f"{alone['rss_peak_mib']:.0f}"],
                [
                    f"1 of {args.replicas}",
                    counts[0],
                    f"{shared['cpu_s']:.1f}",
                    f"{shared['rss_peak_mib']:.0f}",
                ],
            ],
        )
    )
    print()
    print(
        f"shards per replica: {sorted(counts)} "
        f"(fair share {shards // args.replicas} to {-(-shards // args.replicas)})"
    )
    print(f"shard book sizes: {min(book_bytes)} to {max(book_bytes)} bytes")
    print(f"takeover after SIGKILL of a replica: {kill_takeover:.1f}s (lease 15s)")
    print(f"takeover after SIGTERM of the daemon: {term_takeover:.1f}s")
    print(
        f"RATIOS cpu_alone/one_of_{args.replicas}={alone['cpu_s'] / max(shared['cpu_s'], 1e-9):.1f}x "
        f"rss_alone/one_of_{args.replicas}={alone['rss_peak_mib'] / shared['rss_peak_mib']:.2f}x "
        f"balance_max_min={max(counts)}/{min(counts)} takeover_kill_s={kill_takeover:.1f} "
        f"takeover_term_s={term_takeover:.1f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
