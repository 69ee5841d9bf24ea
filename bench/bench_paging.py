"""Paging within ARM's read budget: a converged dry-run whose subscription-wide list has many more pages than
ARM's read bucket holds (250 reads, refilled at 25 a second, the emulator's default as ARM's), with ARM also
refusing a share of the later pages (429 with Retry-After, as when another client shares the bucket).

Side by side in one run, against the same in-process emulator and the same engine:

- this release: a refused page is retried where the chain stopped (`ListCursor`), progress earns a fresh
  attempt budget, and reads are paced by `x-ms-ratelimit-remaining-subscription-reads`;
- the previous way: every retry starts the chain from page 1 and nothing paces reads (a wrapper that hands
  each retry a fresh cursor, with the pacing reserve set to 0).

Run: `.venv/bin/python bench/bench_paging.py [--quick] [--groups 10000] [--page-size 10] [--refuse 0.02]`.
`--groups 10000 --page-size 10` is 1,000 pages: the page count of a 100,000-group subscription at ARM's 100
per page. Prints a table and a RATIOS line; never a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from common import gateway_for, resource_groups, seed, settings_for, table, write_manifests

from reconciler.cloud import azure
from reconciler.cloud.gateway import ListCursor
from reconciler.emulator.limits import FaultSettings
from reconciler.emulator.server import Emulator
from reconciler.engine.reconcile import plan_pass
from reconciler.model.plan import Action


class FromPageOne:
    """The previous behaviour: each retry of a list starts again at page 1."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def list_subscription_groups(self, *, cursor: ListCursor | None = None) -> Any:
        del cursor
        return await self._inner.list_subscription_groups(cursor=ListCursor())

    async def list_groups(self, resource_group: str, *, cursor: ListCursor | None = None) -> Any:
        del cursor
        return await self._inner.list_groups(resource_group, cursor=ListCursor())


async def one_run(
    emu: Emulator, manifests: Path, *, resume: bool, refuse: float, seed_n: int
) -> dict[str, Any]:
    emu.buckets.clear()  # a full bucket for each way
    emu.reset_counters()
    emu.request_log.clear()
    emu.faults.set(
        FaultSettings(rate=refuse, kinds=("429",), query_contains="$skipToken", retry_after=1, seed=seed_n)
    )
    reserve = azure.READ_RESERVE
    if not resume:
        azure.READ_RESERVE = 0
    gateway = gateway_for(emu)
    started = time.perf_counter()
    try:
        planned = await plan_pass(
            settings_for(manifests), gateway if resume else FromPageOne(gateway), environ={}
        )
    finally:
        azure.READ_RESERVE = reserve
        await gateway.close()
    elapsed = time.perf_counter() - started
    refused = emu.faults.injected + dict(emu.counters).get("throttled", 0)
    emu.faults.clear()
    plan = planned.plan
    sent = sum(1 for e in emu.request_log if e.method == "GET" and e.route != "containerGroup")
    return {
        "planned": sum(1 for c in plan.changes if c.action is Action.NOOP),
        "errors": len(plan.errors),
        "reads": sent,
        "plan_reads": plan.reads,
        "throttled": refused,
        "paced": gateway.reads_paced,
        "seconds": elapsed,
        "first_error": plan.errors[0].message[:100] if plan.errors else "",
    }


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-paging-") as tmp:
        root = Path(tmp)
        manifests = root / "manifests"
        write_manifests(manifests, args.groups, resource_groups(args.resource_groups))
        config_dir = root / "tls"
        from common import emulator_config

        async with Emulator(emulator_config(config_dir, page_size=args.page_size)) as emu:
            seeding = await seed(emu, settings_for(manifests))
            pages = -(-args.groups // args.page_size)
            print(
                f"{args.groups} groups in {args.resource_groups} resource groups (seeded in {seeding:.0f}s), "
                f"{args.page_size} per page: {pages} pages of one subscription-wide list; read bucket 250 "
                f"at 25/s; {args.refuse:.0%} of later pages refused with 429 (Retry-After 1 s)"
            )
            emu.config.read_bucket_size = 250
            emu.config.read_refill_rate = 25.0
            rows = []
            results = {}
            for label, resume in (("this release (resume + pacing)", True), ("from page 1, unpaced", False)):
                result = await one_run(emu, manifests, resume=resume, refuse=args.refuse, seed_n=args.seed)
                results[resume] = result
                rows.append(
                    [
                        label,
                        f"{result['planned']}/{args.groups}",
                        result["errors"],
                        result["reads"],
                        result["plan_reads"] if resume else "-",
                        result["throttled"],
                        result["paced"],
                        f"{result['seconds']:.1f}",
                    ]
                )
            print(
                table(
                    ["way", "planned", "errors", "reads sent", "plan says", "429s", "paced reads", "seconds"],
                    rows,
                )
            )
            for resume, result in results.items():
                if result["first_error"]:
                    print(f"{'resume' if resume else 'page 1'}: {result['first_error']}")
            ours, old = results[True], results[False]
            print(
                f"RATIOS planned_groups ours/old={ours['planned']}/{old['planned']} "
                f"reads_per_page ours={(ours['reads'] or 0) / pages:.2f} "
                f"seconds_per_1000_pages ours={ours['seconds'] * 1000 / pages:.1f}"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 groups, 5 per page (400 pages)")
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=10)
    parser.add_argument("--resource-groups", type=int, default=4)
    parser.add_argument("--refuse", type=float, default=0.02, help="share of later pages refused with 429")
    parser.add_argument("--seed", type=int, default=7)
    parsed = parser.parse_args()
    if parsed.quick:
        parsed.groups, parsed.page_size = 2_000, 5
    asyncio.run(main(parsed))
