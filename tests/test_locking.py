"""The state-directory lock: one holder at a time, a waiter told who holds it, `--no-wait` refused at once.

flock(2) locks belong to an open file description, so two opens in one process exclude each other just as two
processes do; the waiter runs in a thread and the test releases the lock when the waiter reports it waits."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from reconciler.locking import LOCK_FILE, LockBusyError, hold_directory_lock

pytestmark = pytest.mark.timeout(30)


def test_a_second_holder_that_will_not_wait_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    with (
        hold_directory_lock(tmp_path / "state", wait=False),
        pytest.raises(LockBusyError) as err,
        hold_directory_lock(tmp_path / "state", wait=False),
    ):
        pass
    assert err.value.holder == os.getpid()
    assert f"pid {os.getpid()}" in str(err.value)


def test_a_waiter_is_told_who_holds_the_lock_and_gets_it_when_released(tmp_path: Path) -> None:
    waiting = threading.Event()
    told: list[int | None] = []
    order: list[str] = []

    def waiter() -> None:
        def on_wait(holder: int | None) -> None:
            told.append(holder)
            waiting.set()

        with hold_directory_lock(tmp_path, wait=True, on_wait=on_wait):
            order.append("waiter")

    with hold_directory_lock(tmp_path, wait=True):
        thread = threading.Thread(target=waiter, name="lock-waiter")
        thread.start()
        assert waiting.wait(20)
        order.append("holder")
    thread.join(20)
    assert order == ["holder", "waiter"]
    assert told == [os.getpid()]


def test_the_lock_is_free_again_after_the_block_even_when_it_raised(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), hold_directory_lock(tmp_path, wait=False):
        raise RuntimeError("boom")
    with hold_directory_lock(tmp_path, wait=False):
        assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())
