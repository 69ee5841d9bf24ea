"""One watcher per process for every running job: instance-view GETs and log reads within ARM's read budget.

Callers: the job runner behind `reconcile run`, the Python API (`reconciler.jobs`) and the daemon's scheduled
runs register each group they started with `JobWatcher.watch(...)` and await `Watch.result()`. The owner of
the process (the CLI command, the daemon) runs `JobWatcher.run()` as one named task and cancels it at
shutdown. Time is injected (`clock`, `sleep`), so tests and the benchmark (`bench/jobs_watch.py`) never wait.

How reads are spent (DESIGN.md section 12, issue 12 "Polling within ARM's budget"):

- Every read of every job draws a token from one bucket: `reads_per_second` (default 8, under the 10 a
  second the issue allows) with a burst of `burst` (default 1), so in any second at most
  `reads_per_second + burst` reads start, whatever the number of jobs.
- Each read has a due time; when a token is there, the read that is most overdue (earliest due time) goes
  first. When more reads are due than the budget allows, all of them are late by about the same time, so
  the watcher slows down evenly instead of starving anyone.
- The instance view (one GET of the group) is read first at once, then at an interval that starts at
  `state_interval[0]`, grows by half each time nothing changed, and is reset when anything changed (a
  container started, ended or restarted). Its ceiling grows with the number of jobs (GETs take about a
  quarter of the budget at most) from 5 s when alone to `state_interval[1]`.
- A container's log is read only once its container started (not while the group is pulling images). Its
  interval is the longer of two: its own backoff (`log_interval[0]` after a read that found new text,
  doubling while it is quiet, up to 5 s) and its share of the budget. The budget left to log reads (what
  GETs do not take at their ceilings) is split among the logs in proportion to the square root of each
  one's line rate (lines seen over the last minute or so; the split of a fixed number of reads that keeps
  the mean delay of a line least), so a chatty log is read every few seconds and a quiet one rarely, up
  to `log_interval[1]`. Alone, a job's log is read a second after it grew. A container seen terminated
  gets one more read of its log and none after, until it runs again (an init container that finished, a
  restart under `OnFailure`).
- Terminal: instance state `Succeeded`, `Failed` or `Stopped`, provisioning state `Failed`, or the group
  gone (GET 404: the result is None). After a GET saw the terminal state, every container's log is read
  once more (a read that started after that GET), the held partial lines are delivered, and only then is
  the result set.
- Errors: a retryable error never fails a watch. With a Retry-After (ARM's 429) every read of the watcher
  waits it out, because ARM throttles the subscription, not one group; without one, that read backs off
  exponentially (1 s doubling to `retry_cap`). A stalled error fails that watch's result with the error; a
  404 on a log asks the instance view at once (the group may have gone); after the terminal state it ends
  that container's log as it stands.

The log diff (`LogFollower`): the logs API returns the container's whole current log, so each read is
compared with what was seen before (its length and its last `window` characters):

1. It continues what was seen (the seen tail sits at the same offset): the rest is new.
2. Otherwise the log was cut at the front or a new run began. If the content holds the whole seen tail
   (a full window), what follows its first occurrence is new. Else the longest end of what was seen that
   the content starts with is taken as the overlap, when it begins at the start of a line or is at least
   64 characters long; what follows it is new.
3. No overlap: a new run (a restart). The held partial line of the old run is delivered, then the whole
   content as the new run's text.
4. An empty content after something was seen tells nothing (ACI answers empty between runs) and is ignored.

A restart is also known from the instance view's `restartCount`: when it grew by more than the new runs
the content showed, the first log read that starts after that GET begins from nothing and delivers the
whole new run (even one that printed exactly what the old run printed); a read already in flight still
delivers the old run's last lines. Known limits: a restart whose output begins with all of the old run's
output, read before the GET saw the restart, is taken for a continuation, so those lines come again after
the GET; a front cut that leaves no overlap counts as a new run.

`on_log(container, text)` receives whole lines (each ending in a newline), possibly several at once; a
partial last line is held back until it is completed or the watch ends (then it is delivered with a newline
added).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.cloud.errors import GatewayError, NotFoundError
from reconciler.cloud.gateway import Gateway
from reconciler.execution.ratelimit import RateLimit, TokenBucket
from reconciler.model.observed import ObservedGroup

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
OnLog = Callable[[str, str], None]

TERMINAL_INSTANCE_STATES = frozenset({"Succeeded", "Failed", "Stopped"})
# A quiet log backs off to this, and with few jobs no GET waits longer: alone, a job is watched closely.
ALONE_CEILING_S = 5.0
# The share of the budget that GETs take at their ceiling; log reads share the rest.
STATE_SHARE = 0.25
# How fast a log's line rate is forgotten: a burst a minute ago counts half.
RATE_HALF_LIFE_S = 60.0
# The line rate a log starts with, and the least it can fall to (a quiet log is still read now and then).
PRIOR_RATE = 0.5
MIN_RATE = 1e-4
# A short overlap that does not begin at a line start is too likely to be chance.
MIN_OVERLAP_CHARS = 64
DEFAULT_WINDOW = 4096
# The shortest wait: a clock of coarse resolution (an epoch in a float) could not move for less.
MIN_WAIT_S = 1e-3


def is_terminal(group: ObservedGroup) -> bool:
    """True when the group will not change by itself any more (a job ended, failed or was stopped)."""
    # Case as Azure writes it; folded so that a service answering in another case is not watched for ever.
    state = (group.instance_state or "").capitalize()
    return state in TERMINAL_INSTANCE_STATES or (group.provisioning_state or "").capitalize() == "Failed"


class WatcherStoppedError(RuntimeError):
    """The `JobWatcher` stopped (its task was cancelled) before this watch ended."""


# --- the log diff --------------------------------------------------------------------------------


class LogFollower:
    """Turns successive reads of one container's whole log into new whole lines (rules in the module doc)."""

    def __init__(self, *, window: int = DEFAULT_WINDOW) -> None:
        if window < MIN_OVERLAP_CHARS:
            raise ValueError(f"window must be at least {MIN_OVERLAP_CHARS}, got {window}")
        self.window = window
        self.runs = 0  # new runs recognised by their content
        self._seen_len = 0
        self._tail = ""
        self._partial = ""

    @property
    def partial(self) -> str:
        return self._partial

    def feed(self, content: str) -> tuple[str, bool]:
        """The whole lines that are new in `content`, and whether anything (even a partial line) was new."""
        if not content and self._seen_len:
            return "", False
        out = ""
        new = self._new_text(content)
        if new is None:
            self.runs += 1
            out = self.flush()
            new = content
        self._seen_len = len(content)
        self._tail = content[-self.window :]
        pending = self._partial + new
        cut = pending.rfind("\n") + 1
        self._partial = pending[cut:]
        return out + pending[:cut], bool(new)

    def flush(self) -> str:
        """The held partial line, completed with a newline ("" when none)."""
        text, self._partial = self._partial, ""
        return text + "\n" if text else ""

    def restart(self) -> str:
        """Start again from nothing (the instance view says a new run began); returns the flushed partial."""
        self._seen_len = 0
        self._tail = ""
        return self.flush()

    def _new_text(self, content: str) -> str | None:
        tail, seen = self._tail, self._seen_len
        if len(content) >= seen and content[seen - len(tail) : seen] == tail:
            return content[seen:]
        if len(tail) == self.window:
            found = content.find(tail)
            if found >= 0:
                return content[found + len(tail) :]
        overlap = self._overlap(content)
        return None if overlap is None else content[overlap:]

    def _overlap(self, content: str) -> int | None:
        """Length of the longest end of the seen tail that `content` begins with and that we trust."""
        tail = self._tail
        if not content or not tail:
            return None
        start = max(0, len(tail) - len(content))
        while True:
            pos = tail.find(content[0], start)
            if pos < 0:
                return None
            size = len(tail) - pos
            trusted = (pos > 0 and tail[pos - 1] == "\n") or size >= MIN_OVERLAP_CHARS
            if trusted and content.startswith(tail[pos:]):
                return size
            start = pos + 1


