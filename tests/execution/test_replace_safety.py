"""The guarded replace (DESIGN sections 5 and 8) against `FakeGateway` on a fake clock.

Issue 9: finding 2 (a replace deleted a group it could not create again), the `recreate-failed` outcome,
attempts counted per step, Azure deciding the unknowns (`InvalidContainerGroupUpdate` turns an update into a
replace, or stalls it with `recreate: never`), and finding 10's third part (a group re-created by another
apply while our delete finished is converged, not a timeout).
"""

from __future__ import annotations

import random
from typing import Any

from reconciler.cloud.errors import RetryableError, StalledError, UpdateRefusedError
from reconciler.execution import ApplyOptions, ProgressEvent, apply_plan
from reconciler.model.manifest import GroupManifest
from reconciler.model.outcome import Result
from reconciler.model.plan import Action, Change
from reconciler.render.text import render_apply_text
from tests.execution.conftest import OWNER_TAGS, FakeClock, change, manifest, plan
from tests.fakes.gateway import FakeGateway

FAST = ApplyOptions(rng=random.Random(7), max_attempts=2)
REFUSAL = (
    "The updates on container group 'web' are invalid. If you are going to update the os type, restart "
    "policy, network profile, CPU, memory or GPU resources for a container group, you must delete it first "
    "and then create a new one."
)


async def run(p: Any, fake: FakeGateway, clock: FakeClock, **kwargs: Any) -> Any:
    return await apply_plan(p, fake, options=FAST, sleep=clock.sleep, clock=clock, **kwargs)


def with_cpu(cpu: Any) -> GroupManifest:
    m = manifest()
    container = m.properties.containers[0]
    requests = container.properties.resources.requests.model_copy(update={"cpu": cpu})
    resources = container.properties.resources.model_copy(update={"requests": requests})
    props = container.properties.model_copy(update={"resources": resources})
    containers = (container.model_copy(update={"properties": props}),)
    return m.model_copy(update={"properties": m.properties.model_copy(update={"containers": containers})})


def refused(message: str = REFUSAL) -> UpdateRefusedError:
    return UpdateRefusedError(
        f"update rejected: PUT rg/web: {message}",
        azure_message=message,
        status=400,
        code="InvalidContainerGroupUpdate",
    )


# --- the gate before the delete ---------------------------------------------------------------------


async def test_replace_of_a_body_azure_would_refuse_never_deletes(clock: FakeClock) -> None:
    # A value that slipped past the model (finding 2: `cpu: 1e309` is infinity once parsed).
    fake = FakeGateway()
    fake.add("rg", "web")
    bad = change(Action.REPLACE).model_copy(update={"desired": with_cpu(float("inf"))})
    [outcome] = (await run(plan(bad), fake, clock)).outcomes
    assert outcome.result is Result.FAILED
    assert outcome.retryable is False
    assert "replace not started, the live group is untouched" in outcome.message
    assert "/properties/containers/app/properties/resources/requests/cpu" in outcome.message
    assert fake.calls == []
    assert fake.exists("rg", "web")


# --- re-creating after the delete ---------------------------------------------------------------------


async def test_replace_whose_create_keeps_failing_is_recreate_failed_loudly_and_counts_as_failed(
    clock: FakeClock,
) -> None:
    fake = FakeGateway()
    fake.add("rg", "web")
    fake.fail("put", StalledError("InvalidRequestContent: refused", status=400), times=-1)
    events: list[ProgressEvent] = []
    result = await run(plan(change(Action.REPLACE)), fake, clock, on_event=events.append)
    [outcome] = result.outcomes
    assert outcome.result is Result.RECREATE_FAILED
    assert outcome.failed
    assert not result.ok
    assert outcome.interrupted_after_delete
    # Three rounds, a look between them (did another apply create it?) and one at the end for the message.
    assert fake.ops() == ["delete", "put", "get", "put", "get", "put", "get"]
    assert clock.sleeps, "the rounds are spaced by backoff"
    assert "it does not exist now" in outcome.message
    assert "The next pass tries to create it again" in outcome.message
    assert "next pass creates it" not in outcome.message
    text = render_apply_text(result)
    assert "rg/web: RECREATE FAILED" in text
    assert "1 RECREATE FAILED" in text


async def test_replace_whose_create_hits_transient_errors_is_retried_within_the_pass(
    clock: FakeClock,
) -> None:
    fake = FakeGateway()
    fake.add("rg", "web")
    fake.fail("put", RetryableError("ServiceUnavailable: busy", status=503), times=3)
    [outcome] = (await run(plan(change(Action.REPLACE)), fake, clock)).outcomes
    assert outcome.result is Result.SUCCEEDED
    assert fake.exists("rg", "web")


async def test_a_clean_replace_counts_one_attempt_not_two(clock: FakeClock) -> None:
    fake = FakeGateway()
    fake.add("rg", "web")
    result = await run(plan(change(Action.REPLACE)), fake, clock)
    [outcome] = result.outcomes
    assert outcome.result is Result.SUCCEEDED
    assert outcome.attempts == 1
    assert "attempts" not in render_apply_text(result)


