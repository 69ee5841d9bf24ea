"""build_plan and diff_group: create/update/replace/tags/noop, ownership, adoption, conflict, prune."""

from __future__ import annotations

import json
from typing import Any

import pytest

from reconciler.model.manifest import GroupManifest, ReconcilePolicy
from reconciler.model.observed import ObservedGroup
from reconciler.model.plan import Action, Change, Plan, PlanIssue
from reconciler.planning import ownership as own
from reconciler.planning.diff import SECRETS_PATH
from reconciler.planning.plan import DesiredGroup, SyncState, build_plan, diff_group, sync_state
from tests.planning.support import (
    INSTANCE,
    KEY,
    REVISION,
    applied,
    base_properties,
    desired,
    manifest,
    unmanaged,
)

ENV_PATH = "/properties/containers/web/properties/environmentVariables"


def plan(desired_groups: list[DesiredGroup], observed: list[ObservedGroup], **kw: Any) -> Plan:
    args: dict[str, Any] = {"instance": INSTANCE, "revision": "def456", "secret_key": KEY}
    args.update(kw)
    return build_plan(desired_groups, observed, **args)


def only(p: Plan) -> Change:
    (change,) = p.changes
    return change


def test_missing_group_is_created_with_ownership_tags() -> None:
    m = manifest(tags={"team": "payments"})
    change = only(plan([desired(m)], []))
    assert change.action is Action.CREATE
    assert change.desired is m
    assert change.source == "manifests/web.yaml:1:1"
    assert change.write_tags["team"] == "payments"
    assert change.write_tags["managed-by"] == "aci-reconciler"
    assert change.write_tags[own.INSTANCE_TAG] == INSTANCE
    assert change.write_tags[own.REVISION_TAG] == "def456"
    assert change.write_tags[own.PRUNE_TAG] == "true"
    assert "/properties" in change.changed_paths


def test_unchanged_managed_group_is_noop() -> None:
    m = manifest()
    change = only(plan([desired(m)], [applied(m)]))
    assert change.action is Action.NOOP
    assert not change.changes_something


def test_new_revision_alone_is_not_a_change() -> None:
    m = manifest()
    live = applied(m, revision="an-older-commit")
    assert only(plan([desired(m)], [live], revision="a-new-commit")).action is Action.NOOP


def test_image_change_is_update_with_changed_paths() -> None:
    live = applied(manifest())
    props = base_properties()
    props["containers"][0]["properties"]["image"] = "nginx:1.26"
    change = only(plan([desired(manifest(properties=props))], [live]))
    assert change.action is Action.UPDATE
    assert change.changed_paths == ("/properties/containers/web/properties/image",)
    assert change.replace_paths == ()


def test_cpu_change_forces_replace_and_names_the_path() -> None:
    live = applied(manifest())
    props = base_properties()
    props["containers"][0]["properties"]["resources"]["requests"]["cpu"] = 2
    change = only(plan([desired(manifest(properties=props))], [live]))
    assert change.action is Action.REPLACE
    assert change.replace_paths == ("/properties/containers/web/properties/resources/requests/cpu",)
    assert change.fields[0].forces_replacement


def test_tags_only_change_is_a_tags_patch() -> None:
    live = applied(manifest(tags={"team": "a"}))
    change = only(plan([desired(manifest(tags={"team": "b"}))], [live]))
    assert change.action is Action.TAGS
    assert change.changed_paths == ("/tags/team",)
    assert change.write_tags["team"] == "b"


def test_tag_added_out_of_band_is_drift() -> None:
    m = manifest()
    tags = {**applied(m).tags, "added-by-hand": "yes"}
    change = only(plan([desired(m)], [applied(m, tags=tags)]))
    assert change.action is Action.TAGS
    assert [(f.path, f.kind) for f in change.fields] == [("/tags/added-by-hand", "remove")]


