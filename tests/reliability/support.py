"""Shared helpers of the reliability suite (`tests/reliability/`): fleets of manifests, the engine wired to
an in-process emulator with zero retry delays, and a daemon subprocess followed through its JSON log lines.

The suite's test modules call these; the CLI-process helpers of `tests/e2e/harness.py` are reused as they
are (imported, never copied).
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from reconciler.cloud.azure import AzureGateway
from reconciler.emulator.server import Emulator
from reconciler.engine.reconcile import EngineSettings, PassOutcome, apply_pass, plan_pass
from reconciler.model.plan import Action
from tests.inprocess import SUBSCRIPTION, no_sleep

ROOT = Path(__file__).resolve().parents[2]
WRITE_VERBS = ("PUT", "PATCH", "DELETE")


# ---------------------------------------------------------------------------------------------------------
# Manifests


@dataclass(frozen=True)
class Spec:
    """What one generated group should look like; `manifest()` renders it as ACI YAML."""

    name: str
    rg: str
    image: str = "nginx:1.25"
    cpu: float = 1.0
    memory: float = 1.0
    tags: Mapping[str, str] | None = None
    env: Mapping[str, str] | None = None
    secret_env: Mapping[str, str] | None = None  # variable name -> environment variable it comes from

    def manifest(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            "image": self.image,
            "resources": {"requests": {"cpu": self.cpu, "memoryInGB": self.memory}},
        }
        entries: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in (self.env or {}).items()]
        entries += [{"name": k, "secureValueFrom": {"env": v}} for k, v in (self.secret_env or {}).items()]
        if entries:
            props["environmentVariables"] = entries
        doc: dict[str, Any] = {
            "name": self.name,
            "resourceGroup": self.rg,
            "location": "westeurope",
            "properties": {
                "osType": "Linux",
                "restartPolicy": "Always",
                "containers": [{"name": "main", "properties": props}],
            },
        }
        if self.tags:
            doc["tags"] = dict(self.tags)
        return doc


def write_specs(path: Path, specs: Iterable[Spec]) -> None:
    """All specs as one multi-document file, written atomically (a watcher never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(yaml.safe_dump_all([s.manifest() for s in specs], sort_keys=False))
    os.replace(tmp, path)


def write_spec_files(directory: Path, specs: Iterable[Spec]) -> None:
    """One file per group (`NAME.yaml`); files of groups not in `specs` are removed."""
    directory.mkdir(parents=True, exist_ok=True)
    wanted = {f"{s.name}.yaml": s for s in specs}
    for old in directory.glob("*.yaml"):
        if old.name not in wanted:
            old.unlink()
    for file_name, spec in wanted.items():
        write_specs(directory / file_name, [spec])


def live_spec(group: Mapping[str, Any]) -> tuple[str, float, float]:
    """(image, cpu, memory) of the first container of a group as GET renders it."""
    props = group["properties"]["containers"][0]["properties"]
    requests = props["resources"]["requests"]
    return str(props["image"]), float(requests["cpu"]), float(requests["memoryInGB"])


def unmanaged_body(image: str = "nginx:bystander") -> dict[str, Any]:
    """An ARM body as another tool (the portal, `az`) would PUT it: no reconciler tags."""
    return {
        "location": "westeurope",
        "tags": {"owner": "someone-else"},
        "properties": {
            "osType": "Linux",
            "containers": [
                {
                    "name": "main",
                    "properties": {"image": image, "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}},
                }
            ],
        },
    }


# ---------------------------------------------------------------------------------------------------------
# The engine against an in-process emulator


def run(body: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(body())


class FakeClock:
    """The emulator's clock, moved only by `sleep`: long-running operations finish without real waiting."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        # A poll with no interval still lets a little time pass, or a transition would never finish.
        self.now += max(seconds, 0.1)
        await asyncio.sleep(0)


async def one_pass(
    settings: EngineSettings,
    gateway: AzureGateway,
    environ: Mapping[str, str] | None = None,
    *,
    sleep: Callable[[float], Coroutine[Any, Any, None]] = no_sleep,
) -> PassOutcome:
    env = dict(environ or {})
    planned = await plan_pass(settings, gateway, environ=env, sleep=sleep)
    return await apply_pass(planned, settings, gateway, environ=env, sleep=sleep)


def settled(outcome: PassOutcome) -> bool:
    """A pass that found nothing to do and nothing wrong."""
    return not outcome.failed and not any(c.action is not Action.NOOP for c in outcome.plan.changes)


def writes(emu: Emulator, path_contains: str = "") -> list[tuple[str, str]]:
    """(method, path) of every container-group write the emulator logged, in order."""
    return [
        (r.method, r.path)
        for r in emu.request_log
        if r.route == "containerGroup" and r.method in WRITE_VERBS and path_contains in r.path
    ]


# ---------------------------------------------------------------------------------------------------------
# The daemon in a subprocess


def pass_finished(event: Mapping[str, Any]) -> bool:
    return event.get("event") == "pass finished"


def daemon_env(extra: Mapping[str, str] | None = None, *, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "RECONCILER_", "IDENTITY_"))}
    env.update(
        {"RECONCILER_SECRET_KEY": "reliability-key-0123456789abcdef", "HOME": str(home), "NO_COLOR": "1"}
    )
    env.update(extra or {})
    return env


def daemon_args(
    endpoint: str, ca_cert: Path | str, manifests: Path, state_dir: Path, *extra: str
) -> list[str]:
    return [
        "--endpoint",
        endpoint,
        "--ca-cert",
        str(ca_cert),
        "--credential",
        "static",
        "-f",
        str(manifests),
        "--listen",
        "127.0.0.1:0",
        "--state-dir",
        str(state_dir),
        "--log-format",
        "json",
        "--lro-timeout",
        "60",
        *extra,
    ]


def arm_request(
    endpoint: str, ca_cert: Path | str, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    """A raw ARM call as another tool would make it (blocking: run it in a thread from async code)."""
    import ssl

    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{endpoint}/subscriptions/{SUBSCRIPTION}{path}?api-version=2023-05-01",
        method=method,
        data=data,
        headers={"Content-Type": "application/json", "Authorization": "Bearer out-of-band"},
    )
    context = ssl.create_default_context(cafile=str(ca_cert))
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            raw = response.read()
            return int(response.status), json.loads(raw) if raw else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def group_path(rg: str, name: str) -> str:
    return f"/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups/{name}"
