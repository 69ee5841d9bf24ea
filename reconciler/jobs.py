"""The Python API for jobs: run a manifest's job from an Airflow task, a Prefect flow or any program.

```python
from reconciler.jobs import Target, run_job

run = run_job("manifests/nightly-report.yaml", target=Target.azure("<subscription id>"), timeout="30m",
              on_log=lambda container, text: print(text, end=""))
run.exit_code   # 0 when every container exited 0; 124 timed out; 125 the reconciler could not run it
run.logs        # {container: its whole log, secrets masked}
```

It is `reconcile run` without the command line: the same runner (`reconciler.engine.jobs`), the same manifest
validation, ownership and `failIfExists`, the same `keep`, timeout and cleanup, and one log and state watcher
per process, shared by every run in flight. `run_job` blocks (it runs its own event loop); `arun_job` is the
coroutine, for callers that have a loop. Cancelling `arun_job` (an Airflow `on_kill`, a Prefect cancellation)
stops the run's group and deletes it unless `keep="always"`, then re-raises the cancellation.

A manifest is a path (a file or a directory of manifests, `name` choosing among several) or a dict holding
one manifest document, exactly as a YAML file would. Composed on top of the CLI's targets
(`reconciler.cli.open_gateway`): nothing else in the package imports this module.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.engine.jobs import JobError
from reconciler.model.job import parse_duration
from reconciler.model.jobrun import (
    EXIT_RECONCILER_ERROR,
    EXIT_TIMEOUT,
    Concurrency,
    JobRequest,
    JobResult,
    Keep,
    RunResult,
)

__all__ = [
    "EXIT_RECONCILER_ERROR",
    "EXIT_TIMEOUT",
    "JobError",
    "JobFailed",
    "JobRun",
    "RunResult",
    "Target",
    "arun_job",
    "run_job",
]

LogCallback = Callable[[str, str], None]


@dataclass(frozen=True)
class Target:
    """Where the job runs: Azure, another ARM endpoint, or the embedded emulator."""

    kind: str  # "azure" | "endpoint" | "local"
    subscription: str = ""
    url: str | None = None  # of an endpoint
    ca_cert: str | None = None
    local_dir: str | None = None
    credential: str = "default"

    @classmethod
    def azure(cls, subscription: str) -> Target:
        """Azure, with credentials from DefaultAzureCredential (a managed identity, the Azure CLI, ...)."""
        return cls(kind="azure", subscription=subscription)

    @classmethod
    def endpoint(cls, url: str, *, ca_cert: str | None = None, credential: str = "static") -> Target:
        """Another ARM endpoint, such as a `reconcile emulator` started elsewhere."""
        return cls(kind="endpoint", url=url, ca_cert=ca_cert, credential=credential)

    @classmethod
    def local(cls, directory: str | os.PathLike[str] = ".reconciler") -> Target:
        """The embedded emulator, in this process, its state under `directory` (locked while in use)."""
        return cls(kind="local", local_dir=os.fspath(directory))


@dataclass(frozen=True)
class JobRun:
    """What a run came to: the runner's `JobResult` and each container's whole log (secrets masked)."""

    result: JobResult
    logs: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return self.result.exit_code

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def exit_codes(self) -> dict[str, int | None]:
        return {c.name: c.exit_code for c in self.result.containers}


class JobFailed(Exception):
    """Raised by `run_job(..., check=True)` when the run did not succeed; `.run` holds what it came to."""

    def __init__(self, run: JobRun) -> None:
        result = run.result
        super().__init__(
            f"job {result.name} {result.result.value} with exit code {result.exit_code}"
            + (f": {result.message}" if result.message else "")
        )
        self.run = run


def _args(target: Target, manifests: Path, resource_group: str | None, instance: str) -> argparse.Namespace:
    """The options the CLI's composition functions read, as `reconcile run` would have parsed them."""
    return argparse.Namespace(
        manifest_roots=[manifests],
        env_allow=None,
        resource_group=resource_group,
        location=None,
        instance=instance,
        subscription=target.subscription or None,
        endpoint=target.url,
        ca_cert=Path(target.ca_cert) if target.ca_cert else None,
        credential=target.credential,
        local=Path(target.local_dir) if target.local_dir is not None else None,
        poll_interval=None,
        lro_timeout=900.0,
        no_wait=False,
    )


