"""The engine through the real SDK adapter against the in-process emulator.

Properties of DESIGN.md §11: a plan applied then re-planned is empty (for the example manifests and for
generated ones), an unchanged manifest never produces a write, and with injected faults (errors, 429s, resets,
failed provisioning) repeated passes converge with no duplicate and no unintended deletion.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.emulator.limits import FaultSettings
from reconciler.emulator.server import Emulator
from reconciler.engine.reconcile import EngineSettings, PassOutcome, apply_pass, plan_pass
from reconciler.model.plan import Action
from reconciler.planning.ownership import INSTANCE_TAG
from tests.inprocess import engine_settings, in_process, no_sleep

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ENV = {"DEMO_SESSION_SECRET": "session-secret", "DEMO_STORAGE_KEY": "c3RvcmFnZS1rZXk="}


_no_sleep = no_sleep


def _settings(manifests: Path, **overrides: Any) -> EngineSettings:
    return engine_settings(manifests, **{"secret_key": b"test-key", **overrides})


async def _with_emulator(
    cert_dir: Path, body: Callable[[Emulator, Any], Awaitable[None]], **config: Any
) -> None:
    async with in_process(cert_dir, **config) as (emu, gateway):
        await body(emu, gateway)


def _writes(emu: Emulator) -> int:
    return sum(emu.counters.get(f"{verb} containerGroup", 0) for verb in ("PUT", "PATCH", "DELETE"))


async def _converge(
    settings_: EngineSettings, gateway: Any, env: dict[str, str], passes: int = 1
) -> PassOutcome:
    outcome: PassOutcome | None = None
    for _ in range(passes):
        planned = await plan_pass(settings_, gateway, environ=env, sleep=_no_sleep)
        outcome = await apply_pass(planned, settings_, gateway, environ=env, sleep=_no_sleep)
    assert outcome is not None
    return outcome


def test_example_manifests_applied_then_replanned_are_noop_without_a_write(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", manifests)

    async def body(emu: Emulator, gateway: Any) -> None:
        s = _settings(manifests)
        outcome = await _converge(s, gateway, EXAMPLE_ENV)
        assert not outcome.failed, outcome.applied
        assert outcome.unconverged == ()
        emu.reset_counters()
        again = await plan_pass(s, gateway, environ=EXAMPLE_ENV, sleep=_no_sleep)
        assert {c.action for c in again.plan.changes} == {Action.NOOP}
        second = await apply_pass(again, s, gateway, environ=EXAMPLE_ENV, sleep=_no_sleep)
        assert not second.failed
        assert _writes(emu) == 0

    asyncio.run(_with_emulator(tmp_path / "tls", body))


# ---------------------------------------------------------------------------------------------------------
# Generated manifests

names = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)
images = st.sampled_from(
    ["nginx:1.25", "nginx:1.27", "busybox", "mcr.microsoft.com/azuredocs/aci-helloworld:latest"]
)
cpus = st.sampled_from([0.5, 1, 1.5, 2, "1", "2.0"])
memories = st.sampled_from([0.5, 1, 1.5, "2", 3.5])


@st.composite
def container(draw: st.DrawFn, name: str) -> dict[str, Any]:
    props: dict[str, Any] = {
        "image": draw(images),
        "resources": {"requests": {"cpu": draw(cpus), "memoryInGB": draw(memories)}},
    }
    if draw(st.booleans()):
        props["command"] = draw(
            st.lists(st.sampled_from(["/bin/sh", "-c", "sleep 3600", "echo hi"]), min_size=1, max_size=3)
        )
    env = draw(
        st.dictionaries(
            st.from_regex(r"[A-Z][A-Z_]{0,6}", fullmatch=True),
            st.text(alphabet="abc123-", max_size=8),
            max_size=3,
        )
    )
    entries: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in env.items()]
    if draw(st.booleans()):
        entries.append({"name": "SECRET_TOKEN", "secureValueFrom": {"env": "GEN_SECRET"}})
    if entries:
        props["environmentVariables"] = entries
    if draw(st.booleans()):
        props["ports"] = [{"port": draw(st.sampled_from([80, 8080, "443"]))}]
    return {"name": name, "properties": props}


@st.composite
def group(draw: st.DrawFn, name: str) -> dict[str, Any]:
    container_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    doc: dict[str, Any] = {
        "name": name,
        "resourceGroup": draw(st.sampled_from(["rg-a", "rg-b"])),
        "location": "westeurope",
        "properties": {
            "osType": draw(st.sampled_from(["Linux", "linux"])),
            "restartPolicy": draw(st.sampled_from(["Always", "OnFailure", "Never", None])),
            "containers": [draw(container(n)) for n in container_names],
        },
    }
    if doc["properties"]["restartPolicy"] is None:
        del doc["properties"]["restartPolicy"]
    tags = draw(
        st.one_of(
            st.none(),
            st.dictionaries(
                st.sampled_from(["team", "env", "cost"]), st.sampled_from(["a", "b"]), max_size=2
            ),
        )
    )
    doc["tags"] = tags
    first_ports = [p for c in doc["properties"]["containers"] for p in c["properties"].get("ports", [])]
    if first_ports and draw(st.booleans()):
        ip: dict[str, Any] = {
            "type": "Public",
            "ports": [{"port": first_ports[0]["port"], "protocol": draw(st.sampled_from(["TCP", "tcp"]))}],
        }
        if draw(st.booleans()):
            ip["dnsNameLabel"] = f"{name}-label"
        doc["properties"]["ipAddress"] = ip
    return doc


@settings(max_examples=20, deadline=None)
@given(
    docs=st.lists(names, min_size=1, max_size=4, unique=True).flatmap(
        lambda ns: st.tuples(*[group(n) for n in ns])
    )
)
def test_generated_manifests_applied_then_replanned_are_noop(
    tmp_path_factory: pytest.TempPathFactory, docs: tuple[dict[str, Any], ...]
) -> None:
    work = tmp_path_factory.mktemp("gen")
    manifests = work / "manifests"
    manifests.mkdir()
    (manifests / "groups.yaml").write_text(yaml.safe_dump_all(list(docs), sort_keys=False))
    env = {"GEN_SECRET": "generated-secret"}

    async def body(emu: Emulator, gateway: Any) -> None:
        s = _settings(manifests)
        outcome = await _converge(s, gateway, env)
        assert not outcome.failed, (outcome.plan.issues, outcome.applied)
        assert outcome.unconverged == ()
        emu.reset_counters()
        again = await plan_pass(s, gateway, environ=env, sleep=_no_sleep)
        assert [c for c in again.plan.changes if c.action is not Action.NOOP] == []
        assert _writes(emu) == 0

    asyncio.run(_with_emulator(tmp_path_factory.getbasetemp() / "tls", body))


# ---------------------------------------------------------------------------------------------------------
# Faults


def _fleet(manifests: Path, count: int, *, image: str, cpu: float = 1) -> None:
    docs = [
        {
            "name": f"app-{i:02d}",
            "resourceGroup": "rg-faults",
            "location": "westeurope",
            "properties": {
                "osType": "Linux",
                "containers": [
                    {
                        "name": "main",
                        "properties": {
                            "image": image,
                            "resources": {"requests": {"cpu": cpu if i % 3 == 0 else 1, "memoryInGB": 1}},
                        },
                    }
                ],
            },
        }
        for i in range(count)
    ]
    (manifests / "fleet.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))


def test_with_injected_faults_apply_converges_without_duplicates_or_unintended_deletions(
    tmp_path: Path,
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()

    async def body(emu: Emulator, gateway: Any) -> None:
        s = _settings(manifests)
        # An unmanaged group in the same resource group must survive everything.
        bystander = tmp_path / "bystander"
        bystander.mkdir()
        (bystander / "b.yaml").write_text(
            yaml.safe_dump(
                {
                    "name": "bystander",
                    "resourceGroup": "rg-faults",
                    "location": "westeurope",
                    "properties": {
                        "osType": "Linux",
                        "containers": [
                            {
                                "name": "main",
                                "properties": {
                                    "image": "nginx",
                                    "resources": {"requests": {"cpu": 1, "memoryInGB": 1}},
                                },
                            }
                        ],
                    },
                }
            )
        )
        other = _settings(bystander, instance="someone-else")
        await _converge(other, gateway, {})

        _fleet(manifests, 12, image="nginx:1.25")
        await _converge(s, gateway, {})
        # Now change images and cpu (updates and replaces) under faults.
        _fleet(manifests, 12, image="nginx:1.27", cpu=2)
        emu.faults.set(
            FaultSettings(
                rate=0.25, kinds=("500", "503", "429", "reset", "provision_fail"), retry_after=0, seed=11
            )
        )
        for _ in range(8):
            outcome = await _converge(s, gateway, {})
            if not outcome.failed and outcome.unconverged == () and not outcome.plan.has_changes:
                break
        assert emu.faults.injected >= 5, "the faults this test is about were not injected"
        emu.faults.clear()
        final = await plan_pass(s, gateway, environ={}, sleep=_no_sleep)
        if final.plan.has_changes:
            await apply_pass(final, s, gateway, environ={}, sleep=_no_sleep)
            final = await plan_pass(s, gateway, environ={}, sleep=_no_sleep)
        assert [c.name for c in final.plan.changes if c.action is not Action.NOOP] == []
        live = await gateway.list_groups("rg-faults")
        live_names = sorted(g.name for g in live)
        assert live_names == sorted([*(f"app-{i:02d}" for i in range(12)), "bystander"])
        assert len(live_names) == len(set(live_names))
        for g in live:
            if g.name != "bystander":
                image = g.body["properties"]["containers"][0]["properties"]["image"]
                assert image == "nginx:1.27", g.name
        by = next(g for g in live if g.name == "bystander")
        assert by.tags.get(INSTANCE_TAG) == "someone-else"

    asyncio.run(_with_emulator(tmp_path / "tls", body))
