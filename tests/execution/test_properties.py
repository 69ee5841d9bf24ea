"""Properties of `apply_plan` that must hold for any plan and any script of Azure faults (hypothesis)."""

from __future__ import annotations

import asyncio
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.cloud.errors import GatewayError, OperationTimeoutError, RetryableError, StalledError
from reconciler.execution import ApplyOptions, apply_plan
from reconciler.model.outcome import Result
from reconciler.model.plan import Action, Change
from tests.execution.conftest import SECRET, FakeClock, change, plan
from tests.fakes.gateway import FakeGateway

WRITES = ("put", "patch", "delete")

errors = st.one_of(
    st.builds(
        lambda ra: RetryableError("throttled", status=429, retry_after=ra), st.sampled_from([None, 1.0, 30.0])
    ),
    st.just(RetryableError("server error", status=500)),
    st.just(StalledError(f"bad value {SECRET}", status=400)),
    st.just(OperationTimeoutError("not finished")),
)

entries = st.tuples(
    st.sampled_from(list(Action)),
    st.booleans(),  # held
    st.booleans(),  # exists in Azure beforehand
)

faults = st.lists(
    st.tuples(st.sampled_from(WRITES), st.integers(min_value=0, max_value=5), errors, st.integers(1, 6)),
    max_size=8,
)


@settings(max_examples=60)
@given(
    specs=st.lists(entries, min_size=1, max_size=6),
    script=faults,
    max_attempts=st.integers(min_value=1, max_value=4),
    concurrency=st.integers(min_value=1, max_value=4),
)
def test_executor_never_writes_for_skipped_changes_and_never_exceeds_max_attempts(
    specs: list[tuple[Action, bool, bool]],
    script: list[tuple[str, int, GatewayError, int]],
    max_attempts: int,
    concurrency: int,
) -> None:
    fake = FakeGateway()
    changes: list[Change] = []
    for i, (action, held, exists) in enumerate(specs):
        name = f"g{i}"
        if exists:
            fake.add("rg", name)
        changes.append(change(action, name, held="held by policy" if held else None))
    for op, index, error, times in script:
        fake.fail(op, error, name=f"g{index}", times=times)
    clock = FakeClock()
    options = ApplyOptions(max_attempts=max_attempts, concurrency=concurrency, rng=random.Random(0))

    result = asyncio.run(apply_plan(plan(*changes), fake, options=options, sleep=clock.sleep, clock=clock))

    assert len(result.outcomes) == len(changes)
    for c, outcome in zip(changes, result.outcomes, strict=True):
        ops = fake.ops(name=c.name)
        assert (outcome.resource_group, outcome.name, outcome.action) == (c.resource_group, c.name, c.action)
        if c.action in (Action.NOOP, Action.CONFLICT) or c.held is not None:
            assert ops == [], (c, ops)
            assert outcome.result in (Result.SKIPPED, Result.HELD)
            continue
        # A replace re-creates in rounds (each with its own attempts): its create may take more calls.
        rounds = options.recreate_rounds if c.action is Action.REPLACE else 1
        for op in WRITES:
            assert ops.count(op) <= max_attempts * (rounds if op == "put" else 1)
        writes = [op for op in ops if op in WRITES]
        if c.action is Action.REPLACE:
            # Attempts are those of the step that needed the most, never delete and create added up.
            assert 1 <= outcome.attempts <= max_attempts
        else:
            assert outcome.attempts == len(writes)
        if outcome.result is Result.SUCCEEDED:
            expected_last = {
                Action.CREATE: "put",
                Action.UPDATE: "put",
                Action.REPLACE: "put",
                Action.TAGS: "patch",
                Action.DELETE: "delete",
            }[c.action]
            assert ops[-1] == expected_last
        if c.action is Action.REPLACE and "put" in ops:
            assert ops.index("delete") < ops.index("put")
        assert outcome.interrupted_after_delete == (
            c.action is Action.REPLACE and outcome.failed and "put" in ops
        )
        if outcome.result is Result.RECREATE_FAILED:
            assert c.action is Action.REPLACE
            assert "put" in ops
        if c.desired is not None:  # a prune sends no secret, so Azure cannot echo one
            assert SECRET not in outcome.message
    # Every delete (prune) started after every first-wave write had finished.
    first_wave = {c.name for c in changes if c.action is not Action.DELETE}
    calls = [(call.op, call.name) for call in fake.calls]
    prune_calls = [i for i, (op, n) in enumerate(calls) if op == "delete" and n not in first_wave]
    other_calls = [i for i, (_, n) in enumerate(calls) if n in first_wave]
    if prune_calls and other_calls:
        assert min(prune_calls) > max(other_calls)
    assert fake.max_in_flight <= concurrency