def test_prune_policy_change_is_written_as_a_tag() -> None:
    live = applied(manifest())
    change = only(plan([desired(manifest(reconcile={"prune": False}))], [live]))
    assert change.action is Action.TAGS
    assert change.write_tags[own.PRUNE_TAG] == "false"


def test_unmanaged_group_with_fail_if_exists_is_a_conflict_and_touches_nothing() -> None:
    m = manifest()
    change = only(plan([desired(m)], [unmanaged(m)]))
    assert change.action is Action.CONFLICT
    assert "failIfExists" in change.reason
    assert not change.changes_something
    assert change.write_tags == {}


def test_unmanaged_group_without_fail_if_exists_is_adopted_with_at_least_tags() -> None:
    m = manifest(reconcile={"failIfExists": False})
    change = only(plan([desired(m)], [unmanaged(m)]))
    assert change.adopt
    assert change.action is Action.TAGS
    assert change.write_tags["managed-by"] == "aci-reconciler"
    assert "adopting" in change.reason


def test_adoption_follows_the_table_when_the_spec_differs() -> None:
    live = unmanaged(manifest())
    props = base_properties(restartPolicy="Never")
    change = only(plan([desired(manifest(properties=props, reconcile={"failIfExists": False}))], [live]))
    assert change.adopt
    assert change.action is Action.REPLACE
    assert change.replace_paths == ("/properties/restartPolicy",)


def test_group_managed_by_another_instance_is_always_a_conflict_naming_it() -> None:
    m = manifest(reconcile={"failIfExists": False})
    live = applied(m, instance="blue")
    change = only(plan([desired(m)], [live], instance="green"))
    assert change.action is Action.CONFLICT
    assert "'blue'" in change.reason


def test_another_instance_never_prunes_our_groups() -> None:
    ours = applied(manifest(name="a"), instance="blue")
    p = plan([desired(manifest(name="b"))], [ours], instance="green")
    assert [c.action for c in p.changes] == [Action.CREATE]


def test_suspended_group_shows_its_action_held() -> None:
    live = applied(manifest(reconcile={"suspend": True}))
    props = base_properties()
    props["containers"][0]["properties"]["image"] = "nginx:2"
    change = only(plan([desired(manifest(properties=props, reconcile={"suspend": True}))], [live]))
    assert change.action is Action.UPDATE
    assert change.held is not None
    assert "suspend" in change.held
    assert not change.changes_something


def test_recreate_never_holds_a_replace_but_not_an_update() -> None:
    live = applied(manifest(reconcile={"recreate": "never"}))
    props = base_properties(osType="Windows")
    change = only(plan([desired(manifest(properties=props, reconcile={"recreate": "never"}))], [live]))
    assert change.action is Action.REPLACE
    assert change.held is not None
    assert "recreate" in change.held
    props = base_properties()
    props["containers"][0]["properties"]["image"] = "nginx:2"
    change = only(plan([desired(manifest(properties=props, reconcile={"recreate": "never"}))], [live]))
    assert change.held is None


HELD_POLICIES = [
    ({"suspend": True, "prune": False}, {"image": "nginx:2"}),
    ({"suspend": True, "prune": False}, {"cpu": 2}),
    ({"recreate": "never", "prune": False}, {"cpu": 2}),
    ({"suspend": True, "recreate": "never", "prune": False}, {"cpu": 2}),
]


