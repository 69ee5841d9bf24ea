"""Fixtures of the manifest model tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.model.material import base_doc


@pytest.fixture
def doc() -> dict[str, Any]:
    """A fresh minimal valid manifest document to modify."""
    return base_doc()