# --- the watches ---------------------------------------------------------------------------------


@dataclass(eq=False)
class _Read:
    """One recurring read: the group's instance view (`container` None) or one container's log."""

    job: _Job
    container: _Container | None
    interval: float
    due: float | None = None  # None: parked (nothing to read until something changes)
    in_flight: bool = False
    failures: int = 0


@dataclass(eq=False)
class _Container:
    name: str
    follower: LogFollower
    read: _Read | None = None
    started: bool = False
    state: str | None = None
    restarts: int | None = None  # restartCount at which the follower's run is
    runs_accounted: int = 0  # the follower's content-detected runs already matched with restartCount
    # Read indexes (numbered as reads start): a log read from `restart_from` on begins a new run (the
    # instance view saw a restart the log did not show), one from `park_after` on parks the log (its
    # container ended), one from `final_after` on is the last (the group ended).
    restart_from: int | None = None
    park_after: int | None = None
    final_after: int | None = None
    done: bool = False  # its log was read to the end
    parked: bool = False  # its container ended: no read until it runs again
    backoff: float = 0.0  # the interval its own growth asks for
    # Lines seen and seconds watched, both fading with RATE_HALF_LIFE_S: their ratio is the line rate.
    lines_seen: float = PRIOR_RATE * 2.0
    seconds_watched: float = 2.0
    last_read_at: float | None = None

    @property
    def rate(self) -> float:
        return max(MIN_RATE, self.lines_seen / self.seconds_watched)

    def observe(self, lines: int, now: float) -> None:
        if self.last_read_at is not None:
            elapsed = max(0.0, now - self.last_read_at)
            fade = 0.5 ** (elapsed / RATE_HALF_LIFE_S)
            self.lines_seen = self.lines_seen * fade + lines
            self.seconds_watched = self.seconds_watched * fade + elapsed
        self.last_read_at = now


