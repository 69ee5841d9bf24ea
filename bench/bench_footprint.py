"""Footprint: peak RSS of `reconcile daemon` managing 5,000 converged groups, and the CPU seconds of one idle
resync pass (an interval pass that finds nothing to do).

Run: `.venv/bin/python bench/bench_footprint.py [--quick] [--groups 5000] [--interval 20]`.
The emulator runs in its own process (its memory is not the daemon's); the daemon runs as users run it. Peak
RSS is the kernel's VmHWM of the daemon process; CPU is utime+stime from /proc, with the idle rate between
passes measured and subtracted. The per-group way is not run here; the ratio line compares with the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 groups")
    parser.add_argument("--groups", type=int, default=5000)
    parser.add_argument("--interval", type=float, default=10.0, help="daemon resync interval (s)")
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--more-passes", type=int, default=3, help="resyncs after the measured one")
    args = parser.parse_args()
    n = 1000 if args.quick else args.groups

    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp:
        work = Path(tmp)
        manifests = work / "m"
        write_manifests(manifests, n, resource_groups(4))
        async with emulator_process(work / "emu") as emu:
            seeding = await seed(emu, settings_for(manifests))
            emu.set_config(latency=args.latency)
            print(f"Footprint of `reconcile daemon` managing {n} converged groups (seeded in {seeding:.1f}s)")
            async with Daemon(
                emu, manifests, work, "--interval", f"{args.interval:g}s", "--jitter", "0"
            ) as daemon:
                await daemon.wait_passes(1, limit_s=600)
                first = await daemon.metrics()
                rss_first = daemon.rss_peak_mb()
                cpu_after_first = daemon.cpu_seconds()
                # Idle rate: a few seconds with no pass running (the next one is `interval` away).
                await asyncio.sleep(min(5.0, args.interval / 4))
                cpu_idle_end = daemon.cpu_seconds()
                idle_window = min(5.0, args.interval / 4)
                idle_rate = (cpu_idle_end - cpu_after_first) / idle_window
                emu.reset_counters()
                await daemon.wait_passes(2, limit_s=args.interval * 3 + 600)
                second = await daemon.metrics()
                cpu_after_second = daemon.cpu_seconds()
                rss_peak = daemon.rss_peak_mb()
                rss_now = daemon.rss_mb()
                resync_calls = emu.counters
                # Further resyncs: does the peak settle (no growth per pass)?
                later: list[float] = []
                for k in range(3, 3 + args.more_passes):
                    await daemon.wait_passes(k, limit_s=args.interval * 3 + 600)
                    later.append(daemon.rss_peak_mb())
            first_pass_s = pass_seconds(first)
            resync_s = pass_seconds(second) - first_pass_s
            between = args.interval  # the second pass starts `interval` after the first one ended
            resync_cpu = (cpu_after_second - cpu_idle_end) - idle_rate * max(0.0, between - idle_window)
            writes_ = sum(resync_calls.get(k, 0) for k in ("PUT containerGroup", "PATCH containerGroup"))
            lists = resync_calls.get("GET containerGroups.listByResourceGroup", 0)

    rows = [
        ("groups managed", n),
        ("peak RSS after the first pass (MiB)", rss_first),
        ("peak RSS after a resync (MiB)", rss_peak),
        ("RSS when idle (MiB)", rss_now),
        *((f"peak RSS after resync {i + 2} (MiB)", v) for i, v in enumerate(later)),
        ("first pass wall s", first_pass_s),
        ("CPU s of the first pass (incl. start-up)", cpu_after_first),
        ("idle resync pass wall s", resync_s),
        ("idle resync pass CPU s", resync_cpu),
        ("idle CPU between passes (s per s)", idle_rate),
        ("ARM list calls of the resync", lists),
        ("writes of the resync", writes_),
    ]
    print()
    print(table(["measure", "value"], rows))
    print()
    print("target: daemon RSS under 250 MB at 5,000 groups")
    peak = max([rss_peak, *later])
    print(
        f"RATIOS rss_peak={peak:.0f}MiB (target 250, {ratio(250, peak)} headroom) "
        f"resync_cpu={resync_cpu:.2f}s ({resync_cpu / n * 1000:.2f} ms/group) "
        f"resync_wall={resync_s:.2f}s writes={writes_}"
    )


def pass_seconds(metrics: dict[str, float]) -> float:
    """Total seconds of all passes so far (the histogram's sums over its `result` labels)."""
    prefix = "aci_reconciler_pass_duration_seconds_sum"
    return sum(v for k, v in metrics.items() if k.startswith(prefix))


if __name__ == "__main__":
    asyncio.run(main())
