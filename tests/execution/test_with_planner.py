"""The executor with the real planner: an interrupted replace is completed by the next pass, and an
applied plan re-plans to nothing (no write, so no restart)."""

from __future__ import annotations

import random

from reconciler.cloud.errors import StalledError
from reconciler.execution import ApplyOptions, apply_plan
from reconciler.model.outcome import Result
from reconciler.model.plan import Action, Plan
from reconciler.planning import DesiredGroup, build_plan
from tests.execution.conftest import FakeClock, manifest
from tests.fakes.gateway import FakeGateway

KEY = b"k" * 32


async def plan_for(fake: FakeGateway, *desired: DesiredGroup) -> Plan:
    observed = await fake.list_groups("rg")
    return build_plan(list(desired), observed, instance="test", revision="r1", secret_key=KEY)


def cpu(n: float) -> DesiredGroup:
    m = manifest("web", "rg")
    data = m.to_manifest_dict()
    data["properties"]["containers"][0]["properties"]["resources"]["requests"]["cpu"] = n
    return DesiredGroup(type(m).model_validate(data))


async def test_interrupted_replace_is_completed_by_the_next_pass() -> None:
    fake = FakeGateway()
    clock = FakeClock()
    options = ApplyOptions(rng=random.Random(0))

    async def apply(plan: Plan) -> Result:
        result = await apply_plan(plan, fake, options=options, sleep=clock.sleep, clock=clock)
        return result.outcomes[0].result

    first = await plan_for(fake, cpu(1))
    assert [c.action for c in first.changes] == [Action.CREATE]
    assert await apply(first) is Result.SUCCEEDED

    replace = await plan_for(fake, cpu(2))
    assert [c.action for c in replace.changes] == [Action.REPLACE]
    # Every round of re-creating fails in this pass: the group is missing and said to be.
    fake.fail("put", StalledError("capacity gone", status=409), times=options.recreate_rounds)
    interrupted = await apply_plan(replace, fake, options=options, sleep=clock.sleep, clock=clock)
    assert interrupted.outcomes[0].result is Result.RECREATE_FAILED
    assert interrupted.outcomes[0].interrupted_after_delete
    assert not fake.exists("rg", "web")

    resume = await plan_for(fake, cpu(2))
    assert [c.action for c in resume.changes] == [Action.CREATE]
    assert await apply(resume) is Result.SUCCEEDED

    settled = await plan_for(fake, cpu(2))
    assert [c.action for c in settled.changes] == [Action.NOOP]
    writes = len(fake.writes())
    assert await apply(settled) is Result.SKIPPED
    assert len(fake.writes()) == writes
