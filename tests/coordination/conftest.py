"""Azurite for the coordination tests: started once per session, a fresh container per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.azurite import Azurite


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    server = Azurite()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def blob_container(azurite: Azurite) -> str:
    azurite.start()  # a test may have stopped it
    return azurite.create_container()
