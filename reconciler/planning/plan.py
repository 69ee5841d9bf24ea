"""Builds the Plan: for each desired group against what lives in Azure, the one action to take, and why.

Called by the engine (`build_plan` once per pass; `diff_group` and `sync_state` for `reconcile status`).
Pure: no I/O, no clock, no randomness; the same inputs give the same Plan, changes ordered by
(resource group, name).

Rules (DESIGN.md sections 4 to 6):
- no live group: create;
- a live group this instance manages: update, replace, tags or noop by the table of `classify`. Managed
  means its keyed ownership proof verifies (`ownership.ownership`); a group tagged by the release before
  proofs, or under a previous key, is treated as managed only when a manifest names it, and gets the proof
  written (a tags PATCH, or with the next PUT);
- a live group no aci-reconciler manages, or whose plain tags carry no valid proof: `failIfExists: true` is
  a conflict (nothing touched), `false` adopts it (`adopt=True`, the action by the table, at least `tags` so
  that our tags get written);
- a live group another instance manages: always a conflict naming the owner;
- `suspend: true`: the action it would be, held; `recreate: never` and a replace: held. A held change of a
  managed group still records the policy (prune, suspend, recreate) and the proof by a tags PATCH;
- prune: a live group whose proof verifies and that no manifest names is deleted, unless its prune tag says
  `false`, its suspend tag `true`, pruning is off, or the key is not private (then the delete is listed,
  held); groups with this instance's plain tags but no valid proof are never pruned, only named in a
  warning; nothing is pruned when the manifests did not load completely; an empty manifest set that would
  delete every managed group is refused unless allowed.
Tags: the manifest's tags against the live tags minus the ownership tags (a tag added out of band is drift);
the ownership tags `managed-by`, instance and prune must be there; the revision and spec tags alone never
cause a write. Secrets compare through the keyed hash tag only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import InitVar, dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from reconciler.model.compact import share_fields_set, updated
from reconciler.model.manifest import GroupManifest
from reconciler.model.observed import ObservedGroup, PackedBody
from reconciler.model.plan import Action, Change, FieldChange, Plan, PlanIssue
from reconciler.planning.classify import classify
from reconciler.planning.diff import diff, pointer, secret_changes
from reconciler.planning.normalise import canonical
from reconciler.planning.ownership import (
    INFORMATIONAL_TAGS,
    OWNERSHIP_TAGS,
    POLICY_TAGS,
    PROOF_TAGS,
    SECRETS_TAG,
    Ownership,
    at_revision,
    folded_tags,
    instance_problems,
    job_of,
    key_id,
    live_key_id,
    live_tags,
    owner_of,
    ownership,
    ownership_tags,
    proof_tags,
    prune_allowed,
    secrets_hash,
    spec_fingerprint,
    suspended,
    tag_problems,
    user_tags,
)

# A live group whose last deployment failed is written again even when nothing in the manifest changed.
PROVISIONING_FAILED = "Failed"
FAILED_PROVISIONING_REASON = "the last deployment failed (provisioningState Failed); deploying it again"
# A live group that is being deleted is created again once it is gone.
PROVISIONING_DELETING = "Deleting"
DELETING_REASON = "the group is being deleted (provisioningState Deleting); it is created again once gone"


class Pending(Protocol):
    """A group whose secret values are read but not yet put into a copy of its manifest (a group of a file
    the daemon's load cache kept: `reconciler.source.LoadedGroup`)."""

    @property
    def manifest(self) -> GroupManifest:
        """The manifest with the values in (made when first asked)."""
        ...

    def secret_values(self) -> dict[str, str]:
        """`manifest.secret_values()`, without making the copy."""
        ...


@dataclass(frozen=True)
class DesiredGroup:
    """One validated manifest and where it came from (`path:line:col`, for messages)."""

    manifest: GroupManifest
    source: str | None = None
    # The key when the caller knows it already (the loader made it once for the file's cached groups).
    folded: InitVar[tuple[str, str] | None] = None
    # `manifest` as validated before its secret references were given their values, when it has any (the
    # loader's `LoadedGroup.unresolved`: the same object pass after pass, which the plan memo keys by).
    unresolved: GroupManifest | None = field(default=None, kw_only=True)
    # Set when `manifest` is `unresolved` and this pass's values are read but not put in yet: the plan memo
    # serves a group unchanged on both sides without the copy; `resolved()` makes it.
    pending: Pending | None = field(default=None, kw_only=True, repr=False, compare=False)
    # (resource group, name) in lower case, as Azure compares them; looked up several times a pass.
    key: tuple[str, str] = field(init=False)

    def __post_init__(self, folded: tuple[str, str] | None) -> None:
        key = folded or (self.manifest.resource_group.lower(), self.manifest.name.lower())
        object.__setattr__(self, "key", key)

    def resolved(self) -> DesiredGroup:
        """This group with its secret values in its manifest (itself when they are)."""
        if self.pending is None:
            return self
        return DesiredGroup(self.pending.manifest, self.source, self.key, unresolved=self.unresolved)

    def secret_values(self) -> dict[str, str] | None:
        """Its secret values as `resolved_secret_values` gives them, without putting them into a copy."""
        if self.pending is None:
            return resolved_secret_values(self.manifest)
        try:
            return self.pending.secret_values()
        except ValueError:  # UnresolvedSecretError, as there
            return None


class IncompleteObservationError(ValueError):
    """The live group's body holds no `properties` (a partial list result): comparing it would plan an
    update of every field, and an update restarts the group, so planning refuses instead."""


class SyncState(StrEnum):
    """What `reconcile status` says of one group."""

    IN_SYNC = "in sync"
    DRIFTED = "drifted"  # exists, differs from its manifest
    MISSING = "missing"  # has a manifest, does not exist
    CONFLICT = "conflict"  # exists, may not be touched
    ORPHANED = "orphaned"  # managed by this instance, manifest gone (pruned next apply when prune is on)
    JOB = "job"  # a job template: applies never start it; `reconcile run` and the daemon do


def desired_canonical(manifest: GroupManifest) -> dict[str, Any]:
    """The canonical form of a manifest's ARM body (secrets left out, as a GET leaves them out)."""
    return canonical(manifest.to_arm_body(reveal_secrets=False))


def observed_canonical(observed: ObservedGroup) -> dict[str, Any]:
    body = dict(observed.body)
    if observed.location and "location" not in body:
        body["location"] = observed.location
    return canonical(body)


def resolved_secret_values(manifest: GroupManifest) -> dict[str, str] | None:
    """The manifest's secret values, or None while a secret reference is unresolved (a dry run without
    the secrets at hand): then secrets cannot be compared, and planning says so instead of failing."""
    try:
        return manifest.secret_values()
    except ValueError:  # UnresolvedSecretError; its message names pointers, never values
        return None


def write_tags_for(
    desired: DesiredGroup, *, instance: str, revision: str, secret_key: bytes, subscription: str = ""
) -> dict[str, str]:
    """The tags every write of this group carries: the manifest's plus the ownership tags."""
    manifest = desired.manifest
    secrets = resolved_secret_values(manifest) or {}
    return _write_tags(
        manifest,
        instance=instance,
        revision=revision,
        fingerprint=spec_fingerprint(desired_canonical(manifest)),
        secret_hash=secrets_hash(secrets, secret_key),
        secret_key=secret_key,
        subscription=subscription,
    )


def _write_tags(
    manifest: GroupManifest,
    *,
    instance: str,
    revision: str,
    fingerprint: str,
    secret_hash: str | None,
    secret_key: bytes,
    subscription: str,
) -> dict[str, str]:
    policy = manifest.policy
    own = ownership_tags(
        instance=instance,
        revision=revision,
        fingerprint=fingerprint,
        secret_hash=secret_hash,
        prune=policy.prune,
        suspend=policy.suspend,
        recreate=policy.recreate,
        proof=proof_tags(
            key=secret_key,
            subscription=subscription,
            resource_group=manifest.resource_group,
            name=manifest.name,
            instance=instance,
        ),
    )
    return {**user_tags(manifest.tags), **own}


def _with_tags(base: Mapping[str, str], updates: Mapping[str, str | None]) -> dict[str, str]:
    """`base` with `updates` applied (None removes), tag names matched case-insensitively as Azure does."""
    lowered = {k.lower() for k in updates}
    out = {k: v for k, v in base.items() if k.lower() not in lowered}
    out.update({k: v for k, v in updates.items() if v is not None})
    return out


def _sharing(tags: dict[str, str], live: Mapping[str, str]) -> dict[str, str]:
    """`tags`, each value that equals the live group's tag of that name taken from the live group: the plan
    entry of a converged group is kept for the daemon's life, and would otherwise hold second copies of
    its hashes and proof."""
    for name, value in tags.items():
        held = live.get(name)
        if held is not None and held is not value and held == value:
            tags[name] = held
    return tags


def _tag_changes(
    manifest: GroupManifest,
    live: Mapping[str, str],
    folded: Mapping[str, str],
    own: Mapping[str, str],
    ignore: Sequence[str],
) -> list[FieldChange]:
    """`folded`: `live` by lower-cased name (`folded_tags`)."""
    changes = diff({"tags": dict(manifest.tags)}, {"tags": user_tags(live)}, ignore=ignore, server_chosen=())
    for name in OWNERSHIP_TAGS:
        if name in INFORMATIONAL_TAGS or name == SECRETS_TAG:
            continue
        want, have = own.get(name), folded.get(name.lower())
        if want is not None and want != have:
            changes.append(
                FieldChange(
                    path=pointer(("tags", name)),
                    kind="add" if have is None else "change",
                    before=have,
                    after=want,
                )
            )
    return changes


def diff_group(
    desired: DesiredGroup,
    observed: ObservedGroup | None,
    *,
    instance: str,
    revision: str,
    secret_key: bytes,
    subscription: str = "",
    rekey: bool = False,
    status: Ownership | None = None,
) -> Change:
    """The plan entry of one desired group against its live group (None: it does not exist).

    Ownership is decided by the keyed proof (`ownership.ownership`): a group with copied or forged plain
    tags is foreign; `status` is that verdict when the caller has it already (`build_plan` checks every live
    group once). `rekey`: a group whose proof was written under another key is re-tagged under this one.
    Raises `IncompleteObservationError` when the live body has no properties (before comparing an owned
    or adoptable group), and ValueError when a `reconcile.ignore` entry is not a JSON Pointer.
    """
    manifest = desired.manifest
    policy = manifest.policy
    want = desired_canonical(manifest)
    secret_values = resolved_secret_values(manifest)
    want_hash = secrets_hash(secret_values or {}, secret_key)
    tags = _write_tags(
        manifest,
        instance=instance,
        revision=revision,
        fingerprint=spec_fingerprint(want),
        secret_hash=want_hash,
        secret_key=secret_key,
        subscription=subscription,
    )
    base: dict[str, Any] = {
        "resource_group": manifest.resource_group,
        "name": manifest.name,
        "source": desired.source,
        "desired": manifest,
    }

    if observed is None:
        fields = diff(want, {}, server_chosen=()) + diff({"tags": dict(manifest.tags)}, {}, server_chosen=())
        fields += [FieldChange(path=p, kind="add", sensitive=True) for p in sorted(secret_values or {})]
        return _hold(
            Change(
                **base,
                action=Action.CREATE,
                reason="does not exist",
                fields=tuple(fields),
                changed_paths=tuple(f.path for f in fields),
                write_tags=tags,
            ),
            policy_suspend=policy.suspend,
            recreate_never=False,
        )

    if status is None:
        status = ownership(observed, instance=instance, subscription=subscription, key=secret_key)
    adopt = False
    if status is Ownership.OTHER:
        owner = owner_of(observed)
        who = f"aci-reconciler instance {owner!r}" if owner else "an aci-reconciler instance with no name tag"
        return Change(
            **base,
            action=Action.CONFLICT,
            reason=f"exists and is managed by {who}; two reconcilers never touch each other's groups",
        )
    if status in (Ownership.NONE, Ownership.INVALID):
        if policy.fail_if_exists:
            what = (
                "is not managed by aci-reconciler"
                if status is Ownership.NONE
                else "carries aci-reconciler's tags for this instance without a valid ownership proof "
                "(copied or forged tags), so it is not ours"
            )
            return Change(
                **base,
                action=Action.CONFLICT,
                reason=(
                    f"exists and {what}; failIfExists is true (set reconcile.failIfExists: false to adopt it)"
                ),
            )
        adopt = True

    if not isinstance(observed.body.get("properties"), Mapping):
        raise IncompleteObservationError(
            f"the live body of {observed.resource_group}/{observed.name} has no properties; "
            "a full GET of the group is needed to compare it"
        )
    live = live_tags(observed)
    folded = folded_tags(live)
    if secret_values is None:
        # Keep what the live group says about its secrets: this pass cannot know better.
        tags = _with_tags(tags, {SECRETS_TAG: folded.get(SECRETS_TAG)})
    other_key = status is Ownership.OTHER_KEY
    # A PUT sends every secret, so the tags it writes are true under this key; a PATCH or nothing keeps the
    # live proof and hash of a group tagged under another key, unless --rekey asks to re-tag it.
    put_tags = tags
    if other_key and not rekey:
        tags = _with_tags(tags, {t: folded.get(t) for t in (SECRETS_TAG, *PROOF_TAGS)})
    spec = diff(want, observed_canonical(observed), ignore=policy.ignore)
    secrets = (
        []  # unresolved: not comparable in this pass (build_plan warns)
        if secret_values is None
        # A hash under another key says nothing about the values: no secret update is proposed from it.
        or other_key
        else secret_changes(
            secret_values, want_hash, folded.get(SECRETS_TAG), ignore=policy.ignore, desired=want
        )
    )
    # One synthetic path (`diff.SECRETS_PATH`) no row of the table matches: secrets alone update in place.
    result = classify([*spec, *secrets], terminated=observed.terminated)
    tag_fields = _tag_changes(manifest, live, folded, tags, policy.ignore)

    if observed.provisioning_state == PROVISIONING_DELETING:
        # Going away (a replace cut short, someone else's delete): a no-op would leave the group missing.
        # The executor's replace waits until it is gone, then creates it.
        action, reason = Action.REPLACE, DELETING_REASON
    elif result.action is Action.REPLACE:
        action, reason = Action.REPLACE, result.reason
    elif result.action is Action.UPDATE:
        action, reason = Action.UPDATE, result.reason if spec else "secret values changed"
    elif observed.provisioning_state == PROVISIONING_FAILED:
        # The spec matches but ACI never got the group running: without a write it stays failed for good.
        # A PUT of the desired body deploys it again; a terminated group only takes a delete and create.
        action = Action.REPLACE if observed.terminated else Action.UPDATE
        reason = FAILED_PROVISIONING_REASON
    elif tag_fields:
        action = Action.TAGS
        if adopt:
            reason = "tags it as managed"
        elif status is Ownership.LEGACY:
            reason = "records the ownership proof (tagged by a release without one)"
        elif other_key:
            reason = "re-tags it under the current secret key (--rekey)"
        else:
            reason = "only tags changed"
    else:
        action, reason = Action.NOOP, "in sync"
    if adopt:
        reason = f"adopting an unmanaged group (failIfExists: false): {reason}"
    write = _sharing(put_tags if action in (Action.UPDATE, Action.REPLACE) else tags, live)

    all_fields = (*result.fields, *tag_fields)
    change = Change(
        **base,
        action=action,
        adopt=adopt,
        reason=reason,
        fields=all_fields,
        changed_paths=tuple(f.path for f in all_fields),
        replace_paths=result.replace_paths,
        write_tags=write,
    )
    held = _hold(change, policy_suspend=policy.suspend, recreate_never=policy.recreate == "never")
    if held.held is None or adopt:
        return held  # a suspended adoption touches nothing at all
    return _record_policy(held, live, tags)


def _hold(change: Change, *, policy_suspend: bool, recreate_never: bool) -> Change:
    if change.action is Action.NOOP:
        return change
    if policy_suspend:
        return change.model_copy(update={"held": "suspended"})
    if recreate_never and change.action is Action.REPLACE:
        return change.model_copy(
            update={"held": "recreate: never (a replace is needed; delete the group to let it be recreated)"}
        )
    return change


def _record_policy(held: Change, live: Mapping[str, str], tags: Mapping[str, str]) -> Change:
    """A held change of one of our groups still records the manifest's policy and our proof on the group
    (one tags PATCH, no restart), so that a group whose manifest goes away is pruned, or kept, as its
    manifest said. Everything else on the group (its spec, user tags, fingerprint) is left as it is."""
    recorded = {t: tags[t] for t in (*POLICY_TAGS, *PROOF_TAGS) if t in tags}
    folded = folded_tags(live)
    fields = [
        FieldChange(
            path=pointer(("tags", name)),
            kind="add" if folded.get(name) is None else "change",
            before=folded.get(name),
            after=value,
        )
        for name, value in recorded.items()
        if folded.get(name) != value
    ]
    if not fields:
        return held
    return held.model_copy(
        update={
            "action": Action.TAGS,
            "held": None,
            "reason": (
                f"records the policy on the group; the {held.action.value} itself is held ({held.held})"
            ),
            "fields": tuple(fields),
            "changed_paths": tuple(f.path for f in fields),
            "replace_paths": (),
            "write_tags": _with_tags(live, recorded),
        }
    )


def sync_state(change: Change) -> SyncState:
    """In sync or not, for `reconcile status`, from a group's plan entry."""
    if change.desired is not None and change.desired.policy.job is not None:
        return SyncState.JOB
    if change.action is Action.NOOP:
        return SyncState.IN_SYNC
    if change.action is Action.CREATE:
        return SyncState.MISSING
    if change.action is Action.CONFLICT:
        return SyncState.CONFLICT
    if change.action is Action.DELETE:
        return SyncState.ORPHANED
    return SyncState.DRIFTED


def _job_template(desired: DesiredGroup, observed: ObservedGroup | None) -> Change:
    """A job template's plan entry: nothing to do. Applies never start a job, nor update or replace the group
    of a run (running or kept); the next run brings the spec up to date."""
    manifest = desired.manifest
    job = manifest.policy.job
    assert job is not None
    how = [f"schedule {job.schedule!r} ({job.time_zone})"] if job.schedule else []
    how += ["once per new spec (runOnChange)"] if job.run_on_change else []
    by = f"the daemon runs it {' and '.join(how)}" if how else "no schedule: it runs on demand"
    return Change(
        resource_group=manifest.resource_group,
        name=manifest.name,
        source=desired.source,
        desired=manifest,
        action=Action.NOOP,
        reason=f"a job template: `reconcile run {manifest.name}` runs it; {by}"
        + ("" if observed is None else "; the group of its last run is left as it is"),
    )


def _job_run_of(observed: ObservedGroup, seen: Mapping[tuple[str, str], DesiredGroup]) -> bool:
    """True for the group of an extra run of a job template that still has its manifest."""
    template = job_of(observed)
    if template is None:
        return False
    desired = seen.get((observed.resource_group.lower(), template.lower()))
    return desired is not None and desired.manifest.policy.job is not None


def _delete(observed: ObservedGroup, *, reason: str, held: str | None) -> Change:
    return Change(
        resource_group=observed.resource_group,
        name=observed.name,
        action=Action.DELETE,
        reason=reason,
        held=held,
    )


def observed_fingerprint(observed: ObservedGroup | None) -> str | None:
    """What a group's diff depends on of its live side, as a short hash (None: no live group). The body is
    taken as Azure ordered it (`repr`, the cheapest exact rendering): the same answer hashes the same, and a
    reordered one only costs a diff."""
    if observed is None:
        return None
    body = observed.body
    material = repr(
        (
            body.text if isinstance(body, PackedBody) else body,
            observed.tags,
            observed.location,
            observed.provisioning_state,
            observed.instance_state,
        )
    )
    return hashlib.blake2b(material.encode(), digest_size=16).hexdigest()


# What a plan entry depends on besides its two sides and the revision: instance, key, subscription, rekey.
_Context = tuple[str, bytes, str, bool]


def _context(instance: str, secret_key: bytes, subscription: str, rekey: bool) -> _Context:
    return (instance, secret_key, subscription, rekey)


@dataclass(frozen=True, slots=True)
class _Memo:
    manifest: GroupManifest  # compared by identity: the daemon's load cache hands back the same object
    source: str | None
    # The live group it was planned against: the object first (the adapter hands back the same one for a
    # list page with the same bytes), else its fingerprint.
    live: ObservedGroup | None
    observed: str | None
    context: _Context
    # The revision its change's write tags carry. Not part of `context`: the revision tag is informational
    # (it never causes a write), so an entry differs from one planned at another revision in that tag only.
    revision: str
    # A group with secret values: their keyed hash (`_values_hash`). Then `manifest` is the one
    # validated before the values were put in and `change` has no `desired`: no value is kept.
    secrets: str | None
    change: Change


@dataclass(frozen=True, slots=True)
class _Owner:
    live: ObservedGroup  # compared by identity
    context: tuple[str, str, bytes]
    status: Ownership


@dataclass
class PlanMemo:
    """The plan entries of the last pass, kept by the daemon across passes so that a group whose manifest
    (the very object its load cache handed back) and live side (`observed_fingerprint`) are unchanged, under
    the same instance, key and subscription, is not canonicalised and diffed again. A new revision (any
    commit) does not make it plan every group again: a kept entry takes the new revision tag.

    A group with secret values is kept only when its values came from references: by its manifest as
    validated before they were put in, the keyed hash of the values (served while this pass's values hash
    the same) and its entry without the manifest, which a hit that writes gets back from this pass (one in
    sync goes without: a group the load cache kept has its values read but not put into a copy, and none
    is made for it); a literal secret is never kept. Only the groups of the
    last pass are: the memo never grows beyond one plan. `build_plan(memo=...)` gives the same plan as without
    it (tests: hypothesis, cached against cold)."""

    entries: dict[tuple[str, str], _Memo] = field(default_factory=dict)
    # The ownership proof's verdict per live group of the last pass (an HMAC each to check again).
    owners: dict[tuple[str, str], _Owner] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    # False for the memo of one pass (the engine's plan-ahead): an entry serves only the very live object it
    # was planned against, and `build_plan` keeps nothing for a next pass (no fingerprint is taken).
    across_passes: bool = True

    def owner(self, key: tuple[str, str], live: ObservedGroup, context: tuple[str, str, bytes]) -> _Owner:
        """The ownership verdict of `live`: the last pass's when it checked this very object."""
        kept = self.owners.get(key)
        if kept is not None and kept.live is live and kept.context == context:
            return kept
        instance, subscription, secret_key = context
        return _Owner(
            live, context, ownership(live, instance=instance, subscription=subscription, key=secret_key)
        )

    def plan_ahead(
        self,
        group: DesiredGroup,
        live: ObservedGroup,
        *,
        instance: str,
        revision: str,
        secret_key: bytes,
        subscription: str = "",
        rekey: bool = False,
    ) -> None:
        """Plan `group` against `live` now, as `build_plan(memo=self, ...)` with the same arguments would
        plan it and keep it, so that the plan made later takes this entry instead of diffing again (the
        engine plans each list page's groups while the next page is read). Only what `build_plan` would
        keep is planned here: a group with a tag problem, a job template, secret values or an error is
        left to `build_plan`, which says why."""
        key = group.key
        owner = self.owners[key] = self.owner(key, live, (instance, subscription, secret_key))
        manifest = group.manifest
        if manifest.policy.job is not None or tag_problems(manifest.tags):
            return
        if group.pending is not None or resolved_secret_values(manifest) != {}:
            return
        try:
            change = diff_group(
                group,
                live,
                instance=instance,
                revision=revision,
                secret_key=secret_key,
                subscription=subscription,
                rekey=rekey,
                status=owner.status,
            )
        except ValueError:  # IncompleteObservationError too: `build_plan` makes it a plan issue
            return
        share_fields_set(change)
        context = _context(instance, secret_key, subscription, rekey)
        observed = observed_fingerprint(live) if self.across_passes else None
        self.entries[key] = _Memo(manifest, group.source, live, observed, context, revision, None, change)


def _values_hash(values: Mapping[str, str] | None, secret_key: bytes) -> str | None:
    """A keyed hash of a group's secret values (None when it has none, or they are unresolved), as the memo
    compares them: BLAKE2b keyed with the instance's key over their `repr`, a fraction of the cost of the
    secrets tag's HMAC over canonical JSON, and held nowhere but in the memo."""
    if not values:
        return None
    # BLAKE2b takes keys of up to 64 bytes; the memo's context holds the whole key, so a longer key that
    # differs only past its 64th byte still meets another entry.
    return hashlib.blake2b(repr(sorted(values.items())).encode(), key=secret_key[:64]).hexdigest()


def _updated(change: Change, **update: Any) -> Change:
    """A copy of a kept `change` with `update`, its fields set shared as every kept entry's is."""
    found = updated(change, update)
    if found.__pydantic_fields_set__ is not change.__pydantic_fields_set__:
        share_fields_set(found)
    return found


def _served(kept: _Memo, group: DesiredGroup) -> Change:
    """The change of a memo hit: the kept one; for a group with secret values (the memo keeps none), with
    this pass's manifest when it writes, and without one when it does not (no copy with the values in is
    made for a group that is in sync; the daemon's redactor reads its values from the load)."""
    change = kept.change
    if kept.secrets is None or change.action is Action.NOOP:
        return change
    return _updated(change, desired=group.resolved().manifest)


def _rebased(kept: _Memo, live: ObservedGroup | None, revision: str) -> _Memo:
    """`kept` as this pass's entry: planned against `live` (equal to the group it was planned against) and
    writing the tags it would write if planned at `revision`."""
    change = kept.change
    if kept.revision != revision:
        tags = at_revision(change.write_tags, revision)
        if tags is not change.write_tags:
            change = _updated(change, write_tags=tags)
    return replace(kept, live=live, revision=revision, change=change)


def build_plan(
    desired: Sequence[DesiredGroup],
    observed: Iterable[ObservedGroup],
    *,
    instance: str,
    revision: str,
    secret_key: bytes,
    prune: bool = True,
    allow_empty: bool = False,
    load_complete: bool = True,
    issues: Sequence[PlanIssue] = (),
    subscription: str = "",
    rekey: bool = False,
    key_is_private: bool = True,
    memo: PlanMemo | None = None,
) -> Plan:
    """The plan of one pass: every desired group against the live groups, plus prunes.

    `observed` holds the live groups of every resource group in scope (those of the desired groups and any
    this instance may prune). `load_complete=False` (some manifest failed to load) turns pruning off for the
    pass. `issues` from loading are carried into the plan. `subscription` and `secret_key` make and check the
    ownership proofs; only groups whose proof verifies are pruned, and none when `key_is_private` is False
    (a key derived from public values proves nothing). `rekey` re-tags groups tagged under another key.
    `memo` (the daemon's) skips the diff of groups unchanged on both sides since the last pass.
    """
    out_issues = list(issues)
    problems = instance_problems(instance)
    if problems:
        out_issues += [PlanIssue(severity="error", message=m) for m in problems]
        return Plan(revision=revision, instance=instance, issues=tuple(out_issues))

    live: dict[tuple[str, str], ObservedGroup] = {}
    for listed in observed:
        live[(listed.resource_group.lower(), listed.name.lower())] = listed

    # One proof check per live group (an HMAC each), shared by the plan entries and the prune and re-key
    # decisions below; the memo's verdict for a live group that is the very object checked last pass.
    proof_context = (instance, subscription, secret_key)
    statuses: dict[tuple[str, str], Ownership] = {}
    owners: dict[tuple[str, str], _Owner] = {}
    for key, group_live in live.items():
        if memo is None:
            statuses[key] = ownership(
                group_live, instance=instance, subscription=subscription, key=secret_key
            )
            continue
        owner = owners[key] = memo.owner(key, group_live, proof_context)
        statuses[key] = owner.status
    if memo is not None:
        memo.owners = owners

    changes: list[Change] = []
    seen: dict[tuple[str, str], DesiredGroup] = {}
    remembered: dict[tuple[str, str], _Memo] = {}
    context = _context(instance, secret_key, subscription, rekey)
    for group in desired:
        manifest = group.manifest
        if group.key in seen:
            where = {"source": group.source, "resource_group": manifest.resource_group, "name": manifest.name}
            first = seen[group.key].source or "another manifest"
            out_issues.append(
                PlanIssue(
                    severity="error",
                    message=(
                        f"container group {manifest.name!r} in resource group {manifest.resource_group!r} "
                        f"is already declared at {first}; names are unique per resource group"
                    ),
                    **where,
                )
            )
            continue
        seen[group.key] = group
        live_group = live.get(group.key)
        # The memo first: a kept group passed the checks below with this very manifest and has no secret
        # values, so neither the warning below nor reading them again applies to a hit.
        fingerprint: str | None = None
        if memo is not None:
            kept = memo.entries.get(group.key)
            if (
                kept is not None
                and kept.manifest is (group.unresolved or manifest)
                and kept.source == group.source
                and kept.context == context
                and (
                    kept.live is live_group
                    or (
                        memo.across_passes
                        and kept.observed == (fingerprint := observed_fingerprint(live_group))
                    )
                )
                and (kept.secrets is None or kept.secrets == _values_hash(group.secret_values(), secret_key))
            ):
                memo.hits += 1
                if kept.live is not live_group or kept.revision != revision:
                    kept = _rebased(kept, live_group, revision)
                remembered[group.key] = kept
                changes.append(_served(kept, group))
                continue
            memo.misses += 1
            if memo.across_passes:
                fingerprint = fingerprint or observed_fingerprint(live_group)
        # Past the memo, the group's secret values go into its manifest.
        ready = group.resolved()
        manifest = ready.manifest
        where = {"source": group.source, "resource_group": manifest.resource_group, "name": manifest.name}
        bad_tags = tag_problems(manifest.tags)
        if bad_tags:
            out_issues += [PlanIssue(severity="error", message=m, **where) for m in bad_tags]
            continue
        if manifest.policy.job is not None:
            # Never compared, so its unresolved secrets hide nothing: `reconcile run` resolves them.
            changes.append(_job_template(ready, live_group))
            continue
        secret_values = resolved_secret_values(manifest)
        if secret_values is None:
            out_issues.append(
                PlanIssue(
                    severity="warning",
                    message=(
                        "secret references not resolved (`status` never reads them), so a changed secret "
                        "is not shown here; `reconcile plan` reads and compares them"
                    ),
                    **where,
                )
            )
        try:
            change = diff_group(
                ready,
                live_group,
                instance=instance,
                revision=revision,
                secret_key=secret_key,
                subscription=subscription,
                rekey=rekey,
                status=None if live_group is None else statuses[group.key],
            )
        except IncompleteObservationError as exc:
            out_issues.append(PlanIssue(severity="error", message=str(exc), **where))
            continue
        except ValueError as exc:
            out_issues.append(PlanIssue(severity="error", message=f"reconcile.ignore: {exc}", **where))
            continue
        # Kept by the memo and the daemon between passes: its set of given fields is shared with its like.
        share_fields_set(change)
        changes.append(change)
        if memo is None or not memo.across_passes:
            continue
        if secret_values == {}:
            remembered[group.key] = _Memo(
                manifest, group.source, live_group, fingerprint, context, revision, None, change
            )
        elif secret_values and group.unresolved is not None and not group.unresolved.literal_secrets():
            # Kept without a value: the manifest from before they were put in, their keyed hash.
            secrets = _values_hash(secret_values, secret_key)
            kept_change = _updated(change, desired=None)
            remembered[group.key] = _Memo(
                group.unresolved,
                group.source,
                live_group,
                fingerprint,
                context,
                revision,
                secrets,
                kept_change,
            )
    if memo is not None:
        memo.entries = remembered

    orphans: list[ObservedGroup] = []
    unproven: dict[Ownership, list[ObservedGroup]] = {}
    for key, group_live in live.items():
        status = statuses[key]
        if key not in seen and status is Ownership.PROVEN and _job_run_of(group_live, seen):
            continue
        if key not in seen and status is Ownership.PROVEN:
            orphans.append(group_live)
        elif key not in seen and status in _UNPROVEN:
            unproven.setdefault(status, []).append(group_live)
    out_issues += _unproven_issues(unproven, key_id(secret_key))
    rekeyed = [g for key, g in live.items() if key in seen and statuses[key] is Ownership.OTHER_KEY]
    if rekeyed and not rekey:
        out_issues.append(_key_changed_issue(rekeyed, key_id(secret_key)))
    if orphans and not load_complete:
        out_issues.append(
            PlanIssue(
                severity="warning",
                message=(
                    f"pruning skipped: the manifests did not all load, so {len(orphans)} managed group(s) "
                    "without a manifest may only be missing because of that error"
                ),
            )
        )
    elif orphans:
        refuse = not seen and not allow_empty
        if refuse:
            out_issues.append(
                PlanIssue(
                    severity="error",
                    message=(
                        f"refusing to prune: no manifests were found, and pruning would delete all "
                        f"{len(orphans)} group(s) this instance ({instance!r}) manages; check the manifest "
                        "path, or pass --allow-empty if deleting them all is intended"
                    ),
                )
            )
        for orphan in orphans:
            if refuse:
                held: str | None = "refused: the manifest set is empty (see the error)"
            elif not prune:
                held = "pruning is off for this run"
            elif not prune_allowed(orphan):
                held = "its manifest set reconcile.prune: false"
            elif suspended(orphan):
                held = "its manifest set reconcile.suspend: true"
            elif not key_is_private:
                held = (
                    "pruning needs a configured secret key (RECONCILER_SECRET_KEY): a key derived from "
                    "the subscription and instance name lets anyone forge the ownership proof"
                )
            else:
                held = None
            changes.append(_delete(orphan, reason="its manifest is gone", held=held))

    changes.sort(key=lambda c: c.key)
    return Plan(revision=revision, instance=instance, changes=tuple(changes), issues=tuple(out_issues))


_UNPROVEN = (Ownership.LEGACY, Ownership.OTHER_KEY, Ownership.INVALID)
_LISTED = 10


def _names(groups: Sequence[ObservedGroup]) -> str:
    shown = ", ".join(f"{g.resource_group}/{g.name}" for g in groups[:_LISTED])
    return shown + (f" and {len(groups) - _LISTED} more" if len(groups) > _LISTED else "")


def _unproven_issues(
    unproven: Mapping[Ownership, list[ObservedGroup]], current_key_id: str
) -> list[PlanIssue]:
    """Groups with this instance's plain tags, no manifest and no valid proof: said, never pruned."""
    why = {
        Ownership.LEGACY: (
            "carry this instance's tags from a release without ownership proofs and have no manifest"
            ": they are not pruned, because plain tags can be copied by anyone who may write tags. Delete "
            "them by hand if they are yours, or restore their manifests (the next apply writes the proof)"
        ),
        Ownership.OTHER_KEY: (
            f"carry this instance's tags with a proof under another secret key (this run's key id is "
            f"{current_key_id}) and have no manifest: they are not pruned, because their proof cannot be "
            "checked. Delete them by hand, or restore the previous RECONCILER_SECRET_KEY"
        ),
        Ownership.INVALID: (
            "carry this instance's tags without a valid ownership proof (copied or forged tags): they are "
            "not ours and are never pruned"
        ),
    }
    return [
        PlanIssue(severity="warning", message=f"{len(groups)} group(s) ({_names(groups)}) {why[status]}")
        for status, groups in sorted(unproven.items())
        if groups
    ]


def _key_changed_issue(groups: Sequence[ObservedGroup], current_key_id: str) -> PlanIssue:
    old = sorted({live_key_id(g) or "?" for g in groups})
    return PlanIssue(
        severity="warning",
        message=(
            f"the secret-hash key changed: {len(groups)} group(s) ({_names(groups)}) were tagged under "
            f"key id {', '.join(old)}, and this run's key id is {current_key_id}. Their secret hashes "
            "cannot be compared, so no secret update is proposed from them. Run `reconcile apply --rekey` "
            "to re-tag them under the current key (a tags PATCH, no restart), or restore the previous key"
        ),
    )


__all__ = [
    "DesiredGroup",
    "IncompleteObservationError",
    "SyncState",
    "build_plan",
    "desired_canonical",
    "diff_group",
    "observed_canonical",
    "sync_state",
    "write_tags_for",
]