@dataclass(eq=False)
class _Job:
    resource_group: str
    name: str
    on_log: OnLog | None
    timestamps: bool
    future: asyncio.Future[ObservedGroup | None]
    containers: list[_Container] = field(default_factory=list)
    state_read: _Read | None = None
    observed: ObservedGroup | None = None
    signature: tuple[Any, ...] | None = None
    terminal: bool = False
    reads: int = 0

    @property
    def label(self) -> str:
        return f"{self.resource_group}/{self.name}"


class Watch:
    """A running job as the watcher follows it; made by `JobWatcher.watch`."""

    def __init__(self, watcher: JobWatcher, job: _Job) -> None:
        self._watcher = watcher
        self._job = job

    @property
    def resource_group(self) -> str:
        return self._job.resource_group

    @property
    def name(self) -> str:
        return self._job.name

    @property
    def observed(self) -> ObservedGroup | None:
        """The group as the last GET saw it (None before the first)."""
        return self._job.observed

    @property
    def reads(self) -> int:
        """ARM reads made for this watch so far (GETs and log reads)."""
        return self._job.reads

    def done(self) -> bool:
        return self._job.future.done()

    async def result(self) -> ObservedGroup | None:
        """The group in its terminal state once every container's log was read to the end and delivered; None
        when the group vanished. Raises the stalled error that ended the watch, `CancelledError` after
        `cancel()`, `WatcherStoppedError` when the watcher stopped. Cancelling the caller (a timeout) leaves
        the watch running: await it again after stopping the group to get the end of the log."""
        return await asyncio.shield(self._job.future)

    def refresh(self) -> None:
        """Read the instance view as soon as the budget allows (say, after stopping the group)."""
        self._watcher._refresh(self._job)

    def cancel(self) -> None:
        """Stop watching: no more reads, no more log lines; `result()` raises `CancelledError`."""
        self._job.future.cancel()