@pytest.mark.parametrize(("policy", "change_to"), HELD_POLICIES)
def test_a_held_change_still_records_the_policy_by_a_tags_patch_and_nothing_else(
    policy: dict[str, Any], change_to: dict[str, Any]
) -> None:
    live = applied(manifest())  # applied with the default policy: prune true
    props = base_properties()
    container = props["containers"][0]["properties"]
    if "image" in change_to:
        container["image"] = change_to["image"]
    else:
        container["resources"]["requests"]["cpu"] = change_to["cpu"]
    change = only(plan([desired(manifest(properties=props, reconcile=policy))], [live]))
    assert change.action is Action.TAGS
    assert change.held is None
    assert "held" in change.reason
    assert change.write_tags[own.PRUNE_TAG] == "false"
    # Only the policy (and proof) tags move: the spec, its fingerprint and the user tags stay as they are.
    moved = {k for k in change.write_tags if change.write_tags.get(k) != live.tags.get(k)}
    assert moved <= {own.PRUNE_TAG, own.SUSPEND_TAG, own.RECREATE_TAG}
    assert all(p.startswith("/tags/") for p in change.changed_paths)

    recorded = live.model_copy(update={"tags": change.write_tags})
    again = only(plan([desired(manifest(properties=props, reconcile=policy))], [recorded]))
    assert again.held is not None
    assert not again.changes_something
    gone = plan([desired(manifest(name="other"))], [recorded])
    [orphan] = [c for c in gone.changes if c.name == live.name]
    assert orphan.action is Action.DELETE
    assert orphan.held is not None


def test_terminated_job_is_replaced_on_change_but_left_alone_when_unchanged() -> None:
    m = manifest(properties=base_properties(restartPolicy="Never"))
    live = applied(m, instance_state="Succeeded")
    assert only(plan([desired(m)], [live])).action is Action.NOOP
    props = base_properties(restartPolicy="Never")
    props["containers"][0]["properties"]["image"] = "nginx:2"
    change = only(plan([desired(manifest(properties=props))], [live]))
    assert change.action is Action.REPLACE
    assert "terminated" in change.reason


def test_terminated_job_with_only_a_tag_change_is_patched_not_rerun() -> None:
    m = manifest(properties=base_properties(restartPolicy="Never"))
    live = applied(m, instance_state="Failed")
    m2 = manifest(properties=base_properties(restartPolicy="Never"), tags={"team": "x"})
    assert only(plan([desired(m2)], [live])).action is Action.TAGS


# --- secrets -------------------------------------------------------------------------------------------


def secret_manifest(value: str | None = None, *, ref: str | None = None) -> GroupManifest:
    props = base_properties()
    env: dict[str, Any] = {"name": "PW"}
    if ref is not None:
        env["secureValueFrom"] = {"env": ref}
    else:
        env["secureValue"] = value  # a literal secret: resolved as written
    props["containers"][0]["properties"]["environmentVariables"].append(env)
    return manifest(properties=props)


def test_secret_changed_only_in_the_environment_is_detected_through_the_hash_tag() -> None:
    live = applied(secret_manifest("old-secret"))
    change = only(plan([desired(secret_manifest("new-secret"))], [live]))
    assert change.action is Action.UPDATE
    assert [(f.path, f.sensitive, f.before, f.after) for f in change.fields] == [
        (SECRETS_PATH, True, None, None)
    ]
    assert "new-secret" not in change.model_dump_json()
    assert "old-secret" not in change.model_dump_json()


def test_unchanged_secret_is_noop() -> None:
    m = secret_manifest("same")
    assert only(plan([desired(m)], [applied(m)])).action is Action.NOOP


def test_secret_hash_missing_on_live_group_is_an_update() -> None:
    m = secret_manifest("s")
    tags = {k: v for k, v in applied(m).tags.items() if k != own.SECRETS_TAG}
    assert only(plan([desired(m)], [applied(m, tags=tags)])).action is Action.UPDATE


def test_a_secret_key_change_proposes_no_secret_update_and_says_so() -> None:
    m = secret_manifest("s")
    live = applied(m, key=b"old-key")
    changed = plan([desired(m)], [live], secret_key=b"new-key")
    assert only(changed).action is Action.NOOP
    [warning] = changed.warnings
    assert "secret-hash key changed" in warning.message
    assert own.key_id(b"old-key") in warning.message
    assert own.key_id(b"new-key") in warning.message
    assert "--rekey" in warning.message


