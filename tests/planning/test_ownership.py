"""Ownership tags: names Azure accepts, stable fingerprints, keyed secret hashes, reserved names."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.model.observed import ObservedGroup
from reconciler.planning import ownership as own

KEY = b"ownership-test-key-0123456789"
SUB = "00000000-0000-0000-0000-00000000abcd"
LEGACY = {
    "managed-by": "aci-reconciler",
    own.INSTANCE_TAG: "prod",
    own.SPEC_TAG: "a" * 64,
    own.PRUNE_TAG: "true",
}


def placed(tags: dict[str, str], *, rg: str = "rg-app", name: str = "web") -> ObservedGroup:
    return ObservedGroup(resource_group=rg, name=name, tags=tags)


def proven(
    rg: str = "rg-app", name: str = "web", *, key: bytes = KEY, instance: str = "prod"
) -> dict[str, str]:
    return {
        **LEGACY,
        own.INSTANCE_TAG: instance,
        **own.proof_tags(key=key, subscription=SUB, resource_group=rg, name=name, instance=instance),
    }


def owned(group: ObservedGroup) -> own.Ownership:
    return own.ownership(group, instance="prod", subscription=SUB, key=KEY)


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({}, own.Ownership.NONE),
        ({"team": "x"}, own.Ownership.NONE),
        ({**LEGACY, own.INSTANCE_TAG: "staging"}, own.Ownership.OTHER),
        (proven(), own.Ownership.PROVEN),
        (LEGACY, own.Ownership.LEGACY),
        # The two plain tags of finding 5, copied by someone who may write tags: not ours.
        ({"managed-by": "aci-reconciler", own.INSTANCE_TAG: "prod"}, own.Ownership.INVALID),
        ({**LEGACY, own.SPEC_TAG: "not-a-fingerprint"}, own.Ownership.INVALID),
        ({**proven(), own.PROOF_TAG: "0" * 64}, own.Ownership.INVALID),
        ({k: v for k, v in proven().items() if k != own.KEY_ID_TAG}, own.Ownership.INVALID),
        ({k: v for k, v in proven().items() if k != own.PROOF_TAG}, own.Ownership.INVALID),
        # A proof copied from another group, instance or subscription does not verify here.
        (proven(name="other"), own.Ownership.INVALID),
        (proven(rg="rg-other"), own.Ownership.INVALID),
        (proven(key=b"another-key-0123456789abcdef"), own.Ownership.OTHER_KEY),
    ],
)
def test_ownership_is_proven_only_by_a_proof_made_with_this_key_for_this_place(
    tags: dict[str, str], expected: own.Ownership
) -> None:
    assert owned(placed(tags)) is expected


def test_the_proof_survives_the_case_azure_returns_names_in() -> None:
    tags = proven(rg="rg-app", name="web")
    assert owned(placed(tags, rg="RG-APP", name="Web")) is own.Ownership.PROVEN
    other_sub = own.ownership(placed(tags), instance="prod", subscription=SUB.upper(), key=KEY)
    assert other_sub is own.Ownership.PROVEN


def test_a_proof_is_bound_to_the_subscription() -> None:
    elsewhere = own.ownership(placed(proven()), instance="prod", subscription="another-sub", key=KEY)
    assert elsewhere is own.Ownership.INVALID


def test_the_key_id_names_the_key_without_revealing_it() -> None:
    kid = own.key_id(KEY)
    assert len(kid) == 16
    assert kid == own.key_id(KEY)
    assert kid != own.key_id(KEY + b"x")
    assert KEY.hex()[:8] not in kid


def observed(tags: dict[str, str], *, in_body: bool = False) -> ObservedGroup:
    if in_body:
        return ObservedGroup(resource_group="rg", name="g", body={"tags": tags})
    return ObservedGroup(resource_group="rg", name="g", tags=tags)


def test_tag_names_are_valid_azure_tag_names() -> None:
    for name in own.OWNERSHIP_TAGS:
        assert not set(name) & own.FORBIDDEN_TAG_NAME_CHARS
        assert len(name) <= own.TAG_NAME_MAX


def test_ownership_tags_hold_instance_revision_fingerprint_hash_policy_and_proof() -> None:
    proof = own.proof_tags(key=KEY, subscription="sub", resource_group="rg", name="g", instance="prod")
    tags = own.ownership_tags(
        instance="prod",
        revision="r1",
        fingerprint="f" * 64,
        secret_hash="h",
        prune=False,
        suspend=True,
        recreate="never",
        proof=proof,
    )
    assert tags == {
        "managed-by": "aci-reconciler",
        own.INSTANCE_TAG: "prod",
        own.REVISION_TAG: "r1",
        own.SPEC_TAG: "f" * 64,
        own.SECRETS_TAG: "h",
        own.PRUNE_TAG: "false",
        own.SUSPEND_TAG: "true",
        own.RECREATE_TAG: "never",
        own.PROOF_TAG: proof[own.PROOF_TAG],
        own.KEY_ID_TAG: own.key_id(KEY),
    }


def test_secret_hash_tag_is_absent_without_secrets() -> None:
    tags = own.ownership_tags(instance="p", revision="r", fingerprint="f", secret_hash=None, prune=True)
    assert own.SECRETS_TAG not in tags
    assert own.secrets_hash({}, b"k") is None


def test_tag_values_are_clipped_to_256_characters() -> None:
    tags = own.ownership_tags(
        instance="i", revision="r" * 1000, fingerprint="f", secret_hash=None, prune=True
    )
    assert len(tags[own.REVISION_TAG]) == 256


def test_fingerprint_is_stable_across_key_order() -> None:
    a = {"location": "x", "properties": {"osType": "Linux", "sku": "Standard"}}
    b = {"properties": {"sku": "Standard", "osType": "Linux"}, "location": "x"}
    assert own.spec_fingerprint(a) == own.spec_fingerprint(b)
    assert own.spec_fingerprint(a) != own.spec_fingerprint({**a, "location": "y"})
    assert len(own.spec_fingerprint(a)) == 64


def test_fingerprint_and_secret_hash_are_the_values_earlier_releases_wrote() -> None:
    # Both live in tags on every managed group: a different serialisation would re-tag a whole fleet.
    body = {
        "location": "westeurope",
        "properties": {
            "osType": "Linux",
            "sku": "Standard",
            "containers": {
                "web": {"image": "nginx:1.25", "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}}}
            },
            "note": "caf\u00e9 \u2603",
        },
    }
    assert own.spec_fingerprint(body) == "e23a507a040a8fff2ad27b2ca4a82a03ec65baf1beb73a97ccef739f4744950e"
    values = {"/properties/containers/web/environmentVariables/TOKEN": "s3cr\u00e9t"}
    assert own.secrets_hash(values, KEY) == "d0db5204f5f765714f5f27c2aa709e5b6525f49d13585123320f3486a1e7ad88"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(max_size=8), _JSON, max_size=5))
@settings(max_examples=200)
def test_fingerprint_is_sha256_of_sorted_compact_json(body: dict[str, object]) -> None:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert own.spec_fingerprint(body) == hashlib.sha256(text.encode()).hexdigest()


def test_secret_hash_is_keyed_and_never_contains_the_secret() -> None:
    secrets = {"/properties/containers/web/properties/environmentVariables/PW/secureValue": "hunter2"}
    h1 = own.secrets_hash(secrets, b"key-1")
    h2 = own.secrets_hash(secrets, b"key-2")
    assert h1 is not None
    assert h1 != h2
    assert "hunter2" not in h1
    assert own.secrets_hash(secrets, b"key-1") == h1
    assert own.secrets_hash({next(iter(secrets)): "hunter3"}, b"key-1") != h1


def test_is_managed_by_needs_both_managed_by_and_this_instance() -> None:
    tags = {"managed-by": "aci-reconciler", own.INSTANCE_TAG: "prod"}
    assert own.is_managed_by(observed(tags), "prod")
    assert not own.is_managed_by(observed(tags), "staging")
    assert not own.is_managed_by(observed({own.INSTANCE_TAG: "prod"}), "prod")
    assert not own.is_managed_by(observed({}), "prod")


def test_tag_lookup_is_case_insensitive_as_in_azure() -> None:
    tags = {"Managed-By": "ACI-Reconciler", "ACI-RECONCILER.INSTANCE": "prod"}
    assert own.owner_of(observed(tags)) == "prod"


def test_owner_of_reads_body_tags_when_the_model_has_none() -> None:
    tags = {"managed-by": "aci-reconciler", own.INSTANCE_TAG: "blue"}
    assert own.owner_of(observed(tags, in_body=True)) == "blue"


def test_owner_without_instance_tag_is_an_unnamed_reconciler() -> None:
    assert own.owner_of(observed({"managed-by": "aci-reconciler"})) == ""
    assert own.owner_of(observed({"managed-by": "terraform"})) is None


def test_prune_tag_false_forbids_pruning_and_absent_allows_it() -> None:
    assert not own.prune_allowed(observed({own.PRUNE_TAG: "false"}))
    assert not own.prune_allowed(observed({own.PRUNE_TAG: "False"}))
    assert own.prune_allowed(observed({own.PRUNE_TAG: "true"}))
    assert own.prune_allowed(observed({}))


def test_user_tags_may_not_use_reserved_names() -> None:
    problems = own.tag_problems({"Managed-By": "me", "team": "x"})
    assert len(problems) == 1
    assert "reserved" in problems[0]
    assert "Managed-By" in problems[0]


def test_user_tags_with_forbidden_characters_or_long_values_are_rejected() -> None:
    problems = own.tag_problems({"a/b": "x", "ok": "v" * 300})
    assert any("a/b" in p and "forbids" in p for p in problems)
    assert any("longer than" in p and "'ok'" in p for p in problems)


def test_too_many_user_tags_leave_no_room_for_ownership_tags() -> None:
    room = own.TAGS_PER_RESOURCE_MAX - len(own.OWNERSHIP_TAGS)
    assert room == 40
    assert own.tag_problems({f"t{i}": "v" for i in range(room)}) == []
    problems = own.tag_problems({f"t{i}": "v" for i in range(room + 1)})
    assert any(f"at most {room}" in p for p in problems)


def test_user_tags_strips_ownership_tags() -> None:
    assert own.user_tags({"team": "x", "MANAGED-BY": "aci-reconciler", own.REVISION_TAG: "r"}) == {
        "team": "x"
    }


def test_empty_instance_name_is_a_problem() -> None:
    assert own.instance_problems(" ")
    assert not own.instance_problems("prod")


_TAG_NAMES = [*own.OWNERSHIP_TAGS, *(t.upper() for t in own.OWNERSHIP_TAGS), "team"]
_COPIED_PROOF = own.ownership_proof(
    key=KEY, subscription=SUB, resource_group="rg-app", name="other", instance="prod"
)
_VALUES = st.one_of(
    st.sampled_from(
        [
            "aci-reconciler",
            "prod",
            "true",
            "false",
            "auto",
            "a" * 64,
            own.key_id(KEY),
            own.key_id(b"another-key-0123456789"),
            _COPIED_PROOF,
        ]
    ),
    st.text(alphabet="0123456789abcdef", min_size=0, max_size=64),
)


@settings(max_examples=300)
@given(tags=st.dictionaries(st.sampled_from(_TAG_NAMES), _VALUES, max_size=len(_TAG_NAMES)))
def test_no_tag_set_made_without_the_key_for_this_group_ever_gets_it_pruned(tags: dict[str, str]) -> None:
    from reconciler.model.plan import Action
    from reconciler.planning.plan import build_plan

    group = ObservedGroup(resource_group="rg-app", name="web", tags=tags, body={"properties": {}})
    plan = build_plan(
        [], [group], instance="prod", revision="r", secret_key=KEY, subscription=SUB, allow_empty=True
    )
    assert not [c for c in plan.changes if c.action is Action.DELETE and c.held is None]
    assert owned(group) is not own.Ownership.PROVEN


def test_the_property_above_would_see_a_prune_of_a_proven_group() -> None:
    from reconciler.model.plan import Action
    from reconciler.planning.plan import build_plan

    group = ObservedGroup(resource_group="rg-app", name="web", tags=proven(), body={"properties": {}})
    plan = build_plan(
        [], [group], instance="prod", revision="r", secret_key=KEY, subscription=SUB, allow_empty=True
    )
    assert [(c.action, c.held) for c in plan.changes] == [(Action.DELETE, None)]


_SPELLINGS = st.sampled_from(
    ["managed-by", "Managed-By", "MANAGED-BY", "aci-reconciler.proof", "Aci-Reconciler.Proof"]
)


@given(st.lists(st.tuples(_SPELLINGS, st.text(max_size=3)), max_size=6), _SPELLINGS)
def test_folded_tags_answer_every_name_in_any_case_as_a_scan_of_the_tags_does(
    pairs: list[tuple[str, str]], name: str
) -> None:
    tags = dict(pairs)
    first_spelling = next((v for k, v in tags.items() if k.lower() == name.lower()), None)
    assert own.folded_tags(tags).get(name.lower()) == first_spelling
