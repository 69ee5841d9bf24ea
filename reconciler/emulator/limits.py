"""Throttling, quotas and fault injection of the emulator.

`server.py` consults these on every ARM request: a token bucket per subscription and kind (reads, writes,
deletes) as ARM's throttling works, which also gives the `x-ms-ratelimit-remaining-subscription-*`
headers; a sliding-window count of container-group writes per subscription as ACI's resource-request
quotas (`...-resource-requests-pt5m/-pt1h` headers); and `FaultInjector`, which tests and benchmarks set at
start or at run time (`emu.faults.set(...)` or `PUT /_emulator/faults`). Time is passed in, never read.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

FAULT_KINDS = frozenset(
    {
        "500",
        "503",
        "429",
        "reset",
        "reset_after",
        "slow",
        "provision_fail",
        "refuse_update",
        "refuse_update_property",
        "no_capacity",
    }
)
# Kinds that only mean something for a PUT (the refusals only for a PUT that updates an existing group).
PUT_ONLY_KINDS = frozenset({"provision_fail", "refuse_update", "refuse_update_property"})


class TokenBucket:
    """ARM's throttling: `size` tokens, refilled at `rate` per second; one request takes one token."""

    def __init__(self, size: int, rate: float, now: float) -> None:
        self.size = size
        self.rate = rate
        self.tokens = float(size)
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(float(self.size), self.tokens + (now - self.updated) * self.rate)
        self.updated = max(self.updated, now)

    def take(self, now: float) -> tuple[bool, int, int]:
        """(allowed, remaining tokens, seconds to wait before retrying when not allowed)."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True, int(self.tokens), 0
        wait = math.ceil((1.0 - self.tokens) / self.rate) if self.rate > 0 else 3600
        return False, 0, max(1, wait)


class WindowQuota:
    """At most `limit` events in any `window` seconds (ACI's per-subscription resource-request quotas)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.events: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self.events and self.events[0] <= now - self.window:
            self.events.popleft()

    def check(self, now: float) -> tuple[bool, int, int]:
        """(allowed, remaining after this one, seconds until a slot frees when not allowed)."""
        self._expire(now)
        if len(self.events) >= self.limit:
            return False, 0, max(1, math.ceil(self.events[0] + self.window - now))
        return True, self.limit - len(self.events) - 1, 0

    def record(self, now: float) -> None:
        self.events.append(now)


@dataclass(frozen=True)
class FaultSettings:
    """What to inject. `rate` is the chance per matching request; `count` caps how many are injected.

    kinds: "500", "503", "429" (answered before the request is processed), "reset" (the connection is
    dropped before processing), "reset_after" (processed, then the connection is dropped: the client
    never sees the answer), "slow" (answered after `slow_seconds`), "provision_fail" (a PUT is accepted
    but its provisioning ends Failed), "refuse_update" / "refuse_update_property" (a PUT that updates an
    existing group is refused with `InvalidContainerGroupUpdate`, in the generic or the per-property
    wording, whatever it changes: Azure deciding what no evidence decides; a PUT that creates is not
    affected, but still counts), "no_capacity" (a PUT is refused with 409 `ServiceUnavailable`: the region
    has no capacity for the group right now). `methods`, `path_contains` and `query_contains` narrow which
    requests match (`query_contains: "$skipToken"` picks the later pages of a list).
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    path_contains: str = ""
    query_contains: str = ""
    count: int | None = None
    retry_after: int = 0
    slow_seconds: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - FAULT_KINDS
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {sorted(FAULT_KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be between 0 and 1, got {self.rate}")

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kinds"] = list(self.kinds)
        data["methods"] = list(self.methods)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultSettings:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings {sorted(unknown)}; known: {sorted(known)}")
        values = dict(data)
        for name in ("kinds", "methods"):
            if name in values:
                values[name] = tuple(str(v).upper() if name == "methods" else str(v) for v in values[name])
        return cls(**values)


@dataclass
class FaultInjector:
    """The run-time fault knobs; `pick` decides per request which fault (if any) to inject."""

    settings: FaultSettings = field(default_factory=FaultSettings)
    injected: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def set(self, settings: FaultSettings | None = None, **changes: Any) -> FaultSettings:
        """Replace the settings (`set(FaultSettings(...))`) or change some (`set(rate=1, kinds=["503"])`)."""
        base = settings if settings is not None else self.settings
        if changes:
            for name in ("kinds", "methods"):
                if name in changes:
                    changes[name] = tuple(
                        str(v).upper() if name == "methods" else str(v) for v in changes[name]
                    )
            base = replace(base, **changes)
        self.settings = base
        self.injected = 0
        self._rng = random.Random(base.seed)
        return base

    def clear(self) -> None:
        self.set(FaultSettings())

    def pick(self, method: str, path: str, query: str = "") -> str | None:
        s = self.settings
        if s.rate <= 0.0 or not s.kinds:
            return None
        if s.count is not None and self.injected >= s.count:
            return None
        if s.methods and method.upper() not in s.methods:
            return None
        if s.path_contains and s.path_contains.lower() not in path.lower():
            return None
        if s.query_contains and s.query_contains.lower() not in query.lower():
            return None
        kinds = [k for k in s.kinds if k not in PUT_ONLY_KINDS or method.upper() == "PUT"]
        if not kinds or self._rng.random() >= s.rate:
            return None
        self.injected += 1
        return self._rng.choice(kinds)
