"""The daemon's plan memo: a plan made with it equals the plan made without it, pass after pass, whatever
changes on either side (a manifest replaced, a live group drifted, deleted or adopted, listed again as new
but equal objects, the revision or the secret key moved); groups with secret values are never kept."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.model.manifest import GroupManifest
from reconciler.model.observed import ObservedGroup
from reconciler.planning import DesiredGroup, PlanMemo, build_plan
from tests.planning.support import INSTANCE, KEY, applied, desired, unmanaged
from tests.planning.test_properties import edited, manifests

NAMES = ["g-one", "g-two", "g-three"]


OTHER_KEY = b"another-secret-key-of-32-bytes!!"


def plan_json(
    memo: PlanMemo | None,
    ms: dict[str, GroupManifest],
    live: dict[str, ObservedGroup],
    rev: str,
    key: bytes = KEY,
) -> Any:
    plan = build_plan(
        [desired(m, source=f"manifests/{n}.yaml:1:1") for n, m in sorted(ms.items())],
        list(live.values()),
        instance=INSTANCE,
        revision=rev,
        secret_key=key,
        memo=memo,
    )
    return plan.model_dump()


STEP = st.tuples(
    st.sampled_from(
        ["edit", "drift", "delete-live", "apply", "revision", "same", "drop-manifest", "relist", "key"]
    ),
    st.sampled_from(NAMES),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.lists(manifests(secrets=False), min_size=1, max_size=3),
    steps=st.lists(STEP, min_size=1, max_size=8),
    secret_one=manifests(secrets=True),
)
def test_a_memoised_plan_equals_a_fresh_one_through_any_changes(
    first: list[GroupManifest], steps: list[tuple[str, str]], secret_one: GroupManifest
) -> None:
    ms = {NAMES[i]: m.model_copy(update={"name": NAMES[i]}) for i, m in enumerate(first)}
    live = {n: applied(m) for n, m in ms.items()}
    memo = PlanMemo()
    revision = "rev-1"
    key = KEY
    for what, name in steps:
        assert plan_json(memo, ms, live, revision, key) == plan_json(None, ms, live, revision, key)
        if what == "edit" and name in ms:
            ms[name] = edited(ms[name], lambda body: body["properties"]["containers"][0]["properties"].update(
                image="edited:1"))  # fmt: skip
        elif what == "drift" and name in live:
            body = dict(live[name].body)
            body["tags"] = {**(body.get("tags") or {}), "drift": "yes"}
            live[name] = live[name].model_copy(update={"body": body, "tags": body["tags"]})
        elif what == "delete-live":
            live.pop(name, None)
        elif what == "apply" and name in ms:
            live[name] = applied(ms[name], revision=revision)
        elif what == "revision":
            revision = revision + "+"
        elif what == "drop-manifest":
            ms.pop(name, None)
        elif what == "same" and name not in ms:
            ms[name] = secret_one.model_copy(update={"name": name})
        elif what == "relist":
            # A list page with other bytes: equal groups, but new objects (the fingerprint decides).
            live = {n: g.model_copy(deep=True) for n, g in live.items()}
        elif what == "key":
            key = OTHER_KEY if key == KEY else KEY
    assert plan_json(memo, ms, live, revision, key) == plan_json(None, ms, live, revision, key)
    for entry in memo.entries.values():
        assert entry.manifest.secret_values() == {}, "a group with secrets is never kept"


def test_an_unchanged_fleet_is_served_from_the_memo() -> None:
    from tests.planning.support import manifest

    ms = {n: manifest(name=n) for n in NAMES}
    live = {n: applied(m) for n, m in ms.items()}
    memo = PlanMemo()
    plan_json(memo, ms, live, "r")
    assert (memo.hits, memo.misses) == (0, 3)
    plan_json(memo, ms, live, "r")
    assert (memo.hits, memo.misses) == (3, 3)
    live["g-one"] = applied(ms["g-one"], revision="other")
    plan_json(memo, ms, live, "r")
    assert (memo.hits, memo.misses) == (5, 4), "the changed live side is diffed again"
    live = {n: g.model_copy(deep=True) for n, g in live.items()}
    plan_json(memo, ms, live, "r")
    assert (memo.hits, memo.misses) == (8, 4), "equal live groups listed again are recognised by content"


def test_a_new_revision_alone_is_served_from_the_memo_with_the_new_revision_tag() -> None:
    # Any commit changes the revision every group's writes carry; it never causes a write by itself.
    from reconciler.planning.ownership import REVISION_TAG
    from tests.planning.support import manifest

    ms = {n: manifest(name=n) for n in NAMES}
    live = {n: applied(m) for n, m in ms.items()}
    memo = PlanMemo()
    plan_json(memo, ms, live, "r1")
    plan = plan_json(memo, ms, live, "r2")
    assert (memo.hits, memo.misses) == (3, 3), "nothing planned again"
    assert plan == plan_json(None, ms, live, "r2")
    assert {c["write_tags"][REVISION_TAG] for c in plan["changes"]} == {"r2"}
    rebased = {key: entry.change for key, entry in memo.entries.items()}
    plan_json(memo, ms, live, "r2")
    assert all(memo.entries[key].change is change for key, change in rebased.items()), "rebased once"
    assert plan_json(memo, ms, live, "r1") == plan_json(None, ms, live, "r1"), "and back"


def test_the_ownership_of_a_live_group_listed_again_as_the_same_object_is_not_checked_again(
    monkeypatch: Any,
) -> None:
    from reconciler.planning import plan as planning_plan
    from tests.planning.support import manifest

    checked: list[str] = []
    real = planning_plan.ownership

    def counting(group: ObservedGroup, **kwargs: Any) -> Any:
        checked.append(group.name)
        return real(group, **kwargs)

    monkeypatch.setattr(planning_plan, "ownership", counting)
    ms = {n: manifest(name=n) for n in NAMES}
    live = {n: applied(m) for n, m in ms.items()}
    memo = PlanMemo()
    plan_json(memo, ms, live, "r")
    assert set(checked) == set(NAMES)
    first = len(checked)
    plan_json(memo, ms, live, "r")
    assert len(checked) == first, "none checked again"
    plan_json(memo, ms, live, "r", OTHER_KEY)
    assert set(checked[first:]) == set(NAMES), "another key is another verdict"
    second = len(checked)
    live["g-one"] = live["g-one"].model_copy(deep=True)
    plan_json(memo, ms, live, "r", OTHER_KEY)
    assert set(checked[second:]) == {"g-one"}, "another object is checked again"


def test_a_converged_groups_plan_entry_holds_the_live_groups_own_tag_texts_not_copies() -> None:
    from reconciler.model.plan import Action
    from tests.planning.support import manifest

    m = manifest(name="g-one")
    live = applied(m)
    live = live.model_copy(update={"tags": {k: "".join(v) for k, v in live.tags.items()}})
    plan = build_plan([desired(m)], [live], instance=INSTANCE, revision="r", secret_key=KEY)
    (change,) = plan.changes
    assert change.action is Action.NOOP
    shared = [name for name, value in change.write_tags.items() if value is live.tags.get(name)]
    equal = [name for name, value in change.write_tags.items() if value == live.tags.get(name)]
    assert len(equal) > 5
    assert shared == equal


# What the live side of a group is, for the groups planned ahead of the plan.
LIVE_STATES = ["applied", "stale", "drifted", "unmanaged", "other-key", "missing"]


def _live(m: GroupManifest, state: str) -> ObservedGroup | None:
    if state == "applied":
        return applied(m)
    if state == "stale":
        return applied(m, revision="an-older-revision")
    if state == "drifted":
        return applied(
            edited(m, lambda body: body["properties"]["containers"][0]["properties"].update(image="drift:1"))
        )
    if state == "unmanaged":
        return unmanaged(m)
    if state == "other-key":
        return applied(m, key=OTHER_KEY)
    return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fleet=st.lists(
        # Mostly without secrets: a group with secret values is never planned ahead.
        st.tuples(
            st.one_of(manifests(secrets=False), manifests(secrets=False), manifests()),
            st.sampled_from(LIVE_STATES),
            st.booleans(),
        ),
        min_size=1,
        max_size=5,
    ),
    twice=st.booleans(),
    rekey=st.booleans(),
    across_passes=st.booleans(),
    relisted=st.booleans(),
)
def test_a_plan_with_groups_planned_ahead_equals_the_plan_made_without(
    fleet: list[tuple[GroupManifest, str, bool]],
    twice: bool,
    rekey: bool,
    across_passes: bool,
    relisted: bool,
) -> None:
    """The engine plans each list page's groups as it arrives (`PlanMemo.plan_ahead`), some of them or none
    before the list ends: whichever were, the plan is the one made without. So too when the plan is made
    against equal live groups that are other objects (a one-pass memo then serves none of them)."""
    ms = [m.model_copy(update={"name": NAMES[i % len(NAMES)] + str(i)}) for i, (m, _, _) in enumerate(fleet)]
    groups = [desired(m, source=f"manifests/{m.name}.yaml:1:1") for m in ms]
    if twice:  # a name declared twice: the first declaration is planned, the second is an error
        groups.append(desired(ms[0], source="manifests/again.yaml:1:1"))
    live = {m.name: _live(m, state) for m, (_, state, _) in zip(ms, fleet, strict=True)}
    memo = PlanMemo(across_passes=across_passes)
    for group, (_, _, ahead) in zip(groups, fleet, strict=False):
        found = live[group.manifest.name]
        if ahead and found is not None:
            memo.plan_ahead(group, found, instance=INSTANCE, revision="rev", secret_key=KEY, rekey=rekey)
    planned_against = [g for g in live.values() if g is not None]
    if relisted:
        planned_against = [g.model_copy(deep=True) for g in planned_against]

    def plan(with_memo: PlanMemo | None) -> Any:
        return build_plan(
            groups,
            planned_against,
            instance=INSTANCE,
            revision="rev",
            secret_key=KEY,
            rekey=rekey,
            memo=with_memo,
        ).model_dump()

    ahead_entries = list(memo.entries.values())
    assert plan(memo) == plan(None)
    for entry in ahead_entries:
        assert entry.manifest.secret_values() == {}, "a group with secrets is left to build_plan"
    if relisted and not across_passes:
        assert memo.hits == 0, "a one-pass memo serves only the very objects it planned against"


def test_a_group_planned_ahead_is_not_diffed_again_by_the_plan(monkeypatch: Any) -> None:
    from reconciler.planning import plan as planning_plan
    from tests.planning.support import manifest

    diffed: list[str] = []
    real = planning_plan.diff_group

    def counting(group: Any, *args: Any, **kwargs: Any) -> Any:
        diffed.append(group.manifest.name)
        return real(group, *args, **kwargs)

    monkeypatch.setattr(planning_plan, "diff_group", counting)
    ms = {n: manifest(name=n) for n in NAMES}
    live = {n: applied(m) for n, m in ms.items()}
    memo = PlanMemo()
    memo.plan_ahead(desired(ms["g-one"], source="manifests/g-one.yaml:1:1"), live["g-one"],
                    instance=INSTANCE, revision="r", secret_key=KEY)  # fmt: skip
    assert diffed == ["g-one"]
    plan_json(memo, ms, live, "r")
    assert sorted(diffed) == ["g-one", "g-three", "g-two"], "g-one was planned once, ahead"


@pytest.mark.parametrize("rekey", [False, True])
@pytest.mark.parametrize("state", [s for s in LIVE_STATES if s != "missing"])
def test_every_kind_of_live_group_planned_ahead_gives_the_plan_made_without(state: str, rekey: bool) -> None:
    from tests.planning.support import manifest

    m = manifest(name="g-one")
    group, found = desired(m), _live(m, state)
    assert found is not None
    memo = PlanMemo()
    memo.plan_ahead(group, found, instance=INSTANCE, revision="rev", secret_key=KEY, rekey=rekey)
    assert memo.entries, "a group without secrets is planned ahead"

    def plan(with_memo: PlanMemo | None) -> Any:
        return build_plan(
            [group], [found], instance=INSTANCE, revision="rev", secret_key=KEY, rekey=rekey, memo=with_memo
        ).model_dump()

    assert plan(memo) == plan(None)


def _with_secret_reference(name: str) -> GroupManifest:
    from tests.planning.support import base_properties, manifest

    props = base_properties()
    props["containers"][0]["properties"]["environmentVariables"] = [
        {"name": "MODE", "value": "prod"},
        {"name": "TOKEN", "secureValueFrom": {"env": "APP_TOKEN"}},
    ]
    return manifest(name=name, properties=props)


def _resolved(unresolved: GroupManifest, value: str) -> DesiredGroup:
    """As the loader hands a group with a secret reference to the plan: resolved, with its unresolved form."""
    resolved = unresolved.resolve_secrets(lambda _ref: value)
    return DesiredGroup(
        manifest=resolved, source=f"manifests/{unresolved.name}.yaml:1:1", unresolved=unresolved
    )


class _Kept:
    """As the daemon's load cache hands a group with a secret reference: this pass's value read, put into a
    copy of the manifest only when asked (`reconciler.source.LoadedGroup`)."""

    def __init__(self, unresolved: GroupManifest, value: str) -> None:
        self.unresolved = unresolved
        self.value = value
        self.copies = 0

    @property
    def manifest(self) -> GroupManifest:
        self.copies += 1
        return self.unresolved.resolve_secrets(lambda _ref: self.value)

    def secret_values(self) -> dict[str, str]:
        return self.unresolved.secret_values(lambda _ref: self.value)


def _kept(unresolved: GroupManifest, value: str) -> DesiredGroup:
    """As the engine hands a kept group to the plan: its manifest without the value, the value pending."""
    return DesiredGroup(
        manifest=unresolved,
        source=f"manifests/{unresolved.name}.yaml:1:1",
        unresolved=unresolved,
        pending=_Kept(unresolved, value),
    )


def _values_held(m: GroupManifest | None) -> set[str]:
    if m is None:
        return set()
    try:
        return set(m.secret_values().values())
    except ValueError:  # UnresolvedSecretError: references without their values
        return set()


SECRET_STEP = st.sampled_from(["rotate", "apply", "same", "revision", "relist", "drift"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(st.tuples(SECRET_STEP, st.sampled_from(NAMES[:2])), min_size=1, max_size=8),
    forms=st.lists(st.booleans(), min_size=9, max_size=9),
)
def test_a_memoised_plan_of_groups_with_secret_references_equals_a_fresh_one_and_keeps_no_value(
    steps: list[tuple[str, str]], forms: list[bool]
) -> None:
    """Each pass hands the groups as a cold load does (values in) or as the load cache does (pending)."""
    unresolved = {n: _with_secret_reference(n) for n in NAMES[:2]}
    values = {n: f"first-value-of-{n}" for n in unresolved}
    used = set(values.values())
    live = {n: applied(_resolved(m, values[n]).manifest) for n, m in unresolved.items()}
    memo = PlanMemo()
    revision = "rev-1"

    def both() -> None:
        form = _kept if forms.pop() else _resolved
        fleet = [form(unresolved[n], values[n]) for n in sorted(unresolved)]
        kwargs: dict[str, Any] = {"instance": INSTANCE, "revision": revision, "secret_key": KEY}
        with_memo = build_plan(fleet, list(live.values()), memo=memo, **kwargs)
        fresh = build_plan([g.resolved() for g in fleet], list(live.values()), **kwargs)
        assert with_memo.model_dump() == fresh.model_dump()
        for change, name in zip(with_memo.changes, sorted(unresolved), strict=True):
            if change.action.value != "noop":
                assert change.desired is not None, "a write has its manifest"
            if change.desired is not None:
                assert set(_values_held(change.desired)) == {values[name]}, "with this pass's value"
        for entry in memo.entries.values():
            held = _values_held(entry.manifest) | _values_held(entry.change.desired)
            assert not held & used, "no secret value is kept"
            assert not any(value in repr(entry) for value in used)

    for what, name in steps:
        both()
        if what == "rotate":
            values[name] = values[name] + "+"
            used.add(values[name])
        elif what == "apply":
            live[name] = applied(_resolved(unresolved[name], values[name]).manifest, revision=revision)
        elif what == "revision":
            revision += "+"
        elif what == "relist":
            live = {n: g.model_copy(deep=True) for n, g in live.items()}
        elif what == "drift":
            body = dict(live[name].body)
            body["tags"] = {**(body.get("tags") or {}), "drift": "yes"}
            live[name] = live[name].model_copy(update={"body": body, "tags": body["tags"]})
    both()


def test_a_group_with_a_secret_reference_is_served_from_the_memo_until_its_value_changes() -> None:
    unresolved = _with_secret_reference("g-one")
    live = [applied(_resolved(unresolved, "v1").manifest)]
    memo = PlanMemo()

    def plan(value: str) -> Any:
        return build_plan(
            [_resolved(unresolved, value)], live, instance=INSTANCE, revision="r", secret_key=KEY, memo=memo
        )

    assert [c.action.value for c in plan("v1").changes] == ["noop"]
    assert [c.action.value for c in plan("v1").changes] == ["noop"]
    assert (memo.hits, memo.misses) == (1, 1)
    rotated = plan("v2")
    assert (memo.hits, memo.misses) == (1, 2), "a new value is planned again"
    assert [(c.action.value, c.reason) for c in rotated.changes] == [("update", "secret values changed")]


def test_a_group_with_a_literal_secret_beside_its_references_is_never_kept() -> None:
    from tests.planning.support import base_properties, manifest

    props = base_properties()
    props["containers"][0]["properties"]["environmentVariables"] = [
        {"name": "TOKEN", "secureValueFrom": {"env": "APP_TOKEN"}},
        {"name": "OTHER", "secureValue": "written-in-the-file"},
    ]
    unresolved = manifest(name="g-one", properties=props)
    group = _resolved(unresolved, "v1")
    memo = PlanMemo()
    build_plan([group], [applied(group.manifest)], instance=INSTANCE, revision="r", secret_key=KEY, memo=memo)
    assert memo.entries == {}


def test_a_kept_group_in_sync_is_served_without_its_value_put_into_a_copy() -> None:
    unresolved = _with_secret_reference("g-one")
    live = [applied(_resolved(unresolved, "v1").manifest)]
    memo = PlanMemo()
    kwargs: dict[str, Any] = {"instance": INSTANCE, "revision": "r", "secret_key": KEY, "memo": memo}
    first = build_plan([_resolved(unresolved, "v1")], live, **kwargs)
    again = _kept(unresolved, "v1")
    second = build_plan([again], live, **kwargs)
    assert second.model_dump() == first.model_dump()
    assert (memo.hits, memo.misses) == (1, 1)
    assert isinstance(again.pending, _Kept)
    assert again.pending.copies == 0, "in sync: no copy with the value in"
    assert second.changes[0].desired is None


def test_a_kept_group_whose_value_changed_is_planned_with_a_copy_that_holds_the_new_value() -> None:
    unresolved = _with_secret_reference("g-one")
    live = [applied(_resolved(unresolved, "v1").manifest)]
    memo = PlanMemo()
    kwargs: dict[str, Any] = {"instance": INSTANCE, "revision": "r", "secret_key": KEY, "memo": memo}
    build_plan([_kept(unresolved, "v1")], live, **kwargs)
    rotated = _kept(unresolved, "v2")
    plan = build_plan([rotated], live, **kwargs)
    assert [(c.action.value, c.reason) for c in plan.changes] == [("update", "secret values changed")]
    desired = plan.changes[0].desired
    assert desired is not None
    assert set(desired.secret_values().values()) == {"v2"}
    assert isinstance(rotated.pending, _Kept)
    assert rotated.pending.copies == 1, "the copy is made once, for the write"


def test_a_kept_group_planned_as_a_write_by_the_memo_is_served_with_this_passs_manifest() -> None:
    unresolved = _with_secret_reference("g-one")
    stale = applied(_resolved(unresolved, "v0").manifest)  # an older value: the group is to be updated
    memo = PlanMemo()
    kwargs: dict[str, Any] = {"instance": INSTANCE, "revision": "r", "secret_key": KEY, "memo": memo}
    build_plan([_kept(unresolved, "v1")], [stale], **kwargs)
    plan = build_plan([_kept(unresolved, "v1")], [stale], **kwargs)
    assert memo.hits == 1
    assert [c.action.value for c in plan.changes] == ["update"]
    desired = plan.changes[0].desired
    assert desired is not None
    assert set(desired.secret_values().values()) == {"v1"}
