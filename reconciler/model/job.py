"""Ours: the `reconcile.job` block, which makes a manifest a job template (DESIGN.md section 12).

A job template is never started by a plain apply: `reconcile run NAME` runs it, and the daemon runs it on its
`schedule` (cron, in `timeZone`) and once per new spec with `runOnChange`. Parsed as part of
`reconciler.model.manifest.GroupManifest`; read by the engine's job runner and the daemon's scheduler. Pure
values and validation, no I/O.

Durations are a number of seconds or a string of units, as people write them in CronJobs and CI files:
`90`, `90s`, `5m`, `1h30m`, `2d`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, WithJsonSchema

from reconciler.model.aci import ArmModel, fail

_NUMBER = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(f"^(?:{_NUMBER}d)?(?:{_NUMBER}h)?(?:{_NUMBER}m)?(?:{_NUMBER}s)?$")
_UNITS = (86400.0, 3600.0, 60.0, 1.0)
# A year: longer is a typo (a deadline of `30d` is plausible, `3000d` is not).
MAX_DURATION_S = 366 * 86400.0
KEEP_CHOICES = ("always", "never", "on-failure")


def parse_duration(value: Any) -> float:
    """Seconds from `90`, `"90s"`, `"5m"`, `"1h30m"`, `"2d"`; raises ValueError with the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        text = str(value).strip().lower()
        match = _DURATION.fullmatch(text) if text else None
        if match is None or not any(match.groups()):
            try:
                seconds = float(text)
            except ValueError:
                raise ValueError(
                    f"{str(value)[:40]!r} is not a duration: write seconds (90) or units d, h, m, s "
                    "(90s, 5m, 1h30m, 2d)"
                ) from None
        else:
            seconds = sum(float(g) * unit for g, unit in zip(match.groups(), _UNITS, strict=True) if g)
    if not seconds > 0 or seconds > MAX_DURATION_S:
        raise ValueError(f"a duration must be more than 0 and at most 366 days, not {seconds:g} seconds")
    return seconds


def _duration(value: Any) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise fail("duration", str(exc)) from None


def _schedule(value: str) -> str:
    text = " ".join(value.split())
    if text.startswith("@"):
        raise fail(
            "cron",
            f"schedule {value[:60]!r}: write the five cron fields instead of a nickname "
            "(@hourly is '0 * * * *', @daily is '0 0 * * *')",
        )
    if len(text.split(" ")) != 5:
        raise fail(
            "cron",
            f"schedule {value[:60]!r} needs five fields: minute hour day-of-month month day-of-week "
            "(for example '*/15 * * * *' or '0 2 * * 1-5')",
        )
    try:
        CronSim(text, datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise fail("cron", f"schedule {value[:60]!r} is not a valid cron expression: {exc}") from None
    return text


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise fail(
            "time_zone",
            f"time zone {value[:60]!r} is unknown: use an IANA name such as 'UTC', 'Europe/Berlin' or "
            "'America/New_York'",
        ) from None
    return value


def _keep(value: Any) -> Any:
    if isinstance(value, str):
        folded = value.strip().lower().replace("_", "-")
        return "on-failure" if folded == "onfailure" else folded
    return value


def _title(value: Any) -> Any:
    return value.strip().capitalize() if isinstance(value, str) else value


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "exclusiveMinimum": 0},
                {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?[dhms]?)+\s*$"},
            ],
            "description": "seconds, or units d, h, m, s: 90, 90s, 5m, 1h30m, 2d",
        }
    ),
]
Keep = Annotated[Literal["always", "never", "on-failure"], BeforeValidator(_keep)]


class JobPolicy(ArmModel):
    """Ours: `reconcile.job`, which makes the group a job template: plain applies never start it."""

    model_config = ConfigDict(title="JobPolicy")

    schedule: Annotated[str, AfterValidator(_schedule)] | None = None
    """Cron expression of when the daemon runs the job (five fields, e.g. '0 2 * * *'); none: no schedule."""
    time_zone: Annotated[str, AfterValidator(_time_zone)] = "UTC"
    """IANA time zone the schedule is read in, e.g. Europe/Berlin."""
    run_on_change: bool = False
    """The daemon runs the job once for each new spec (like a migration), never again on a restart."""
    concurrency: Annotated[Literal["Forbid", "Replace", "Allow"], BeforeValidator(_title)] = "Forbid"
    """When a run is still active: Forbid skips the new one, Replace stops the active run first, Allow runs
    both (the extra run's group gets a suffixed name and is cleaned up after)."""
    starting_deadline: Duration | None = None
    """How late a scheduled run may still start (after a restart or a busy spell); none: a missed run always
    runs once."""
    timeout: Duration | None = None
    """Stop the run (exit 124) when it has not finished in this time; none: no limit."""
    keep: Keep = "never"
    """Delete the run's group after its log was read: never keeps none, on-failure keeps failed runs, always
    keeps every run."""
    history: int = Field(default=10, ge=1, le=1000)
    """How many runs the daemon keeps in its history (status, ledger)."""

    @property
    def triggered(self) -> bool:
        """True when the daemon starts runs of this job on its own."""
        return self.schedule is not None or self.run_on_change
