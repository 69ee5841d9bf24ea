"""The worker loop: one pass at a time, per-group backoff and stalls, no prune on parse errors, dry run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.daemon.metrics import DaemonMetrics
from reconciler.daemon.state import BackoffPolicy, Phase, Reason, StateBook, StateStore
from reconciler.daemon.triggers import Coalescer, RetryTimer, Trigger, TriggerKind
from reconciler.daemon.worker import Worker
from reconciler.model.plan import Action, PlanIssue
from tests.daemon.fakes import FakeClock, FakeEngine, change, fail, plan, settle


def make(engine: FakeEngine, clock: FakeClock, **kwargs: object) -> Worker:
    coalescer = Coalescer()
    book = StateBook(backoff=BackoffPolicy(base=10, cap=80, jitter=0))
    return Worker(
        engine,
        coalescer,
        book,
        metrics=DaemonMetrics(),
        retry_timer=RetryTimer(coalescer, sleep=clock.sleep, clock=clock.time),
        clock=clock.time,
        monotonic=clock.monotonic,
        **kwargs,  # type: ignore[arg-type]  # keyword options of Worker
    )


def trig(kind: TriggerKind = TriggerKind.FILE) -> Trigger:
    return Trigger(kind, "test", 0.0)


def sample(metrics: DaemonMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def test_triggers_during_a_pass_cause_exactly_one_more_pass() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(plan("r1", change("web")))
    engine.gate = asyncio.Event()
    worker = make(engine, clock)
    task = asyncio.create_task(worker.run(), name="test-worker")
    worker.coalescer.fire(trig(TriggerKind.STARTUP))
    await settle()
    assert engine.in_apply.is_set()
    assert engine.plan_calls == 1
    for kind in (TriggerKind.FILE, TriggerKind.INTERVAL, TriggerKind.FILE, TriggerKind.WEBHOOK):
        worker.coalescer.fire(trig(kind))
    await settle()
    assert engine.plan_calls == 1, "never two passes at once"
    engine.gate.set()
    await settle()
    assert engine.plan_calls == 2, "four triggers during the pass made exactly one more"
    assert worker.last_pass is not None
    assert len(worker.last_pass.triggers) == 4
    await settle()
    assert engine.plan_calls == 2
    worker.coalescer.close()
    await task


async def test_retryable_failure_backs_off_one_group_without_delaying_others() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(plan("r1", change("web"), change("api")))
    engine.outcomes["web"] = fail(retryable=True, message="throttled")
    worker = make(engine, clock)
    await worker.run_pass([trig()])
    assert engine.applied == [["web", "api"]]
    web = worker.book.groups[("rg", "web")]
    assert (web.phase, web.failures, web.next_retry_at) == (Phase.RECONCILING, 1, clock.now + 10)

    # api drifts again; web is still backing off: only api is applied.
    await clock.advance(5)
    await worker.run_pass([trig(TriggerKind.INTERVAL)])
    assert engine.applied[-1] == ["api"]
    assert worker.last_pass is not None
    assert worker.last_pass.deferred == 1
    assert sample(worker.metrics, "aci_reconciler_changes_deferred_total", why="backoff") == 1

    # The retry timer brings a pass when web's backoff ends, without any other trigger.
    run = asyncio.create_task(worker.run(), name="test-worker")
    await clock.advance(5)
    assert engine.applied[-1] == ["web", "api"]
    assert worker.book.groups[("rg", "web")].failures == 2, "failed again: the backoff doubles"
    assert worker.book.groups[("rg", "web")].next_retry_at == clock.now + 20
    worker.coalescer.close()
    await run


async def test_stalled_group_is_left_out_until_its_manifest_changes() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(plan("r1", change("web", spec="s1"), change("api")))
    engine.outcomes["web"] = fail(retryable=False, message="InvalidContainerImage")
    worker = make(engine, clock)
    await worker.run_pass([trig()])
    assert worker.book.groups[("rg", "web")].phase is Phase.STALLED
    await worker.run_pass([trig(TriggerKind.INTERVAL)])
    assert engine.applied[-1] == ["api"], "the stalled group is not retried"
    assert worker.retry_timer.due is None, "a stalled group schedules no retry"

    del engine.outcomes["web"]
    engine.set_plan(plan("r1", change("web", spec="s2"), change("api")))
    await worker.run_pass([trig()])
    assert engine.applied[-1] == ["web", "api"], "a new manifest is tried again"
    assert worker.book.counts()["Ready"] == 2


async def test_manifest_that_fails_to_parse_never_prunes_its_live_group() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    error = PlanIssue(severity="error", message="mapping values are not allowed here", source="web.yaml:4:9")
    engine.set_plan(
        plan("r2", change("web", Action.DELETE), change("api"), issues=[error]),
        complete=False,
        failed={("rg", "web"): "web.yaml:4:9: mapping values are not allowed here"},
    )
    worker = make(engine, clock)
    await worker.run_pass([trig()])
    assert engine.applied == [["api"]], "the delete of web is dropped"
    web = worker.book.groups[("rg", "web")]
    assert (web.phase, web.reason) == (Phase.STALLED, Reason.INVALID_MANIFEST)
    assert "mapping values" in (web.last_error or "")
    assert sample(worker.metrics, "aci_reconciler_changes_deferred_total", why="not_pruned") == 1
    assert worker.last_pass is not None
    assert worker.last_pass.result == "failed"


async def test_incomplete_load_prunes_nothing_even_without_a_known_key() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(plan("r2", change("old", Action.DELETE), change("other", Action.DELETE)), complete=False)
    worker = make(engine, clock)
    await worker.run_pass([trig()])
    assert engine.applied == []


async def test_complete_load_prunes_what_lost_its_manifest() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(plan("r2", change("old", Action.DELETE)), complete=True)
    worker = make(engine, clock)
    await worker.run_pass([trig()])
    assert engine.applied == [["old"]]
    assert ("rg", "old") not in worker.book.groups


async def test_dry_run_plans_but_never_applies() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(plan("r1", change("web"), change("api", Action.CREATE)))
    worker = make(engine, clock, dry_run=True)
    await worker.run_pass([trig()])
    assert engine.applied == []
    assert worker.book.groups[("rg", "web")].reason is Reason.PLANNED
    assert worker.last_plan is not None
    assert len(worker.last_plan.changes) == 2


async def test_noop_conflict_and_held_groups_get_their_states() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(
        plan(
            "r1",
            change("same", Action.NOOP),
            change("theirs", Action.CONFLICT),
            change("paused", Action.UPDATE, held="suspended"),
        )
    )
    worker = make(engine, clock)
    await worker.run_pass([trig()])
    assert engine.applied == []
    states = {k[1]: (s.phase, s.reason) for k, s in worker.book.groups.items()}
    assert states == {
        "same": (Phase.READY, Reason.IN_SYNC),
        "theirs": (Phase.STALLED, Reason.CONFLICT),
        "paused": (Phase.READY, Reason.HELD),
    }
    assert worker.book.groups[("rg", "same")].last_applied_revision == "r1"


async def test_drift_on_an_applied_group_is_counted() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(plan("r1", change("web", spec="s1")))
    worker = make(engine, clock)
    await worker.run_pass([trig()])
    assert sample(worker.metrics, "aci_reconciler_drift_detected_total", action="update") == 0
    await worker.run_pass([trig(TriggerKind.INTERVAL)])  # same manifest, Azure changed out of band
    assert sample(worker.metrics, "aci_reconciler_drift_detected_total", action="update") == 1
    assert sample(worker.metrics, "aci_reconciler_actions_total", action="update", result="succeeded") == 2


async def test_unconverged_group_backs_off() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(plan("r1", change("web")))
    engine.unconverged = frozenset({("rg", "web")})
    worker = make(engine, clock)
    await worker.run_pass([trig()])
    web = worker.book.groups[("rg", "web")]
    assert (web.reason, web.failures) == (Reason.NOT_CONVERGED, 1)


async def test_failed_plan_is_recorded_and_the_loop_goes_on() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.plan_error = RuntimeError("cannot list container groups")
    worker = make(engine, clock)
    record = await worker.run_pass([trig()])
    assert record.result == "error"
    assert "cannot list" in (record.error or "")
    assert worker.first_pass_done.is_set()
    engine.plan_error = None
    engine.set_plan(plan("r1", change("web")))
    assert (await worker.run_pass([trig()])).result == "ok"
    assert sample(worker.metrics, "aci_reconciler_passes_total", result="error") == 1


async def test_cancelled_apply_is_recorded_as_unfinished(tmp_path: Path) -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(plan("r1", change("web", Action.REPLACE)))
    engine.gate = asyncio.Event()
    store = StateStore(tmp_path)
    worker = make(engine, clock, store=store)
    task = asyncio.create_task(worker.run_pass([trig()]), name="test-pass")
    await settle()
    saved = store.load()
    assert saved is not None
    assert saved["groups"][0]["in_flight"] == "replace", "written before the write to Azure"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    saved = store.load()
    assert saved is not None
    (group,) = saved["groups"]
    assert group["in_flight"] == "replace"
    assert group["reason"] == "Interrupted"
    assert not worker.first_pass_done.is_set()


async def test_engine_exception_fails_the_groups_retryably() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(plan("r1", change("web")))

    async def broken(*args: object) -> None:
        raise RuntimeError("executor bug")

    engine.apply = broken  # type: ignore[method-assign,assignment]  # an apply that raises
    worker = make(engine, clock)
    record = await worker.run_pass([trig()])
    assert record.result == "failed"
    web = worker.book.groups[("rg", "web")]
    assert web.reason is Reason.RETRYABLE_ERROR
    assert "executor bug" in (web.last_error or "")


async def test_a_group_gone_from_a_complete_plan_is_forgotten_but_kept_when_loading_failed() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(plan("r1", change("web", Action.NOOP), change("api", Action.NOOP)))
    worker = make(engine, clock)
    await worker.run_pass([trig()])
    engine.set_plan(plan("r2", change("web", Action.NOOP)), complete=False)
    await worker.run_pass([trig()])
    assert ("rg", "api") in worker.book.groups, "an unreadable manifest is not a removed group"
    engine.set_plan(plan("r3", change("web", Action.NOOP)))
    await worker.run_pass([trig()])
    assert set(worker.book.groups) == {("rg", "web")}


async def _passes_for(bursts: list[int]) -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(plan("r1", change("web")))
    engine.gate = asyncio.Event()
    worker = make(engine, clock)
    task = asyncio.create_task(worker.run(), name="test-worker")
    worker.coalescer.fire(trig(TriggerKind.STARTUP))
    await settle()
    for burst in bursts:
        assert engine.in_apply.is_set(), "a pass is running"
        calls = engine.plan_calls
        for _ in range(burst):
            worker.coalescer.fire(trig())
        released, engine.gate = engine.gate, asyncio.Event()
        released.set()
        await settle()
        if burst:
            assert engine.plan_calls == calls + 1, "triggers during a pass: exactly one more pass"
        else:
            assert engine.plan_calls == calls, "no trigger during the pass: the loop waits"
            worker.coalescer.fire(trig(TriggerKind.INTERVAL))
            await settle()
            assert engine.plan_calls == calls + 1
    worker.coalescer.close()
    engine.gate.set()
    await task


@given(bursts=st.lists(st.integers(min_value=0, max_value=5), max_size=8))
def test_any_triggers_during_a_pass_collapse_into_exactly_one_more(bursts: list[int]) -> None:
    asyncio.run(_passes_for(bursts))


async def test_the_plan_kept_for_status_drops_every_manifest_holding_a_secret_and_keeps_the_others() -> None:
    from tests.planning.support import base_properties, manifest

    plain = manifest(name="plain")
    props = base_properties()
    props["containers"][0]["properties"]["environmentVariables"] = [
        {"name": "TOKEN", "secureValue": "s3cr3t"}
    ]
    secret = manifest(name="secret", properties=props)
    clock = FakeClock()
    engine = FakeEngine()
    changes = (
        change("plain", Action.NOOP).model_copy(update={"desired": plain}),
        change("secret", Action.NOOP).model_copy(update={"desired": secret}),
    )
    from types import SimpleNamespace

    from reconciler.daemon.passes import _SecretValues

    told = _SecretValues()
    planned = SimpleNamespace(plan=plan("r1", *changes), load=SimpleNamespace(groups=()))
    assert told.of(planned) == ("s3cr3t",)  # type: ignore[arg-type]
    assert told.holds_none(plain)
    assert not told.holds_none(secret)
    assert not told.holds_none(manifest(name="plain")), "by identity: another object is not vouched for"
    for secret_free in (None, told.holds_none):
        engine.set_plan(plan("r1", *changes), secret_free=secret_free)
        worker = make(engine, clock)
        await worker.run_pass([trig()])
        assert worker.last_plan is not None
        kept = {c.name: c.desired for c in worker.last_plan.changes}
        assert kept["secret"] is None, "a manifest with a resolved secret never outlives its pass"
        assert kept["plain"] is (plain if secret_free is not None else None)
