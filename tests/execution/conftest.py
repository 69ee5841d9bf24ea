"""Shared helpers for executor tests: plan entries with real manifests, and a fake clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reconciler.model.manifest import GroupManifest, parse_manifest
from reconciler.model.plan import Action, Change, Plan

SECRET = "hunter2-s3cret-value"
OWNER_TAGS = {"managed-by": "aci-reconciler", "aci-reconciler.instance": "test"}


def manifest(
    name: str = "web", rg: str = "rg", *, image: str = "nginx:1.25", secret: str = SECRET
) -> GroupManifest:
    return parse_manifest(
        {
            "name": name,
            "resourceGroup": rg,
            "location": "westeurope",
            "tags": {"team": "payments"},
            "properties": {
                "osType": "Linux",
                "containers": [
                    {
                        "name": "app",
                        "properties": {
                            "image": image,
                            "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                            "environmentVariables": [
                                {"name": "MODE", "value": "prod"},
                                {"name": "DB_PASSWORD", "secureValue": secret},
                            ],
                        },
                    }
                ],
            },
        }
    )


def change(
    action: Action,
    name: str = "web",
    rg: str = "rg",
    *,
    held: str | None = None,
    desired: bool = True,
    write_tags: dict[str, str] | None = None,
    **extra: Any,
) -> Change:
    tags = {"team": "payments", **OWNER_TAGS} if write_tags is None else write_tags
    return Change(
        resource_group=rg,
        name=name,
        action=action,
        held=held,
        write_tags=tags,
        desired=manifest(name, rg) if desired and action is not Action.DELETE else None,
        **extra,
    )


def plan(*changes: Change) -> Plan:
    return Plan(revision="abc123", instance="test", changes=tuple(changes))


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def settle(condition: Any, *, rounds: int = 200) -> None:
    """Yield to the event loop until `condition()` holds (no real time passes)."""
    for _ in range(rounds):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")