class JobWatcher:
    """The one poller of a process: see the module doc for how it spends ARM's read budget."""

    def __init__(
        self,
        gateway: Gateway,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        reads_per_second: float = 8.0,
        burst: int = 1,
        state_interval: tuple[float, float] = (2.0, 30.0),
        log_interval: tuple[float, float] = (1.0, 20.0),
        max_in_flight: int = 16,
        retry_cap: float = 60.0,
    ) -> None:
        if reads_per_second <= 0:
            raise ValueError(f"reads_per_second must be positive, got {reads_per_second}")
        for label, (low, high) in (("state_interval", state_interval), ("log_interval", log_interval)):
            if not 0 < low <= high:
                raise ValueError(f"{label} must be (min, max) with 0 < min <= max, got {(low, high)}")
        self._gateway = gateway
        self._clock = clock
        self._sleep = sleep
        self.reads_per_second = reads_per_second
        self._bucket = TokenBucket(
            RateLimit(max(1, burst), max(1, burst) / reads_per_second), clock=clock, sleep=sleep
        )
        self._state_interval = state_interval
        self._log_interval = log_interval
        self._max_in_flight = max(1, max_in_flight)
        self._retry_cap = retry_cap
        self._jobs: list[_Job] = []
        self._reads: list[_Read] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._hold_until = float("-inf")
        # Reads are numbered as they start, so a result can be told apart from one that began earlier.
        self._next_index = 0
        self._running = False
        # Counters for status, tests and the benchmark.
        self.state_reads = 0
        self.log_reads = 0
        self.throttled = 0

    @property
    def reads(self) -> int:
        return self.state_reads + self.log_reads

    @property
    def active(self) -> int:
        """Jobs being watched."""
        return len(self._jobs)

    # --- registration ---------------------------------------------------------------------------

    def watch(
        self,
        resource_group: str,
        name: str,
        containers: Sequence[str],
        *,
        on_log: OnLog | None,
        logs: bool = True,
        timestamps: bool = False,
    ) -> Watch:
        """Follow the group `resource_group/name` until it ends. `containers`: its container names in manifest
        order (init containers first); their logs go to `on_log` (unless `logs` is False or `on_log` is
        None, when no log is read). `timestamps` asks Azure to prefix each line with its time of writing."""
        future: asyncio.Future[ObservedGroup | None] = asyncio.get_running_loop().create_future()
        job = _Job(resource_group, name, on_log if logs else None, timestamps, future)
        if job.on_log is not None:
            job.containers = [_Container(c, LogFollower()) for c in dict.fromkeys(containers)]
        job.state_read = _Read(job, None, self._state_interval[0], due=self._clock())
        self._reads.append(job.state_read)
        for container in job.containers:
            container.read = _Read(job, container, self._log_interval[0])
            self._reads.append(container.read)
        self._jobs.append(job)
        future.add_done_callback(lambda _: self._forget(job))
        self._wake.set()
        return Watch(self, job)

    def _forget(self, job: _Job) -> None:
        if job in self._jobs:
            self._jobs.remove(job)
            self._reads = [r for r in self._reads if r.job is not job]
        self._wake.set()

    def _refresh(self, job: _Job) -> None:
        read = job.state_read
        if read is not None and not job.future.done() and not job.terminal:
            read.interval = self._state_interval[0]
            read.due = min(read.due if read.due is not None else float("inf"), self._clock())
            self._wake.set()

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve every watch until cancelled. Reads run as tasks, at most `max_in_flight` at a time."""
        if self._running:
            raise RuntimeError("this JobWatcher is already running")
        self._running = True
        try:
            while True:
                self._wake.clear()
                await self._wait(await self._step())
        finally:
            self._running = False
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            for job in list(self._jobs):
                if not job.future.done():
                    job.future.set_exception(WatcherStoppedError(f"the job watcher stopped ({job.label})"))
                    # Nobody may be awaiting it any more: mark the exception retrieved.
                    job.future.exception()

    async def _step(self) -> float | None:
        """Start the reads that may start now; then how long to wait (None: until woken)."""
        while True:
            now = self._clock()
            if self._hold_until > now:
                return self._hold_until - now
            read, next_due = self._most_overdue(now)
            if read is None:
                return None if next_due is None else next_due - now
            if len(self._tasks) >= self._max_in_flight:
                return None  # a read that ends wakes the loop
            wait = self._bucket.wait_needed()
            if wait > 0:
                return wait
            await self._bucket.acquire()
            self._start(read)

    def _most_overdue(self, now: float) -> tuple[_Read | None, float | None]:
        """The read due longest ago, or else when the next one falls due."""
        best: _Read | None = None
        best_due = next_due = float("inf")
        for read in self._reads:
            due = read.due
            if due is None or read.in_flight or read.job.future.done():
                continue
            if due <= now and due < best_due:
                best, best_due = read, due
            elif due > now and due < next_due:
                next_due = due
        return best, (None if next_due == float("inf") else next_due)

    async def _wait(self, seconds: float | None) -> None:
        """Until woken (a new watch, a read ended) or `seconds` passed; None: until woken."""
        waiter = asyncio.ensure_future(self._wake.wait())
        if seconds is None:
            try:
                await waiter
            finally:
                waiter.cancel()
            return
        sleeper = asyncio.ensure_future(self._sleep(max(MIN_WAIT_S, seconds)))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()

    def _start(self, read: _Read) -> None:
        read.in_flight = True
        read.due = None
        index = self._next_index
        self._next_index += 1
        job = read.job
        job.reads += 1
        what = "state" if read.container is None else f"log {read.container.name}"
        task = asyncio.create_task(self._perform(read, index), name=f"watch {job.label} {what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- one read -------------------------------------------------------------------------------

    async def _perform(self, read: _Read, index: int) -> None:
        job = read.job
        try:
            try:
                if read.container is None:
                    self.state_reads += 1
                    group = await self._gateway.get_group(job.resource_group, job.name)
                else:
                    self.log_reads += 1
                    text = await self._gateway.logs(
                        job.resource_group, job.name, read.container.name, timestamps=job.timestamps
                    )
            finally:
                read.in_flight = False
            if job.future.done():
                return
            read.failures = 0
            if read.container is None:
                self._on_state(job, group)
            else:
                self._on_log(job, read.container, text, index)
        except GatewayError as exc:
            if not job.future.done():
                self._on_error(read, exc)
        except Exception as exc:  # a bug or a failing callback ends this watch, never the loop
            if not job.future.done():
                log.warning("watch %s failed: %r", job.label, exc)
                job.future.set_exception(exc)
        finally:
            self._wake.set()

    def _on_error(self, read: _Read, exc: GatewayError) -> None:
        job, now = read.job, self._clock()
        if exc.retryable:
            if exc.retry_after is not None:
                self.throttled += 1
                self._hold_until = max(self._hold_until, now + exc.retry_after)
                read.due = now + exc.retry_after
            else:
                read.failures += 1
                read.due = now + min(self._retry_cap, 2.0 ** (read.failures - 1))
            return
        container = read.container
        if isinstance(exc, NotFoundError):
            if container is None:
                self._finish(job, None)
            elif job.terminal:
                container.done = True  # deleted after it ended: its log stays as far as it was read
                self._maybe_finish(job)
            else:
                self._schedule(read, ALONE_CEILING_S, now)
                self._refresh(job)  # has the group gone?
            return
        job.future.set_exception(exc)

    def _on_state(self, job: _Job, group: ObservedGroup | None) -> None:
        now = self._clock()
        if group is None:
            self._finish(job, None)
            return
        job.observed = group
        views = _container_views(group)
        signature = (
            group.provisioning_state,
            group.instance_state,
            tuple(sorted((n, v.get("state"), v.get("restarts")) for n, v in views.items())),
        )
        changed = signature != job.signature
        job.signature = signature
        for container in job.containers:
            self._on_container(job, container, group, views.get(container.name), now)
        read = job.state_read
        assert read is not None
        if is_terminal(group):
            job.terminal = True
            for container in job.containers:
                if not container.done:
                    container.final_after = self._next_index
                    self._read_now(container, now)
            self._maybe_finish(job)
            return
        read.interval = (
            self._state_interval[0] if changed else min(read.interval * 1.5, self._state_ceiling())
        )
        if read.due is None:
            read.due = now + read.interval

    def _on_container(
        self,
        job: _Job,
        container: _Container,
        group: ObservedGroup,
        view: dict[str, Any] | None,
        now: float,
    ) -> None:
        state = view.get("state") if view is not None else None
        restarts = int(view.get("restarts") or 0) if view is not None else 0
        if container.restarts is None:
            container.restarts = restarts
            container.runs_accounted = container.follower.runs
        elif restarts > container.restarts:
            unseen = container.follower.runs - container.runs_accounted
            if restarts - container.restarts > unseen:
                # Not now: a read in flight may still bring the old run's last lines.
                container.restart_from = self._next_index
            container.restarts = restarts
            container.runs_accounted = container.follower.runs
            container.park_after = None
            container.parked = False
            self._read_now(container, now)
        started = state in ("Running", "Terminated") or restarts > 0
        if view is None and group.instance_state == "Running":
            started = True  # a service that reports no container views: the group's state is all we have
        if started and not container.started:
            container.started = True
            self._read_now(container, now)
        if state == "Terminated" and container.state != "Terminated":
            container.park_after = self._next_index
            self._read_now(container, now)
        elif state != "Terminated" and container.state == "Terminated" and container.started:
            container.park_after = None
            container.parked = False
            self._read_now(container, now)
        container.state = state

    def _on_log(self, job: _Job, container: _Container, text: str, index: int) -> None:
        read = container.read
        assert read is not None
        now = self._clock()
        follower = container.follower
        if container.restart_from is not None and index >= container.restart_from:
            container.restart_from = None
            self._deliver(job, container, follower.restart())
        runs = follower.runs
        lines, grew = follower.feed(text)
        if follower.runs > runs and container.restart_from is not None:
            # The log showed the restart the instance view announced.
            container.restart_from = None
            container.runs_accounted = follower.runs
        self._deliver(job, container, lines)
        if job.future.done():
            return
        if container.final_after is not None:
            if index >= container.final_after:
                container.done = True
                self._maybe_finish(job)
            else:
                self._read_now(container, now)
            return
        if container.park_after is not None:
            if index < container.park_after:
                self._read_now(container, now)  # this answer may predate the end: read once more
            else:
                container.parked = True  # nothing more until the instance view says it runs again
            return
        container.observe(max(1, lines.count("\n")) if grew else 0, now)
        fast, slowest = self._log_interval
        container.backoff = (
            fast if grew else min(max(container.backoff, fast) * 2, max(fast, ALONE_CEILING_S))
        )
        self._schedule(read, min(slowest, max(container.backoff, self._log_share(container))), now)

    # --- helpers --------------------------------------------------------------------------------

    def _schedule(self, read: _Read, interval: float, now: float) -> None:
        read.interval = interval
        read.due = now + interval if read.due is None else min(read.due, now + interval)

    def _read_now(self, container: _Container, now: float) -> None:
        """Read this log soon: at once when idle; right after it ends when a read is in flight."""
        read = container.read
        if read is None or container.done:
            return
        read.interval = self._log_interval[0]
        if not read.in_flight:
            read.due = now

    def _state_ceiling(self) -> float:
        share = len(self._jobs) / (self.reads_per_second * STATE_SHARE)
        return min(self._state_interval[1], max(ALONE_CEILING_S, share))

    def _log_share(self, container: _Container) -> float:
        """The interval that gives each log a share of the budget in proportion to the square root of its line
        rate: the split of a fixed number of reads that keeps the mean delay of a line least."""
        total = sum(
            math.sqrt(c.rate)
            for job in self._jobs
            for c in job.containers
            if c.started and not c.parked and not c.done
        )
        budget = self.reads_per_second * (1.0 - STATE_SHARE)
        return total / (budget * math.sqrt(container.rate))

    def _deliver(self, job: _Job, container: _Container, text: str) -> None:
        if text and job.on_log is not None and not job.future.done():
            try:
                job.on_log(container.name, text)
            except Exception as exc:
                log.warning("log callback of %s failed: %r", job.label, exc)
                job.future.set_exception(exc)

    def _maybe_finish(self, job: _Job) -> None:
        if job.terminal and all(c.done for c in job.containers):
            self._finish(job, job.observed)

    def _finish(self, job: _Job, group: ObservedGroup | None) -> None:
        for container in job.containers:
            self._deliver(job, container, container.follower.flush())
        if not job.future.done():
            job.future.set_result(group)


@contextlib.asynccontextmanager
async def watching(gateway: Gateway, *, name: str = "job-watcher") -> AsyncIterator[JobWatcher]:
    """A `JobWatcher` whose loop runs, as the task `name`, for the length of the block (a command, an API
    call); the daemon, whose runs come and go, keeps its own."""
    watcher = JobWatcher(gateway)
    task = asyncio.create_task(watcher.run(), name=name)
    try:
        yield watcher
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _container_views(group: ObservedGroup) -> dict[str, dict[str, Any]]:
    """Each container's (init containers too) run state and restart count from the instance view."""
    views: dict[str, dict[str, Any]] = {}
    for name, view in group.container_views().items():
        current = view.get("currentState") or {}
        views[name] = {
            "state": current.get("state") if isinstance(current, dict) else None,
            "restarts": view.get("restartCount") or 0,
        }
    return views
