"""The daemon's full passes after a commit: the groups of the files it did not touch are served from the plan
memo (not canonicalised and diffed again), although every group's revision tag moved with it.

`EnginePasses` against the in-process emulator."""

from __future__ import annotations

from pathlib import Path

from reconciler.daemon.passes import EnginePasses
from reconciler.model.plan import Action
from reconciler.planning.ownership import REVISION_TAG
from tests.daemon.test_focused_pass import RG, _apply_all
from tests.inprocess import engine_settings, in_process
from tests.reliability.support import Spec, run, write_specs


def test_after_a_commit_to_one_file_a_full_pass_plans_only_that_files_group_again(tmp_path: Path) -> None:
    async def body() -> None:
        async with in_process(tmp_path / "tls") as (_, gateway):
            m = tmp_path / "m"
            for n in range(4):
                write_specs(m / f"app{n}.yaml", [Spec(name=f"app{n}", rg=RG)])
            passes = EnginePasses(engine_settings(m), gateway, environ={})
            await _apply_all(passes)
            before = await passes.plan()
            memo = passes.plan_memo
            hits, misses = memo.hits, memo.misses

            write_specs(m / "app2.yaml", [Spec(name="app2", rg=RG, image="nginx:1.27")])
            view = await passes.plan()
            assert view.plan.revision != before.plan.revision
            assert [(c.name, c.action) for c in view.plan.changes if c.action is not Action.NOOP] == [
                ("app2", Action.UPDATE)
            ]
            assert (memo.hits - hits, memo.misses - misses) == (3, 1), "the three other groups are not diffed"
            assert {c.write_tags[REVISION_TAG] for c in view.plan.changes} == {view.plan.revision}

    run(body)