def test_rekey_re_tags_a_group_of_the_previous_key_by_a_patch_and_then_it_is_proven() -> None:
    m = secret_manifest("s")
    live = applied(m, key=b"old-key")
    change = only(plan([desired(m)], [live], secret_key=b"new-key", rekey=True))
    assert change.action is Action.TAGS
    assert change.write_tags[own.KEY_ID_TAG] == own.key_id(b"new-key")
    assert change.write_tags[own.SECRETS_TAG] == applied(m, key=b"new-key").tags[own.SECRETS_TAG]
    retagged = live.model_copy(update={"tags": change.write_tags})
    owned = own.ownership(retagged, instance=INSTANCE, subscription="", key=b"new-key")
    assert owned is own.Ownership.PROVEN
    assert only(plan([desired(m)], [retagged], secret_key=b"new-key")).action is Action.NOOP


def test_after_a_key_change_a_spec_update_still_goes_ahead_and_writes_tags_true_under_the_new_key() -> None:
    live = applied(secret_manifest("s"), key=b"old-key")
    props = base_properties()
    props["containers"][0]["properties"]["environmentVariables"].append({"name": "PW", "secureValue": "s"})
    props["containers"][0]["properties"]["image"] = "nginx:2"
    m2 = manifest(properties=props)
    change = only(plan([desired(m2)], [live], secret_key=b"new-key"))
    assert change.action is Action.UPDATE
    assert change.write_tags[own.KEY_ID_TAG] == own.key_id(b"new-key")
    assert not any(f.sensitive for f in change.fields)


def test_secrets_removed_from_the_manifest_is_an_update() -> None:
    live = applied(secret_manifest("s"))
    change = only(plan([desired(manifest())], [live]))
    assert change.action is Action.UPDATE
    assert any(f.sensitive for f in change.fields)


def test_write_tags_carry_the_secret_hash_but_never_the_secret() -> None:
    change = only(plan([desired(secret_manifest("hunter2"))], []))
    assert own.SECRETS_TAG in change.write_tags
    assert "hunter2" not in json.dumps(change.write_tags)
    assert "hunter2" not in change.model_dump_json()


# --- prune -------------------------------------------------------------------------------------------


def test_managed_group_without_manifest_is_pruned() -> None:
    keep, gone = manifest(name="keep"), manifest(name="gone")
    p = plan([desired(keep)], [applied(keep), applied(gone)])
    actions = {c.name: c for c in p.changes}
    assert actions["gone"].action is Action.DELETE
    assert actions["gone"].held is None
    assert actions["gone"].changes_something


def test_unmanaged_group_without_manifest_is_never_pruned() -> None:
    keep = manifest(name="keep")
    p = plan([desired(keep)], [applied(keep), unmanaged(manifest(name="theirs"))])
    assert [c.name for c in p.changes] == ["keep"]


def test_group_whose_prune_tag_is_false_is_not_pruned() -> None:
    keep, gone = manifest(name="keep"), manifest(name="gone", reconcile={"prune": False})
    p = plan([desired(keep)], [applied(keep), applied(gone)])
    delete = next(c for c in p.changes if c.name == "gone")
    assert delete.held is not None
    assert not delete.changes_something


def test_prune_disabled_prunes_nothing() -> None:
    keep, gone = manifest(name="keep"), manifest(name="gone")
    p = plan([desired(keep)], [applied(keep), applied(gone)], prune=False)
    assert not any(c.changes_something for c in p.changes)


def test_incomplete_load_prunes_nothing_and_warns() -> None:
    keep, gone = manifest(name="keep"), manifest(name="gone")
    p = plan([desired(keep)], [applied(keep), applied(gone)], load_complete=False)
    assert [c.name for c in p.changes] == ["keep"]
    assert len(p.warnings) == 1
    assert "did not all load" in p.warnings[0].message


