"""The embedded emulator's key file (`--local DIR/secret.key`): written whole or not at all, never
replaced."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine import keys
from reconciler.engine.keys import load_or_create_key_file


def test_the_key_is_created_once_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "state/secret.key"
    first = load_or_create_key_file(path)
    assert len(first) == 64
    assert load_or_create_key_file(path) == first
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_a_full_disk_leaves_no_key_file_so_the_next_run_creates_a_whole_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret.key"

    def no_space(*_: Any) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with monkeypatch.context() as mp:
        mp.setattr(keys.os, "fsync", no_space)
        with pytest.raises(OSError, match="No space left"):
            load_or_create_key_file(path)
    assert list(tmp_path.iterdir()) == []  # neither an empty key file nor a temp file
    assert len(load_or_create_key_file(path)) == 64


def test_a_key_written_first_by_another_process_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "secret.key"
    real_link = os.link

    def other_process_first(src: str, dst: str) -> None:
        Path(dst).write_bytes(b"theirs\n")
        real_link(src, dst)

    monkeypatch.setattr(keys.os, "link", other_process_first)
    assert load_or_create_key_file(path) == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]
