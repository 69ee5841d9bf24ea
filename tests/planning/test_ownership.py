"""Ownership tags: names Azure accepts, stable fingerprints, keyed secret hashes, reserved names."""

from __future__ import annotations

from reconciler.model.observed import ObservedGroup
from reconciler.planning import ownership as own


def observed(tags: dict[str, str], *, in_body: bool = False) -> ObservedGroup:
    if in_body:
        return ObservedGroup(resource_group="rg", name="g", body={"tags": tags})
    return ObservedGroup(resource_group="rg", name="g", tags=tags)


def test_tag_names_are_valid_azure_tag_names() -> None:
    for name in own.OWNERSHIP_TAGS:
        assert not set(name) & own.FORBIDDEN_TAG_NAME_CHARS
        assert len(name) <= own.TAG_NAME_MAX


def test_ownership_tags_hold_instance_revision_fingerprint_hash_and_prune() -> None:
    tags = own.ownership_tags(
        instance="prod", revision="r1", fingerprint="f" * 64, secret_hash="h", prune=False
    )
    assert tags == {
        "managed-by": "aci-reconciler",
        own.INSTANCE_TAG: "prod",
        own.REVISION_TAG: "r1",
        own.SPEC_TAG: "f" * 64,
        own.SECRETS_TAG: "h",
        own.PRUNE_TAG: "false",
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
    problems = own.tag_problems({f"t{i}": "v" for i in range(45)})
    assert any("at most 44" in p for p in problems)


def test_user_tags_strips_ownership_tags() -> None:
    assert own.user_tags({"team": "x", "MANAGED-BY": "aci-reconciler", own.REVISION_TAG: "r"}) == {
        "team": "x"
    }


def test_empty_instance_name_is_a_problem() -> None:
    assert own.instance_problems(" ")
    assert not own.instance_problems("prod")