def test_empty_manifest_set_refuses_to_prune_everything() -> None:
    gone = [applied(manifest(name=n)) for n in ("a", "b")]
    p = plan([], gone)
    assert not p.has_changes
    assert len(p.errors) == 1
    assert "refusing to prune" in p.errors[0].message


def test_allow_empty_overrides_the_empty_guard() -> None:
    gone = [applied(manifest(name=n)) for n in ("a", "b")]
    p = plan([], gone, allow_empty=True)
    assert [c.action for c in p.changes] == [Action.DELETE, Action.DELETE]
    assert p.has_changes
    assert p.errors == ()


def test_empty_set_with_nothing_managed_is_fine() -> None:
    p = plan([], [unmanaged(manifest())])
    assert p.changes == ()
    assert p.issues == ()


# --- plan-level ----------------------------------------------------------------------------------------


def test_changes_are_ordered_by_resource_group_then_name() -> None:
    ms = [
        manifest(name="b", resource_group="rg-2"),
        manifest(name="a", resource_group="rg-2"),
        manifest(name="z", resource_group="RG-1"),
    ]
    p = plan([desired(m) for m in ms], [])
    assert [(c.resource_group, c.name) for c in p.changes] == [("RG-1", "z"), ("rg-2", "a"), ("rg-2", "b")]


def test_resource_groups_match_live_groups_case_insensitively() -> None:
    m = manifest(resource_group="RG-Prod")
    live = applied(manifest(resource_group="rg-prod"))
    assert only(plan([desired(m)], [live])).action is Action.NOOP


def test_reserved_tag_in_a_manifest_is_an_error_naming_the_source() -> None:
    m = manifest(tags={"managed-by": "me"})
    p = plan([desired(m)], [])
    assert p.changes == ()
    (error,) = p.errors
    assert error.source == "manifests/web.yaml:1:1"
    assert "reserved" in error.message


def test_duplicate_manifest_is_an_error_and_the_first_wins() -> None:
    p = plan([desired(manifest(), "a.yaml:1:1"), desired(manifest(), "b.yaml:3:1")], [])
    assert len(p.changes) == 1
    assert p.changes[0].source == "a.yaml:1:1"
    assert "a.yaml:1:1" in p.errors[0].message


def test_loader_issues_are_carried_into_the_plan() -> None:
    issue = PlanIssue(severity="warning", message="literal secureValue", source="x.yaml:2:3")
    assert plan([], [], issues=[issue]).issues == (issue,)


def test_bad_ignore_pointer_is_an_error_not_a_crash() -> None:
    # The model rejects such a pointer; planning must still not crash on one that got through.
    m = manifest().model_copy(
        update={"policy": ReconcilePolicy.model_construct(ignore=("properties/osType",))}
    )
    p = plan([desired(m)], [applied(manifest())])
    assert p.changes == ()
    assert "reconcile.ignore" in p.errors[0].message


def test_ignore_pointer_suppresses_drift_on_that_field() -> None:
    live = applied(manifest())
    props = base_properties()
    props["containers"][0]["properties"]["image"] = "nginx:managed-elsewhere"
    m = manifest(properties=props, reconcile={"ignore": ["/properties/containers/*/properties/image"]})
    assert only(plan([desired(m)], [live])).action is Action.NOOP


def test_empty_instance_name_is_an_error() -> None:
    p = plan([desired(manifest())], [], instance="")
    assert p.changes == ()
    assert p.errors


def test_diff_group_and_sync_state_report_status() -> None:
    m = manifest()
    args: dict[str, Any] = {"instance": INSTANCE, "revision": REVISION, "secret_key": KEY}
    assert sync_state(diff_group(desired(m), applied(m), **args)) is SyncState.IN_SYNC
    assert sync_state(diff_group(desired(m), None, **args)) is SyncState.MISSING
    assert sync_state(diff_group(desired(m), unmanaged(m), **args)) is SyncState.CONFLICT
    props = base_properties(restartPolicy="OnFailure")
    assert (
        sync_state(diff_group(desired(manifest(properties=props)), applied(m), **args)) is SyncState.DRIFTED
    )
    orphan = next(c for c in plan([desired(manifest(name="x"))], [applied(m)]).changes if c.name == "web")
    assert sync_state(orphan) is SyncState.ORPHANED


