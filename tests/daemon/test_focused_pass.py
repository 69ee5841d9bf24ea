"""Focused passes: a manifest file saved makes the daemon plan only that file's groups, each read by one GET
(no list of the fleet), with the same decisions a full pass would make for them; anything whose effect
reaches further (a defaults file, a file the last load did not know) gets a full pass.

The daemon's passes (`EnginePasses`) against the in-process emulator, and the worker with a scripted engine.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from reconciler.daemon.passes import EnginePasses, SettledFiles, focus_keys
from reconciler.daemon.triggers import Trigger, TriggerKind
from reconciler.engine.reconcile import plan_pass
from reconciler.model.plan import Action
from reconciler.source import Defaults, load_manifests
from tests.daemon.fakes import FakeClock, FakeEngine, change, plan
from tests.daemon.test_worker import make
from tests.inprocess import engine_settings, in_process
from tests.reliability.support import Spec, run, write_specs, writes

RG = "rg-focus"


def _lists(emu: object) -> int:
    log = emu.request_log  # type: ignore[attr-defined]  # the in-process emulator
    return sum(1 for e in log if e.method == "GET" and e.route != "containerGroup")


def _gets(emu: object) -> list[str]:
    log = emu.request_log  # type: ignore[attr-defined]  # the in-process emulator
    return [e.path.rsplit("/", 1)[-1] for e in log if e.method == "GET" and e.route == "containerGroup"]


async def _apply_all(passes: EnginePasses, focus: frozenset[str] | None = None) -> list[tuple[str, Action]]:
    view = await passes.plan(focus)
    await passes.apply(view, [c for c in view.plan.changes if c.changes_something], lambda _: None)
    return [(c.name, c.action) for c in view.plan.changes if c.action is not Action.NOOP]


def test_a_saved_file_is_planned_alone_with_one_get_per_group_and_no_list(tmp_path: Path) -> None:
    async def body() -> None:
        async with in_process(tmp_path / "tls") as (emu, gateway):
            m = tmp_path / "m"
            for n in range(6):
                write_specs(m / f"app{n}.yaml", [Spec(name=f"app{n}", rg=RG)])
            passes = EnginePasses(engine_settings(m), gateway, environ={})
            await _apply_all(passes)
            lists, gets = _lists(emu), len(_gets(emu))

            write_specs(m / "app2.yaml", [Spec(name="app2", rg=RG, image="nginx:1.27")])
            view = await passes.plan(frozenset({str(m / "app2.yaml")}))
            assert view.focus == frozenset({(RG, "app2")})
            assert [(c.name, c.action) for c in view.plan.changes] == [("app2", Action.UPDATE)]
            assert _lists(emu) == lists, "no list call"
            assert _gets(emu)[gets:] == ["app2"], "one GET, of the saved group"
            await passes.apply(view, list(view.plan.changes), lambda _: None)
            assert writes(emu, "app2")[-1][0] == "PUT"

            full = await passes.plan()
            assert full.focus is None
            assert [c.action for c in full.plan.changes] == [Action.NOOP] * 6, "all in sync after it"

    run(body)


def test_a_document_removed_from_a_saved_file_is_pruned_as_a_full_pass_would(tmp_path: Path) -> None:
    async def body() -> None:
        async with in_process(tmp_path / "tls") as (emu, gateway):
            m = tmp_path / "m"
            write_specs(m / "both.yaml", [Spec(name="first", rg=RG), Spec(name="second", rg=RG)])
            write_specs(m / "other.yaml", [Spec(name="other", rg=RG)])
            passes = EnginePasses(engine_settings(m), gateway, environ={}, settle_delay=0.0)
            await _apply_all(passes)

            write_specs(m / "both.yaml", [Spec(name="first", rg=RG)])
            focus = frozenset({str(m / "both.yaml")})  # tmp_path is absolute
            view = await passes.plan(focus)
            assert view.focus == frozenset({(RG, "first"), (RG, "second")})
            [(name, action, held)] = [
                (c.name, c.action, c.held) for c in view.plan.changes if c.name != "first"
            ]
            assert (name, action) == ("second", Action.DELETE)
            assert held is not None, "held once, as a shrunk file is by any pass (it may be half-written)"
            assert await _apply_all(passes, focus) == [("second", Action.DELETE)]
            assert emu.get_group(RG, "second") is None
            assert emu.get_group(RG, "other") is not None, "the file set is not empty: nothing else goes"

    run(body)


def test_a_defaults_file_or_an_unknown_file_gets_a_full_pass(tmp_path: Path) -> None:
    m = tmp_path / "m"
    write_specs(m / "web.yaml", [Spec(name="web", rg=RG)])
    (m / "notes.txt").write_text("not a manifest\n")
    loaded = load_manifests(m, defaults=Defaults())
    settled = SettledFiles()
    settled.unsettled(loaded)
    web = os.path.abspath(m / "web.yaml")
    assert focus_keys(loaded, settled, frozenset({web})) == frozenset({(RG, "web")})
    assert focus_keys(loaded, settled, frozenset({os.path.abspath(m / "_defaults.yaml")})) is None
    assert focus_keys(loaded, settled, frozenset({os.path.abspath(m / "notes.txt")})) is None
    assert focus_keys(loaded, settled, frozenset({os.path.abspath(m / "secrets" / "x.yaml")})) is None
    assert focus_keys(loaded, settled, frozenset({web, os.path.abspath(m / "_defaults.yml")})) is None


def test_a_file_deleted_is_planned_by_the_groups_it_held(tmp_path: Path) -> None:
    m = tmp_path / "m"
    write_specs(m / "web.yaml", [Spec(name="web", rg=RG), Spec(name="api", rg=RG)])
    write_specs(m / "keep.yaml", [Spec(name="keep", rg=RG)])
    settled = SettledFiles()
    settled.unsettled(load_manifests(m, defaults=Defaults()))
    (m / "web.yaml").unlink()
    loaded = load_manifests(m, defaults=Defaults())
    assert focus_keys(loaded, settled, frozenset({os.path.abspath(m / "web.yaml")})) == frozenset(
        {(RG, "web"), (RG, "api")}
    )


# ---------------------------------------------------------------------------------------------------------
# The worker


def test_the_worker_focuses_only_passes_set_off_by_file_saves_alone_after_a_full_pass() -> None:
    async def body() -> None:
        engine = FakeEngine()
        clock = FakeClock()
        worker = make(engine, clock)
        saved = Trigger(TriggerKind.FILE, "changed: a.yaml", clock.time(), ("/m/a.yaml",))
        await worker.run_pass([saved])
        await worker.run_pass([saved])
        await worker.run_pass([saved, Trigger(TriggerKind.INTERVAL, "resync", clock.time())])
        await worker.run_pass([Trigger(TriggerKind.FILE, "changed: 100 files", clock.time())])
        await worker.run_pass(
            [saved, Trigger(TriggerKind.FILE, "changed: b.yaml", clock.time(), ("/m/b.yaml",))]
        )
        assert engine.focus_asked == [
            None,  # no full pass yet
            frozenset({"/m/a.yaml"}),
            None,  # a resync came with it
            None,  # a burst too large to name its files
            frozenset({"/m/a.yaml", "/m/b.yaml"}),
        ]

    run(body)


def test_a_focused_plan_replaces_only_its_groups_in_what_the_status_page_shows() -> None:
    async def body() -> None:
        engine = FakeEngine()
        clock = FakeClock()
        worker = make(engine, clock)
        engine.set_plan(plan("r1", *(change(n, Action.NOOP) for n in "abc")))
        await worker.run_pass([Trigger(TriggerKind.STARTUP, "start", clock.time())])
        focused = plan("r2", change("b", Action.UPDATE))
        engine.set_plan(focused, focus=frozenset({("rg", "b"), ("rg", "gone")}))
        record = await worker.run_pass(
            [Trigger(TriggerKind.FILE, "changed: b.yaml", clock.time(), ("/m/b.yaml",))]
        )
        assert record.focused == 2
        assert worker.last_plan is not None
        shown = {c.name: c.action for c in worker.last_plan.changes}
        assert shown == {"a": Action.NOOP, "b": Action.UPDATE, "c": Action.NOOP}
        assert set(worker.book.groups) >= {("rg", "a"), ("rg", "c")}, "a focused pass forgets nothing else"

    run(body)


# ---------------------------------------------------------------------------------------------------------
# A focused plan is the full plan of its groups

EDIT = st.tuples(
    st.sampled_from(["image", "drop-doc", "add-doc", "new-file", "delete-file"]), st.integers(0, 3)
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(docs=[1, 1], edits=[("new-file", 0), ("delete-file", 2)])  # made and deleted between two passes
@example(docs=[1, 1], edits=[("delete-file", 0), ("delete-file", 0), ("image", 0)])  # the tree emptied
@given(
    docs=st.lists(st.integers(1, 2), min_size=2, max_size=4),
    edits=st.lists(EDIT, min_size=1, max_size=3),
)
def test_a_focused_plan_equals_the_full_plan_of_its_groups_through_any_edits(
    tmp_path_factory: pytest.TempPathFactory, docs: list[int], edits: list[tuple[str, int]]
) -> None:
    tmp = tmp_path_factory.mktemp("focus")
    m = tmp / "m"
    files: dict[str, list[Spec]] = {
        f"f{i}.yaml": [Spec(name=f"g{i}-{d}", rg=RG) for d in range(count)] for i, count in enumerate(docs)
    }

    async def body() -> None:
        async with in_process(tmp / "tls") as (_emu, gateway):
            for name, specs in files.items():
                write_specs(m / name, specs)
            settings = engine_settings(m)
            passes = EnginePasses(settings, gateway, environ={}, settle_delay=0.0)
            await _apply_all(passes)
            declared = {name: {(RG, spec.name) for spec in specs} for name, specs in files.items()}
            touched: set[str] = set()
            for n, (what, which) in enumerate(edits):
                if not files and what != "new-file":
                    continue  # every file was deleted: only a new one can come
                name = sorted(files)[which % len(files)] if files else ""
                if what == "image":
                    files[name] = [replace(s, image=f"nginx:1.{n}") for s in files[name]]
                elif what == "drop-doc" and len(files[name]) > 1:
                    files[name] = files[name][:-1]
                elif what == "add-doc":
                    files[name] = [*files[name], Spec(name=f"added-{n}", rg=RG)]
                elif what == "new-file":
                    name = f"new{n}.yaml"
                    files[name] = [Spec(name=f"new-{n}", rg=RG)]
                elif what == "delete-file":
                    del files[name]
                    (m / name).unlink()
                    touched.add(str(m / name))
                    continue
                write_specs(m / name, files[name])
                touched.add(str(m / name))
            # What the touched files declared before the edits and declare after them: what must be planned.
            expected = set()
            for path in touched:
                name = os.path.basename(path)
                expected |= declared.get(name, set()) | {(RG, spec.name) for spec in files.get(name, [])}
            focused = await passes.plan(frozenset(touched))
            if any(os.path.basename(p) not in declared and os.path.basename(p) not in files for p in touched):
                # A file no load ever saw (made and deleted between two passes): everything is planned.
                assert focused.focus is None
                return
            assert focused.focus == frozenset(expected)
            full = await plan_pass(settings, gateway, environ={})
            assert [(c.key, c.action, c.changed_paths) for c in focused.plan.changes] == [
                (c.key, c.action, c.changed_paths) for c in full.plan.changes if c.key in expected
            ]

    run(body)
