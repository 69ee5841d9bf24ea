"""The worker as a replica: a standby plans and applies nothing; a leader that loses its lease mid-pass
records the refused groups as interrupted (never as failed or stalled); the book is written for the other
replicas before the first write to Azure."""

from __future__ import annotations

from reconciler.daemon.state import Phase, Reason
from reconciler.model.plan import Action
from tests.daemon.fakes import FakeClock, FakeEngine, change, fail, plan
from tests.daemon.test_worker import make, sample, trig


class Sharing:
    def __init__(self) -> None:
        self.refused: dict[str, str] = {}
        self.dirty = 0
        self.flushes = 0
        self.events: list[str] = []

    def refusal(self, resource_group: str) -> str | None:
        return self.refused.get(resource_group)

    def mark_dirty(self) -> None:
        self.dirty += 1

    async def flush(self) -> None:
        self.flushes += 1
        self.events.append("flush")


async def test_a_standby_plans_and_records_why_it_applies_nothing() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(plan("r1", change("web"), change("old", Action.DELETE)))
    sharing = Sharing()
    sharing.refused["rg"] = "standby: replica r1 holds the lease"
    worker = make(engine, clock, sharing=sharing)
    record = await worker.run_pass([trig()])
    assert engine.applied == []
    assert record.result == "ok"
    assert record.deferred == 2
    web = worker.book.groups[("rg", "web")]
    assert (web.reason, web.message) == (Reason.PLANNED, "standby: replica r1 holds the lease")
    assert sample(worker.metrics, "aci_reconciler_changes_deferred_total", why="standby") == 2
    assert sharing.flushes == 0, "nothing is written to Azure, so nothing needs writing first"


async def test_the_shared_book_is_written_before_the_first_write_to_azure() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(plan("r1", change("web")))
    sharing = Sharing()
    worker = make(engine, clock, sharing=sharing)
    original = engine.apply

    async def apply(*args, **kwargs):  # type: ignore[no-untyped-def]
        sharing.events.append("apply")
        return await original(*args, **kwargs)

    engine.apply = apply  # type: ignore[method-assign]
    await worker.run_pass([trig()])
    assert sharing.events == ["flush", "apply"]
    assert sharing.dirty >= 2, "the write-ahead and the pass's end both mark the book for the replicas"


async def test_groups_refused_after_the_lease_was_lost_mid_pass_are_interrupted_not_failed() -> None:
    clock = FakeClock()
    engine = FakeEngine()
    engine.set_plan(plan("r1", change("web"), change("api")))
    sharing = Sharing()
    engine.outcomes["web"] = fail(retryable=False, message="NotLeader: not written")

    def lose_lease_then_fail(c):  # type: ignore[no-untyped-def]
        sharing.refused["rg"] = "standby: the lease was not renewed in time"
        return fail(retryable=False, message="NotLeader: not written")(c)

    engine.outcomes["api"] = lose_lease_then_fail
    worker = make(engine, clock, sharing=sharing)
    await worker.run_pass([trig()])
    for name in ("web", "api"):
        state = worker.book.groups[("rg", name)]
        assert state.phase is not Phase.STALLED
        assert state.reason is Reason.INTERRUPTED
        assert state.failures == 0