def test_unresolved_secret_reference_skips_secret_comparison_with_a_warning() -> None:
    resolved = secret_manifest("s")
    live = applied(resolved)
    p = plan([desired(secret_manifest(ref="PW_FROM_ENV"))], [live])
    change = only(p)
    assert change.action is Action.NOOP
    assert change.write_tags[own.SECRETS_TAG] == live.tags[own.SECRETS_TAG]
    assert "not resolved" in p.warnings[0].message


def test_live_group_without_properties_is_an_error_not_an_update_of_everything() -> None:
    m = manifest()
    partial = applied(m).model_copy(update={"body": {"name": "web", "tags": applied(m).tags}})
    p = plan([desired(m)], [partial])
    assert p.changes == ()
    assert "full GET" in p.errors[0].message


def test_rotated_log_analytics_key_is_an_update_in_place() -> None:
    def with_key(key: str) -> GroupManifest:
        props = base_properties(diagnostics={"logAnalytics": {"workspaceId": "w", "workspaceKey": key}})
        return manifest(properties=props)

    change = only(plan([desired(with_key("new-key"))], [applied(with_key("old-key"))]))
    assert change.action is Action.UPDATE
    assert change.replace_paths == ()
    assert [f.path for f in change.fields] == [SECRETS_PATH]
    assert "new-key" not in change.model_dump_json()


def test_rotating_a_secure_value_on_a_group_with_diagnostics_is_an_update_attributed_once() -> None:
    # Issue 9, finding 7: the hash change was blamed on every secret path, the workspace key included.
    def group(value: str) -> GroupManifest:
        props = base_properties(diagnostics={"logAnalytics": {"workspaceId": "w", "workspaceKey": "wk"}})
        props["containers"][0]["properties"]["environmentVariables"].append(
            {"name": "PW", "secureValue": value}
        )
        return manifest(properties=props)

    change = only(plan([desired(group("new"))], [applied(group("old"))]))
    assert change.action is Action.UPDATE
    assert change.replace_paths == ()
    assert [(f.path, f.sensitive) for f in change.fields] == [(SECRETS_PATH, True)]
    assert not any("workspaceKey" in p for p in change.changed_paths)


def test_terminated_job_with_a_rotated_secret_is_replaced() -> None:
    def job(value: str) -> GroupManifest:
        props = base_properties(restartPolicy="Never")
        props["containers"][0]["properties"]["environmentVariables"].append(
            {"name": "PW", "secureValue": value}
        )
        return manifest(properties=props)

    change = only(plan([desired(job("b"))], [applied(job("a"), instance_state="Succeeded")]))
    assert change.action is Action.REPLACE
    assert change.replace_paths == (SECRETS_PATH,)


def test_ignored_secret_path_is_not_reapplied() -> None:
    live = applied(secret_manifest("old"))
    m = secret_manifest("new")
    ignored = m.model_copy(update={"policy": m.policy.model_copy(update={"ignore": (f"{ENV_PATH}/PW",)})})
    assert only(plan([desired(ignored)], [live])).action is Action.NOOP
    assert only(plan([desired(m)], [live])).action is Action.UPDATE


# --- keyed ownership (DESIGN.md section 4) -------------------------------------------------------------

FORGED = {"managed-by": "aci-reconciler", own.INSTANCE_TAG: INSTANCE}


def legacy_tags(m: GroupManifest) -> dict[str, str]:
    """The tags a release before ownership proofs wrote."""
    tags = applied(m).tags
    return {k: v for k, v in tags.items() if k not in own.PROOF_TAGS}


