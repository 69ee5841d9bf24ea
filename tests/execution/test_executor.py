"""`apply_plan` against `FakeGateway` on a fake clock: semantics, retries, order, bounds, cancellation."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from reconciler.cloud.errors import (
    NotFoundError,
    OperationTimeoutError,
    RetryableError,
    StalledError,
)
from reconciler.execution import ApplyOptions, ProgressEvent, QuotaBudget, RateLimit, apply_plan
from reconciler.model.manifest import parse_manifest
from reconciler.model.outcome import Result
from reconciler.model.plan import Action, Change
from tests.execution.conftest import SECRET, FakeClock, change, manifest, plan, settle
from tests.fakes.gateway import FakeGateway

FAST = ApplyOptions(rng=random.Random(7))


async def run(
    p: Any, fake: FakeGateway, clock: FakeClock, options: ApplyOptions = FAST, **kwargs: Any
) -> Any:
    return await apply_plan(p, fake, options=options, sleep=clock.sleep, clock=clock, **kwargs)


async def test_noop_and_conflict_are_skipped_without_any_call(clock: FakeClock) -> None:
    fake = FakeGateway()
    result = await run(plan(change(Action.NOOP), change(Action.CONFLICT, "other")), fake, clock)
    assert [o.result for o in result.outcomes] == [Result.SKIPPED, Result.SKIPPED]
    assert fake.calls == []


async def test_held_replace_is_reported_held_without_any_call(clock: FakeClock) -> None:
    fake = FakeGateway()
    events: list[ProgressEvent] = []
    held = change(Action.REPLACE, held="recreate: never; cpu changed")
    result = await run(plan(held), fake, clock, on_event=events.append)
    [outcome] = result.outcomes
    assert outcome.result is Result.HELD
    assert outcome.message == "recreate: never; cpu changed"
    assert fake.calls == []
    assert [e.phase for e in events] == ["held"]


async def test_create_puts_the_desired_body_with_secrets_and_the_write_tags(clock: FakeClock) -> None:
    fake = FakeGateway()
    c = change(Action.CREATE)
    result = await run(plan(c), fake, clock)
    assert result.outcomes[0].result is Result.SUCCEEDED
    [put] = fake.calls
    assert put.op == "put"
    expected = manifest().to_arm_body(reveal_secrets=True)
    expected["tags"] = c.write_tags
    assert put.body == expected
    assert SECRET in str(put.body)  # resolved secrets are sent...
    assert SECRET not in str(fake.groups[("rg", "web")].body)  # ...and, as in Azure, not read back


async def test_update_is_exactly_one_put_even_when_the_group_exists(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.add("rg", "web", tags={"managed-by": "aci-reconciler"})
    result = await run(plan(change(Action.UPDATE)), fake, clock)
    assert result.outcomes[0].result is Result.SUCCEEDED
    assert fake.ops() == ["put"]


async def test_tags_change_is_one_patch_of_the_write_tags(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.add("rg", "web")
    c = change(Action.TAGS)
    await run(plan(c), fake, clock)
    assert fake.ops() == ["patch"]
    assert fake.calls[0].body == c.write_tags


async def test_delete_removes_the_group(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.add("rg", "old")
    result = await run(plan(change(Action.DELETE, "old")), fake, clock)
    assert result.outcomes[0].result is Result.SUCCEEDED
    assert fake.ops() == ["delete"]
    assert not fake.exists("rg", "old")


async def test_replace_deletes_then_creates(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.add("rg", "web")
    events: list[ProgressEvent] = []
    result = await run(plan(change(Action.REPLACE)), fake, clock, on_event=events.append)
    assert fake.ops() == ["delete", "put"]
    assert result.outcomes[0].result is Result.SUCCEEDED
    assert not result.outcomes[0].interrupted_after_delete
    assert [e.phase for e in events] == ["started", "deleting", "creating", "done"]


async def test_replace_whose_create_fails_once_after_the_delete_retries_and_brings_the_group_back(
    clock: FakeClock,
) -> None:
    fake = FakeGateway()
    fake.add("rg", "web")
    fake.fail("put", StalledError("InvalidRequestContent: bad", status=400))
    result = await run(plan(change(Action.REPLACE)), fake, clock)
    [outcome] = result.outcomes
    assert outcome.result is Result.SUCCEEDED
    assert fake.ops() == ["delete", "put", "get", "put"]  # between rounds: has someone created it?
    assert fake.exists("rg", "web")


async def test_replace_whose_delete_fails_is_not_interrupted(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.add("rg", "web")
    fake.fail("delete", StalledError("not authorised", status=403))
    [outcome] = (await run(plan(change(Action.REPLACE)), fake, clock)).outcomes
    assert outcome.result is Result.FAILED
    assert not outcome.interrupted_after_delete
    assert fake.ops() == ["delete"]


async def test_replace_without_ownership_tags_never_deletes(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.add("rg", "web")
    [outcome] = (await run(plan(change(Action.REPLACE, write_tags={"team": "x"})), fake, clock)).outcomes
    assert outcome.result is Result.FAILED
    assert outcome.retryable is False
    assert fake.calls == []
    assert fake.exists("rg", "web")


async def test_create_without_a_desired_manifest_fails_without_a_call(clock: FakeClock) -> None:
    fake = FakeGateway()
    [outcome] = (await run(plan(change(Action.CREATE, desired=False)), fake, clock)).outcomes
    assert outcome.result is Result.FAILED
    assert fake.calls == []


async def test_unresolved_secret_reference_stalls_without_a_call(clock: FakeClock) -> None:
    data = manifest().to_manifest_dict()
    data["properties"]["containers"][0]["properties"]["environmentVariables"][1] = {
        "name": "DB_PASSWORD",
        "secureValueFrom": {"env": "DB_PASSWORD"},
    }
    unresolved = Change(
        resource_group="rg",
        name="web",
        action=Action.CREATE,
        write_tags={"managed-by": "aci-reconciler"},
        desired=parse_manifest(data),
    )
    fake = FakeGateway()
    [outcome] = (await run(plan(unresolved), fake, clock)).outcomes
    assert outcome.result is Result.FAILED
    assert outcome.retryable is False
    assert "DB_PASSWORD" in outcome.message
    assert fake.calls == []


async def test_throttled_put_is_retried_after_exactly_the_retry_after(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.fail("put", RetryableError("throttled", status=429, retry_after=7.0), times=2)
    events: list[ProgressEvent] = []
    [outcome] = (await run(plan(change(Action.CREATE)), fake, clock, on_event=events.append)).outcomes
    assert outcome.result is Result.SUCCEEDED
    assert outcome.attempts == 3
    assert clock.sleeps == [7.0, 7.0]
    assert [e.attempt for e in events if e.phase == "retrying"] == [1, 2]


async def test_retry_without_retry_after_uses_bounded_full_jitter(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.fail("put", RetryableError("boom", status=500), times=4)
    options = ApplyOptions(rng=random.Random(1), backoff_base=2.0, backoff_cap=5.0)
    [outcome] = (await run(plan(change(Action.CREATE)), fake, clock, options)).outcomes
    assert outcome.result is Result.SUCCEEDED
    ceilings = [2.0, 4.0, 5.0, 5.0]
    assert len(clock.sleeps) == 4
    assert all(0 <= s <= c for s, c in zip(clock.sleeps, ceilings, strict=True))


async def test_seeded_rng_makes_backoff_reproducible() -> None:
    async def sleeps() -> list[float]:
        clock = FakeClock()
        fake = FakeGateway()
        fake.fail("put", RetryableError("boom", status=503), times=3)
        await run(plan(change(Action.CREATE)), fake, clock, ApplyOptions(rng=random.Random(42)))
        return clock.sleeps

    assert await sleeps() == await sleeps()


async def test_stalled_error_is_not_retried(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.fail("put", StalledError("InvalidContainerGroupUpdate: no", status=400))
    [outcome] = (await run(plan(change(Action.UPDATE)), fake, clock)).outcomes
    assert outcome.result is Result.FAILED
    assert outcome.retryable is False
    assert outcome.attempts == 1
    assert fake.count("put") == 1
    assert clock.sleeps == []


async def test_retryable_error_gives_up_after_max_attempts(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.fail("put", RetryableError("boom", status=503), times=-1)
    options = ApplyOptions(max_attempts=3, rng=random.Random(0))
    [outcome] = (await run(plan(change(Action.CREATE)), fake, clock, options)).outcomes
    assert outcome.result is Result.FAILED
    assert outcome.retryable is True
    assert fake.count("put") == 3
    assert outcome.attempts == 3
    assert "gave up after 3 attempts" in outcome.message


async def test_retry_after_longer_than_allowed_fails_now_as_retryable(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.fail("put", RetryableError("throttled", status=429, retry_after=3600.0))
    [outcome] = (await run(plan(change(Action.CREATE)), fake, clock)).outcomes
    assert outcome.result is Result.FAILED
    assert outcome.retryable is True
    assert fake.count("put") == 1
    assert clock.sleeps == []


async def test_lro_timeout_is_not_retried_within_the_pass(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.fail("put", OperationTimeoutError("PUT rg/web: not finished after 900s"))
    [outcome] = (await run(plan(change(Action.UPDATE)), fake, clock)).outcomes
    assert outcome.result is Result.FAILED
    assert outcome.retryable is True
    assert fake.count("put") == 1


async def test_lro_timeout_is_passed_to_the_gateway() -> None:
    seen: list[float] = []

    class Spy(FakeGateway):
        async def create_or_update(self, rg: str, name: str, body: dict[str, Any], *, timeout: float) -> Any:  # noqa: ASYNC109 - a spy of the contract
            seen.append(timeout)
            return await super().create_or_update(rg, name, body, timeout=timeout)

    clock = FakeClock()
    await run(plan(change(Action.CREATE)), Spy(), clock, ApplyOptions(lro_timeout=42.0))
    assert seen == [42.0]


async def test_one_failing_group_does_not_stop_the_others(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.fail("put", StalledError("bad", status=400), name="b")
    fake.fail("put", RuntimeError("a bug in a fake"), name="c")
    result = await run(
        plan(
            change(Action.CREATE, "a"),
            change(Action.CREATE, "b"),
            change(Action.CREATE, "c"),
            change(Action.CREATE, "d"),
        ),
        fake,
        clock,
    )
    assert [o.result for o in result.outcomes] == [
        Result.SUCCEEDED,
        Result.FAILED,
        Result.FAILED,
        Result.SUCCEEDED,
    ]
    assert result.outcomes[2].message == "internal error: RuntimeError"
    assert fake.exists("rg", "a")
    assert fake.exists("rg", "d")


async def test_concurrency_bound_is_honoured(clock: FakeClock) -> None:
    fake = FakeGateway()
    release = fake.hold("put")
    changes = [change(Action.CREATE, f"g{i}") for i in range(10)]
    task = asyncio.create_task(run(plan(*changes), fake, clock, ApplyOptions(concurrency=3)))
    await settle(lambda: fake.in_flight == 3)
    for _ in range(20):  # give the others every chance to exceed the bound
        await asyncio.sleep(0)
    assert fake.in_flight == 3
    release.set()
    result = await task
    assert fake.max_in_flight == 3
    assert all(o.result is Result.SUCCEEDED for o in result.outcomes)


async def test_independent_groups_run_concurrently(clock: FakeClock) -> None:
    fake = FakeGateway()
    release = fake.hold("put")
    task = asyncio.create_task(run(plan(*[change(Action.CREATE, f"g{i}") for i in range(5)]), fake, clock))
    await settle(lambda: fake.in_flight == 5)
    release.set()
    await task


async def test_group_tasks_are_named_after_the_group(clock: FakeClock) -> None:
    fake = FakeGateway()
    release = fake.hold("put")
    task = asyncio.create_task(run(plan(change(Action.CREATE, "web", "rg-prod")), fake, clock))
    await settle(lambda: fake.in_flight == 1)
    assert "apply:rg-prod/web" in {t.get_name() for t in asyncio.all_tasks()}
    release.set()
    await task


async def test_prunes_run_only_after_every_create(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.add("rg", "old")
    release = fake.hold("put", name="new")
    # The delete comes first in the plan: order of execution must not follow it.
    task = asyncio.create_task(
        run(plan(change(Action.DELETE, "old"), change(Action.CREATE, "new")), fake, clock)
    )
    await settle(lambda: fake.in_flight == 1)
    for _ in range(20):
        await asyncio.sleep(0)
    assert fake.ops() == ["put"]
    assert fake.exists("rg", "old")
    release.set()
    result = await task
    assert fake.ops() == ["put", "delete"]
    assert [o.name for o in result.outcomes] == ["old", "new"]  # outcomes keep plan order


async def test_prunes_still_run_when_a_create_failed_by_default(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.add("rg", "old")
    fake.fail("put", StalledError("bad", status=400))
    result = await run(plan(change(Action.CREATE, "new"), change(Action.DELETE, "old")), fake, clock)
    assert [o.result for o in result.outcomes] == [Result.FAILED, Result.SUCCEEDED]


async def test_hold_prunes_on_failure_skips_deletes_after_a_failed_create(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.add("rg", "old")
    fake.fail("put", StalledError("bad", status=400))
    options = ApplyOptions(hold_prunes_on_failure=True)
    result = await run(plan(change(Action.CREATE, "new"), change(Action.DELETE, "old")), fake, clock, options)
    assert [o.result for o in result.outcomes] == [Result.FAILED, Result.SKIPPED]
    assert fake.exists("rg", "old")
    assert fake.count("delete") == 0


async def test_cancellation_propagates_and_nothing_unfinished_is_reported_done(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.add("rg", "web")
    fake.hold("put")  # never released
    events: list[ProgressEvent] = []
    task = asyncio.create_task(
        run(plan(change(Action.REPLACE), change(Action.CREATE, "other")), fake, clock, on_event=events.append)
    )
    await settle(lambda: fake.in_flight == 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not [e for e in events if e.phase == "done"]
    cancelled = {e.name: e.message for e in events if e.phase == "cancelled"}
    assert cancelled["web"].startswith("interrupted after the delete")
    assert cancelled["other"] == "interrupted"
    assert fake.in_flight == 0
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("apply:")]


async def test_quota_bucket_paces_creates(clock: FakeClock) -> None:
    put_times: list[float] = []

    class Timed(FakeGateway):
        async def create_or_update(self, rg: str, name: str, body: dict[str, Any], *, timeout: float) -> Any:  # noqa: ASYNC109 - a spy of the contract
            put_times.append(clock.now)
            return await super().create_or_update(rg, name, body, timeout=timeout)

    options = ApplyOptions(create_limits=(RateLimit(2, 60.0),))
    events: list[ProgressEvent] = []
    result = await run(
        plan(*[change(Action.CREATE, f"g{i}") for i in range(5)]),
        Timed(),
        clock,
        options,
        on_event=events.append,
    )
    assert all(o.result is Result.SUCCEEDED for o in result.outcomes)
    assert sorted(put_times) == pytest.approx([0.0, 0.0, 30.0, 60.0, 90.0])
    assert any(e.phase == "waiting" and "create quota" in e.message for e in events)


async def test_quota_budget_is_shared_across_passes(clock: FakeClock) -> None:
    fake = FakeGateway()
    budget = QuotaBudget(
        creates=(RateLimit(1, 100.0),), deletes=(RateLimit(1, 100.0),), clock=clock, sleep=clock.sleep
    )
    await run(plan(change(Action.CREATE, "a")), fake, clock, budget=budget)
    await run(plan(change(Action.CREATE, "b")), fake, clock, budget=budget)
    assert clock.sleeps == [pytest.approx(100.0)]


async def test_updates_and_tags_do_not_spend_the_create_quota(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.add("rg", "a")
    fake.add("rg", "b")
    options = ApplyOptions(create_limits=(RateLimit(1, 3600.0),))
    await run(
        plan(change(Action.UPDATE, "a"), change(Action.TAGS, "b"), change(Action.UPDATE, "c")),
        fake,
        clock,
        options,
    )
    assert clock.sleeps == []


async def test_deletes_spend_the_delete_quota(clock: FakeClock) -> None:
    fake = FakeGateway()
    options = ApplyOptions(delete_limits=(RateLimit(1, 10.0),))
    await run(plan(change(Action.DELETE, "a"), change(Action.DELETE, "b")), fake, clock, options)
    assert clock.sleeps == [pytest.approx(10.0)]


async def test_secrets_never_appear_in_outcomes_or_events(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.fail("put", RetryableError(f"Azure echoed {SECRET} back", status=500))
    fake.fail("put", StalledError(f"value '{SECRET}' is invalid", status=400))
    events: list[ProgressEvent] = []
    result = await run(plan(change(Action.CREATE)), fake, clock, on_event=events.append)
    text = result.model_dump_json() + repr(events)
    assert SECRET not in text
    assert "(sensitive)" in result.outcomes[0].message


async def test_delete_of_an_already_missing_group_succeeds(clock: FakeClock) -> None:
    fake = FakeGateway()
    [outcome] = (await run(plan(change(Action.DELETE, "gone")), fake, clock)).outcomes
    assert outcome.result is Result.SUCCEEDED


async def test_tags_patch_on_a_vanished_group_fails_stalled(clock: FakeClock) -> None:
    fake = FakeGateway()
    [outcome] = (await run(plan(change(Action.TAGS)), fake, clock)).outcomes
    assert outcome.result is Result.FAILED
    assert outcome.retryable is False


async def test_a_broken_progress_callback_does_not_break_the_apply(clock: FakeClock) -> None:
    def broken(_: ProgressEvent) -> None:
        raise RuntimeError("display gone")

    [outcome] = (await run(plan(change(Action.CREATE)), FakeGateway(), clock, on_event=broken)).outcomes
    assert outcome.result is Result.SUCCEEDED


async def test_outcome_duration_comes_from_the_injected_clock(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.fail("put", RetryableError("throttled", status=429, retry_after=5.0))
    [outcome] = (await run(plan(change(Action.CREATE)), fake, clock)).outcomes
    assert outcome.duration_s == pytest.approx(5.0)


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        ApplyOptions(concurrency=0)
    with pytest.raises(ValueError, match="max_attempts"):
        ApplyOptions(max_attempts=0)


async def test_not_found_on_update_is_a_stalled_failure(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.fail("put", NotFoundError("ResourceGroupNotFound", status=404))
    [outcome] = (await run(plan(change(Action.UPDATE)), fake, clock)).outcomes
    assert outcome.result is Result.FAILED
    assert outcome.retryable is False
