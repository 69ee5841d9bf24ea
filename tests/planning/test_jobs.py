"""Job templates in a plan: an apply never starts, updates or replaces a job, and the groups of a job's extra
runs (concurrency Allow) are its runs, not orphans, for as long as the job's manifest exists."""

from __future__ import annotations

from typing import Any

from reconciler.model.manifest import GroupManifest
from reconciler.model.plan import Action
from reconciler.planning import build_plan
from reconciler.planning.ownership import JOB_TAG
from reconciler.planning.plan import SyncState, sync_state, write_tags_for
from tests.planning.support import INSTANCE, KEY, REVISION, applied, base_properties, desired, manifest


def job(name: str = "nightly", *, image: str = "busybox:1", **job_fields: Any) -> GroupManifest:
    props = base_properties(restartPolicy="Never")
    props.pop("ipAddress")
    props["containers"][0]["properties"].pop("ports")
    props["containers"][0]["properties"]["image"] = image
    return manifest(name=name, properties=props, reconcile={"job": job_fields})


def plan(desired_manifests: list[GroupManifest], live: list[Any]) -> Any:
    return build_plan(
        [desired(m) for m in desired_manifests], live, instance=INSTANCE, revision=REVISION, secret_key=KEY
    )


def test_an_apply_never_creates_a_job_template() -> None:
    out = plan([job(schedule="0 2 * * *")], [])
    [change] = out.changes
    assert change.action is Action.NOOP
    assert "reconcile run nightly" in change.reason
    assert "0 2 * * *" in change.reason
    assert sync_state(change) is SyncState.JOB
    assert not out.has_changes


def test_an_apply_leaves_a_changed_job_and_its_running_group_alone() -> None:
    live = applied(job(image="busybox:1"), instance_state="Running")
    out = plan([job(image="busybox:2")], [live])
    assert [c.action for c in out.changes] == [Action.NOOP]


def extra_run(template: GroupManifest, suffix: str = "a1b2c3") -> Any:
    run = template.model_copy(update={"name": f"{template.name}-{suffix}"})
    tags = write_tags_for(desired(run), instance=INSTANCE, revision=REVISION, secret_key=KEY)
    return applied(run, tags={**tags, JOB_TAG: template.name}, instance_state="Succeeded")


def test_the_group_of_an_extra_run_is_not_pruned_while_its_job_exists() -> None:
    template = job()
    out = plan([template], [extra_run(template)])
    assert [c.name for c in out.changes] == ["nightly"]


def test_the_group_of_an_extra_run_is_pruned_once_its_job_is_gone() -> None:
    other = job("other")
    out = plan([other], [extra_run(job())])
    deletes = [c for c in out.changes if c.action is Action.DELETE]
    assert [c.name for c in deletes] == ["nightly-a1b2c3"]


def test_a_job_tag_naming_a_group_that_is_no_job_protects_nothing() -> None:
    service = manifest(name="nightly")
    out = plan([service], [applied(service), extra_run(job())])
    assert [c.action for c in out.changes if c.name == "nightly-a1b2c3"] == [Action.DELETE]
