"""Draining at shutdown: a group being written finishes (a replace gets its create), no new group starts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reconciler.cloud.errors import StalledError
from reconciler.daemon.drain import SHUTTING_DOWN, DrainingGateway
from reconciler.daemon.state import Reason
from reconciler.model.outcome import Result
from reconciler.model.plan import Action
from tests.daemon.fakes import FakeClock, FakeEngine, change, fail, plan, settle
from tests.daemon.test_worker import make
from tests.fakes.gateway import FakeGateway

BODY = {"location": "westeurope", "properties": {}}


async def test_a_started_group_finishes_and_no_new_group_starts() -> None:
    fake = FakeGateway()
    fake.add("rg", "web")
    gateway = DrainingGateway(fake)
    gateway.new_pass()
    await gateway.delete("rg", "web", timeout=10)  # the first half of a replace
    gateway.drain()
    await gateway.create_or_update("rg", "WEB", BODY, timeout=10)  # its second half still runs
    with pytest.raises(StalledError) as refused:
        await gateway.create_or_update("rg", "api", BODY, timeout=10)
    assert refused.value.code == SHUTTING_DOWN
    with pytest.raises(StalledError):
        await gateway.patch_tags("rg", "other", {"a": "b"})
    assert [g.name.lower() for g in await gateway.list_groups("rg")] == ["web"], "reads pass while draining"
    assert fake.count("put", name="api") == 0


async def test_outcomes_refused_by_the_drain_are_interrupted_not_stalled() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(plan("r1", change("web"), change("api")))
    engine.gate = asyncio.Event()
    engine.outcomes["api"] = fail(retryable=False, message="ShuttingDown: not started")
    worker = make(engine, clock)
    task = asyncio.create_task(worker.run_pass([]), name="test-pass")
    await settle()
    worker.drain()
    assert engine.drained
    engine.gate.set()
    await task
    api = worker.book.groups[("rg", "api")]
    assert api.reason is Reason.INTERRUPTED
    assert api.stalled_on is None, "a restart will try it"
    assert api.in_flight == "update"
    assert worker.book.groups[("rg", "web")].reason is Reason.APPLIED


MANIFEST = """\
name: {name}
resourceGroup: rg
location: westeurope
properties:
  osType: Linux
  containers:
  - name: app
    properties:
      image: nginx:1.25
      resources: {{requests: {{cpu: 1, memoryInGB: 1}}}}
"""


async def test_engine_passes_drain_through_the_real_engine(tmp_path: Path) -> None:
    from reconciler.daemon.passes import EnginePasses
    from reconciler.engine.reconcile import EngineSettings
    from reconciler.execution import ApplyOptions

    for name in ("a", "b"):
        (tmp_path / f"{name}.yaml").write_text(MANIFEST.format(name=name))
    fake = FakeGateway()
    release = fake.hold("put", name="a")
    settings = EngineSettings(manifests=tmp_path, secret_key=b"k" * 32, apply=ApplyOptions(concurrency=1))
    passes = EnginePasses(settings, fake, environ={}, revision=lambda: "f" * 40)
    view = await passes.plan()
    assert view.complete
    assert view.plan.revision == "f" * 40, "the git commit is the revision"
    assert [c.action for c in view.plan.changes] == [Action.CREATE, Action.CREATE]
    events: list[object] = []
    applying = asyncio.create_task(passes.apply(view, view.plan.changes, events.append), name="test-apply")
    await asyncio.wait_for(fake.entered.wait(), 10)
    passes.drain()
    release.set()
    applied = await asyncio.wait_for(applying, 10)
    results = {o.name: o.result for o in applied.result.outcomes}
    assert results == {"a": Result.SUCCEEDED, "b": Result.FAILED}
    assert fake.exists("rg", "a")
    assert not fake.exists("rg", "b")
    assert events, "progress events reach the worker"
