"""What makes the daemon run a pass: file changes, an interval resync, git, the webhook, retries.

Every source is a producer into one `Coalescer`; the worker (`reconciler.daemon.worker`) takes batches from
it. At most one pass runs at a time because one worker consumes the batches, and triggers that arrive during a
pass collapse into exactly one more pass. Sources take their clock, sleep, randomness and file-event stream as
arguments so tests script them instead of waiting on a real clock. Composed by `reconciler.daemon.cli`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import re
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePath
from typing import Any

from reconciler.source.walk import MANIFEST_SUFFIXES

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
# One batch of file events as watchfiles reports them: (change kind, absolute path).
FileChanges = Iterable[tuple[object, str]]


class TriggerKind(StrEnum):
    STARTUP = "startup"
    FILE = "file"
    INTERVAL = "interval"
    GIT = "git"
    WEBHOOK = "webhook"
    RETRY = "retry"
    LEADERSHIP = "leadership"


@dataclass(frozen=True)
class Trigger:
    kind: TriggerKind
    reason: str
    at: float  # wall-clock seconds
    # Of a FILE trigger: the absolute paths that changed in its burst (what a focused pass plans).
    paths: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind.value, "reason": self.reason, "at": self.at}


class Coalescer:
    """One queue for every trigger: a batch per pass, however many triggers arrived meanwhile.

    `fire` never blocks and never fails; after `close` it drops triggers, which is how shutdown stops taking
    them. `next` returns every trigger since the last call, or None once closed.
    """

    def __init__(self, on_fire: Callable[[Trigger], None] | None = None) -> None:
        self._on_fire = on_fire
        self._pending: list[Trigger] = []
        self._wake = asyncio.Event()
        self._closed = False
        self.fired = 0
        self.batches = 0

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> tuple[Trigger, ...]:
        return tuple(self._pending)

    def fire(self, trigger: Trigger) -> bool:
        if self._closed:
            return False
        self._pending.append(trigger)
        self.fired += 1
        if self._on_fire is not None:
            self._on_fire(trigger)
        self._wake.set()
        return True

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    async def next(self) -> list[Trigger] | None:
        while not self._pending:
            if self._closed:
                return None
            self._wake.clear()
            await self._wake.wait()
        if self._closed:
            return None
        batch, self._pending = self._pending, []
        self._wake.clear()
        self.batches += 1
        return batch


# ---------------------------------------------------------------------------------------------------------
# Files

# Editors write these next to the file being saved; none of them is a manifest.
_IGNORED_SUFFIXES = (
    ".swp",
    ".swx",
    ".swo",
    ".tmp",
    ".bak",
    ".orig",
    ".part",
    "~",
    "___jb_tmp___",  # JetBrains "safe write"
    "___jb_old___",
    ".dpkg-new",
    ".dpkg-old",
)
_IGNORED_NAMES = frozenset({"4913", ".DS_Store"})
# `sed -i` writes `sedXXXXXX` (mkstemp's six characters) and renames it over the file; atomic writers often
# write `NAME.tmp.PID` or `NAME.tmpXXXXX` first.
_IGNORED_PATTERN = re.compile(r"sed[A-Za-z0-9]{6}|.*\.tmp(\.?[A-Za-z0-9]+)?")


def absolute(path: Path) -> Path:
    """`path` made absolute without touching the file system beyond the working directory."""
    return Path(os.path.abspath(path))


def is_relevant_change(root: Path, path: str) -> bool:
    """Whether a changed path may affect the manifests (and so deserves a pass).

    Hidden files and directories (`.git/`, `.idea/`, emacs `.#lock` files, kate's swap files), vim's `4913`
    probe and swap files, backup files (`*~`), `sed -i`'s `sedXXXXXX`, JetBrains' safe-write files and the
    numbered temp files of atomic writers are ignored.
    """
    try:
        relative = PurePath(path).relative_to(root)
    except ValueError:
        relative = PurePath(path)
    parts = relative.parts
    if not parts:
        return True
    if any(part.startswith(".") for part in parts):
        return False
    name = parts[-1]
    if name in _IGNORED_NAMES or name.startswith("#") or _IGNORED_PATTERN.fullmatch(name):
        return False
    return not name.endswith(_IGNORED_SUFFIXES)


async def watch_files(
    coalescer: Coalescer,
    root: Path,
    changes: AsyncIterable[FileChanges],
    *,
    debounce: float,
    sleep: Sleep,
    clock: Clock,
) -> None:
    """Fire one FILE trigger per burst of relevant changes, once `debounce` seconds pass without another.

    `changes` is `watchfiles.awatch(root)` in the daemon and a scripted async iterator in tests.
    """
    # watchfiles reports absolute paths; a relative root would never match them.
    root = absolute(root)
    iterator = aiter(changes)
    burst: set[str] = set()
    next_batch: asyncio.Task[FileChanges] | None = None
    quiet: asyncio.Task[None] | None = None
    try:
        while True:
            if next_batch is None:
                next_batch = asyncio.ensure_future(anext(iterator))
                next_batch.set_name("daemon-file-next-batch")
            waiting: set[asyncio.Future[Any]] = {next_batch}
            if burst:
                if quiet is None:
                    quiet = asyncio.ensure_future(sleep(debounce))
                    quiet.set_name("daemon-file-debounce")
                waiting.add(quiet)
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if next_batch in done:
                task, next_batch = next_batch, None
                try:
                    batch = task.result()
                except StopAsyncIteration:
                    break
                relevant = {path for _, path in batch if is_relevant_change(root, path)}
                if relevant:
                    burst |= relevant
                    if quiet is not None:
                        # A save during the quiet window restarts it: a burst of saves is one pass.
                        quiet.cancel()
                        quiet = None
                continue
            if quiet is not None and quiet in done:
                quiet = None
                coalescer.fire(_file_trigger(root, burst, clock()))
                burst = set()
        if burst:
            coalescer.fire(_file_trigger(root, burst, clock()))
    finally:
        leftovers: list[asyncio.Future[Any] | None] = [next_batch, quiet]
        for leftover in leftovers:
            if leftover is not None and not leftover.done():
                leftover.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await leftover


# A burst of more files than this (a checkout, a bulk edit) plans everything: the focused way (a GET per
# group) would ask Azure more than a full pass's list pages.
MAX_FOCUS_FILES = 64


def _file_trigger(root: Path, burst: set[str], at: float) -> Trigger:
    paths = tuple(sorted(burst)) if len(burst) <= MAX_FOCUS_FILES else ()
    return Trigger(TriggerKind.FILE, _describe(root, burst), at, paths)


def _describe(root: Path, paths: set[str]) -> str:
    names = []
    # Manifests first: they are what people look for in "why did this pass run".
    for path in sorted(paths, key=lambda p: (PurePath(p).suffix.lower() not in MANIFEST_SUFFIXES, p)):
        try:
            names.append(str(PurePath(path).relative_to(root)))
        except ValueError:
            names.append(path)
    shown = ", ".join(names[:3])
    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
    return f"changed: {shown}{more}"


# How often to look for the manifest directory while it is away (a deploy tool swapping it).
ROOT_GONE_POLL = 0.2


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


async def watchfiles_source(root: Path, stop: asyncio.Event) -> AsyncIterator[FileChanges]:
    """The real file-event stream: watchfiles' own debounce kept short, ours decides.

    An inotify watch dies with its directory, so when the manifest directory is deleted or replaced (`rm -r`
    then a checkout, a symlink flip, a deploy tool's rename) the watch is started again on the directory now
    at that path, and one change is reported for the swap itself.
    """
    import watchfiles

    root = absolute(root)

    def keep(change: watchfiles.Change, path: str) -> bool:
        del change
        return is_relevant_change(root, path)

    while not stop.is_set():
        identity = _identity(root)
        if identity is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=ROOT_GONE_POLL)
            continue
        async for changes in watchfiles.awatch(
            root, watch_filter=keep, debounce=100, step=50, stop_event=stop, recursive=True
        ):
            yield changes
            if _identity(root) != identity:
                break
        else:
            return  # stopped
        while _identity(root) is None and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=ROOT_GONE_POLL)
        yield [(watchfiles.Change.modified, str(root))]  # the directory itself: always relevant


# ---------------------------------------------------------------------------------------------------------
# Interval


def jittered(interval: float, jitter: float, rng: random.Random) -> float:
    """`interval` spread by +/- `jitter` (a fraction), so that many daemons do not resync in lockstep."""
    if jitter <= 0:
        return interval
    return max(0.0, interval * (1.0 + rng.uniform(-jitter, jitter)))


async def run_interval(
    coalescer: Coalescer,
    interval: float,
    *,
    jitter: float,
    rng: random.Random,
    sleep: Sleep,
    clock: Clock,
) -> None:
    """Fire an INTERVAL trigger every `interval` seconds (jittered): a resync that re-observes Azure."""
    while not coalescer.closed:
        delay = jittered(interval, jitter, rng)
        await sleep(delay)
        coalescer.fire(Trigger(TriggerKind.INTERVAL, f"resync every {interval:g}s", clock()))


class RetryTimer:
    """Fires one RETRY trigger when the earliest per-group backoff ends; rescheduled after every pass."""

    def __init__(self, coalescer: Coalescer, *, sleep: Sleep, clock: Clock) -> None:
        self._coalescer = coalescer
        self._sleep = sleep
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self.due: float | None = None

    def schedule(self, at: float | None) -> None:
        if at == self.due and self._task is not None and not self._task.done():
            return
        self.cancel()
        if at is None or self._coalescer.closed:
            return
        self.due = at
        self._task = asyncio.create_task(self._run(at), name="daemon-retry-timer")

    async def _run(self, at: float) -> None:
        await self._sleep(max(0.0, at - self._clock()))
        self.due = None
        self._coalescer.fire(Trigger(TriggerKind.RETRY, "a group's backoff ended", self._clock()))

    def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None
        self.due = None

    async def aclose(self) -> None:
        task = self._task
        self.cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task
