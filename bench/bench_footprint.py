"""Footprint: peak RSS of `reconcile daemon` managing converged fleets of several sizes, the memory each group
adds, and the CPU seconds of one idle resync pass (an interval pass that finds nothing to do).

Run: `.venv/bin/python bench/bench_footprint.py [--quick] [--sizes 1000,5000,10000] [--interval 20]`
(`--sizes 50000 --interval 60` measures the largest fleet: about 12 minutes; a pass of 50,000 groups takes
most of a shorter interval).
The emulator runs in its own process (its memory is not the daemon's); the daemon runs as users run it. Peak
RSS is the kernel's VmHWM of the daemon process over its first pass and the resyncs after it; CPU is
utime+stime from /proc, with the idle rate between passes (measured once the first pass has settled, while
polling /metrics as the wait for the next pass does) taken out. The per-group way is not run here; the
ratio line compares with the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    Daemon,
    emulator_process,
    ratio,
    resource_groups,
    seed,
    settings_for,
    table,
    write_manifests,
)

LIST_CALLS = ("GET containerGroups.listByResourceGroup", "GET containerGroups.listBySubscription")
WRITE_CALLS = ("PUT containerGroup", "PATCH containerGroup")


async def measure(n: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    manifests = work / f"m{n}"
    write_manifests(manifests, n, resource_groups(4))
    interval = args.interval
    async with emulator_process(work / f"emu{n}") as emu:
        seeding = await seed(emu, settings_for(manifests))
        emu.set_config(latency=args.latency)
        async with Daemon(emu, manifests, work, "--interval", f"{interval:g}s", "--jitter", "0") as daemon:
            await daemon.wait_passes(1, limit_s=1200)
            rss_first = daemon.rss_peak_mb()
            cpu_first = daemon.cpu_seconds()
            # Every window starts just after a pass has ended (a counter reset or a CPU reading in the middle
            # of a pass would count part of it): the next pass starts an interval later. First the idle rate,
            # over a quarter interval while polling /metrics as `wait_passes` does (the daemon's CPU for
            # answering the benchmark is then taken out with it), then one whole resync. A follow-up pass (the
            # settle recheck of files written just before the start) can end within the window: then the
            # window is taken again after it.
            window = 0.25 * interval
            done = await daemon.passes()
            while True:
                done = await daemon.wait_passes(done + 1, limit_s=interval * 3 + 1200)
                cpu_a = daemon.cpu_seconds()
                until = time.monotonic() + window
                while time.monotonic() < until:
                    now_done = await daemon.passes()
                    await asyncio.sleep(0.05)
                if now_done == done:
                    break
                done = now_done - 1
            cpu_b, t_b = daemon.cpu_seconds(), time.monotonic()
            idle_rate = (cpu_b - cpu_a) / window
            emu.reset_counters()
            first_metrics = await daemon.metrics()
            await daemon.wait_passes(done + 1, limit_s=interval * 3 + 1200)
            cpu_c, t_c = daemon.cpu_seconds(), time.monotonic()
            second_metrics = await daemon.metrics()
            resync_wall = pass_seconds(second_metrics) - pass_seconds(first_metrics)
            calls = dict(emu.counters)
            peaks = [daemon.rss_peak_mb()]
            for k in range(done + 2, done + 2 + args.more_passes):
                await daemon.wait_passes(k, limit_s=interval * 3 + 1200)
                peaks.append(daemon.rss_peak_mb())
            rss_idle = daemon.rss_mb()
    return {
        "groups": n,
        "seeded_s": seeding,
        "rss_first": rss_first,
        "rss_peak": max(peaks),
        "rss_peaks": peaks,
        "rss_idle": rss_idle,
        "first_cpu": cpu_first,
        "resync_cpu": (cpu_c - cpu_b) - idle_rate * max(0.0, t_c - t_b - resync_wall),
        "resync_wall": resync_wall,
        "idle_rate": idle_rate,
        "lists": sum(calls.get(k, 0) for k in LIST_CALLS),
        "writes": sum(calls.get(k, 0) for k in WRITE_CALLS),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 500,2000")
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--interval", type=float, default=20.0, help="daemon resync interval (s)")
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--more-passes", type=int, default=2, help="resyncs after the measured one")
    args = parser.parse_args()
    sizes = [500, 2000] if args.quick else [int(s) for s in args.sizes.split(",")]

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        for n in sizes:
            results.append(await measure(n, args, Path(tmp)))
    print(
        f"Footprint of `reconcile daemon` managing converged groups, {args.latency * 1000:g} ms per ARM "
        f"request, resync every {args.interval:g}s"
    )
    print()
    rows = [
        [
            r["groups"],
            f"{r['rss_first']:.0f}",
            f"{r['rss_peak']:.0f}",
            f"{r['rss_idle']:.0f}",
            "/".join(f"{p:.0f}" for p in r["rss_peaks"]),
            f"{r['first_cpu']:.1f}",
            f"{r['resync_cpu']:.2f}",
            f"{r['resync_cpu'] / r['groups'] * 1000:.3f}",
            f"{r['resync_wall']:.2f}",
            f"{r['idle_rate']:.3f}",
            r["lists"],
            r["writes"],
        ]
        for r in results
    ]
    print(
        table(
            [
                "groups",
                "peak RSS first pass MiB",
                "peak RSS MiB",
                "idle RSS MiB",
                "peak after each resync",
                "first pass CPU s (with start-up)",
                "resync CPU s",
                "resync ms/group",
                "resync wall s",
                "idle CPU s/s",
                "resync list calls",
                "resync writes",
            ],
            rows,
        )
    )
    for r in results:
        if r["resync_wall"] > args.interval - 0.25 * args.interval - 1:
            # The next pass can then start inside the idle window: its rate, and the resync's calls and CPU
            # measured after it, hold part of a pass.
            print(f"warning: at {r['groups']} groups a pass takes most of the interval; raise --interval")
    print()
    print("targets: peak RSS under 250 MiB at 10,000 groups; at most 15 KiB more per group")
    low, high = results[0], results[-1]
    growth = (
        (high["rss_peak"] - low["rss_peak"]) * 1024 / (high["groups"] - low["groups"])
        if high["groups"] > low["groups"]
        else float("nan")
    )
    at_10k = next((r["rss_peak"] for r in results if r["groups"] == 10000), None)
    print(
        f"RATIOS kib_per_group={growth:.1f} (target 15) "
        + (f"rss_peak_10k={at_10k:.0f}MiB (target 250, {ratio(250, at_10k)} headroom) " if at_10k else "")
        + f"resync_ms_per_group_at_{high['groups']}={high['resync_cpu'] / high['groups'] * 1000:.3f} "
        f"writes={sum(r['writes'] for r in results)}"
    )


def pass_seconds(metrics: dict[str, float]) -> float:
    """Total seconds of all passes so far (the histogram's sums over its `result` labels)."""
    prefix = "aci_reconciler_pass_duration_seconds_sum"
    return sum(v for k, v in metrics.items() if k.startswith(prefix))


if __name__ == "__main__":
    asyncio.run(main())
