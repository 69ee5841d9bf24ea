"""Observation cost: ARM calls and wall time of a converged dry-run, ours (one subscription-wide list, paged)
against per-resource-group lists (`--scope RG,...`) and the per-group way (one GET per group, as Terraform's
refresh and the Airflow operator's existence check do).

Run: `.venv/bin/python bench/bench_observe.py [--quick] [--latency 0.02] [--parallelism 10]`.
Both ways run in this process against the same emulator (in its own process, as Azure is remote) with a
fixed per-request latency, through the same engine (load, plan): only how Azure is observed differs.
`reconcile --dry-run` is also run as a subprocess, as a user runs it, for its wall time including
interpreter start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from common import (
    Stopwatch,
    arm_calls,
    emulator_process,
    gateway_for,
    group_name,
    ratio,
    resource_groups,
    run_cli,
    seed,
    settings_for,
    table,
    write_manifests,
)

from reconciler.cli import tune_runtime
from reconciler.engine.observe import Scope
from reconciler.engine.reconcile import plan_pass
from reconciler.model.observed import ObservedGroup
from reconciler.model.plan import Action


class PerGroupGateway:
    """The per-group way: a GET for every group it knows of, `parallelism` at a time (Terraform's default
    -parallelism is 10; the Airflow operator checks one group per task). Everything else is delegated."""

    def __init__(self, inner: Any, names: dict[str, list[str]], parallelism: int) -> None:
        self._inner = inner
        self._names = names
        self._bound = asyncio.Semaphore(parallelism)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def list_groups(self, resource_group: str, *, cursor: Any = None) -> list[ObservedGroup]:
        async def one(name: str) -> ObservedGroup | None:
            async with self._bound:
                result: ObservedGroup | None = await self._inner.get_group(resource_group, name)
                return result

        found = await asyncio.gather(*(one(n) for n in self._names.get(resource_group.lower(), [])))
        return [g for g in found if g is not None]

    async def list_subscription_groups(self, *, cursor: Any = None) -> list[ObservedGroup]:
        found = await asyncio.gather(*(self.list_groups(rg) for rg in self._names))
        return [g for part in found for g in part]


async def measure(
    n: int,
    *,
    rg_count: int,
    latency: float,
    parallelism: int,
    work: Path,
    cli: bool,
    repeat: int,
    sequential: bool,
) -> dict[str, Any]:
    manifests = work / f"m{n}"
    rgs = resource_groups(rg_count)
    write_manifests(manifests, n, rgs)
    names: dict[str, list[str]] = defaultdict(list)
    for i in range(n):
        names[rgs[i % rg_count]].append(group_name(i))
    settings = settings_for(manifests)
    async with emulator_process(work / f"emu{n}") as emu:
        seeding = await seed(emu, settings)
        emu.set_config(latency=latency)
        page_size = int(emu.control("GET", "config")["page_size"])

        def ours_way(fresh: Any) -> Any:
            return fresh

        def per_group_way(fresh: Any) -> Any:
            return PerGroupGateway(fresh, names, parallelism)

        async def timed(way: Any, loaded: Any = None, how: Any = settings) -> tuple[float, int, Any]:
            """Best wall time of `repeat` dry-runs (the machine is shared), the ARM calls of one, its plan.
            Each run gets a gateway of its own, so nothing one run read is reused by the next (the adapter
            keeps list pages by their bytes): every run is as cold as a CLI run."""
            best, calls, result = float("inf"), 0, None
            for _ in range(repeat):
                emu.reset_counters()
                fresh = gateway_for(emu)
                try:
                    with Stopwatch() as sw:
                        result = await plan_pass(how, way(fresh), environ={}, loaded=loaded)
                finally:
                    await fresh.close()
                calls = arm_calls(emu.counters)
                best = min(best, sw.elapsed)
            return best, calls, result

        ours_s, ours_calls, ours = await timed(ours_way)
        ours_observe_s, _, _ = await timed(ours_way, ours.load)
        # The same engine told to list each resource group (a principal that may read only those).
        per_rg = dataclasses.replace(settings, scope=Scope.parse([",".join(rgs)]))
        rg_s, rg_calls, by_rg = await timed(ours_way, how=per_rg)
        rg_observe_s, _, _ = await timed(ours_way, ours.load, how=per_rg)
        base_s, base_calls, base = await timed(per_group_way)
        base_observe_s, _, _ = await timed(per_group_way, ours.load)
        seq_s = float("nan")
        if sequential:
            # The Airflow operator's way: one existence check after the other (measured once).
            emu.reset_counters()
            gateway = gateway_for(emu)
            try:
                with Stopwatch() as sw:
                    one_at_a_time: Any = PerGroupGateway(gateway, names, 1)  # duck-typed Gateway
                    await plan_pass(settings, one_at_a_time, environ={})
            finally:
                await gateway.close()
            seq_s = sw.elapsed

        cli_time = float("nan")
        cli_calls = 0
        if cli:
            emu.reset_counters()
            code, out, err, cli_time = await run_cli(
                emu, "--dry-run", "--detailed-exitcode", "-f", str(manifests), cwd=work
            )
            cli_calls = arm_calls(emu.counters)
            if code != 0:
                print(f"  (reconcile --dry-run exited {code}: {err.strip()[-300:] or out.strip()[-300:]})")

    for label, planned in (("ours", ours), ("per-rg", by_rg), ("per-group", base)):
        actions = {c.action for c in planned.plan.changes}
        if actions != {Action.NOOP}:
            print(f"  warning: {label} plan at N={n} is not all no-op: {sorted(a.value for a in actions)}")
    return {
        "n": n,
        "page_size": page_size,
        "seed_s": seeding,
        "ours_calls": ours_calls,
        "ours_s": ours_s,
        "ours_observe_s": ours_observe_s,
        "rg_calls": rg_calls,
        "rg_s": rg_s,
        "rg_observe_s": rg_observe_s,
        "rg_count": rg_count,
        "cli_s": cli_time,
        "cli_calls": cli_calls,
        "base_calls": base_calls,
        "base_s": base_s,
        "base_observe_s": base_observe_s,
        "seq_s": seq_s,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 200 / 1,000 instead of 1k / 5k / 10k")
    parser.add_argument("--latency", type=float, default=0.02, help="emulator latency per request (s)")
    parser.add_argument("--parallelism", type=int, default=10, help="concurrent GETs of the per-group way")
    parser.add_argument("--resource-groups", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=2, help="best of this many runs per measurement")
    parser.add_argument("--no-sequential", action="store_true", help="skip the one-GET-at-a-time way")
    parser.add_argument("--no-cli", action="store_true", help="skip the `reconcile --dry-run` subprocess")
    args = parser.parse_args()
    sizes = [200, 1000] if args.quick else [1000, 5000, 10000]

    print(
        f"Observation cost of a converged dry-run: {args.resource_groups} resource groups, "
        f"{args.latency * 1000:.0f} ms per ARM request, per-group way with parallelism {args.parallelism}"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-observe-") as tmp:
        for n in sizes:
            started = time.perf_counter()
            r = await measure(
                n,
                rg_count=args.resource_groups,
                latency=args.latency,
                parallelism=args.parallelism,
                work=Path(tmp),
                cli=not args.no_cli,
                repeat=args.repeat,
                sequential=n == sizes[0] and not args.no_sequential,
            )
            rows.append(r)
            print(
                f"  N={n}: done in {time.perf_counter() - started:.0f}s "
                f"(seeding {r['seed_s']:.1f}s, not measured)"
            )

    print()
    print(
        table(
            [
                "N",
                "ours calls",
                "per-RG lists calls",
                "ours s",
                "per-RG lists s",
                "ours s (no load)",
                "per-RG lists s (no load)",
                "CLI --dry-run s",
                "per-group calls",
                "per-group s",
                "per-group s (no load)",
                "one-at-a-time s",
                "calls ratio",
                "time ratio",
            ],
            [
                (
                    r["n"],
                    r["ours_calls"],
                    r["rg_calls"],
                    r["ours_s"],
                    r["rg_s"],
                    r["ours_observe_s"],
                    r["rg_observe_s"],
                    r["cli_s"],
                    r["base_calls"],
                    r["base_s"],
                    r["base_observe_s"],
                    r["seq_s"],
                    ratio(r["base_calls"], r["ours_calls"]),
                    ratio(r["base_s"], r["ours_s"]),
                )
                for r in rows
            ],
        )
    )
    first, last = rows[0], rows[-1]
    # The time target is named at 1,000 groups (the smallest N of a full run).
    at = next((r for r in rows if r["n"] == 1000), first)
    print()
    print(
        "targets at 1,000 groups: calls ratio >= 50x, time ratio >= 10x; "
        "growth of ours should be ~linear in N; the subscription-wide list never more calls than per-RG lists"
    )
    for r in rows:
        print(
            f"SCOPE N={r['n']} resource_groups={r['rg_count']} subscription_list_calls={r['ours_calls']} "
            f"per_rg_list_calls={r['rg_calls']}"
        )
    print(
        f"RATIOS N={at['n']} calls_per_group_way/ours={ratio(at['base_calls'], at['ours_calls'])} "
        f"time={ratio(at['base_s'], at['ours_s'])} "
        f"time_no_load={ratio(at['base_observe_s'], at['ours_observe_s'])} "
        f"time_no_load_per_rg_lists={ratio(at['base_observe_s'], at['rg_observe_s'])} "
        f"time_vs_one_at_a_time={ratio(first['seq_s'], first['ours_s'])} "
        f"growth_{first['n']}_to_{last['n']}={ratio(last['ours_s'], first['ours_s'])} "
        f"(linear={ratio(last['n'], first['n'])})"
    )
    # Requests one after the other at 20 ms each are the floor of every way's wall time: the per-group
    # way's rounds of `parallelism` GETs, the subscription-wide chain's pages, the per-RG lists' longest
    # chain (they run side by side). With a list page costing what a GET costs (as in the emulator), their
    # ratio is the most a way can be faster with no CPU of ours at all.
    rounds = math.ceil(at["n"] / args.parallelism)
    chain = math.ceil(at["n"] / at["page_size"])
    per_rg_chain = math.ceil(math.ceil(at["n"] / args.resource_groups) / at["page_size"])
    print(
        f"BOUND N={at['n']} sequential_requests per_group_way={rounds} subscription_list={chain} "
        f"per_rg_lists={per_rg_chain}: at zero CPU the subscription-wide list is at most "
        f"{ratio(rounds, chain)} faster, per-RG lists at most {ratio(rounds, per_rg_chain)}"
    )


if __name__ == "__main__":
    tune_runtime()  # as `reconcile` runs: both ways' loads overlap their reads
    asyncio.run(main())
