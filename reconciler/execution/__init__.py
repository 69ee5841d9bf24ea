"""Applies a Plan through the gateway: ordering, concurrency, LRO waits, retries and budgets.

Called by the engine. Public names: `apply_plan`, `ApplyOptions`, `ProgressEvent`, `QuotaBudget`,
`RateLimit` (see `reconciler.execution.executor` for the semantics).
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

__all__ = [
    "ACI_CREATE_LIMITS",
    "ACI_DELETE_LIMITS",
    "ApplyOptions",
    "ProgressEvent",
    "QuotaBudget",
    "RateLimit",
    "RateLimiter",
    "TokenBucket",
    "apply_plan",
    "scrub",
]
