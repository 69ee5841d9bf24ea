"""Normalises desired and observed groups, diffs them and classifies each change into a Plan.

Pure functions, called by the engine. The classification table of DESIGN.md section 5 lives here
(`reconciler.planning.classify.TABLE`).
"""

from reconciler.planning.classify import TABLE, classify
from reconciler.planning.diff import diff
from reconciler.planning.normalise import canonical
from reconciler.planning.plan import DesiredGroup, SyncState, build_plan, diff_group, sync_state

__all__ = [
    "TABLE",
    "DesiredGroup",
    "SyncState",
    "build_plan",
    "canonical",
    "classify",
    "diff",
    "diff_group",
    "sync_state",
]
