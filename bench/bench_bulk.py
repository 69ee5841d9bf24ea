"""Bulk apply: 300 changed groups with a 2 s provisioning delay, our default concurrency against one at a
time, then with ARM's write bucket and ACI's quota set low in the emulator (429s received, retries, time).

Run: `.venv/bin/python bench/bench_bulk.py [--quick] [--serial-sample 30] [--full-serial]`.
Each run is `plan_pass` + `apply_pass` (what `reconcile` does) against the in-process emulator, polling long-
running operations every 1 s as the CLI does for `--endpoint`. One at a time is linear in the number of groups
(each update waits for its provisioning), so by default it is measured on `--serial-sample` groups and scaled;
`--full-serial` measures all of them (about 10 minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from common import (
    Stopwatch,
    gateway_for,
    manifest_path,
    manifest_text,
    ratio,
    resource_groups,
    running_emulator,
    seed,
    settings_for,
    table,
    write_manifests,
    writes,
)

from reconciler.engine.reconcile import apply_pass, plan_pass
from reconciler.execution import ApplyOptions, ProgressEvent
from reconciler.model.outcome import Result
from reconciler.model.plan import Action

RGS = resource_groups(4)


def change_images(manifests: Path, indexes: range | list[int], tag: str) -> None:
    for i in indexes:
        rg = RGS[i % len(RGS)]
        manifest_path(manifests, i, rg).write_text(manifest_text(i, rg, image_tag=tag))


async def apply_once(emu: Any, manifests: Path, options: ApplyOptions) -> dict[str, Any]:
    settings = settings_for(manifests, apply=options)
    events: Counter[str] = Counter()

    def on_event(event: ProgressEvent) -> None:
        events[event.phase] += 1

    gateway = gateway_for(emu, poll_interval=1.0)
    try:
        emu.reset_counters()
        with Stopwatch() as sw:
            planned = await plan_pass(settings, gateway, environ={})
            outcome = await apply_pass(planned, settings, gateway, environ={}, on_event=on_event)
    finally:
        await gateway.close()
    counters = dict(emu.counters)
    applied = outcome.applied.outcomes if outcome.applied else ()
    return {
        "changed": sum(1 for c in planned.plan.changes if c.action is Action.UPDATE),
        "succeeded": sum(1 for o in applied if o.result is Result.SUCCEEDED and o.action is not Action.NOOP),
        "failed": sum(1 for o in applied if o.result is Result.FAILED),
        "seconds": sw.elapsed,
        "puts": counters.get("PUT containerGroup", 0),
        "writes": writes(counters),
        "429": counters.get("status 429", 0),
        "throttled": counters.get("throttled", 0),
        "quota_exceeded": counters.get("quota_exceeded", 0),
        "retries": events["retrying"],
        "waits": events["waiting"],
        "unconverged": len(outcome.unconverged),
        "errors": sorted({o.message[:120] for o in applied if o.result is Result.FAILED})[:3],
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 groups, 0.5 s delay, serial sample of 10")
    parser.add_argument("--groups", type=int, default=300)
    parser.add_argument("--delay", type=float, default=2.0, help="emulator provisioning delay (s)")
    parser.add_argument("--serial-sample", type=int, default=30)
    parser.add_argument("--full-serial", action="store_true")
    parser.add_argument("--write-bucket", type=int, default=50, help="low ARM write bucket size")
    parser.add_argument("--write-refill", type=float, default=2.0, help="low ARM write refill per second")
    parser.add_argument("--concurrency", type=int, default=20, help="a second `--concurrency` to run")
    parser.add_argument("--aci-quota-5m", type=int, default=320, help="low ACI PUT+DELETE quota per 5 min")
    args = parser.parse_args()
    n, delay, sample = args.groups, args.delay, args.serial_sample
    if args.quick:
        n, delay, sample = 60, 0.5, 10
        args.write_bucket, args.write_refill = 20, 1.0
    if args.full_serial:
        sample = n

    rows: list[tuple[Any, ...]] = []
    results: dict[str, dict[str, Any]] = {}
    default = ApplyOptions()
    print(
        f"Bulk apply: {n} groups change their image, {delay:.1f} s provisioning delay; "
        f"default concurrency {default.concurrency}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as tmp:
        work = Path(tmp)
        manifests = work / "m"
        write_manifests(manifests, n, RGS)

        async with running_emulator(work / "tls") as emu:
            seeding = await seed(emu, settings_for(manifests))
            emu.config.provisioning_delay = delay
            print(f"  seeded {n} groups in {seeding:.1f}s (not measured)")

            change_images(manifests, range(n), "2.0")
            results["ours"] = await apply_once(emu, manifests, default)
            print(f"  ours: {results['ours']['seconds']:.1f}s")

            change_images(manifests, range(n), "2.5")
            results["wider"] = await apply_once(emu, manifests, ApplyOptions(concurrency=args.concurrency))
            print(f"  ours --concurrency {args.concurrency}: {results['wider']['seconds']:.1f}s")

            change_images(manifests, range(sample), "3.0")
            results["serial"] = await apply_once(emu, manifests, ApplyOptions(concurrency=1))
            print(f"  one at a time ({sample} groups): {results['serial']['seconds']:.1f}s")

            # The limits are read per request; new values start fresh buckets and quota windows.
            emu.config.write_bucket_size = args.write_bucket
            emu.config.write_refill_rate = args.write_refill
            emu.config.aci_requests_per_5m = args.aci_quota_5m
            emu.config.aci_requests_per_1h = max(args.aci_quota_5m, 1800)
            change_images(manifests, range(n), "4.0")
            results["limited"] = await apply_once(emu, manifests, default)
            print(f"  ours under low limits: {results['limited']['seconds']:.1f}s")

    scale = n / max(1, results["serial"]["changed"])
    serial_total = results["serial"]["seconds"] * scale
    for label, key, note in (
        (f"ours, concurrency {default.concurrency} (default)", "ours", ""),
        (f"ours, --concurrency {args.concurrency}", "wider", ""),
        (
            "one at a time",
            "serial",
            f"measured on {results['serial']['changed']}, x{scale:.0f}" if scale != 1 else "",
        ),
        (
            f"ours, write bucket {args.write_bucket}@{args.write_refill:g}/s, ACI {args.aci_quota_5m}/5m",
            "limited",
            "",
        ),
    ):
        r = results[key]
        seconds = r["seconds"] * (scale if key == "serial" else 1)
        rows.append(
            (
                label,
                r["changed"],
                r["succeeded"],
                r["failed"],
                r["puts"],
                r["429"],
                r["retries"],
                seconds,
                note,
            )
        )
    print()
    print(table(["way", "changed", "ok", "failed", "PUTs", "429s", "retries", "wall s", "note"], rows))
    for key in ("ours", "wider", "serial", "limited"):
        for message in results[key]["errors"]:
            print(f"  {key} failure: {message}")
    print()
    print("target: bulk apply at least 10x faster than one at a time; under low limits every group converges")
    lim = results["limited"]
    print(
        f"RATIOS serial/ours={ratio(serial_total, results['ours']['seconds'])} "
        f"serial/ours_concurrency_{args.concurrency}={ratio(serial_total, results['wider']['seconds'])} "
        f"limited: 429s={lim['429']} retries={lim['retries']} failed={lim['failed']} "
        f"time={lim['seconds']:.0f}s (unlimited {results['ours']['seconds']:.0f}s)"
    )


if __name__ == "__main__":
    asyncio.run(main())
