"""The plan: what must happen to each container group, and why. Pure data, rendered by `reconciler.render`.

Planning builds it; execution acts on `Change.action` alone (reasons are for people); the engine and the
daemon keep it as the last plan. JSON of it is part of the public interface (`format_version` "1").
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, InstanceOf

from reconciler.model.manifest import GroupManifest

FORMAT_VERSION = "1"


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"  # one PUT of the full desired body; ACI restarts the group
    REPLACE = "replace"  # delete, wait until gone, create
    TAGS = "tags"  # PATCH of tags only, no restart
    DELETE = "delete"  # prune
    CONFLICT = "conflict"  # exists, not ours, failIfExists: nothing is touched
    NOOP = "noop"  # no API call at all


# Order in which plans list and summarise actions (Terraform-like: destructive last).
ACTION_ORDER: tuple[Action, ...] = (
    Action.CREATE,
    Action.UPDATE,
    Action.TAGS,
    Action.REPLACE,
    Action.DELETE,
    Action.CONFLICT,
    Action.NOOP,
)

CHANGING_ACTIONS = frozenset({Action.CREATE, Action.UPDATE, Action.REPLACE, Action.TAGS, Action.DELETE})

SENSITIVE = "(sensitive)"


class FieldChange(BaseModel):
    """One changed leaf (or whole list element) of a group.

    `path` is a JSON Pointer into the ARM body in which elements of keyed lists are addressed by their key
    (`/properties/containers/web/properties/image`, `.../environmentVariables/MODE/value`). Values are
    JSON values from the canonical form; a sensitive value is never stored here, only `sensitive=True`.
    """

    model_config = ConfigDict(frozen=True)

    path: str
    kind: Literal["add", "remove", "change"]
    before: Any = None
    after: Any = None
    sensitive: bool = False
    forces_replacement: bool = False


class Change(BaseModel):
    """The plan entry of one container group."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    resource_group: str
    name: str
    action: Action
    adopt: bool = False
    changed_paths: tuple[str, ...] = ()
    replace_paths: tuple[str, ...] = ()
    reason: str = ""
    fields: tuple[FieldChange, ...] = ()
    # Why the executor will not act although the action changes something (suspend, `recreate: never`).
    held: str | None = None
    # Where the manifest came from (`path:line:col`), for messages; None for prunes.
    source: str | None = None
    # The tags every write of this change puts on the group: the manifest's plus the ownership tags.
    write_tags: dict[str, str] = Field(default_factory=dict)
    # What execution needs to build the PUT; never rendered (it may hold resolved secrets). Taken as the
    # validated manifest it is (`InstanceOf`): validating it again for every plan entry ran the manifest's
    # rules once more per group and pass.
    desired: InstanceOf[GroupManifest] | None = Field(default=None, exclude=True, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.resource_group.lower(), self.name.lower())

    @property
    def changes_something(self) -> bool:
        return self.action in CHANGING_ACTIONS and self.held is None


class PlanIssue(BaseModel):
    """A warning or error found while planning, tied to a place when there is one."""

    model_config = ConfigDict(frozen=True)

    severity: Literal["warning", "error"]
    message: str
    source: str | None = None  # `path:line:col`
    resource_group: str | None = None
    name: str | None = None


class Plan(BaseModel):
    model_config = ConfigDict(frozen=True)

    format_version: str = FORMAT_VERSION
    revision: str
    instance: str
    changes: tuple[Change, ...] = ()
    issues: tuple[PlanIssue, ...] = ()
    # The list requests observing Azure cost (ARM's read budget); None when not observed (tests, renders).
    reads: int | None = None

    @property
    def errors(self) -> tuple[PlanIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")

    @property
    def warnings(self) -> tuple[PlanIssue, ...]:
        return tuple(i for i in self.issues if i.severity == "warning")

    @property
    def has_changes(self) -> bool:
        return any(c.changes_something for c in self.changes)

    def summary(self) -> dict[str, int]:
        counts = {a.value: 0 for a in ACTION_ORDER}
        for c in self.changes:
            counts[c.action.value] += 1
        return counts

    def by_action(self, actions: Iterable[Action]) -> list[Change]:
        wanted = set(actions)
        return [c for c in self.changes if c.action in wanted]
