"""Normalises desired and observed groups, diffs them and classifies each change into a Plan.

Pure functions, called by the engine. The classification table of DESIGN.md section 5 lives here
(`reconciler.planning.classify.TABLE`); the ownership tags of section 4 in `reconciler.planning.ownership`.
"""

from reconciler.planning.classify import TABLE, classify
from reconciler.planning.diff import diff
from reconciler.planning.normalise import SECURE, canonical
from reconciler.planning.ownership import (
    INSTANCE_TAG,
    MANAGED_BY_TAG,
    MANAGED_BY_VALUE,
    OWNERSHIP_TAGS,
    PRUNE_TAG,
    REVISION_TAG,
    SECRETS_TAG,
    SPEC_TAG,
    is_managed_by,
    owner_of,
)
from reconciler.planning.plan import (
    DesiredGroup,
    IncompleteObservationError,
    PlanMemo,
    SyncState,
    build_plan,
    desired_canonical,
    diff_group,
    observed_canonical,
    sync_state,
    write_tags_for,
)

__all__ = [
    "INSTANCE_TAG",
    "MANAGED_BY_TAG",
    "MANAGED_BY_VALUE",
    "OWNERSHIP_TAGS",
    "PRUNE_TAG",
    "REVISION_TAG",
    "SECRETS_TAG",
    "SECURE",
    "SPEC_TAG",
    "TABLE",
    "DesiredGroup",
    "IncompleteObservationError",
    "PlanMemo",
    "SyncState",
    "build_plan",
    "canonical",
    "classify",
    "desired_canonical",
    "diff",
    "diff_group",
    "is_managed_by",
    "observed_canonical",
    "owner_of",
    "sync_state",
    "write_tags_for",
]
