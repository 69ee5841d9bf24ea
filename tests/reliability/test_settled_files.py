"""A manifest file caught half-written never gets a group deleted and created again (issue 9, finding 6).

The daemon's passes (`EnginePasses`, as the daemon runs them) against the in-process emulator: a two-document
file is read after its first document is on disk and before the second, as an editor or `git checkout`
writing it would leave it for a moment.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from reconciler.daemon.passes import EnginePasses
from reconciler.model.plan import Action
from tests.inprocess import engine_settings, in_process
from tests.reliability.support import Spec, run, write_specs, writes

RG = "rg-settle"


async def _pass(passes: EnginePasses) -> tuple[list[tuple[str, Action, str | None]], float | None]:
    view = await passes.plan()
    await passes.apply(view, [c for c in view.plan.changes if c.changes_something], lambda _: None)
    changes = [(c.name, c.action, c.held) for c in view.plan.changes if c.action is not Action.NOOP]
    return changes, view.recheck_after


def _write_first_document_only(path: Path, specs: list[Spec]) -> None:
    # What a reader sees mid-write: the first document, a separator, nothing yet of the second.
    path.write_text(yaml.safe_dump(specs[0].manifest(), sort_keys=False) + "---\n")


def test_a_slow_writer_of_a_two_document_file_never_gets_a_group_deleted(tmp_path: Path) -> None:
    async def body() -> None:
        async with in_process(tmp_path / "tls") as (emu, gateway):
            specs = [Spec(name="first", rg=RG), Spec(name="second", rg=RG)]
            manifest = tmp_path / "m" / "both.yaml"
            write_specs(manifest, specs)
            passes = EnginePasses(engine_settings(tmp_path / "m"), gateway, environ={}, settle_delay=0.5)
            await _pass(passes)
            assert emu.get_group(RG, "second") is not None
            before = len(writes(emu))

            _write_first_document_only(manifest, specs)
            changes, recheck = await _pass(passes)
            [(name, action, held)] = changes
            assert (name, action) == ("second", Action.DELETE)
            assert held is not None
            assert "still being written" in held
            assert recheck == 0.5, "the daemon plans again after the settle delay"

            write_specs(manifest, [*specs, Spec(name="third", rg=RG)])  # the writer finishes (and adds one)
            changes, recheck = await _pass(passes)
            assert changes == [("third", Action.CREATE, None)]
            assert recheck is None
            assert emu.get_group(RG, "second") is not None
            assert [w for w in writes(emu)[before:] if "second" in w[1]] == [], "second was never written"

    run(body)


def test_a_document_really_removed_is_pruned_once_its_file_holds_still(tmp_path: Path) -> None:
    async def body() -> None:
        async with in_process(tmp_path / "tls") as (emu, gateway):
            specs = [Spec(name="first", rg=RG), Spec(name="second", rg=RG)]
            manifest = tmp_path / "m" / "both.yaml"
            write_specs(manifest, specs)
            passes = EnginePasses(engine_settings(tmp_path / "m"), gateway, environ={}, settle_delay=0.5)
            await _pass(passes)

            write_specs(manifest, specs[:1])
            changes, _ = await _pass(passes)
            assert [(n, a, h is not None) for n, a, h in changes] == [("second", Action.DELETE, True)]
            changes, recheck = await _pass(passes)  # the file did not change across the settle delay
            assert changes == [("second", Action.DELETE, None)]
            assert recheck is None
            assert emu.get_group(RG, "second") is None

    run(body)


def test_a_deleted_file_prunes_at_once(tmp_path: Path) -> None:
    async def body() -> None:
        async with in_process(tmp_path / "tls") as (emu, gateway):
            write_specs(tmp_path / "m" / "keep.yaml", [Spec(name="keep", rg=RG)])
            write_specs(tmp_path / "m" / "gone.yaml", [Spec(name="gone", rg=RG)])
            passes = EnginePasses(engine_settings(tmp_path / "m"), gateway, environ={}, settle_delay=0.5)
            await _pass(passes)
            (tmp_path / "m" / "gone.yaml").unlink()
            changes, recheck = await _pass(passes)
            assert changes == [("gone", Action.DELETE, None)]
            assert recheck is None
            assert emu.get_group(RG, "gone") is None

    run(body)


def test_a_manifest_that_stops_parsing_shows_its_group_stalled_with_the_error_not_ready(
    tmp_path: Path,
) -> None:
    from reconciler.daemon.metrics import DaemonMetrics
    from reconciler.daemon.state import Phase, StateBook
    from reconciler.daemon.triggers import Coalescer, RetryTimer, Trigger, TriggerKind
    from reconciler.daemon.worker import Worker
    from tests.daemon.fakes import FakeClock

    async def body() -> None:
        async with in_process(tmp_path / "tls") as (_emu, gateway):
            manifest = tmp_path / "m" / "web.yaml"
            write_specs(manifest, [Spec(name="web", rg=RG)])
            passes = EnginePasses(engine_settings(tmp_path / "m"), gateway, environ={}, settle_delay=0.5)
            clock, coalescer, book = FakeClock(), Coalescer(), StateBook()
            worker = Worker(
                passes,
                coalescer,
                book,
                metrics=DaemonMetrics(),
                retry_timer=RetryTimer(coalescer, sleep=clock.sleep, clock=clock.time),
                clock=clock.time,
                monotonic=clock.monotonic,
            )
            await worker.run_pass([Trigger(TriggerKind.STARTUP, "start", clock.time())])
            assert book.groups[(RG, "web")].phase is Phase.READY

            manifest.write_text("name: web\nproperties: [unclosed\n")
            await worker.run_pass([Trigger(TriggerKind.FILE, "changed: web.yaml", clock.time())])
            state = book.groups[(RG, "web")]
            assert state.phase is Phase.STALLED
            assert "web.yaml" in (state.last_error or "")
            assert worker.last_pass is not None
            assert "web.yaml" in (worker.last_pass.error or "")

    run(body)
