"""Unit tests of product defects the reliability suite found, next to the suite that found them.

- planning: a live group whose deployment failed (provisioningState Failed) but whose spec matches the
  manifest was planned as a no-op ("in sync"), so it was never deployed again (found by test_faults.py).
- planning: a managed group being deleted (provisioningState Deleting) was planned as in sync, so a run
  that followed a replace cut short after its delete ended with the group gone (found by test_crashes.py).
"""

from __future__ import annotations

from reconciler.model.plan import Action
from reconciler.planning.plan import DELETING_REASON, FAILED_PROVISIONING_REASON, diff_group
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


def test_matching_group_whose_provisioning_failed_is_put_again() -> None:
    m = manifest()
    live = applied(m).model_copy(update={"provisioning_state": "Failed"})
    change = diff_group(desired(m), live, instance=INSTANCE, revision=REVISION, secret_key=KEY)
    assert change.action is Action.UPDATE
    assert change.reason == FAILED_PROVISIONING_REASON


def test_failed_provisioning_with_a_tag_change_is_one_full_put_not_a_patch() -> None:
    m = manifest(tags={"team": "a"})
    live = applied(manifest(tags={"team": "b"})).model_copy(update={"provisioning_state": "Failed"})
    change = diff_group(desired(m), live, instance=INSTANCE, revision=REVISION, secret_key=KEY)
    assert change.action is Action.UPDATE


def test_failed_provisioning_of_a_terminated_job_is_a_replace() -> None:
    m = manifest(properties=base_properties(restartPolicy="Never"))
    live = applied(m, instance_state="Failed").model_copy(update={"provisioning_state": "Failed"})
    change = diff_group(desired(m), live, instance=INSTANCE, revision=REVISION, secret_key=KEY)
    assert change.action is Action.REPLACE


def test_succeeded_provisioning_with_a_matching_spec_stays_a_noop() -> None:
    m = manifest()
    change = diff_group(desired(m), applied(m), instance=INSTANCE, revision=REVISION, secret_key=KEY)
    assert change.action is Action.NOOP


def test_managed_group_being_deleted_is_replaced_so_it_exists_after_the_run() -> None:
    m = manifest()
    live = applied(m).model_copy(update={"provisioning_state": "Deleting"})
    change = diff_group(desired(m), live, instance=INSTANCE, revision=REVISION, secret_key=KEY)
    assert change.action is Action.REPLACE
    assert change.reason == DELETING_REASON


def test_unmanaged_group_being_deleted_is_still_a_conflict() -> None:
    m = manifest()
    live = unmanaged(m).model_copy(update={"provisioning_state": "Deleting"})
    change = diff_group(desired(m), live, instance=INSTANCE, revision=REVISION, secret_key=KEY)
    assert change.action is Action.CONFLICT


def test_group_being_deleted_with_recreate_never_is_held_not_done() -> None:
    m = manifest(reconcile={"recreate": "never"})
    live = applied(m).model_copy(update={"provisioning_state": "Deleting"})
    change = diff_group(desired(m), live, instance=INSTANCE, revision=REVISION, secret_key=KEY)
    assert change.action is Action.REPLACE
    assert change.held
