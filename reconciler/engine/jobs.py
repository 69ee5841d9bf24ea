"""Running a job: bring its group up, stream its log, wait for the end, clean up (DESIGN.md section 12).

Called by the CLI's `reconcile run`, by the Python API (`reconciler.jobs`) and by the daemon's scheduler, all
with one `JobWatcher` per process (`reconciler.execution.watch`) that polls every running job within ARM's
read budget.

How a run brings its group up, from the same plan entry an apply would make (`planning.diff_group`), so
ownership, `failIfExists` and the replace rules are the apply's own:

- no group: create it (a PUT starts it);
- an identical group that has terminated (or was stopped): ACI's `start`, no delete and create (a PATCH of
  the tags first when only tags changed);
- a changed group: replace or update it, as an apply would;
- a run still active at the name: `concurrency` decides. Forbid refuses the new run, Replace stops and
  deletes the active one first, Allow runs the new one in a group of its own, `NAME-<suffix>`, tagged
  with the template's name so that applies see a run, not an orphan.

The log is streamed as it arrives, every line through the run's `SecretMask`. The group is deleted per `keep`
only after the whole log was read. A timeout stops the group (exit 124). Cancelling the run (a signal, the
daemon shutting down) stops it and, unless `keep: always`, deletes it, as Airflow's `on_kill` does, then
lets the cancellation through.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from reconciler.cloud.errors import GatewayError, NotFoundError
from reconciler.cloud.gateway import Gateway
from reconciler.cloud.retry import Sleep, call_with_retry
from reconciler.engine.reconcile import EngineSettings, load
from reconciler.execution import apply_plan
from reconciler.execution.watch import is_terminal
from reconciler.model.job import JobPolicy
from reconciler.model.jobrun import (
    EXIT_RECONCILER_ERROR,
    EXIT_TIMEOUT,
    ContainerExit,
    JobRequest,
    JobResult,
    RunResult,
)
from reconciler.model.mask import SecretMask
from reconciler.model.observed import ObservedGroup
from reconciler.model.plan import Action, Change, Plan
from reconciler.model.text import plain
from reconciler.planning import DesiredGroup, diff_group
from reconciler.planning.ownership import JOB_TAG
from reconciler.source import LoadResult

T = TypeVar("T")

# The last lines of each container's log a result keeps (status, ledger): enough to see why a run failed.
TAIL_LINES = 20
TAIL_LINE_CHARS = 400
# A stop or delete during cleanup gets this long, even after the run was cancelled.
CLEANUP_TIMEOUT_S = 300.0
# Reads of the instance view after a start, until it shows the new run (backing off to 5 s): about 2 minutes.
_FRESH_VIEW_TRIES = 30
# How long the watch may take to see a timed-out run stopped and read the rest of its log.
_AFTER_STOP_S = 60.0
_DOING = {"create": "creating", "replace": "replacing", "update": "updating"}


class Watch(Protocol):
    async def result(self) -> ObservedGroup | None: ...

    def refresh(self) -> None: ...

    def cancel(self) -> None: ...


class Watcher(Protocol):
    """What the runner needs of `reconciler.execution.watch.JobWatcher`."""

    def watch(
        self,
        resource_group: str,
        name: str,
        containers: Sequence[str],
        *,
        on_log: Callable[[str, str], None] | None,
        logs: bool = True,
        timestamps: bool = False,
    ) -> Watch: ...


class JobError(Exception):
    """The reconciler cannot run the job (exit 125); the message says why and what to do."""


@dataclass
class JobContext:
    """What every run of a process shares."""

    settings: EngineSettings
    gateway: Gateway
    watcher: Watcher
    environ: Mapping[str, str]
    # Told each new piece of log (whole lines, secrets masked): (container, text).
    on_log: Callable[[str, str], None] | None = None
    # Told what the runner is doing ("creating", "starting", ...), for people.
    on_status: Callable[[str], None] | None = None
    clock: Callable[[], float] = time.time
    sleep: Sleep = asyncio.sleep
    # Cancelling a run stops its group, and deletes it unless `keep: always`.
    cleanup_on_cancel: bool = True
    loaded: LoadResult | None = None
    suffix: Callable[[], str] = field(default=lambda: secrets.token_hex(3))


@dataclass
class _Run:
    """One run in progress: what the runner learnt so far."""

    request: JobRequest
    template: str
    resource_group: str
    group_name: str
    started_at: float
    mask: SecretMask
    order: tuple[str, ...]
    tails: dict[str, deque[str]] = field(default_factory=dict)
    launched_by: str = ""
    # Set before the first write to the run's group: from then on an interrupted run cleans it up.
    written: bool = False

    def remember(self, container: str, text: str) -> None:
        tail = self.tails.setdefault(container, deque(maxlen=TAIL_LINES))
        for line in text.splitlines():
            tail.append(line[:TAIL_LINE_CHARS])

    def log_tail(self) -> tuple[str, ...]:
        several = len([c for c in self.order if self.tails.get(c)]) > 1
        out: list[str] = []
        for name in self.order:
            out += [f"{name} | {line}" if several else line for line in self.tails.get(name, ())]
        return tuple(out[-TAIL_LINES * 2 :])


def find_job(loaded: LoadResult, request: JobRequest) -> DesiredGroup:
    """The manifest of the job `request` names; JobError when none or several match."""
    wanted = request.name.lower()
    found = [g for g in loaded.groups if g.manifest.name.lower() == wanted]
    if request.resource_group and len(found) > 1:
        # The resource group chooses among several of that name; it is also the manifests' default
        # (AZURE_RESOURCE_GROUP), so the only group of that name is run wherever it lives.
        rg = request.resource_group.lower()
        found = [g for g in found if g.manifest.resource_group.lower() == rg] or found
    if len(found) > 1:
        where = ", ".join(sorted(g.manifest.resource_group for g in found))
        raise JobError(
            f"{len(found)} manifests define a group named {plain(request.name)} (resource groups {where}): "
            "say which with --resource-group"
        )
    if not found:
        errors = [e for e in loaded.errors if request.name.lower() in e.message.lower()] or list(
            loaded.errors
        )
        hint = "; ".join(f"{plain(e.path)}:{e.line}: {e.message}" for e in errors[:3])
        raise JobError(
            f"no manifest defines a group named {plain(request.name)}"
            + (f" (manifests with errors: {hint})" if hint else "")
        )
    group = found[0]
    return DesiredGroup(manifest=group.manifest, source=str(group.source))


def _finish_times(observed: ObservedGroup) -> tuple[str, ...]:
    return tuple(
        str((view.get("currentState") or {}).get("finishTime", ""))
        for view in observed.container_views().values()
    )


def job_containers(desired: DesiredGroup) -> tuple[str, ...]:
    """The job's containers in manifest order, init containers first (they run first)."""
    props = desired.manifest.properties
    return tuple(c.name for c in (props.init_containers or ())) + tuple(c.name for c in props.containers)


