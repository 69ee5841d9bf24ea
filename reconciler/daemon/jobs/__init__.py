"""Jobs in the daemon: the scheduler of job templates (cron schedule, runOnChange) and its run ledger.

`JobScheduler` decides and launches runs through a `JobLauncher`; `JobLedger` is the part of the daemon's
state file that makes every slot run at most once and keeps each job's history. Composed by
`reconciler.daemon.runner`; see `reconciler.daemon.jobs.scheduler` for the rules.
"""

from reconciler.daemon.jobs.ledger import (
    INTERRUPTED,
    RUNNING,
    JobEntry,
    JobKey,
    JobLedger,
    RunRecord,
    entries_json,
    job_key,
    job_label,
)
from reconciler.daemon.jobs.scheduler import JobLauncher, JobScheduler, JobTemplate, policy_json

__all__ = [
    "INTERRUPTED",
    "RUNNING",
    "JobEntry",
    "JobKey",
    "JobLauncher",
    "JobLedger",
    "JobScheduler",
    "JobTemplate",
    "RunRecord",
    "entries_json",
    "job_key",
    "job_label",
    "policy_json",
]
