"""Prometheus metrics of the daemon, in a registry of its own (so tests and embedders never collide).

The worker records passes, actions, drift and group states; the job scheduler (`reconciler.daemon.jobs`) the
runs of job templates; the gateway factory reports every Azure request through `on_request`;
`reconciler.daemon.http` serves `render()` at `/metrics`. Every name starts with `aci_reconciler_`. Labels
never carry secret values (actions, results, operations, status codes and job names only).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

PREFIX = "aci_reconciler_"
CONTENT_TYPE = CONTENT_TYPE_LATEST

_PASS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
_REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Jobs run from seconds (a migration) to hours (a nightly batch).
_JOB_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400)


class DaemonMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.pass_duration = Histogram(
            PREFIX + "pass_duration_seconds",
            "Duration of reconcile passes (plan, apply, verify).",
            ["result"],
            buckets=_PASS_BUCKETS,
            registry=r,
        )
        self.passes = Counter(PREFIX + "passes", "Reconcile passes run, by result.", ["result"], registry=r)
        self.triggers = Counter(
            PREFIX + "triggers", "Triggers received (before coalescing), by kind.", ["kind"], registry=r
        )
        self.actions = Counter(
            PREFIX + "actions",
            "Group actions applied, by action and result.",
            ["action", "result"],
            registry=r,
        )
        self.skipped = Counter(
            PREFIX + "changes_deferred",
            "Planned changes not applied this pass, by why (stalled, backoff, dry_run, not_pruned, standby).",
            ["why"],
            registry=r,
        )
        self.groups = Gauge(PREFIX + "groups", "Groups by state.", ["state"], registry=r)
        self.notifications = Counter(
            PREFIX + "notifications",
            "Events per receiver by what became of them: sent, failed (after retries or refused), dropped "
            "(the receiver's queue was full), deduplicated.",
            ["receiver", "result"],
            registry=r,
        )
        self.drift = Counter(
            PREFIX + "drift_detected",
            "Changes planned for groups whose manifest had not changed since they were applied (live drift).",
            ["action"],
            registry=r,
        )
        self.requests = Counter(
            PREFIX + "azure_requests",
            "Requests to Azure, by operation and HTTP status (or error class).",
            ["operation", "status"],
            registry=r,
        )
        self.request_duration = Histogram(
            PREFIX + "azure_request_duration_seconds",
            "Duration of requests to Azure, by operation.",
            ["operation"],
            buckets=_REQUEST_BUCKETS,
            registry=r,
        )
        self.throttled = Counter(
            PREFIX + "azure_throttled",
            "Requests Azure throttled (HTTP 429), by operation.",
            ["operation"],
            registry=r,
        )
        self.last_pass = Gauge(
            PREFIX + "last_pass_timestamp_seconds", "When the last pass finished (Unix time).", registry=r
        )
        self.last_success = Gauge(
            PREFIX + "last_successful_pass_timestamp_seconds",
            "When the last pass without errors finished (Unix time).",
            registry=r,
        )
        self.ready = Gauge(PREFIX + "ready", "1 once the first pass has finished.", registry=r)
        self.leader = Gauge(
            PREFIX + "leader",
            "1 while this replica holds a lease it may write under (--coordination); 0 on a standby.",
            registry=r,
        )
        self.shards_owned = Gauge(
            PREFIX + "shards_owned", "Shards whose lease this replica holds and may write under.", registry=r
        )
        self.job_runs = Counter(
            PREFIX + "job_runs",
            "Runs of job templates the daemon started or skipped, by job (resource-group/name) and result "
            "(succeeded, failed, timed_out, cancelled, error, skipped).",
            ["job", "result"],
            registry=r,
        )
        self.job_run_duration = Histogram(
            PREFIX + "job_run_duration_seconds",
            "Duration of finished job runs, by job.",
            ["job"],
            buckets=_JOB_BUCKETS,
            registry=r,
        )
        self.job_last_success = Gauge(
            PREFIX + "job_last_success_timestamp_seconds",
            "When the job's last successful run finished (Unix time).",
            ["job"],
            registry=r,
        )
        for state in ("Ready", "Reconciling", "Stalled"):
            self.groups.labels(state=state).set(0)

    def on_request(self, operation: str, status: str, seconds: float) -> None:
        """The gateway factory's hook: one call per HTTP request to Azure."""
        self.requests.labels(operation=operation, status=str(status)).inc()
        self.request_duration.labels(operation=operation).observe(max(0.0, seconds))
        if str(status) == "429":
            self.throttled.labels(operation=operation).inc()

    def set_groups(self, counts: Mapping[str, int]) -> None:
        for state, count in counts.items():
            self.groups.labels(state=state).set(count)

    def forget_job(self, job: str, results: Iterable[str]) -> None:
        """Drop a job's series once its template is gone, so that removed jobs do not linger as labels."""
        for result in results:
            with contextlib.suppress(KeyError):
                self.job_runs.remove(job, result)
        for metric in (self.job_run_duration, self.job_last_success):
            with contextlib.suppress(KeyError):
                metric.remove(job)

    def render(self) -> bytes:
        return generate_latest(self.registry)
