"""An exclusive OS lock on a state directory, held for the whole of one run.

The CLI holds it on `--local DIR` (the embedded emulator keeps its state there) from before the state is
read until after it is written, so two runs at once, or a daemon and a run, never both load the state and
each save a copy without the other's groups. It is a `flock(2)` lock on a file in the directory: the kernel
drops it when the process ends, even on SIGKILL, so a crashed run never leaves a stale lock behind. The file
holds the pid of the holder, for the message of the process that waits.

Nothing in the engine imports this; any composition root (the CLI, the daemon's own state directory) may.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

LOCK_FILE = "lock"


class LockBusyError(Exception):
    """The lock is held by another process and the caller chose not to wait."""

    def __init__(self, directory: Path, holder: int | None) -> None:
        self.directory = directory
        self.holder = holder
        super().__init__(f"{directory} is in use by {describe_holder(holder)}")


def describe_holder(holder: int | None) -> str:
    return f"pid {holder}" if holder is not None else "another process"


def _holder(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@contextlib.contextmanager
def hold_directory_lock(
    directory: Path, *, wait: bool, on_wait: Callable[[int | None], None] | None = None
) -> Iterator[None]:
    """Hold the exclusive lock of `directory` (created if missing) for the `with` block.

    When another process holds it: with `wait`, call `on_wait(holder_pid)` once and block until it is free
    (SIGINT interrupts the wait); without, raise `LockBusyError` at once.
    """
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                raise LockBusyError(directory, holder) from None
            if on_wait is not None:
                on_wait(holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        # Closing the descriptor releases the lock. The file stays: unlinking it would let a waiter lock
        # the old inode while a newcomer locks a new one.
        os.close(fd)
