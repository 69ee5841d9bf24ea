"""Warm daemon passes and cold dry-runs: CPU of the plan of a converged fleet when nothing changed, side by
side in one run at several sizes, with the marginal CPU per group from the difference between sizes:

- a cold dry-run, as `reconcile plan` makes it (`plan_pass` with a gateway of its own: nothing cached);
- the daemon's pass with fresh manifests (a fresh load cache, so the plan memo cannot match them);
- the daemon's warm pass, with its caches (`LoadCache`: unchanged files are not read or parsed again; the
  adapter's list pages: unchanged pages are not decoded again; `PlanMemo`: groups unchanged on both sides
  are not canonicalised and diffed again);
- the daemon's full pass after a commit: one file changed (a comment added: its group stays in sync), so
  the revision of every group moved with it.

Run: `.venv/bin/python bench/bench_incremental.py [--quick] [--sizes 1000,5000] [--variables] [--secrets]`
(`--variables`: every manifest's image tag is `${ACI_TAG}`, as a CI that injects the tag writes them;
`--secrets`: every group has a secure environment variable read from `BENCH_SECRET`). The
emulator runs in its own process (Azure is remote: its CPU is not ours); each figure is this process's CPU
time (`time.process_time`, the loading thread included), the best of `--repeat`.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from common import emulator_process, gateway_for, resource_groups, seed, settings_for, table, write_manifests

from reconciler.cli import tune_runtime
from reconciler.daemon.passes import EnginePasses
from reconciler.engine.reconcile import plan_pass
from reconciler.source import LoadCache


async def plan_cpu(passes: EnginePasses, *, warm: bool, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        if not warm:
            passes.load_cache = LoadCache()
        started = time.process_time()
        view = await passes.plan()
        best = min(best, time.process_time() - started)
        assert not view.plan.has_changes, "the fleet is converged"
    return best


async def after_commit_cpu(passes: EnginePasses, changed: Path, repeat: int) -> float:
    """A full pass after each of `repeat` commits that each change one file (a comment is added)."""
    best = float("inf")
    for n in range(repeat):
        with changed.open("a", encoding="utf-8") as f:
            f.write(f"# commit {n}\n")
        started = time.process_time()
        view = await passes.plan()
        best = min(best, time.process_time() - started)
        assert not view.plan.has_changes, "the fleet is converged"
    return best


async def dry_run_cpu(emu: Any, manifests: Path, repeat: int, environ: dict[str, str]) -> float:
    """A cold dry-run, as `reconcile plan` makes it: a gateway and an engine pass of its own, no cache."""
    best = float("inf")
    for _ in range(repeat):
        gateway = gateway_for(emu)
        try:
            started = time.process_time()
            planned = await plan_pass(settings_for(manifests), gateway, environ=environ)
            best = min(best, time.process_time() - started)
        finally:
            await gateway.close()
        assert not planned.plan.has_changes, "the fleet is converged"
    return best


async def measure(
    size: int, repeat: int, root: Path, *, variables: bool, secrets: bool
) -> tuple[float, float, float, float]:
    manifests = root / f"m{size}"
    environ = {"ACI_TAG": "1.25", "BENCH_SECRET": "bench-secret-value"}
    paths = write_manifests(
        manifests,
        size,
        resource_groups(4),
        image_tag="${ACI_TAG}" if variables else "1.25",
        secret=secrets,
    )
    written = time.time()
    async with emulator_process(root / f"emu{size}") as emu:
        await seed(emu, settings_for(manifests), environ=environ)
        gateway = gateway_for(emu)
        try:
            passes = EnginePasses(settings_for(manifests), gateway, environ=environ)
            # As in a daemon's life, the files were written a while before: the load cache trusts the stat
            # of a file read at least `LoadCache.RACY_NS` after it was last written (and reads it else).
            await asyncio.sleep(max(0.0, written + LoadCache.RACY_NS / 1e9 + 1 - time.time()))
            await passes.plan()  # fills the caches
            warm = await plan_cpu(passes, warm=True, repeat=repeat)
            committed = await after_commit_cpu(passes, paths[0], repeat)
            cold = await plan_cpu(passes, warm=False, repeat=repeat)
        finally:
            await gateway.close()
        dry_run = await dry_run_cpu(emu, manifests, repeat, environ)
    return cold, warm, dry_run, committed


async def main(args: argparse.Namespace) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    results: dict[int, tuple[float, float, float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-incremental-") as tmp:
        for size in sizes:
            results[size] = await measure(
                size, args.repeat, Path(tmp), variables=args.variables, secrets=args.secrets
            )
            cold, warm, dry_run, committed = results[size]
            rows.append(
                [
                    size,
                    f"{dry_run:.2f}",
                    f"{cold:.2f}",
                    f"{warm:.2f}",
                    f"{committed:.2f}",
                    f"{cold / warm:.1f}x",
                    f"{warm / size * 1000:.3f}",
                ]
            )
    print("Plan of a converged fleet, nothing changed: this process's CPU seconds, best of", args.repeat)
    print(
        table(
            [
                "groups",
                "cold dry-run",
                "daemon, fresh manifests",
                "daemon, warm",
                "daemon, after a commit",
                "fresh/warm",
                "warm ms/group",
            ],
            rows,
        )
    )
    low, high = sizes[0], sizes[-1]
    if high > low:

        def marginal(i: int) -> float:
            return (results[high][i] - results[low][i]) / (high - low) * 1000

        print(
            f"RATIOS marginal_ms_per_group dry_run={marginal(2):.3f} (target 0.25) "
            f"daemon_fresh={marginal(0):.3f} daemon_warm={marginal(1):.3f} (target 0.05) "
            f"daemon_after_commit={marginal(3):.3f} fresh/warm={marginal(0) / marginal(1):.1f}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="sizes 500,2000")
    parser.add_argument("--sizes", default="1000,5000")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--variables", action="store_true", help="image tags written as ${ACI_TAG}")
    parser.add_argument("--secrets", action="store_true", help="a secure env var in every group")
    parsed = parser.parse_args()
    tune_runtime()  # as `reconcile daemon` runs
    if parsed.quick:
        parsed.sizes = "500,2000"
    asyncio.run(main(parsed))
