"""Steady state: writes (and container restarts) per pass over converged groups, ours against blind PUTs.

Run: `.venv/bin/python bench/bench_steady.py [--quick] [--passes 3]`.
Ours: `plan_pass` + `apply_pass` (what `reconcile` and each daemon pass run), plus one `reconcile` apply as a
subprocess. The blind-PUT way is the Airflow `AzureContainerInstancesOperator` with `fail_if_exists=False`: it
PUTs every group on every run and waits for it, and ACI restarts the containers of a group on any PUT, even an
identical one. Both send the same bodies to the same in-process emulator.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from common import (
    Stopwatch,
    arm_calls,
    gateway_for,
    ratio,
    resource_groups,
    run_cli,
    running_emulator,
    seed,
    settings_for,
    table,
    write_manifests,
    writes,
)

from reconciler.engine.reconcile import apply_pass, plan_pass
from reconciler.model.plan import Change


def restart_total(emu: Any, keys: list[tuple[str, str]]) -> int:
    total = 0
    for rg, name in keys:
        group = emu.get_group(rg, name) or {}
        for container in group.get("properties", {}).get("containers", []):
            view = container.get("properties", {}).get("instanceView") or {}
            total += int(view.get("restartCount") or 0)
    return total


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 groups instead of 1,000")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--parallelism", type=int, default=10, help="concurrent PUTs of the blind-PUT way")
    parser.add_argument("--latency", type=float, default=0.02, help="emulator latency per request (s)")
    args = parser.parse_args()
    n = 200 if args.quick else 1000

    rows: list[tuple[Any, ...]] = []
    with tempfile.TemporaryDirectory(prefix="bench-steady-") as tmp:
        work = Path(tmp)
        manifests = work / "m"
        write_manifests(manifests, n, resource_groups(4))
        settings = settings_for(manifests)
        async with running_emulator(work / "tls") as emu:
            seeding = await seed(emu, settings)
            emu.config.latency = args.latency
            print(f"Steady state over {n} converged groups (seeded in {seeding:.1f}s, not measured)")
            gateway = gateway_for(emu, poll_interval=0.0)
            try:
                planned = await plan_pass(settings, gateway, environ={})
                keys = [(c.resource_group, c.name) for c in planned.plan.changes]
                desired: list[Change] = list(planned.plan.changes)
                ours_writes: list[int] = []
                ours_restarts: list[int] = []
                for i in range(args.passes):
                    before = restart_total(emu, keys)
                    emu.reset_counters()
                    with Stopwatch() as sw:
                        planned = await plan_pass(settings, gateway, environ={})
                        await apply_pass(planned, settings, gateway, environ={})
                    c = dict(emu.counters)
                    ours_writes.append(writes(c))
                    ours_restarts.append(restart_total(emu, keys) - before)
                    rows.append(("ours", i + 1, arm_calls(c), writes(c), ours_restarts[-1], sw.elapsed))

                emu.reset_counters()
                before = restart_total(emu, keys)
                code, _, err, cli_s = await run_cli(emu, "-f", str(manifests), cwd=work)
                c = dict(emu.counters)
                ours_writes.append(writes(c))
                ours_restarts.append(restart_total(emu, keys) - before)
                rows.append(("ours: `reconcile` CLI", 1, arm_calls(c), writes(c), ours_restarts[-1], cli_s))
                if code != 0:
                    print(f"  (reconcile exited {code}: {err.strip()[-300:]})")

                bound = asyncio.Semaphore(args.parallelism)

                async def blind(change: Change) -> None:
                    assert change.desired is not None
                    body = change.desired.to_arm_body(reveal_secrets=True)
                    body["tags"] = dict(change.write_tags)
                    async with bound:
                        await gateway.create_or_update(change.resource_group, change.name, body, timeout=300)

                blind_writes: list[int] = []
                blind_restarts: list[int] = []
                for i in range(args.passes):
                    before = restart_total(emu, keys)
                    emu.reset_counters()
                    with Stopwatch() as sw:
                        async with asyncio.TaskGroup() as tasks:
                            for change in desired:
                                tasks.create_task(blind(change), name=f"blind:{change.name}")
                    c = dict(emu.counters)
                    blind_writes.append(writes(c))
                    blind_restarts.append(restart_total(emu, keys) - before)
                    rows.append(
                        (
                            "blind PUT (Airflow, fail_if_exists=False)",
                            i + 1,
                            arm_calls(c),
                            writes(c),
                            blind_restarts[-1],
                            sw.elapsed,
                        )
                    )
            finally:
                await gateway.close()

    print()
    print(table(["way", "pass", "ARM calls", "writes", "container restarts", "wall s"], rows))
    print()
    print("target: zero writes per converged pass (ours)")
    per_pass_ours = max(ours_writes)
    per_pass_blind = sum(blind_writes) / len(blind_writes)
    print(
        f"RATIOS writes_per_pass ours={per_pass_ours} blind_put={per_pass_blind:.0f} "
        f"restarts_per_pass ours={max(ours_restarts)} "
        f"blind_put={sum(blind_restarts) / len(blind_restarts):.0f} "
        f"writes_blind/ours={ratio(per_pass_blind, per_pass_ours)}"
    )


if __name__ == "__main__":
    asyncio.run(main())
