"""Helpers for the source loader tests: write manifest trees into a temp directory and load them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from reconciler.source import Defaults, LoadResult, load_manifests

# A minimal valid manifest body (everything but name/resourceGroup/location), indented for a top-level key.
PROPS = """\
properties:
  osType: Linux
  containers:
  - name: app
    properties:
      image: nginx:1.27
      resources: {requests: {cpu: 1, memoryInGB: 1.5}}
"""


def manifest(name: str = "web", *, rg: str | None = "rg", location: str | None = "westeurope") -> str:
    """A valid manifest document of 10 lines (fewer without rg/location); `name:` is on line 1."""
    lines = [f"name: {name}"]
    if rg is not None:
        lines.append(f"resourceGroup: {rg}")
    if location is not None:
        lines.append(f"location: {location}")
    return "\n".join(lines) + "\n" + PROPS


Writer = Callable[[str, str | bytes], Path]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "manifests"
    path.mkdir()
    return path


@pytest.fixture
def write(root: Path) -> Writer:
    def _write(rel: str, content: str | bytes) -> Path:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return _write


Loader = Callable[..., LoadResult]


@pytest.fixture
def load(root: Path) -> Loader:
    def _load(
        environ: Mapping[str, str] | None = None,
        defaults: Defaults | None = None,
        at: Path | None = None,
    ) -> LoadResult:
        return load_manifests(at or root, defaults=defaults or Defaults(), environ=environ or {})

    return _load


def messages(result: LoadResult, root: Path) -> list[str]:
    """Errors as `relpath:line:col: message`, for exact comparisons."""
    return [str(e).replace(f"{root}/", "") for e in result.errors]


def warning_messages(result: LoadResult, root: Path) -> list[str]:
    return [str(e).replace(f"{root}/", "") for e in result.warnings]
