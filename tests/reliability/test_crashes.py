"""Reliability across crashes: `reconcile daemon` (a subprocess) is killed with SIGKILL at a random point of a
pass that creates, updates, replaces, patches tags and prunes; restarted, it converges with nothing lost or
duplicated, and the group nobody manages is never touched.

The kill point is drawn from the seed: "after the emulator has logged write W" for one of the pass's six
container-group writes (watched through the emulator's request log), or "as soon as the daemon logs that it
starts applying", so every seed is reproducible whatever order the concurrent writes take. Deletes are slowed
down so that "after the DELETE of the replaced group" lands between the delete and the create of the
replace; the seeds are checked to draw every point, that one twice. A run cut short after the DELETE of a
replace, found still `Deleting` by the next run, is tested in process with a fake emulator clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.engine.reconcile import plan_pass
from reconciler.model.plan import Action
from tests.e2e.harness import DaemonProcess, EmulatorProcess
from tests.inprocess import engine_settings, gateway_for, in_process
from tests.reliability.support import (
    FakeClock,
    Spec,
    arm_request,
    daemon_args,
    daemon_env,
    group_path,
    live_spec,
    no_sleep,
    one_pass,
    pass_finished,
    settled,
    unmanaged_body,
    write_spec_files,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(170)]

SEEDS = range(10)
BEFORE = [
    Spec(name="upd", rg="", image="nginx:1.25", secret_env={"TOKEN": "CRASH_TOKEN"}),
    Spec(name="rep", rg="", cpu=1.0),
    Spec(name="tag", rg="", tags={"team": "a"}),
    Spec(name="gone", rg=""),
    Spec(name="same", rg=""),
]
AFTER = [
    Spec(name="upd", rg="", image="nginx:1.27", secret_env={"TOKEN": "CRASH_TOKEN"}),
    Spec(name="rep", rg="", cpu=2.0),
    Spec(name="tag", rg="", tags={"team": "b"}),
    Spec(name="same", rg=""),
    Spec(name="new", rg="", image="httpd:2.4"),
]
# The kill points of the pass under test, one drawn from each seed: after one of its six writes, or as soon
# as the daemon logs that it starts applying (its in-flight record saved, nothing written yet).
KILL_POINTS = [
    ("PUT", "upd"),
    ("DELETE", "rep"),
    ("PUT", "rep"),
    ("PATCH", "tag"),
    ("DELETE", "gone"),
    ("PUT", "new"),
    ("LOG", "applying"),
]
REPLACE_GAP = ("DELETE", "rep")
BEFORE_ANY_WRITE = ("LOG", "applying")
# Chosen once so that the ten seeds draw every kill point, the gap of the replace twice (checked below).
SALT = 20


# The secret of group `upd`: it must survive every crash without being written anywhere but the PUT.
SECRETS = {"CRASH_TOKEN": "crash-canary-5e1f9a2b"}


def kill_point(seed: int) -> tuple[str, str]:
    return random.Random(f"crash-{SALT}-{seed}").choice(KILL_POINTS)


def with_rg(specs: list[Spec], rg: str) -> list[Spec]:
    return [dataclasses.replace(s, rg=rg) for s in specs]


def test_the_seeds_cover_every_kill_point_and_the_gap_of_the_replace_twice() -> None:
    points = [kill_point(s) for s in SEEDS]
    assert points.count(REPLACE_GAP) >= 2
    assert set(points) == set(KILL_POINTS), points


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess(tmp_path_factory.mktemp("crash-emulator"), "--no-throttling")
    try:
        yield emu
    finally:
        emu.stop()


def _logged_writes(emulator: EmulatorProcess, rg: str, offset: int) -> tuple[list[tuple[str, str]], int]:
    page = emulator.control("GET", f"requests?offset={offset}")
    found = [
        (r["method"], r["path"].rsplit("/", 1)[1])
        for r in page["requests"]
        if r["route"] == "containerGroup"
        and r["method"] in ("PUT", "PATCH", "DELETE")
        and f"/resourceGroups/{rg}/" in r["path"]
        and 200 <= r["status"] < 300
    ]
    return found, int(page["next"])


@pytest.mark.parametrize(
    ("seed", "killed_again"),
    [*((s, False) for s in SEEDS), (5, True)],
    ids=[*(str(s) for s in SEEDS), "5-killed-again-while-recovering"],
)
def test_sigkill_at_a_random_point_of_a_pass_then_restart_converges(
    seed: int, killed_again: bool, tmp_path: Path, emulator: EmulatorProcess
) -> None:
    rg = f"rg-crash-{seed}{'-again' if killed_again else ''}"
    manifests = tmp_path / "manifests"
    settings = engine_settings(manifests)
    write_spec_files(manifests, with_rg(BEFORE, rg))

    async def setup() -> dict[str, object] | None:
        gateway = gateway_for(emulator.endpoint, emulator.ca_cert)
        try:
            status, _ = await asyncio.to_thread(
                arm_request,
                emulator.endpoint,
                emulator.ca_cert,
                "PUT",
                group_path(rg, "bystander"),
                unmanaged_body(),
            )
            assert status in (200, 201)
            await one_pass(settings, gateway, SECRETS)
            assert settled(await one_pass(settings, gateway, SECRETS))
        finally:
            await gateway.close()
        return emulator.get(rg, "bystander")

    emulator.control("PATCH", "config", {"provisioning_delay": 0.0, "delete_delay": 0.0})
    bystander = asyncio.run(setup())
    assert bystander is not None
    offset = int(emulator.control("GET", "requests?offset=0")["next"])

    # Deletes (and creates) now take a while: the kill after a DELETE lands before the create that follows.
    emulator.control("PATCH", "config", {"provisioning_delay": 0.3, "delete_delay": 1.0})
    write_spec_files(manifests, with_rg(AFTER, rg))
    target = kill_point(seed)
    env = daemon_env(SECRETS, home=tmp_path)
    state_dir = tmp_path / "daemon-state"
    args = daemon_args(
        emulator.endpoint,
        emulator.ca_cert,
        manifests,
        state_dir,
        "--interval",
        "0",
        "--no-watch",
        "--backoff-max",
        "1s",
    )
    daemon = DaemonProcess(args, env)
    seen: list[tuple[str, str]] = []
    try:
        deadline = time.monotonic() + 60
        if target == BEFORE_ANY_WRITE:
            daemon.wait_for(lambda e: e.get("event") == "applying")
            seen.append(target)
        while target not in seen:
            assert daemon.proc.poll() is None, daemon.log_tail()
            assert time.monotonic() < deadline, f"the daemon never made {target}: {seen}\n{daemon.log_tail()}"
            found, offset = _logged_writes(emulator, rg, offset)
            seen += found
            if target not in seen:
                time.sleep(0.01)  # polling the emulator's request log, bounded by the deadline above
    finally:
        daemon.kill()
    assert daemon.proc.returncode == -9
    if target == REPLACE_GAP:
        left = {
            g["id"].rsplit("/", 1)[1]: g["provisioningState"]
            for g in emulator.control("GET", "groups")["value"]
            if f"/resourceGroups/{rg}/" in g["id"]
        }
        assert left.get("rep") in (None, "Deleting"), f"killed between the delete and the create: {left}"

    # Whatever the daemon had written down when it died holds no secret.
    assert all(
        SECRETS["CRASH_TOKEN"] not in p.read_text(errors="replace")
        for p in state_dir.rglob("*")
        if p.is_file()
    )

    if killed_again:
        # The restart is killed too, as soon as its recovery pass starts writing.
        recovering = DaemonProcess(args, env)
        try:
            recovering.wait_for(lambda e: e.get("event") == "applying")
        finally:
            recovering.kill()

    # Restart on the same state directory, Azure as slow as before: a replaced group may still be deleting.
    again = DaemonProcess(args, env)
    try:
        if target == REPLACE_GAP:
            unfinished = again.wait_for(
                lambda e: (
                    str(e.get("event", "")).startswith("unfinished by the previous")
                    and e.get("name") == "rep"
                )
            )
            assert unfinished["action"] == "replace", unfinished
        deadline = time.monotonic() + 60
        while True:
            event = again.wait_for(pass_finished, timeout=max(1.0, deadline - time.monotonic()))
            if event["result"] == "ok":
                break
    finally:
        code = again.finish()
    assert code == 0, again.log_tail()
    saved = json.loads((state_dir / "daemon-state.json").read_text())
    assert {g["name"]: (g["state"], g["in_flight"]) for g in saved["groups"]} == {
        s.name: ("Ready", None) for s in AFTER
    }, "the restarted daemon's record: every group ready, nothing left in flight"

    async def verify() -> None:
        gateway = gateway_for(emulator.endpoint, emulator.ca_cert)
        try:
            planned = await plan_pass(settings, gateway, environ=SECRETS, sleep=no_sleep)
            assert [(c.name, c.action) for c in planned.plan.changes if c.action is not Action.NOOP] == []
            names = sorted(g.name for g in await gateway.list_groups(rg))
        finally:
            await gateway.close()
        assert names == sorted([*(s.name for s in AFTER), "bystander"]), names

    asyncio.run(verify())
    for spec in with_rg(AFTER, rg):
        group = emulator.get(rg, spec.name)
        assert group is not None
        assert live_spec(group) == (spec.image, spec.cpu, spec.memory), spec.name
        assert group["properties"]["provisioningState"] == "Succeeded"
        assert group["tags"].get("team") == (spec.tags or {}).get("team")
    assert emulator.get(rg, "bystander") == bystander, "the unmanaged group was never touched"
    assert emulator.get(rg, "gone") is None


@pytest.mark.parametrize("manifest_changed", [True, False])
def test_a_group_left_deleting_by_a_cut_short_replace_is_created_again_by_the_next_run(
    tmp_path: Path, manifest_changed: bool
) -> None:
    """A CLI run killed after the DELETE of a replace (or someone's out-of-band delete): the next run finds
    the group still `Deleting`. It must wait for the delete and create the group, not call it in sync."""
    clock = FakeClock()
    manifests = tmp_path / "manifests"
    rg = "rg-cut-short"
    write_spec_files(manifests, [Spec(name="web", rg=rg), Spec(name="api", rg=rg)])

    async def body() -> None:
        async with in_process(tmp_path / "tls", sleep=clock.sleep, clock=clock, delete_delay=5.0) as (
            emu,
            gw,
        ):
            settings = engine_settings(manifests)
            await one_pass(settings, gw, sleep=clock.sleep)
            assert settled(await one_pass(settings, gw, sleep=clock.sleep))
            cpu = 2.0 if manifest_changed else 1.0
            write_spec_files(manifests, [Spec(name="web", rg=rg, cpu=cpu), Spec(name="api", rg=rg)])
            status, _ = await asyncio.to_thread(
                arm_request, emu.endpoint, emu.ca_cert_path, "DELETE", group_path(rg, "web")
            )
            assert status == 202
            web = emu.get_group(rg, "web")
            assert web is not None
            assert web["properties"]["provisioningState"] == "Deleting"

            outcome = await one_pass(settings, gw, sleep=clock.sleep)
            assert not outcome.failed
            assert outcome.unconverged == ()
            change = next(c for c in outcome.plan.changes if c.name == "web")
            assert change.action is Action.REPLACE, change.reason
            web = emu.get_group(rg, "web")
            assert web is not None, "the group exists again after the run"
            assert web["properties"]["provisioningState"] == "Succeeded"
            assert live_spec(web)[1] == cpu
            assert settled(await one_pass(settings, gw, sleep=clock.sleep))

    asyncio.run(body())
