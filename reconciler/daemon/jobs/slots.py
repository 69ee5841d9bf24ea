"""When a job's cron schedule is due: its slots as instants (epoch seconds), read in the job's time zone.

cronsim does the calendar and DST work (a 02:30 slot on a spring-forward night runs at 03:00, one on a
fall-back night runs once, as Debian cron does). These helpers add what the scheduler
(`reconciler.daemon.jobs.scheduler`) relies on beyond that: answers are strictly after (or at most) the
instant asked about, whatever cronsim makes of a start inside a repeated hour, and an expression that never
matches again answers None instead of raising. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from cronsim import CronSim

# cronsim may answer a slot at or before the start once around a DST change (it iterates wall time there);
# a few more steps always get past it. The bound only guards against a library bug looping forever.
_GUARD = 64


@lru_cache(maxsize=256)
def zone(name: str) -> tzinfo:
    """The time zone of a job; UTC is cronsim's own UTC, which takes the fast path without DST handling."""
    return UTC if name.upper() in ("UTC", "ETC/UTC") else ZoneInfo(name)


def next_slot(schedule: str, time_zone: str, after: float) -> float | None:
    """The first slot strictly after `after`; None when the expression matches no later time."""
    it = CronSim(schedule, datetime.fromtimestamp(after, zone(time_zone)))
    for _ in range(_GUARD):
        try:
            at = next(it).timestamp()
        except StopIteration:
            return None
        if at > after:
            return at
    return None


def latest_slot(schedule: str, time_zone: str, at: float) -> float | None:
    """The last slot at or before `at`; None when there is none in cronsim's reach (50 years)."""
    # Reverse iteration answers strictly before its start: start one second past `at`, on a whole second.
    start = datetime.fromtimestamp(math.floor(at) + 1, zone(time_zone))
    it = CronSim(schedule, start, reverse=True)
    for _ in range(_GUARD):
        try:
            found = next(it).timestamp()
        except StopIteration:
            return None
        if found <= at:
            return found
    return None


def latest_due(schedule: str, time_zone: str, cursor: float, now: float) -> float | None:
    """The most recent slot in (cursor, now], or None: the one slot a late scheduler runs, never a backlog.

    Forward iteration decides what a slot is (the same as `next_slot`, which the scheduler sleeps until);
    reverse iteration only jumps over a long backlog."""
    first = next_slot(schedule, time_zone, cursor)
    if first is None or first > now:
        return None
    hint = latest_slot(schedule, time_zone, now)
    slot = hint if hint is not None and hint > first else first
    for _ in range(_GUARD):
        following = next_slot(schedule, time_zone, slot)
        if following is None or following > now:
            return slot
        slot = following
    return slot


def slot_iso(at: float, time_zone: str) -> str:
    """A slot as people read it and the ledger keys it: local time with its UTC offset (an unambiguous
    instant, even in a repeated hour)."""
    return datetime.fromtimestamp(at, zone(time_zone)).isoformat()
