"""Who wrote to Azure, read from the emulator's request log: the write guard puts the replica and its lease
tenure in each write's User-Agent. Shared by the replica e2e tests and the seeded failure schedules."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping
from typing import Any

WRITER = re.compile(r"aci-reconciler-replica/(\S+) lease/(\S+)")


def labelled_writes(entries: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The non-GET entries, each with `replica` and `tenure` (None when the User-Agent names none)."""
    found = []
    for entry in entries:
        if entry["method"] == "GET":
            continue
        match = WRITER.search(entry.get("user_agent", ""))
        found.append(
            {
                **entry,
                "replica": match.group(1) if match else None,
                "tenure": match.group(2) if match else None,
            }
        )
    return found


def assert_one_writer_at_a_time(writes: Iterable[Mapping[str, Any]]) -> int:
    """Each lease tenure's writes span an interval (received to answered); no two tenures of different
    replicas overlap. Returns how many tenures wrote."""
    spans: dict[tuple[str, str], tuple[float, float]] = {}
    for write in writes:
        assert write["replica"] is not None, f"a write without a lease label: {write}"
        start, end = write["time"] - write["duration"], write["time"]
        key = (write["replica"], write["tenure"])
        old = spans.get(key, (start, end))
        spans[key] = (min(old[0], start), max(old[1], end))
    ordered = sorted(spans.items(), key=lambda kv: kv[1][0])
    for (a, (_, a_end)), (b, (b_start, _)) in itertools.pairwise(ordered):
        if a[0] != b[0]:
            assert a_end <= b_start, f"{a} still wrote at {a_end} after {b} began at {b_start}"
    return len(spans)
