"""THE classification table of DESIGN.md section 5: which changed paths ACI updates in place, which force a
replace. Every decision about update-versus-replace lives in `TABLE`, nowhere else.

Called by `reconciler.planning.plan` with the field changes of one group (from `diff`); the render and
execution layers only read the resulting `Action` and `replace_paths`.

Decisions beyond the letter of DESIGN.md, and why:

- Adding or removing an app container replaces the group (section 5). Adding or removing an *init* container
  is an update: init containers declare no resources, and ACI's update validation rejects only changes of OS
  type, restart policy, network (subnets, IP type), CPU/memory/GPU and the other rows below ("If you are going
  to update the os type, restart policy, network profile, CPU, memory or GPU resources for a container group,
  you must delete it first"); a PUT re-runs the init containers anyway, as every update restarts the group.
- `identity` is an update: ACI accepts a managed identity on an existing group (Terraform's azurerm provider
  made `identity` of `azurerm_container_group` updatable in place, hashicorp/terraform-provider-azurerm#25543;
  #8327 reports identities added to existing groups); it is not among the delete-first properties.
- `diagnostics` (Log Analytics) replaces: ACI answers an update that adds Log Analytics with the delete-first
  error above although the documentation does not list it (MicrosoftDocs/azure-docs#65195; Terraform's
  provider also marks `diagnostics` ForceNew).
- Adding or removing the whole `ipAddress` changes the IP type (none <-> Public/Private) and replaces, like a
  change of `ipAddress.type`; ports and the DNS name label of an existing address update in place.
- `dnsConfig`, `volumes`, `extensions`, registry credentials, probes, security context: update in place (the
  ACI update documentation names image, DNS name label, environment variables and "other properties that
  support update"; none of these is among the delete-first properties or known to be rejected).
- A group that has terminated (Succeeded or Failed, restart policy not `Always`) cannot be updated by ACI, so
  any change to its spec replaces it. A tags-only change still PATCHes tags: a PATCH does not touch the
  containers and ACI accepts it in any state, and replacing would re-run a finished job just to tag it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reconciler.model.plan import Action, FieldChange
from reconciler.planning.diff import split_pointer


@dataclass(frozen=True)
class Rule:
    """One row of the table: a changed path matching `pattern` (by prefix, `*` = any one segment; `exact`:
    the whole path, nothing below it) and, when `kinds` is set, of one of those kinds, gets `action`."""

    pattern: str
    action: Action
    reason: str
    kinds: frozenset[str] | None = None
    exact: bool = False

    def matches(self, change: FieldChange) -> bool:
        if self.kinds is not None and change.kind not in self.kinds:
            return False
        want = split_pointer(self.pattern)
        have = split_pointer(change.path)
        if len(have) < len(want) or (self.exact and len(have) != len(want)):
            return False
        return all(w in ("*", h) for w, h in zip(want, have, strict=False))


_ADD_REMOVE = frozenset({"add", "remove"})

# The table of DESIGN.md section 5. First matching row wins; a changed path no row matches is an update in
# place. Order matters only where rows overlap (none of the replace rows do).
TABLE: tuple[Rule, ...] = (
    Rule(
        "/properties/containers/*/properties/resources",
        Action.REPLACE,
        "CPU, memory or GPU of a container cannot change in place",
    ),
    Rule(
        "/properties/containers/*",
        Action.REPLACE,
        "adding or removing a container needs a new group",
        kinds=_ADD_REMOVE,
        exact=True,
    ),
    Rule("/properties/osType", Action.REPLACE, "the OS type cannot change in place"),
    Rule("/properties/restartPolicy", Action.REPLACE, "the restart policy cannot change in place"),
    Rule("/properties/subnetIds", Action.REPLACE, "the subnets (network profile) cannot change in place"),
    Rule("/location", Action.REPLACE, "a group cannot move to another region"),
    Rule("/zones", Action.REPLACE, "the availability zone cannot change in place"),
    Rule("/properties/sku", Action.REPLACE, "the SKU cannot change in place"),
    Rule("/properties/priority", Action.REPLACE, "the priority (Regular/Spot) cannot change in place"),
    Rule(
        "/properties/encryptionProperties",
        Action.REPLACE,
        "the encryption settings cannot change in place",
    ),
    Rule(
        "/properties/confidentialComputeProperties",
        Action.REPLACE,
        "the confidential-compute settings cannot change in place",
    ),
    Rule(
        "/properties/diagnostics",
        Action.REPLACE,
        "ACI rejects updates of the Log Analytics settings of a running group",
    ),
    Rule("/properties/ipAddress/type", Action.REPLACE, "the IP address type cannot change in place"),
    Rule(
        "/properties/ipAddress",
        Action.REPLACE,
        "adding or removing the IP address changes its type",
        kinds=_ADD_REMOVE,
        exact=True,
    ),
)

UPDATE_REASON = "fields ACI updates in place changed"
TERMINATED_REASON = "the group has terminated (Succeeded or Failed) and ACI cannot update it"


def rule_for(change: FieldChange) -> Rule | None:
    """The row of `TABLE` that decides `change`, or None (an update in place)."""
    return next((rule for rule in TABLE if rule.matches(change)), None)


@dataclass(frozen=True)
class Classification:
    action: Action
    reason: str
    # The spec changes with `forces_replacement` set on those that forced a replace.
    fields: tuple[FieldChange, ...]
    replace_paths: tuple[str, ...]


def classify(spec_changes: Sequence[FieldChange], *, terminated: bool = False) -> Classification:
    """Classify the spec (non-tag) changes of one group: NOOP, UPDATE or REPLACE, with the paths that forced
    a replace. Tags are decided by the caller (a tags-only change is `Action.TAGS`)."""
    if not spec_changes:
        return Classification(Action.NOOP, "", (), ())
    marked: list[FieldChange] = []
    reasons: list[str] = []
    replace_paths: list[str] = []
    for change in spec_changes:
        rule = rule_for(change)
        forces = rule is not None and rule.action is Action.REPLACE
        if terminated and not forces:
            forces = True
            reason = TERMINATED_REASON
        else:
            reason = rule.reason if rule is not None else ""
        if forces:
            replace_paths.append(change.path)
            if reason not in reasons:
                reasons.append(reason)
        marked.append(change.model_copy(update={"forces_replacement": forces}) if forces else change)
    if replace_paths:
        return Classification(Action.REPLACE, "; ".join(reasons), tuple(marked), tuple(replace_paths))
    return Classification(Action.UPDATE, UPDATE_REASON, tuple(marked), ())
