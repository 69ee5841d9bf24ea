"""Fixtures for the CLI end-to-end tests: a fresh emulator process and a working directory per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import EmulatorProcess

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess(tmp_path)
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def examples(tmp_path: Path) -> Path:
    """A copy of the repository's example manifests, free to edit."""
    target = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", target)
    return target
