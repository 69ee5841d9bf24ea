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


def test_kept_groups_with_secret_references_are_served_in_sync_without_a_copy_and_their_values_redacted(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with in_process(tmp_path / "tls") as (_, gateway):
            m = tmp_path / "m"
            for n in range(3):
                write_specs(
                    m / f"app{n}.yaml", [Spec(name=f"app{n}", rg=RG, secret_env={"TOKEN": f"TOKEN_{n}"})]
                )
            environ = {f"TOKEN_{n}": f"first-token-{n}" for n in range(3)}
            passes = EnginePasses(engine_settings(m), gateway, environ=environ)
            await _apply_all(passes)
            await passes.plan()  # planned against the groups as created
            memo = passes.plan_memo
            hits = memo.hits

            view = await passes.plan()
            assert [c.action for c in view.plan.changes] == [Action.NOOP] * 3
            assert memo.hits - hits == 3
            assert [c.desired for c in view.plan.changes] == [None] * 3, "no copy with the values in"
            assert set(view.secrets) == set(environ.values()), "the log redactor still has every value"

            environ["TOKEN_1"] = "second-token-1"
            view = await passes.plan()
            writes = [c for c in view.plan.changes if c.action is not Action.NOOP]
            assert [(c.name, c.action, c.reason) for c in writes] == [
                ("app1", Action.UPDATE, "secret values changed")
            ]
            assert writes[0].desired is not None
            assert "second-token-1" in writes[0].desired.secret_values().values()
            assert "second-token-1" in view.secrets

    run(body)
