"""Composes the daemon's parts and runs them until shutdown: triggers, worker, HTTP server, heartbeat.

`Daemon.run()` restores the state book, starts the HTTP endpoints and the trigger sources (file watcher or git
poller, interval resync, retry timer), and runs the worker until `stop()` (SIGTERM/SIGINT in
`reconciler.daemon.cli`). Shutdown stops taking triggers, drops a pass that is still planning (it has written
nothing), lets one that is applying finish within the grace period, cancels it after that (the worker records
the unfinished groups), writes the state file and returns.

The job scheduler (`reconciler.daemon.jobs`) runs beside the worker: each pass hands it the job templates it
loaded, and it launches runs through `DaemonConfig.job_launcher` (None: it reports the next runs and starts
none). Its run ledger lives in the state book, so the one state file holds both. At shutdown the job runs in
flight get the same grace period as the pass, at the same time, and are cancelled after it.

Everything that waits takes its sleep, clock, randomness and file-event stream from `DaemonConfig` hooks so
tests drive it without a real clock. Called by `reconciler.daemon.cli.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from reconciler.cloud.coordination import CoordinationError, CoordinationStore
from reconciler.daemon.coordination.coordinator import CoordinationSettings, Coordinator
from reconciler.daemon.coordination.fence import LeaseTable
from reconciler.daemon.gitsource import GitError, GitSource, run_git_poller
from reconciler.daemon.http import DaemonView, build_app
from reconciler.daemon.httpserver import HttpLimits, raise_open_file_limit, serve
from reconciler.daemon.jobs import JobKey, JobLauncher, JobScheduler, JobTemplate
from reconciler.daemon.jobs.ledger import RunRecord
from reconciler.daemon.metrics import DaemonMetrics
from reconciler.daemon.notify import Event, EventKind, NotificationsConfig, Notifier
from reconciler.daemon.state import BackoffPolicy, StateBook, StateStore
from reconciler.daemon.triggers import (
    Coalescer,
    FileChanges,
    RetryTimer,
    Sleep,
    Trigger,
    TriggerKind,
    run_interval,
    watch_files,
    watchfiles_source,
)
from reconciler.daemon.ui.auth import UiSettings
from reconciler.daemon.ui.routes import Inspector
from reconciler.daemon.worker import PassEngine, Worker
from reconciler.model.jobrun import JobRequest, JobResult

log = structlog.get_logger("reconciler.daemon")

# manifests directory resolver, revision provider -> engine
EngineFactory = Callable[[Callable[[], Path] | None, Callable[[], str | None] | None], PassEngine]
# manifests directory resolver (None: the configured manifests) -> the job launcher, or None (jobs not run)
LauncherFactory = Callable[[Callable[[], Path] | None], JobLauncher | None]


@dataclass
class DaemonConfig:
    manifests: Path
    instance: str = "default"
    interval: float = 300.0
    jitter: float = 0.1
    debounce: float = 1.0
    listen: tuple[str, int] | None = ("127.0.0.1", 9440)
    git_url: str | None = None
    git_ref: str | None = None
    git_interval: float = 60.0
    git_dir: Path | None = None
    git_timeout: float = 120.0
    # Inside the checkout when git is used; `manifests` is then relative to its root.
    webhook_secret: bytes | None = None
    state_dir: Path | None = None
    grace_period: float = 30.0
    dry_run: bool = False
    once: bool = False
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    watch: bool = True
    # Injection points; the defaults are the real ones.
    sleep: Sleep = asyncio.sleep
    clock: Callable[[], float] = time.time
    monotonic: Callable[[], float] = time.monotonic
    rng: random.Random = field(default_factory=random.Random)
    file_changes: Callable[[Path, asyncio.Event], AsyncIterator[FileChanges]] | None = None
    # Runs one job run to its end. None: the `launcher_factory` given to `Daemon` makes it (the CLI's is
    # `reconciler.daemon.cli.job_launcher`); without either, job templates are reported and never run.
    job_launcher: JobLauncher | None = None
    # The longest the job scheduler sleeps before it reads the wall clock again.
    job_max_nap: float = 60.0
    # Replicas sharing the instance through a coordination store (`--coordination`); None: on its own.
    coordination: CoordinationSettings | None = None
    # Without coordination: the heartbeat tag that keeps a second daemon of the instance from starting
    # (`reconciler.daemon.duplicate`); the CLI runs it.
    allow_duplicate: bool = False
    heartbeat_resource_group: str | None = None
    heartbeat_interval: float = 30.0
    # Receivers of events (`--notifications FILE`, `--notify`); none: nothing is sent.
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    # How the notifier sends a request; None: aiohttp (tests give their own).
    notify_send: Any = None
    # At shutdown, how long queued notifications may still be sent (after the pass and job runs ended).
    notify_grace: float = 5.0
    # The status page: on/off/public, sign-in, refresh (`reconciler.daemon.ui.auth`).
    ui: UiSettings = field(default_factory=UiSettings)


class Daemon:
    def __init__(
        self,
        config: DaemonConfig,
        engine_factory: EngineFactory,
        *,
        metrics: DaemonMetrics | None = None,
        launcher_factory: LauncherFactory | None = None,
        coordination: tuple[CoordinationStore, LeaseTable] | None = None,
        lease_keeper_store: Callable[[], CoordinationStore] | None = None,
        inspector: Inspector | None = None,
    ) -> None:
        """`inspector`: reads a group's live side for its status page (the CLI's reads through the gateway).
        `coordination`: the store and the lease table (the Azure adapter's write guard) when
        `config.coordination` is set; `lease_keeper_store` opens the store the lease-renewing thread uses
        (see `reconciler.daemon.coordination.coordinator.LeaseKeeper`)."""
        self.config = config
        self.metrics = metrics or DaemonMetrics()
        self.book = StateBook(backoff=config.backoff, rng=config.rng)
        self.store = StateStore(config.state_dir) if config.state_dir is not None else None
        self.coalescer = Coalescer(on_fire=self._count_trigger)
        self.retry_timer = RetryTimer(self.coalescer, sleep=config.sleep, clock=config.clock)
        self.git: GitSource | None = None
        if config.git_url:
            git_dir = config.git_dir or ((config.state_dir or Path(".reconciler/daemon")) / "git")
            self.git = GitSource(config.git_url, git_dir, ref=config.git_ref, timeout=config.git_timeout)
        self.poke = asyncio.Event()
        self._stop = asyncio.Event()
        self._stopping = False
        self.fatal: str | None = None
        self.leases: LeaseTable | None = None
        self.coordinator: Coordinator | None = None
        if config.coordination is not None:
            if coordination is None:
                raise ValueError("config.coordination needs the coordination store and lease table")
            store, self.leases = coordination
            self.coordinator = Coordinator(
                store,
                self.leases,
                config.coordination,
                instance=config.instance,
                book=self.book,
                snapshot=self._snapshot,
                clock=config.clock,
                sleep=config.sleep,
                on_change=self._leadership_changed,
                on_fatal=self._fatal,
                keeper_store=lease_keeper_store,
                on_hook=self._hook_here,
            )
        self._tasks: list[asyncio.Task[Any]] = []
        self.notifier = Notifier(
            config.notifications,
            redact=mask_secrets,
            monotonic=config.monotonic,
            clock=config.clock,
            sleep=config.sleep,
            send=config.notify_send,
            on_result=lambda receiver, result: self.metrics.notifications.labels(
                receiver=receiver, result=result
            ).inc(),
            rng=config.rng,
        )
        notify = self.notifier.emit if self.notifier.enabled else None
        self.engine = engine_factory(self._manifests_resolver(), self._revision_provider())
        launcher = config.job_launcher
        if launcher is None and launcher_factory is not None:
            launcher = launcher_factory(self._manifests_resolver())
        if launcher is not None and self.coordinator is not None:
            launcher = self._ledger_first(launcher, self.coordinator)
        self.jobs = JobScheduler(
            self.book.jobs,
            launcher=launcher,
            metrics=self.metrics,
            clock=config.clock,
            sleep=config.sleep,
            save=self._write_state if self.store is not None else None,
            redact=mask_secrets,
            dry_run=config.dry_run,
            max_nap=config.job_max_nap,
            may_run=self._may_run if self.leases is not None else None,
            on_finished=self._job_finished if notify is not None else None,
        )
        self.worker = Worker(
            self.engine,
            self.coalescer,
            self.book,
            metrics=self.metrics,
            retry_timer=self.retry_timer,
            clock=config.clock,
            monotonic=config.monotonic,
            store=self.store,
            dry_run=config.dry_run,
            on_secrets=_register_secrets,
            on_jobs=self._on_jobs,
            sharing=self if self.coordinator is not None else None,
            notify=notify,
            instance=config.instance,
        )
        self.view = DaemonView(
            worker=self.worker,
            book=self.book,
            metrics=self.metrics,
            instance=config.instance,
            clock=config.clock,
            monotonic=config.monotonic,
            heartbeat=config.monotonic(),
            worker_alive=self._worker_alive,
            on_hook=self.hook,
            hook_secret=config.webhook_secret,
            git=self._git_status if self.git else None,
            jobs=self.jobs,
            coordination=self.coordinator,
            ui=config.ui,
            inspector=inspector,
        )
        self._worker_task: asyncio.Task[None] | None = None
        self._coordination_task: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self.bound: tuple[str, int] | None = None
        self.unfinished: list[str] = []

    # -- composition ------------------------------------------------------------------------------------

    def _manifests_resolver(self) -> Callable[[], Path] | None:
        git = self.git
        if git is None:
            return None
        sub = self.config.manifests
        return lambda: git.tree() / sub

    def _revision_provider(self) -> Callable[[], str | None] | None:
        git = self.git
        if git is None:
            return None
        return git.current_sha

    def _git_status(self) -> dict[str, Any]:
        assert self.git is not None  # only wired when git is configured
        return {
            "url": self.git.display_url,
            "ref": self.git.ref,
            "revision": self.git.current_sha(),
            "last_fetch_at": self.git.last_fetch_at,
            "last_error": self.git.last_error,
            "warning": self.git.warning,
        }

    def _on_jobs(
        self, templates: Sequence[JobTemplate], complete: bool, within: Callable[[str], bool] | None
    ) -> None:
        self.jobs.update(templates, complete=complete, within=within)

    def _job_finished(self, resource_group: str, name: str, run: RunRecord) -> None:
        ok = run.result == "succeeded"
        kind = EventKind.JOB_SUCCEEDED if ok else EventKind.JOB_FAILED
        exit_code = "" if run.exit_code is None else f" (exit code {run.exit_code})"
        self.notifier.emit(
            Event(
                kind=kind,
                instance=self.config.instance,
                at=self.config.clock(),
                summary=f"job {resource_group}/{name} {run.result}{exit_code}",
                severity="info" if ok else "error",
                resource_group=resource_group,
                name=name,
                detail={
                    "run": run.id,
                    "result": run.result,
                    "exit_code": run.exit_code,
                    "duration_s": None if run.duration_s is None else round(run.duration_s, 1),
                    "message": run.message[:500] if not ok else None,
                },
            )
        )

    def _write_state(self) -> None:
        """The job scheduler's write-ahead: raises OSError, so that a run the file does not record never
        starts. The replicas' shared copy is written before the run starts (`_ledger_first`)."""
        self.mark_dirty()
        if self.store is not None:
            self.store.save(self.book.to_json())

    # -- coordination (DESIGN section 13) -------------------------------------------------------------

    def _snapshot(self) -> dict[str, Any]:
        """The book as the replicas share it: the state file's content and the last pass."""
        last = self.worker.last_pass
        return {**self.book.to_json(), "last_pass": last.to_json() if last is not None else None}

    def refusal(self, resource_group: str) -> str | None:
        return self.leases.refusal(resource_group) if self.leases is not None else None

    def mark_dirty(self) -> None:
        if self.coordinator is not None:
            self.coordinator.mark_dirty()

    async def flush(self) -> None:
        if self.coordinator is None:
            return
        try:
            await self.coordinator.flush()
        except CoordinationError as err:
            log.warning("shared state book not written; the next tick tries again", error=str(err))

    def _may_run(self, key: JobKey) -> bool:
        assert self.leases is not None  # only wired with coordination
        return self.leases.writable(self.leases.shard_of(key[0]))

    @staticmethod
    def _ledger_first(launcher: JobLauncher, coordinator: Coordinator) -> JobLauncher:
        """Each run is recorded in its shard's shared book before it starts, so that a replica taking over
        the shard never runs the same slot again."""

        async def launch(request: JobRequest) -> JobResult:
            # Raises LedgerUnavailableError: the scheduler records the run as an error, never started.
            await coordinator.flush_for(request.resource_group or "")
            return await launcher(request)

        return launch

    def _leadership_gauges(self) -> None:
        if self.leases is not None:
            self.metrics.leader.set(1 if self.leases.leading else 0)
            self.metrics.shards_owned.set(len(self.leases.owned()))

    def _leadership_changed(self, why: str) -> None:
        self._leadership_gauges()
        if self.notifier.enabled and self.leases is not None:
            owned = self.leases.owned()
            self.notifier.emit(
                Event(
                    kind=EventKind.LEADERSHIP,
                    instance=self.config.instance,
                    at=self.config.clock(),
                    summary=f"replica {self.leases.replica}: {mask_secrets(why)}",
                    severity="warning" if not owned else "info",
                    detail={
                        "replica": self.leases.replica,
                        "shards_owned": ",".join(str(s) for s in sorted(owned)) or "none",
                        "leader": self.leases.leading,
                    },
                )
            )
        # A new shard is planned and applied at once; a lost one is planned as a standby from now on.
        self.coalescer.fire(Trigger(TriggerKind.LEADERSHIP, why, self.config.clock()))
        self.jobs.wake()

    def fatal_stop(self, message: str) -> None:
        """Stop because this daemon must not go on (it exits 1, saying why)."""
        self._fatal(message)

    def _fatal(self, message: str) -> None:
        if self.fatal is None:
            log.error("stopping: this replica cannot go on", error=message)
            self.fatal = message
        self.stop()

    def _worker_alive(self) -> bool:
        return self._worker_task is not None and not self._worker_task.done()

    def hook(self) -> None:
        """The webhook: fetch at once when git is configured, else run a pass; with coordination, the other
        replicas are told to do the same."""
        if self.coordinator is not None:
            self.coordinator.relay_hook()
        self._hook_here()

    def _hook_here(self) -> None:
        if self.git is not None:
            self.poke.set()
        else:
            self.coalescer.fire(Trigger(TriggerKind.WEBHOOK, "webhook", self.config.clock()))

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        return task

    # -- running ----------------------------------------------------------------------------------------

    async def start(self) -> None:
        config = self.config
        if self.store is not None:
            saved = self.store.load()
            if saved is not None:
                for item in self.book.restore(saved, now=config.clock()):
                    text = f"{item['resource_group']}/{item['name']} ({item['action']})"
                    self.unfinished.append(text)
                    log.warning(
                        "unfinished by the previous run; this run re-observes and converges",
                        resource_group=item["resource_group"],
                        name=item["name"],
                        action=item["action"],
                        revision=item["revision"],
                    )
        if config.listen is not None:
            await self._start_http(*config.listen)
        self.notifier.start()
        if self.coordinator is not None:
            # Before the first pass, so that it already knows what this replica may write.
            await self.coordinator.start()
            self._leadership_gauges()
            self._coordination_task = asyncio.create_task(self.coordinator.run(), name="daemon-coordination")
        self._spawn(self._heartbeat(), "daemon-heartbeat")
        self._worker_task = asyncio.create_task(self.worker.run(), name="daemon-worker")
        if config.once:
            # One pass applies the manifests; runs of job templates are the running daemon's business.
            self.coalescer.fire(Trigger(TriggerKind.STARTUP, "one pass (--once)", config.clock()))
            if self.git is not None:
                # One fetch first, so that the single pass sees the remote's commit.
                try:
                    await self.git.sync()
                except GitError as err:
                    log.error("git fetch failed", url=self.git.display_url, ref=self.git.ref, error=str(err))
            return
        if self.git is not None:
            self._spawn(
                run_git_poller(
                    self.git,
                    self.coalescer,
                    interval=config.git_interval,
                    sleep=config.sleep,
                    clock=config.clock,
                    poke=self.poke,
                ),
                "daemon-git-poller",
            )
        else:
            self.coalescer.fire(Trigger(TriggerKind.STARTUP, "daemon started", config.clock()))
            if config.watch:
                source = (config.file_changes or watchfiles_source)(config.manifests, self._stop)
                self._spawn(
                    watch_files(
                        self.coalescer,
                        config.manifests,
                        source,
                        debounce=config.debounce,
                        sleep=config.sleep,
                        clock=config.clock,
                    ),
                    "daemon-file-watcher",
                )
        self._spawn(self.jobs.run(), "daemon-job-scheduler")
        if config.interval > 0:
            self._spawn(
                run_interval(
                    self.coalescer,
                    config.interval,
                    jitter=config.jitter,
                    rng=config.rng,
                    sleep=config.sleep,
                    clock=config.clock,
                ),
                "daemon-interval",
            )

    def _count_trigger(self, trigger: Trigger) -> None:
        self.metrics.triggers.labels(kind=trigger.kind.value).inc()

    async def _start_http(self, host: str, port: int) -> None:
        limits = HttpLimits()
        raise_open_file_limit()
        runner, server, _ = await serve(
            build_app(self.view, body_timeout=limits.body_timeout), host, port, limits
        )
        self._runner, self._server = runner, server
        sockets = list(server.sockets)
        bound_port = sockets[0].getsockname()[1] if sockets else port
        self.bound = (host, int(bound_port))
        ui = self.config.ui
        log.info(
            "listening",
            url=f"http://{host}:{bound_port}",
            endpoints="/healthz /readyz /metrics /status" + (" / (status page)" if ui.enabled else ""),
        )
        if ui.refusal is not None:
            log.warning("status page not served", why=ui.refusal)

    async def _heartbeat(self) -> None:
        while True:
            self.view.heartbeat = self.config.monotonic()
            await self.config.sleep(1.0)

    async def wait(self) -> int:
        """Until stop() or (with --once) the single pass; then shut down. Returns the exit code."""
        assert self._worker_task is not None  # start() first
        if self.config.once:
            await self._wait_first_pass_or_stop()
            return await self.shutdown(once=True)
        stopper = asyncio.create_task(self._stop.wait(), name="daemon-stop-wait")
        try:
            await asyncio.wait({stopper, self._worker_task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopper
        if self._worker_task.done() and not self._stop.is_set():
            err = self._worker_task.exception()
            log.error("worker stopped unexpectedly", error=repr(err))
            await self.shutdown()
            return 1
        return await self.shutdown()

    async def _wait_first_pass_or_stop(self) -> None:
        done_wait = asyncio.create_task(self.worker.first_pass_done.wait(), name="daemon-once-wait")
        stop_wait = asyncio.create_task(self._stop.wait(), name="daemon-once-stop")
        try:
            await asyncio.wait({done_wait, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (done_wait, stop_wait):
                task.cancel()
            await asyncio.gather(done_wait, stop_wait, return_exceptions=True)

    def stop(self) -> None:
        """Begin an orderly shutdown (the first SIGTERM/SIGINT)."""
        if not self._stopping:
            log.info("shutting down", grace_period_s=self.config.grace_period)
        self._stopping = True
        self.view.shutting_down = True
        self.jobs.stop()
        self.worker.drain()
        self.coalescer.close()
        if self.coordinator is not None:
            self.coordinator.drain()
        self._stop.set()

    def save_now(self) -> None:
        """Write the state file at once (the second signal exits right after this)."""
        if self.store is not None:
            with contextlib.suppress(OSError):
                self.store.save(self.book.to_json())

    async def shutdown(self, *, once: bool = False) -> int:
        self.stop()
        # The job runs in flight get the grace period while the pass does, not after it.
        jobs_closing = asyncio.create_task(
            self.jobs.aclose(self.config.grace_period), name="daemon-job-runs-shutdown"
        )
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.retry_timer.aclose()
        code = 0
        worker = self._worker_task
        if worker is not None and not worker.done():
            if self.worker.current is not None and not self.worker.applying:
                # Still reading and planning: nothing to finish, and on a large fleet the plan takes long
                # enough to keep a standby from taking over (the leases are released only after it).
                log.info("dropping the pass in flight: it has not written anything yet")
                worker.cancel()
            elif self.worker.current is not None:
                log.info("waiting for the pass in flight", grace_period_s=self.config.grace_period)
            finished = await self._wait_with_grace(worker)
            if not finished:
                log.warning("grace period over; stopping the pass in flight")
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
                code = 0
        elif worker is not None and worker.done() and not worker.cancelled() and worker.exception():
            code = 1
        await self.retry_timer.aclose()
        await jobs_closing
        await self._close_coordination()
        await self.notifier.aclose(self.config.notify_grace)
        if self.fatal is not None:
            code = 1
        if once and self.worker.last_pass is not None and self.worker.last_pass.result != "ok":
            code = 1
        self.save_now()
        unfinished = [
            f"{s.resource_group}/{s.name} ({s.in_flight})" for s in self.book.groups.values() if s.in_flight
        ]
        if unfinished:
            log.warning("unfinished at shutdown; the next run finishes them", groups=unfinished)
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        log.info("stopped", exit_code=code)
        return code

    async def _close_coordination(self) -> None:
        """After the pass and the job runs ended (the leases were renewed meanwhile): write the shared book
        and give the leases back, so that a standby takes over at once."""
        task, self._coordination_task = self._coordination_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.coordinator is not None:
            await self.coordinator.close()
            self._leadership_gauges()

    async def _wait_with_grace(self, worker: asyncio.Task[None]) -> bool:
        timer = asyncio.ensure_future(self.config.sleep(self.config.grace_period))
        timer.set_name("daemon-grace-period")
        try:
            await asyncio.wait({worker, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        return worker.done()


def _register_secrets(values: Any) -> None:
    from reconciler.daemon.logging import REDACTOR

    REDACTOR.add(values)


def mask_secrets(text: str) -> str:
    """The log redactor's masking, for what job runs report (their log tail and messages) in /status."""
    from reconciler.daemon.logging import REDACTOR

    return REDACTOR.scrub(text)