def container_exits(observed: ObservedGroup | None, order: Sequence[str]) -> tuple[ContainerExit, ...]:
    """Each container's exit as the instance view tells it, init containers first, in manifest order."""
    views = observed.container_views() if observed is not None else {}
    out: list[ContainerExit] = []
    for name in order:
        view = views.get(name) or {}
        state = view.get("currentState") or {}
        code = state.get("exitCode") if str(state.get("state", "")).lower() == "terminated" else None
        out.append(
            ContainerExit(
                name=name,
                exit_code=int(code)
                if isinstance(code, int | float | str) and str(code).lstrip("-").isdigit()
                else None,
                restart_count=int(view.get("restartCount") or 0),
                detail=str(state.get("detailStatus") or ""),
            )
        )
    return tuple(out)


def job_exit_code(exits: Sequence[ContainerExit]) -> int | None:
    """0 when every container exited 0; the first non-zero code in manifest order; None when a container
    has no exit code (it never ran, or was stopped)."""
    for item in exits:
        if item.exit_code is None:
            return None
        if item.exit_code != 0:
            return item.exit_code
    return 0


class JobRunner:
    """Runs jobs for one process; `run` may be called concurrently (the daemon's Allow runs)."""

    def __init__(self, context: JobContext) -> None:
        self.ctx = context

    async def _retry(self, call: Callable[[], Awaitable[T]]) -> T:
        return await call_with_retry(call, policy=self.ctx.settings.retry, sleep=self.ctx.sleep)

    def _say(self, text: str) -> None:
        if self.ctx.on_status is not None:
            self.ctx.on_status(text)

    async def run(self, request: JobRequest) -> JobResult:
        """Run the job once. The job's own failure and the reconciler's (exit 125) are in the result; what
        is raised into the run (`asyncio.CancelledError`, an exception from a signal handler) goes on after
        the group was cleaned up."""
        started = self.ctx.clock()
        try:
            loaded = self.ctx.loaded
            if loaded is None:
                loaded = await asyncio.to_thread(load, self.ctx.settings, self.ctx.environ)
            desired = find_job(loaded, request)
            return await self._run(request, desired, loaded.revision, started)
        except JobError as exc:
            return self._failed(request, str(exc), started)
        except GatewayError as exc:
            return self._failed(request, f"Azure: {exc}", started)

    def _failed(
        self, request: JobRequest, message: str, started: float, *, group: str | None = None
    ) -> JobResult:
        return JobResult(
            name=request.name,
            resource_group=request.resource_group or "",
            group_name=group or request.name,
            result=RunResult.ERROR,
            exit_code=EXIT_RECONCILER_ERROR,
            trigger=request.trigger,
            started_at=started,
            finished_at=self.ctx.clock(),
            message=message,
            slot=request.slot,
        )

    async def _run(
        self, request: JobRequest, desired: DesiredGroup, revision: str, started: float
    ) -> JobResult:
        manifest = desired.manifest
        if (manifest.properties.restart_policy or "Always") == "Always":
            raise JobError(
                f"{plain(manifest.name)} is not a job: restartPolicy Always restarts its containers for "
                "ever; set properties.restartPolicy to Never or OnFailure"
            )
        policy = manifest.policy.job or JobPolicy()
        concurrency = request.concurrency or policy.concurrency
        rg = manifest.resource_group
        gateway = self.ctx.gateway
        observed = await self._retry(functools.partial(gateway.get_group, rg, manifest.name))
        group_name = manifest.name
        if observed is not None and not is_terminal(observed) and self._ours(desired, observed):
            state = observed.instance_state or observed.provisioning_state or "unknown"
            if concurrency == "Forbid":
                return JobResult(
                    name=manifest.name,
                    resource_group=rg,
                    group_name=group_name,
                    result=RunResult.SKIPPED,
                    exit_code=EXIT_RECONCILER_ERROR,
                    trigger=request.trigger,
                    started_at=started,
                    finished_at=self.ctx.clock(),
                    message=f"a run of {plain(manifest.name)} is still active (state {state}) and its "
                    "concurrency is Forbid: wait for it, or run with --concurrency Replace or Allow",
                    slot=request.slot,
                )
            if concurrency == "Replace":
                self._say(f"stopping the active run of {manifest.name} (concurrency Replace)")
                await self._retry(functools.partial(gateway.stop, rg, manifest.name))
                await self._retry(
                    functools.partial(gateway.delete, rg, manifest.name, timeout=self._lro_timeout)
                )
                observed = None
            else:
                group_name = f"{manifest.name[: 63 - 7]}-{self.ctx.suffix()}".replace("--", "-")
                observed = await self._retry(functools.partial(gateway.get_group, rg, group_name))
        run_manifest = (
            manifest if group_name == manifest.name else manifest.model_copy(update={"name": group_name})
        )
        run_desired = DesiredGroup(manifest=run_manifest, source=desired.source)
        run = _Run(
            request=request,
            template=manifest.name,
            resource_group=rg,
            group_name=group_name,
            started_at=started,
            mask=SecretMask(manifest.secret_values().values()),
            order=job_containers(desired),
        )
        try:
            run.launched_by = await self._launch(
                run,
                run_desired,
                observed,
                revision,
                template=None if group_name == manifest.name else manifest.name,
            )
            return await self._follow(run, policy)
        except JobError:
            raise  # refused before any write (a conflict), or reported with its cleanup done
        except BaseException:
            # Cut short while the group was being written or watched (cancelled, or an exception raised into
            # the task: Airflow's SIGTERM handler, a KeyboardInterrupt): it may be running either way. A
            # group nothing was written to yet is not ours to stop (it may be someone else's).
            if run.written:
                await asyncio.shield(self._cleanup_cancelled(run, policy))
            raise

    def _ours(self, desired: DesiredGroup, observed: ObservedGroup) -> bool:
        change = self._change(desired, observed, "")
        return change.action is not Action.CONFLICT

    @property
    def _lro_timeout(self) -> float:
        return self.ctx.settings.apply.lro_timeout

    def _change(self, desired: DesiredGroup, observed: ObservedGroup | None, revision: str) -> Change:
        settings = self.ctx.settings
        return diff_group(
            desired,
            observed,
            instance=settings.instance,
            revision=revision,
            secret_key=settings.secret_key,
            subscription=settings.subscription,
        )

    async def _launch(
        self,
        run: _Run,
        desired: DesiredGroup,
        observed: ObservedGroup | None,
        revision: str,
        *,
        template: str | None,
    ) -> str:
        """Bring the group up; returns how (create, start, replace, update). `template`: the job whose extra
        run (Allow) this group is, recorded in a tag."""
        change = self._change(desired, observed, revision)
        manifest = desired.manifest
        if template is not None:
            change = change.model_copy(update={"write_tags": {**change.write_tags, JOB_TAG: template}})
        if change.action is Action.CONFLICT:
            raise JobError(f"{manifest.resource_group}/{manifest.name} {change.reason}")
        if change.held:
            raise JobError(f"{manifest.resource_group}/{manifest.name}: not run, {change.held}")
        rg, name = manifest.resource_group, manifest.name
        run.written = True
        if change.action in (Action.NOOP, Action.TAGS) and observed is not None:
            if change.action is Action.TAGS:
                await self._retry(
                    functools.partial(self.ctx.gateway.patch_tags, rg, name, dict(change.write_tags))
                )
            self._say(f"starting {rg}/{name} again (its spec is unchanged since its last run)")
            await self._retry(functools.partial(self.ctx.gateway.start, rg, name, timeout=self._lro_timeout))
            await self._started_again(rg, name, observed)
            return "start"
        how = {Action.CREATE: "create", Action.REPLACE: "replace"}.get(change.action, "update")
        self._say(f"{_DOING[how]} {rg}/{name}")
        plan = Plan(revision=revision, instance=self.ctx.settings.instance, changes=(change,))
        applied = await apply_plan(
            plan, self.ctx.gateway, options=self.ctx.settings.apply, sleep=self.ctx.sleep
        )
        failed = applied.failed
        if failed:
            raise JobError(f"{rg}/{name}: {failed[0].message or failed[0].result.value}")
        return how

    async def _started_again(self, rg: str, name: str, before: ObservedGroup) -> None:
        """Wait until the instance view no longer shows the run before the start: the watch would take that
        one's end for this one's. ARM may answer the start's operation before the view moved on."""
        old = _finish_times(before)
        for attempt in range(_FRESH_VIEW_TRIES):
            now = await self._retry(functools.partial(self.ctx.gateway.get_group, rg, name))
            if now is None or not is_terminal(now) or _finish_times(now) != old:
                return
            await self.ctx.sleep(min(5.0, 0.5 * 2**attempt))
        raise JobError(f"{rg}/{name} was started, but Azure still shows its previous run as the latest")

    async def _follow(self, run: _Run, policy: JobPolicy) -> JobResult:
        request = run.request
        timeout = request.timeout_s if request.timeout_s is not None else policy.timeout
        mask = run.mask

        def on_log(container: str, text: str) -> None:
            masked = mask(text)
            run.remember(container, masked)
            if self.ctx.on_log is not None:
                self.ctx.on_log(container, masked)

        watch = self.ctx.watcher.watch(
            run.resource_group,
            run.group_name,
            run.order,
            on_log=on_log,
            logs=request.logs,
            timestamps=request.timestamps,
        )
        timed_out = False
        final: ObservedGroup | None = None
        try:
            remaining = None if timeout is None else max(0.0, timeout - (self.ctx.clock() - run.started_at))
            try:
                async with asyncio.timeout(remaining):
                    final = await watch.result()
            except TimeoutError:
                timed_out = True
                self._say(f"timed out after {timeout:g}s: stopping {run.resource_group}/{run.group_name}")
                await self._retry(
                    functools.partial(self.ctx.gateway.stop, run.resource_group, run.group_name)
                )
                # The watch goes on: it sees the stop and reads what the log still holds.
                watch.refresh()
                try:
                    async with asyncio.timeout(_AFTER_STOP_S):
                        final = await watch.result()
                except TimeoutError:
                    final = await self._retry(
                        functools.partial(self.ctx.gateway.get_group, run.resource_group, run.group_name)
                    )
        except GatewayError as exc:
            # Azure refused to show the group (authorisation, a bad request): it may still run, so it is
            # stopped and cleaned up like a failed run rather than left behind unwatched.
            await self._stop_after_error(run, policy)
            raise JobError(f"watching {run.resource_group}/{run.group_name}: {exc}") from exc
        finally:
            watch.cancel()
        if not request.logs:
            await self._read_tails(run)
        exits = container_exits(final, run.order)
        code = job_exit_code(exits)
        if timed_out:
            result, exit_code = RunResult.TIMED_OUT, EXIT_TIMEOUT
            message = f"timed out after {timeout:g}s; the group was stopped"
        elif final is None:
            result, exit_code = RunResult.ERROR, EXIT_RECONCILER_ERROR
            message = "the group disappeared while the job ran (deleted by someone else?)"
        elif code is None:
            result, exit_code = RunResult.FAILED, EXIT_RECONCILER_ERROR
            state = final.instance_state or final.provisioning_state or "unknown"
            message = f"the group ended {state} without an exit code from every container"
        else:
            result = RunResult.SUCCEEDED if code == 0 else RunResult.FAILED
            exit_code = code
            message = "" if code == 0 else f"exited {code}"
        keep = request.keep or policy.keep
        kept = keep == "always" or (keep == "on-failure" and result is not RunResult.SUCCEEDED)
        if not kept and (final is not None or timed_out):
            await self._delete(run)
        return JobResult(
            name=run.template,
            resource_group=run.resource_group,
            group_name=run.group_name,
            result=result,
            exit_code=exit_code,
            containers=exits,
            trigger=request.trigger,
            started_at=run.started_at,
            finished_at=self.ctx.clock(),
            launched_by=run.launched_by,
            kept=kept,
            log_tail=run.log_tail(),
            message=message,
            slot=request.slot,
        )

    async def _read_tails(self, run: _Run) -> None:
        """With streaming off the tail for status is still read, once, at the end."""
        for container in run.order:
            try:
                text = await self.ctx.gateway.logs(
                    run.resource_group, run.group_name, container, tail=TAIL_LINES
                )
            except GatewayError:
                continue
            run.remember(container, run.mask(text))

    async def _delete(self, run: _Run) -> None:
        self._say(f"deleting {run.resource_group}/{run.group_name}")
        await self._retry(
            functools.partial(
                self.ctx.gateway.delete, run.resource_group, run.group_name, timeout=self._lro_timeout
            )
        )

    async def _cleanup_cancelled(self, run: _Run, policy: JobPolicy) -> None:
        if self.ctx.cleanup_on_cancel:
            await self._stop_and_clean(run, delete=(run.request.keep or policy.keep) != "always")

    async def _stop_after_error(self, run: _Run, policy: JobPolicy) -> None:
        await self._stop_and_clean(run, delete=(run.request.keep or policy.keep) == "never")

    async def _stop_and_clean(self, run: _Run, *, delete: bool) -> None:
        """Stop the run's group and delete it when asked; a group already gone is fine."""
        try:
            async with asyncio.timeout(CLEANUP_TIMEOUT_S):
                self._say(f"stopping {run.resource_group}/{run.group_name}")
                try:
                    await self._retry(
                        functools.partial(self.ctx.gateway.stop, run.resource_group, run.group_name)
                    )
                except NotFoundError:
                    return
                if delete:
                    await self._delete(run)
        except (GatewayError, TimeoutError) as exc:
            self._say(f"could not clean up {run.resource_group}/{run.group_name}: {exc}")
