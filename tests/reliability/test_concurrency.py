"""Reliability under concurrency: two reconcilers with different instance names on one resource group never
touch each other's groups (in process, passes running at the same time, every write recorded per instance;
and as two CLI processes at once), and a manifest edited while the daemon's pass runs is picked up by the
next pass.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler.cloud.azure import AzureGateway
from reconciler.engine.observe import Scope
from reconciler.engine.reconcile import EngineSettings, PassOutcome
from reconciler.model.observed import ObservedGroup
from reconciler.model.plan import Action
from reconciler.planning.ownership import INSTANCE_TAG
from tests.e2e.harness import CliResult, DaemonProcess, EmulatorProcess, run_cli
from tests.inprocess import engine_settings, in_process
from tests.reliability.support import (
    Spec,
    arm_request,
    daemon_args,
    daemon_env,
    group_path,
    live_spec,
    one_pass,
    pass_finished,
    run,
    unmanaged_body,
    write_spec_files,
    write_specs,
)

RG = "rg-shared"


class RecordingGateway:
    """The real gateway, with every write it makes recorded as (verb, name): whose write was it."""

    def __init__(self, inner: AzureGateway, race: asyncio.Barrier | None = None) -> None:
        self.inner = inner
        self.writes: list[tuple[str, str]] = []
        # When set, the first PUT waits until the other instance reaches its first PUT too: both have
        # planned a create before either writes, however the event loop schedules them under load.
        self.race = race

    async def list_groups(self, resource_group: str, *, cursor: Any = None) -> list[ObservedGroup]:
        return await self.inner.list_groups(resource_group, cursor=cursor)

    async def list_subscription_groups(self, *, cursor: Any = None) -> list[ObservedGroup]:
        return await self.inner.list_subscription_groups(cursor=cursor)

    async def get_group(self, resource_group: str, name: str) -> ObservedGroup | None:
        return await self.inner.get_group(resource_group, name)

    async def create_or_update(
        self,
        resource_group: str,
        name: str,
        body: dict[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the gateway contract's LRO deadline, passed through
    ) -> ObservedGroup:
        self.writes.append(("PUT", name))
        if self.race is not None:
            race, self.race = self.race, None
            await race.wait()
        return await self.inner.create_or_update(resource_group, name, body, timeout=timeout)

    async def patch_tags(self, resource_group: str, name: str, tags: dict[str, str]) -> ObservedGroup:
        self.writes.append(("PATCH", name))
        return await self.inner.patch_tags(resource_group, name, tags)

    async def delete(
        self,
        resource_group: str,
        name: str,
        *,
        timeout: float,  # noqa: ASYNC109 - the gateway contract's deadline, passed through
    ) -> None:
        self.writes.append(("DELETE", name))
        await self.inner.delete(resource_group, name, timeout=timeout)

    async def logs(
        self,
        resource_group: str,
        name: str,
        container: str,
        *,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> str:
        return await self.inner.logs(resource_group, name, container, tail=tail, timestamps=timestamps)

    async def start(
        self,
        resource_group: str,
        name: str,
        *,
        timeout: float,  # noqa: ASYNC109 - the Gateway contract passes the deadline through
    ) -> None:
        await self.inner.start(resource_group, name, timeout=timeout)

    async def stop(self, resource_group: str, name: str) -> None:
        await self.inner.stop(resource_group, name)

    async def close(self) -> None:
        await self.inner.close()


async def _both(
    blue: EngineSettings, green: EngineSettings, gb: RecordingGateway, gg: RecordingGateway
) -> tuple[PassOutcome, PassOutcome]:
    # Real overlap: both passes list, plan and write on one event loop at once.
    b, g = await asyncio.gather(one_pass(blue, gb), one_pass(green, gg))  # type: ignore[arg-type] # RecordingGateway satisfies the Gateway protocol
    return b, g


def _pending(outcome: PassOutcome) -> list[tuple[str, Action]]:
    return [
        (c.name, c.action) for c in outcome.plan.changes if c.action not in (Action.NOOP, Action.CONFLICT)
    ]


def test_two_instances_on_one_resource_group_never_touch_each_others_groups(tmp_path: Path) -> None:
    blue_dir, green_dir = tmp_path / "blue", tmp_path / "green"

    async def body() -> None:
        async with in_process(tmp_path / "tls") as (emu, gateway):
            status, _ = await asyncio.to_thread(
                arm_request,
                emu.endpoint,
                emu.ca_cert_path,
                "PUT",
                group_path(RG, "by-hand"),
                unmanaged_body(),
            )
            assert status in (200, 201)
            blue = engine_settings(blue_dir, instance="blue", scope=Scope.parse([RG]))
            green = engine_settings(green_dir, instance="green", scope=Scope.parse([RG]))
            gb, gg = RecordingGateway(gateway), RecordingGateway(gateway)

            write_spec_files(blue_dir, [Spec(name=f"b-{i}", rg=RG) for i in range(8)])
            write_spec_files(green_dir, [Spec(name=f"g-{i}", rg=RG, image="httpd:2.4") for i in range(8)])
            for _ in range(3):
                b, g = await _both(blue, green, gb, gg)
                if not (_pending(b) or _pending(g) or b.failed or g.failed):
                    break
            else:
                raise AssertionError("the first round did not settle")

            # Now each changes its own groups, blue also claims one of green's names, and both prune.
            write_spec_files(
                blue_dir,
                [
                    Spec(name="b-0", rg=RG, image="nginx:1.27"),
                    Spec(name="b-1", rg=RG, cpu=2.0),
                    *(Spec(name=f"b-{i}", rg=RG) for i in range(3, 8)),
                    Spec(name="g-0", rg=RG, image="evil:latest"),
                    Spec(name="by-hand", rg=RG, image="evil:latest"),
                ],
            )
            write_spec_files(
                green_dir,
                [
                    Spec(name="g-0", rg=RG, image="httpd:2.4"),
                    *(Spec(name=f"g-{i}", rg=RG, image="httpd:2.4", tags={"t": "x"}) for i in range(1, 4)),
                    *(Spec(name=f"g-{i}", rg=RG, image="httpd:2.4") for i in range(5, 8)),
                ],
            )
            for _ in range(3):
                b, g = await _both(blue, green, gb, gg)
                if not (_pending(b) or _pending(g) or g.failed):
                    break
            else:
                raise AssertionError("the second round did not settle")

            conflicts = {c.name: c.reason for c in b.plan.changes if c.action is Action.CONFLICT}
            assert set(conflicts) == {"g-0", "by-hand"}
            assert "green" in conflicts["g-0"]
            assert all(name.startswith("b-") for _, name in gb.writes), gb.writes
            assert all(name.startswith("g-") for _, name in gg.writes), gg.writes
            assert ("DELETE", "b-2") in gb.writes
            assert ("DELETE", "g-4") in gg.writes

            live = {g.name: g for g in await gateway.list_groups(RG)}
            assert set(live) == {
                "by-hand",
                "b-0",
                "b-1",
                *(f"b-{i}" for i in range(3, 8)),
                "g-0",
                "g-1",
                "g-2",
            } | {f"g-{i}" for i in (3, 5, 6, 7)}
            for name, group in live.items():
                if name.startswith(("b-", "g-")):
                    assert group.tags[INSTANCE_TAG] == ("blue" if name[0] == "b" else "green"), name
            g0 = emu.get_group(RG, "g-0")
            assert g0 is not None
            assert live_spec(g0)[0] == "httpd:2.4"
            assert "managed-by" not in live["by-hand"].tags
            b1 = emu.get_group(RG, "b-1")
            assert b1 is not None
            assert live_spec(b1)[1] == 2.0

    run(body)


@pytest.mark.e2e
def test_two_cli_processes_with_different_instances_apply_at_once_and_keep_apart(tmp_path: Path) -> None:
    blue_dir, green_dir = tmp_path / "blue", tmp_path / "green"
    write_specs(blue_dir / "all.yaml", [Spec(name=f"b-{i}", rg=RG) for i in range(5)])
    write_specs(green_dir / "all.yaml", [Spec(name=f"g-{i}", rg=RG) for i in range(5)])
    emulator = EmulatorProcess(tmp_path, "--no-throttling")

    def both(*extra: str) -> dict[str, CliResult]:
        results: dict[str, CliResult] = {}

        def one(instance: str, directory: Path) -> None:
            results[instance] = run_cli(
                emulator,
                "-f",
                str(directory),
                "--instance",
                instance,
                "--prune-scope",
                RG,
                *extra,
                cwd=tmp_path,
            )

        threads = [
            threading.Thread(target=one, args=("blue", blue_dir), name="cli-blue"),
            threading.Thread(target=one, args=("green", green_dir), name="cli-green"),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        return results

    try:
        first = both()
        assert first["blue"].code == 0, first["blue"]
        assert first["green"].code == 0, first["green"]
        # Blue's manifests all go (it may prune: --allow-empty); green's groups must all survive.
        (blue_dir / "all.yaml").unlink()
        second = both("--allow-empty")
        assert second["blue"].code == 0, second["blue"]
        assert second["green"].code == 0, second["green"]
        names = [i.rsplit("/", 1)[1] for i in emulator.group_ids()]
        assert names == [f"g-{i}" for i in range(5)]
        assert emulator.writes()["DELETE"] == 5
    finally:
        emulator.stop()


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_manifest_edited_while_the_daemon_applies_is_picked_up_by_the_next_pass(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    write_spec_files(manifests, [Spec(name="web", rg=RG, image="nginx:1.25"), Spec(name="api", rg=RG)])
    emulator = EmulatorProcess(tmp_path, "--no-throttling")
    # Creates take a while, so the edit lands while the first pass is still applying.
    emulator.control("PATCH", "config", {"provisioning_delay": 1.5})
    daemon = DaemonProcess(
        daemon_args(
            emulator.endpoint,
            emulator.ca_cert,
            manifests,
            tmp_path / "daemon-state",
            "--interval",
            "0",
            "--debounce",
            "0.1s",
        ),
        daemon_env(home=tmp_path),
    )
    try:
        daemon.wait_for(lambda e: e.get("event") == "applying" and e.get("name") == "web")
        write_spec_files(manifests, [Spec(name="web", rg=RG, image="nginx:1.27"), Spec(name="api", rg=RG)])
        first = daemon.wait_for(pass_finished)
        assert first["number"] == 1
        created = [e for e in daemon.events if e.get("event") == "group done" and e.get("name") == "web"]
        assert [e.get("action") for e in created] == ["create"], "the first pass applied what it had loaded"
        daemon.wait_for(
            lambda e: e.get("event") == "group done" and e.get("name") == "web" and e["action"] == "update"
        )
        second = daemon.wait_for(pass_finished)
        assert second["revision"] != first["revision"]
        web = emulator.get(RG, "web")
        assert web is not None
        assert live_spec(web)[0] == "nginx:1.27"
        started = [e for e in daemon.events if e.get("event") == "pass started"]
        assert "file" in started[1]["triggers"], started
    finally:
        assert daemon.finish() == 0, daemon.log_tail()
        emulator.stop()


def test_two_instances_creating_one_name_at_once_leave_one_owner_and_the_other_is_told(
    tmp_path: Path,
) -> None:
    """ARM has no create-only PUT for container groups: both PUTs land, the last one stands. The instance
    whose write was overwritten must not report success (its verification sees another owner)."""

    async def body() -> None:
        async with in_process(tmp_path / "tls") as (emu, gateway):
            write_specs(tmp_path / "blue" / "x.yaml", [Spec(name="shared", rg=RG, image="blue:1")])
            write_specs(tmp_path / "green" / "x.yaml", [Spec(name="shared", rg=RG, image="green:1")])
            blue = engine_settings(tmp_path / "blue", instance="blue")
            green = engine_settings(tmp_path / "green", instance="green")
            race = asyncio.Barrier(2)
            gb, gg = RecordingGateway(gateway, race), RecordingGateway(gateway, race)
            b, g = await _both(blue, green, gb, gg)
            assert gb.writes == [("PUT", "shared")]
            assert gg.writes == [("PUT", "shared")], "both saw no group and created it: the race is real"
            group = emu.get_group(RG, "shared")
            assert group is not None
            owner = group["tags"][INSTANCE_TAG]
            winner, loser = (b, g) if owner == "blue" else (g, b)
            assert live_spec(group)[0] == f"{owner}:1", "one coherent group: the winner's spec and tags"
            assert winner.unconverged == ()
            assert loser.unconverged == (f"{RG}/shared",), "the overwritten instance is told"
            # From now on the loser sees a conflict and never writes the group again.
            again_b, again_g = await _both(blue, green, gb, gg)
            loser_again = again_g if owner == "blue" else again_b
            assert [c.action for c in loser_again.plan.changes] == [Action.CONFLICT]
            assert len(gb.writes) + len(gg.writes) == 2

    run(body)


def test_daemon_passes_that_lose_a_create_race_report_the_group_unconverged(tmp_path: Path) -> None:
    from reconciler.daemon.passes import EnginePasses

    async def body() -> None:
        async with in_process(tmp_path / "tls") as (_emu, gateway):
            write_specs(tmp_path / "blue" / "x.yaml", [Spec(name="shared", rg=RG, image="blue:1")])
            write_specs(tmp_path / "green" / "x.yaml", [Spec(name="shared", rg=RG, image="green:1")])
            blue = EnginePasses(engine_settings(tmp_path / "blue", instance="blue"), gateway, environ={})
            green = EnginePasses(engine_settings(tmp_path / "green", instance="green"), gateway, environ={})
            plans = await asyncio.gather(blue.plan(), green.plan())
            views = await asyncio.gather(
                *(
                    p.apply(v, v.plan.changes, lambda _: None)
                    for p, v in zip((blue, green), plans, strict=True)
                )
            )
            told = [v.unconverged for v in views]
            assert sorted(told, key=len) == [frozenset(), frozenset({(RG, "shared")})], told

    run(body)