# --- Azure decides (DESIGN section 5) -----------------------------------------------------------------


async def test_update_azure_refuses_as_needing_a_delete_is_replaced_in_the_same_pass(
    clock: FakeClock,
) -> None:
    fake = FakeGateway()
    fake.add("rg", "web")
    fake.fail("put", refused())
    result = await run(plan(change(Action.UPDATE)), fake, clock)
    [outcome] = result.outcomes
    assert outcome.result is Result.SUCCEEDED
    assert outcome.action is Action.REPLACE
    assert outcome.message == f"Azure refused the in-place update ({REFUSAL}); replaced"
    assert fake.ops() == ["put", "delete", "put"]
    assert fake.exists("rg", "web")


async def test_update_azure_refuses_with_recreate_never_is_stalled_with_azures_message(
    clock: FakeClock,
) -> None:
    fake = FakeGateway()
    fake.add("rg", "web")
    fake.fail("put", refused())
    never = manifest().model_copy(
        update={"policy": manifest().policy.model_copy(update={"recreate": "never"})}
    )
    update = change(Action.UPDATE).model_copy(update={"desired": never})
    [outcome] = (await run(plan(update), fake, clock)).outcomes
    assert outcome.result is Result.FAILED
    assert outcome.retryable is False
    assert REFUSAL in outcome.message
    assert "recreate: never" in outcome.message
    assert fake.ops() == ["put"]


async def test_refused_update_whose_new_body_fails_the_gate_is_stalled_without_a_delete(
    clock: FakeClock,
) -> None:
    fake = FakeGateway()
    fake.add("rg", "web")
    fake.fail("put", refused())
    update = change(Action.UPDATE).model_copy(update={"desired": with_cpu(float("nan"))})
    [outcome] = (await run(plan(update), fake, clock)).outcomes
    assert outcome.result is Result.FAILED
    assert "replace not started" in outcome.message
    assert fake.ops() == ["put"]


# --- finding 10: someone else re-created it -------------------------------------------------------------


def _standing(c: Change, fake: FakeGateway, tags: dict[str, str]) -> None:
    group = fake.add("rg", "web", tags=tags)
    fake.groups.pop(("rg", "web"))
    fake.recreated_by_other[("rg", "web")] = group


async def test_replace_that_finds_the_group_recreated_with_the_desired_spec_is_converged(
    clock: FakeClock,
) -> None:
    fake = FakeGateway()
    fake.add("rg", "web")
    c = change(Action.REPLACE, write_tags={**OWNER_TAGS, "aci-reconciler.spec": "fp-1"})
    _standing(c, fake, dict(c.write_tags))
    [outcome] = (await run(plan(c), fake, clock)).outcomes
    assert outcome.result is Result.SUCCEEDED
    assert "re-created meanwhile by another apply with the desired spec" in outcome.message
    assert fake.ops() == ["delete"]  # no PUT: it would only restart a group that is already right


async def test_replace_whose_create_loses_a_race_to_another_apply_of_the_same_spec_is_converged(
    clock: FakeClock,
) -> None:
    # The other apply's create is still running: our PUT is refused as transitioning until we give up a
    # round; the group standing then carries our spec, so this apply converged rather than failed.
    fake = FakeGateway()
    fake.add("rg", "web")
    c = change(Action.REPLACE, write_tags={**OWNER_TAGS, "aci-reconciler.spec": "fp-1"})
    busy = RetryableError("ContainerGroupTransitioning: still transitioning", status=409)
    fake.fail("put", busy, times=FAST.max_attempts)

    async def other_apply_created_it(*_: Any) -> None:
        fake.add("rg", "web", tags=dict(c.write_tags), provisioning_state="Creating")

    real_sleep = clock.sleep

    async def sleep(seconds: float) -> None:
        await real_sleep(seconds)
        if fake.count("put") == FAST.max_attempts and not fake.exists("rg", "web"):
            await other_apply_created_it()

    result = await apply_plan(plan(c), fake, options=FAST, sleep=sleep, clock=clock)
    [outcome] = result.outcomes
    assert outcome.result is Result.SUCCEEDED
    assert "re-created meanwhile by another apply with the desired spec" in outcome.message
    assert fake.ops() == ["delete", "put", "put", "get"]


async def test_replace_that_finds_a_different_group_standing_still_writes_the_desired_one(
    clock: FakeClock,
) -> None:
    fake = FakeGateway()
    fake.add("rg", "web")
    c = change(Action.REPLACE, write_tags={**OWNER_TAGS, "aci-reconciler.spec": "fp-1"})
    _standing(c, fake, {**OWNER_TAGS, "aci-reconciler.spec": "fp-OTHER"})
    [outcome] = (await run(plan(c), fake, clock)).outcomes
    assert outcome.result is Result.SUCCEEDED
    assert fake.ops() == ["delete", "put"]
