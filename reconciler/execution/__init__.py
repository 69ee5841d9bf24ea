"""Applies a Plan through the gateway: ordering, concurrency, LRO waits, retries and budgets; watches jobs.

Called by the engine. Public names: `apply_plan`, `ApplyOptions`, `ProgressEvent`, `QuotaBudget`,
`RateLimit` (see `reconciler.execution.executor` for the semantics), and `JobWatcher`, `Watch`
(one watcher per process follows every running job: `reconciler.execution.watch`).
"""

from reconciler.execution.executor import ApplyOptions, ProgressEvent, apply_plan, scrub
from reconciler.execution.ratelimit import (
    ACI_CREATE_LIMITS,
    ACI_DELETE_LIMITS,
    QuotaBudget,
    RateLimit,
    RateLimiter,
    TokenBucket,
)
from reconciler.execution.watch import JobWatcher, LogFollower, Watch, WatcherStoppedError

__all__ = [
    "ACI_CREATE_LIMITS",
    "ACI_DELETE_LIMITS",
    "ApplyOptions",
    "JobWatcher",
    "LogFollower",
    "ProgressEvent",
    "QuotaBudget",
    "RateLimit",
    "RateLimiter",
    "TokenBucket",
    "Watch",
    "WatcherStoppedError",
    "apply_plan",
    "scrub",
]