async def arun_job(
    manifest: str | os.PathLike[str] | Mapping[str, Any],
    *,
    target: Target,
    name: str | None = None,
    resource_group: str | None = None,
    on_log: LogCallback | None = None,
    # The job's time limit (the runner stops its group), not a deadline of this call: cancel for that.
    timeout: float | str | None = None,  # noqa: ASYNC109
    keep: Keep | None = None,
    concurrency: Concurrency | None = None,
    instance: str = "default",
    environ: Mapping[str, str] | None = None,
) -> JobRun:
    """Run the job and return what it came to; see the module's docstring. `environ` (default: this
    process's) is where `secureValueFrom: {env: ...}` and the reconciler's settings are read from.

    Raises `JobError` before touching Azure when the manifests define no such job (or several), and
    ValueError when `name` is needed to choose. Everything after that is in the returned run: a failure of
    the reconciler itself is exit code 125 with its message in `run.result.message`."""
    from reconciler import cli
    from reconciler.engine.jobs import JobContext, JobRunner, find_job
    from reconciler.engine.reconcile import load
    from reconciler.execution.watch import watching

    env = dict(os.environ if environ is None else environ)
    seconds = parse_duration(timeout) if timeout is not None else None
    with tempfile.TemporaryDirectory(prefix="aci-job-") as scratch:
        if isinstance(manifest, Mapping):
            path = Path(scratch) / "job.json"
            path.write_text(json.dumps(dict(manifest)), encoding="utf-8")
            if name is None:
                name = str(manifest.get("name", ""))
        else:
            path = Path(manifest)
        args = _args(target, path, resource_group, instance)
        choice = cli.choose_target(args)
        settings = cli.engine_settings(args, choice, env)
        loaded = await asyncio.to_thread(load, settings, env)
        if name is None:
            names = sorted({g.manifest.name for g in loaded.groups if g.manifest.policy.job is not None})
            names = names or sorted({g.manifest.name for g in loaded.groups})
            if len(names) != 1:
                raise ValueError(f"{path} defines {len(names)} groups ({', '.join(names)}): pass name=")
            name = names[0]
        request = JobRequest(
            name=name,
            resource_group=resource_group,
            keep=keep,
            timeout_s=seconds,
            concurrency=concurrency,
        )
        find_job(loaded, request)  # a clear JobError before anything connects
        logs: dict[str, list[str]] = {}

        def collect(container: str, text: str) -> None:
            logs.setdefault(container, []).append(text)
            if on_log is not None:
                on_log(container, text)

        with cli.holding_target(choice, args):
            async with cli.open_gateway(choice) as gateway, watching(gateway) as watcher:
                context = JobContext(
                    settings=settings,
                    gateway=gateway,
                    watcher=watcher,
                    environ=env,
                    on_log=collect,
                    loaded=loaded,
                    clock=time.time,
                )
                result = await JobRunner(context).run(request)
    return JobRun(result=result, logs={c: "".join(parts) for c, parts in logs.items()})


def run_job(
    manifest: str | os.PathLike[str] | Mapping[str, Any],
    *,
    target: Target,
    check: bool = False,
    **options: Any,
) -> JobRun:
    """`arun_job` in an event loop of its own, for synchronous callers (an Airflow PythonOperator task).
    `check=True` raises `JobFailed` unless the job succeeded."""
    run = asyncio.run(arun_job(manifest, target=target, **options))
    if check and not run.ok:
        raise JobFailed(run)
    return run