def test_forged_plain_tags_on_a_group_no_manifest_names_are_never_pruned() -> None:
    someone_elses = applied(manifest(name="theirs"), tags=FORGED)
    result = plan([desired(manifest())], [someone_elses])
    assert [c.name for c in result.changes] == ["web"]
    [warning] = result.warnings
    assert "rg-prod/theirs" in warning.message
    assert "never pruned" in warning.message


def test_forged_plain_tags_on_a_group_a_manifest_names_are_foreign_per_fail_if_exists() -> None:
    forged = applied(manifest(), tags=FORGED)
    conflict = only(plan([desired(manifest())], [forged]))
    assert conflict.action is Action.CONFLICT
    assert "ownership proof" in conflict.reason
    adopted = only(plan([desired(manifest(reconcile={"failIfExists": False}))], [forged]))
    assert adopted.adopt
    assert adopted.write_tags[own.PROOF_TAG]


def test_a_group_tagged_before_proofs_is_migrated_by_a_tags_patch_when_a_manifest_names_it() -> None:
    m = manifest()
    live = applied(m, tags=legacy_tags(m))
    change = only(plan([desired(m)], [live]))
    assert change.action is Action.TAGS
    assert "ownership proof" in change.reason
    assert {f.path for f in change.fields} == {f"/tags/{t}" for t in own.PROOF_TAGS}
    migrated = live.model_copy(update={"tags": change.write_tags})
    assert only(plan([desired(m)], [migrated])).action is Action.NOOP


def test_a_group_tagged_by_the_release_before_proofs_without_a_manifest_is_not_pruned_and_said() -> None:
    gone = manifest(name="gone")
    result = plan([desired(manifest())], [applied(gone, tags=legacy_tags(gone))])
    assert [c.name for c in result.changes] == ["web"]
    [warning] = result.warnings
    assert "rg-prod/gone" in warning.message
    assert "without ownership proofs" in warning.message


def test_a_proven_orphan_is_pruned_but_not_with_a_key_anyone_could_derive() -> None:
    gone = applied(manifest(name="gone"))
    [delete] = [c for c in plan([desired(manifest())], [gone]).changes if c.name == "gone"]
    assert delete.action is Action.DELETE
    assert delete.held is None
    public = plan([desired(manifest())], [gone], key_is_private=False)
    [held] = [c for c in public.changes if c.name == "gone"]
    assert held.held is not None
    assert "RECONCILER_SECRET_KEY" in held.held


def test_a_proof_copied_onto_another_group_proves_nothing() -> None:
    ours = applied(manifest(name="ours"))
    copy = applied(manifest(name="victim"), tags=dict(ours.tags))
    result = plan([desired(manifest(name="ours"))], [ours, copy])
    assert [(c.name, c.action) for c in result.changes] == [("ours", Action.NOOP)]


@pytest.mark.parametrize(("rg", "name"), [("RG-PROD", "web"), ("rg-prod", "WEB"), ("Rg-Prod", "Web")])
def test_names_are_matched_case_insensitively_for_lookup_ownership_and_prune(rg: str, name: str) -> None:
    m = manifest()
    live = applied(m)
    as_listed = live.model_copy(update={"resource_group": rg, "name": name})
    assert only(plan([desired(m)], [as_listed])).action is Action.NOOP
    other = manifest(name="other")
    result = plan([desired(other)], [as_listed])
    [delete] = [c for c in result.changes if c.action is Action.DELETE]
    assert delete.key == ("rg-prod", "web")
    assert delete.held is None


def test_two_manifests_whose_names_differ_only_in_case_are_duplicates() -> None:
    first = desired(manifest(resource_group="rg-prod"), "a.yaml:1:1")
    second = desired(manifest(resource_group="RG-Prod"), "b.yaml:1:1")
    result = plan([first, second], [])
    assert len(result.changes) == 1
    [error] = result.errors
    assert "already declared at a.yaml:1:1" in error.message
