"""A replace never loses a group silently: the engine and the SDK adapter against the in-process emulator.

Issue 9: a replace whose create is refused (injected 500s that outlast every retry, provisioning that ends
Failed, or only a few transient failures) either brings the group back in the same pass or fails that pass
loudly (`recreate-failed`, exit 1), and the next pass brings it back. Finding 10, third part: two applies
of one instance that replace the same group both end converged; the one that finds the group re-created by
the other while its delete finished does not poll it until the LRO timeout. The emulator runs on a fake
clock; nothing waits on a real one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reconciler.emulator.limits import FaultSettings
from reconciler.model.outcome import Result
from reconciler.model.plan import Action
from tests.inprocess import engine_settings, in_process
from tests.reliability.support import (
    FakeClock,
    Spec,
    arm_request,
    group_path,
    live_spec,
    one_pass,
    settled,
    write_spec_files,
)

RG = "rg-replace-safety"


@pytest.mark.parametrize(
    ("kind", "count", "comes_back_in_the_same_pass"),
    [
        ("500", 3, True),  # transient: retried within the pass
        ("500", 1000, False),  # outlasts every retry: the group is missing after the pass
        ("provision_fail", 1000, False),  # accepted, then provisioning ends Failed every time
    ],
)
def test_replace_whose_create_is_refused_brings_the_group_back_or_fails_the_pass_loudly(
    tmp_path: Path, kind: str, count: int, comes_back_in_the_same_pass: bool
) -> None:
    manifests = tmp_path / "manifests"
    write_spec_files(manifests, [Spec(name="web", rg=RG)])
    clock = FakeClock()

    async def body() -> None:
        async with in_process(tmp_path / "tls", sleep=clock.sleep, clock=clock, delete_delay=3.0) as (
            emu,
            gw,
        ):
            settings = engine_settings(manifests)
            assert not (await one_pass(settings, gw, sleep=clock.sleep)).failed

            write_spec_files(manifests, [Spec(name="web", rg=RG, cpu=2.0)])
            # Every PUT of this group is refused from now on (up to `count`); the DELETE goes through.
            emu.faults.set(FaultSettings(rate=1.0, kinds=(kind,), methods=("PUT",), count=count))
            outcome = await one_pass(settings, gw, sleep=clock.sleep)
            assert outcome.applied is not None
            [result] = outcome.applied.outcomes
            assert result.action is Action.REPLACE
            live = emu.get_group(RG, "web")
            ok = live is not None and live["properties"]["provisioningState"] == "Succeeded"
            if comes_back_in_the_same_pass:
                assert result.result is Result.SUCCEEDED, result.message
                assert ok
                assert live is not None
                assert live_spec(live)[1] == 2.0
                return
            # Never silent: the group is not there as wanted, and the pass says so, loudly.
            assert not ok
            assert outcome.failed
            assert result.result is Result.RECREATE_FAILED
            assert "creating it again failed" in result.message
            assert "next pass creates it" not in result.message

            emu.faults.clear()
            healed = await one_pass(settings, gw, sleep=clock.sleep)
            assert not healed.failed
            back = emu.get_group(RG, "web")
            assert back is not None
            assert back["properties"]["provisioningState"] == "Succeeded"
            assert live_spec(back)[1] == 2.0
            assert settled(await one_pass(settings, gw, sleep=clock.sleep))

    asyncio.run(body())


def test_a_delete_that_finds_the_group_recreated_by_another_apply_returns_it_instead_of_polling(
    tmp_path: Path,
) -> None:
    """The loser of two applies replacing one group: its delete finished, and by its first look the winner
    had created the group again. It must hand that group back, not poll it until the LRO timeout."""
    clock = FakeClock()
    recreated: list[bool] = []

    async def body() -> None:
        async with in_process(tmp_path / "tls", sleep=clock.sleep, clock=clock, delete_delay=3.0) as (
            emu,
            gw,
        ):
            spec = Spec(name="web", rg=RG).manifest()
            arm_body = {
                "location": spec["location"],
                "properties": spec["properties"],
                "tags": {"t": "winner"},
            }
            await gw.create_or_update(RG, "web", arm_body, timeout=30)

            async def sleep(seconds: float) -> None:
                await clock.sleep(seconds)
                # The winner: as soon as the shared delete is done, it creates the group again.
                if not recreated and emu.get_group(RG, "web") is None:
                    status, _ = await asyncio.to_thread(
                        arm_request, emu.endpoint, emu.ca_cert_path, "PUT", group_path(RG, "web"), arm_body
                    )
                    assert status in (200, 201)
                    recreated.append(True)

            gw._sleep = sleep  # the loser's polls run on the same fake clock, with the winner in between
            standing = await asyncio.wait_for(gw.delete(RG, "web", timeout=30), timeout=20)
            assert recreated
            assert standing is not None
            assert standing.tags == {"t": "winner"}

    asyncio.run(body())


def test_two_applies_replacing_the_same_groups_both_end_converged(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    names = [f"g-{i}" for i in range(4)]
    write_spec_files(manifests, [Spec(name=n, rg=RG) for n in names])
    clock = FakeClock()

    async def body() -> None:
        async with in_process(
            tmp_path / "tls", sleep=clock.sleep, clock=clock, delete_delay=3.0, provisioning_delay=3.0
        ) as (emu, gw):
            settings = engine_settings(manifests)
            assert not (await one_pass(settings, gw, sleep=clock.sleep)).failed
            write_spec_files(manifests, [Spec(name=n, rg=RG, cpu=2.0) for n in names])

            first, second = await asyncio.wait_for(
                asyncio.gather(
                    one_pass(settings, gw, sleep=clock.sleep), one_pass(settings, gw, sleep=clock.sleep)
                ),
                timeout=60,
            )
            for outcome in (first, second):
                assert outcome.applied is not None
                failed = [(o.name, o.result, o.message) for o in outcome.applied.outcomes if o.failed]
                assert failed == []
            for name in names:
                live = emu.get_group(RG, name)
                assert live is not None
                assert live_spec(live)[1] == 2.0
            assert settled(await one_pass(settings, gw, sleep=clock.sleep))

    asyncio.run(body())
