"""Scope and keyed ownership under a mixed fleet (DESIGN.md section 4; issue 9 findings 1 and 5).

The engine runs in process against the emulator with small list pages. The fleet spreads over several
resource groups and holds our groups, groups of others, and groups that carry our plain tags forged in
several ways. What must hold: every orphan of ours is found and pruned, across resource groups and through
paging, and no group whose ownership proof does not verify ever gets a write.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from reconciler.model.plan import Action
from reconciler.planning import ownership as own
from tests.inprocess import SUBSCRIPTION, engine_settings, in_process
from tests.reliability.support import (
    Spec,
    arm_request,
    group_path,
    one_pass,
    run,
    settled,
    unmanaged_body,
    write_spec_files,
    writes,
)

RESOURCE_GROUPS = [f"rg-own-{i}" for i in range(6)]


def fleet(seed: int) -> list[Spec]:
    rng = random.Random(seed)
    return [Spec(name=f"g{i:02d}", rg=rng.choice(RESOURCE_GROUPS)) for i in range(30)]


async def put_by_hand(emu: Any, rg: str, name: str, tags: dict[str, str]) -> None:
    body = {**unmanaged_body(), "tags": tags}
    status, _ = await asyncio.to_thread(
        arm_request, emu.endpoint, emu.ca_cert_path, "PUT", group_path(rg, name), body
    )
    assert status in (200, 201)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_orphans_are_found_and_pruned_in_every_resource_group_and_nothing_else_is_written(
    seed: int, tmp_path: Path
) -> None:
    specs = fleet(seed)
    rng = random.Random(seed)
    dropped_rgs = set(rng.sample(RESOURCE_GROUPS, 3))
    keep = [s for s in specs if s.rg not in dropped_rgs]
    gone = [s for s in specs if s.rg in dropped_rgs]
    assert keep, "the seed must leave groups on both sides"
    assert gone, "the seed must leave groups on both sides"
    manifests = tmp_path / "manifests"

    async def body() -> None:
        async with in_process(tmp_path / "tls", page_size=4) as (emu, gateway):
            settings = engine_settings(manifests)
            # Groups that are not ours, in resource groups with and without our manifests.
            for rg in RESOURCE_GROUPS:
                await put_by_hand(emu, rg, "bystander", {"owner": "someone-else"})
            write_spec_files(manifests, specs)
            for _ in range(3):
                if settled(await one_pass(settings, gateway)):
                    break
            else:
                raise AssertionError("the first apply did not settle")

            write_spec_files(manifests, keep)
            mark_writes = len(writes(emu))
            outcome = await one_pass(settings, gateway)
            assert not outcome.failed
            deleted = {c.key for c in outcome.plan.changes if c.action is Action.DELETE}
            assert deleted == {(s.rg.lower(), s.name.lower()) for s in gone}
            new_writes = writes(emu)[mark_writes:]
            assert sorted(new_writes) == sorted(
                ("DELETE", f"/subscriptions/{SUBSCRIPTION}{group_path(s.rg, s.name)}") for s in gone
            )
            assert settled(await one_pass(settings, gateway))
            for rg in RESOURCE_GROUPS:
                assert emu.get_group(rg, "bystander") is not None
            for s in keep:
                assert emu.get_group(s.rg, s.name) is not None
            for s in gone:
                assert emu.get_group(s.rg, s.name) is None

    run(body)


def test_groups_with_forged_or_copied_ownership_tags_are_never_written_or_pruned(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    ours = [Spec(name=f"ours-{i}", rg=RESOURCE_GROUPS[i % 3]) for i in range(6)]

    async def body() -> None:
        async with in_process(tmp_path / "tls", page_size=3) as (emu, gateway):
            settings = engine_settings(manifests)
            write_spec_files(manifests, ours)
            assert not (await one_pass(settings, gateway)).failed
            real = emu.get_group(ours[0].rg, ours[0].name)
            assert real is not None
            real_tags = dict(real["tags"])
            plain = {"managed-by": "aci-reconciler", own.INSTANCE_TAG: "default"}
            forgeries = {
                # finding 5 exactly: the two plain tags
                "plain": plain,
                # every tag of one of our real groups, proof included, copied onto another group
                "copied-proof": real_tags,
                # the right key id with a made-up proof
                "made-up-proof": {
                    **plain,
                    own.KEY_ID_TAG: real_tags[own.KEY_ID_TAG],
                    own.PROOF_TAG: "0" * 64,
                },
                # a proof under some other key: looks like a key change, still never pruned
                "other-key": {**plain, own.KEY_ID_TAG: "0123456789abcdef", own.PROOF_TAG: "1" * 64},
                # the tag set the release before proofs wrote
                "legacy-shape": {**plain, own.SPEC_TAG: "a" * 64, own.PRUNE_TAG: "true"},
            }
            forged = [
                (rg, f"forged-{kind}", tags) for kind, tags in forgeries.items() for rg in RESOURCE_GROUPS
            ]
            for rg, name, tags in forged:
                await put_by_hand(emu, rg, name, tags)

            mark = len(emu.request_log)
            for step in range(3):
                # Shrink our fleet each pass, so pruning is busy while the forgeries sit next to it.
                write_spec_files(manifests, ours[: 4 - step])
                outcome = await one_pass(settings, gateway)
                assert not outcome.failed
                pruned = {c.name for c in outcome.plan.changes if c.action is Action.DELETE}
                assert all(name.startswith("ours-") for name in pruned)
                said = " ".join(i.message for i in outcome.plan.warnings)
                assert "forged-plain" in said
            touched = [
                r.path
                for r in list(emu.request_log)[mark:]
                if r.route == "containerGroup" and r.method in ("PUT", "PATCH", "DELETE")
            ]
            assert not [p for p in touched if "/forged-" in p]
            for rg, name, tags in forged:
                live = emu.get_group(rg, name)
                assert live is not None, f"{rg}/{name} was deleted"
                assert live["tags"] == tags

    run(body)
