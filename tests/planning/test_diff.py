"""The field diff: complete, keyed paths, ignore pointers, server-chosen values, secrets."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.planning.diff import _Walk, _walk, diff, is_ignored, pointer, split_pointer
from reconciler.planning.normalise import SERVER_CHOSEN, canonical


def group(**container_props: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"image": "nginx:1", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}}
    base.update(container_props)
    return canonical(
        {
            "location": "westeurope",
            "properties": {
                "osType": "Linux",
                "containers": [
                    {"name": "web", "properties": base},
                    {"name": "sidecar", "properties": {"image": "envoy:1", "resources": base["resources"]}},
                ],
            },
        }
    )


def paths(changes: list[Any]) -> list[str]:
    return [c.path for c in changes]


def test_identical_bodies_have_no_changes() -> None:
    assert diff(group(), group()) == []


def test_changed_leaf_is_addressed_by_container_name() -> None:
    changes = diff(group(image="nginx:2"), group())
    assert len(changes) == 1
    change = changes[0]
    assert change.path == "/properties/containers/web/properties/image"
    assert (change.kind, change.before, change.after) == ("change", "nginx:1", "nginx:2")


def test_field_omitted_in_manifest_but_live_is_a_removal() -> None:
    # A PUT without the field resets it, so a live value the manifest does not state is drift.
    live = group(command=["sleep", "1"])
    changes = diff(group(), live)
    assert [(c.path, c.kind) for c in changes] == [
        ("/properties/containers/web/properties/command", "remove")
    ]


def test_env_var_paths_use_the_variable_name() -> None:
    changes = diff(
        group(environmentVariables=[{"name": "MODE", "value": "prod"}]),
        group(environmentVariables=[{"name": "MODE", "value": "dev"}]),
    )
    assert paths(changes) == ["/properties/containers/web/properties/environmentVariables/MODE/value"]


def test_ignore_prefix_hides_the_subtree() -> None:
    changes = diff(
        group(image="nginx:2", command=["a"]),
        group(),
        ignore=["/properties/containers/web/properties/image"],
    )
    assert paths(changes) == ["/properties/containers/web/properties/command"]


def test_ignore_wildcard_matches_any_one_segment() -> None:
    desired = canonical(
        {
            "properties": {
                "containers": [
                    {"name": "web", "properties": {"image": "a:2"}},
                    {"name": "sidecar", "properties": {"image": "b:2"}},
                ]
            }
        }
    )
    live = canonical(
        {
            "properties": {
                "containers": [
                    {"name": "web", "properties": {"image": "a:1"}},
                    {"name": "sidecar", "properties": {"image": "b:1"}},
                ]
            }
        }
    )
    assert diff(desired, live, ignore=["/properties/containers/*/properties/image"]) == []


def test_ignore_numeric_segment_addresses_the_nth_element_in_manifest_order() -> None:
    desired = group(image="nginx:2")
    live = group()
    # `web` is the first container of the manifest.
    assert diff(desired, live, ignore=["/properties/containers/0/properties/image"]) == []
    assert diff(desired, live, ignore=["/properties/containers/1/properties/image"]) != []


def test_ignore_covers_values_added_out_of_band() -> None:
    live = group(environmentVariables=[{"name": "INJECTED", "value": "x"}])
    assert diff(group(), live, ignore=["/properties/containers/web/properties/environmentVariables"]) == []


def test_ignore_of_a_malformed_pointer_is_an_error() -> None:
    with pytest.raises(ValueError, match="JSON Pointer"):
        diff(group(), group(), ignore=["properties/osType"])


def test_server_chosen_ip_is_compared_only_when_stated() -> None:
    desired = canonical({"properties": {"ipAddress": {"type": "Public", "ports": [{"port": 80}]}}})
    live = canonical(
        {"properties": {"ipAddress": {"type": "Public", "ip": "20.1.2.3", "ports": [{"port": 80}]}}}
    )
    assert diff(desired, live) == []
    pinned = canonical(
        {"properties": {"ipAddress": {"type": "Public", "ip": "20.9.9.9", "ports": [{"port": 80}]}}}
    )
    assert paths(diff(pinned, live)) == ["/properties/ipAddress/ip"]


def test_generated_cce_policy_is_not_drift_but_a_stated_one_is_compared() -> None:
    desired = canonical({"properties": {"sku": "Confidential", "confidentialComputeProperties": {}}})
    live = canonical(
        {"properties": {"sku": "Confidential", "confidentialComputeProperties": {"ccePolicy": "Z2Vu"}}}
    )
    assert diff(desired, live) == []
    stated = canonical(
        {"properties": {"sku": "Confidential", "confidentialComputeProperties": {"ccePolicy": "b3du"}}}
    )
    assert paths(diff(stated, live)) == ["/properties/confidentialComputeProperties/ccePolicy"]


def test_plain_to_secure_env_var_is_a_sensitive_change_without_values() -> None:
    desired = group(environmentVariables=[{"name": "TOKEN", "secureValue": "s3cr3t"}])
    live = group(environmentVariables=[{"name": "TOKEN", "value": "visible"}])
    (change,) = diff(desired, live)
    assert change.sensitive
    assert change.before is None
    assert change.after is None


def test_whole_container_added_is_one_change() -> None:
    live = canonical({"properties": {"containers": [{"name": "web", "properties": {"image": "a"}}]}})
    desired = canonical(
        {
            "properties": {
                "containers": [
                    {"name": "web", "properties": {"image": "a"}},
                    {"name": "new", "properties": {"image": "b"}},
                ]
            }
        }
    )
    (change,) = diff(desired, live)
    assert (change.path, change.kind) == ("/properties/containers/new", "add")


def test_pointer_escaping_round_trips_keys_with_slashes() -> None:
    subnet = "/subscriptions/s/resourcegroups/rg/providers/x/subnets/a"
    path = pointer(("properties", "subnetIds", subnet))
    assert path == "/properties/subnetIds/~1subscriptions~1s~1resourcegroups~1rg~1providers~1x~1subnets~1a"
    assert split_pointer(path) == ("properties", "subnetIds", subnet)


def test_changes_follow_the_schema_order_whatever_the_input_key_order() -> None:
    desired = group(environmentVariables=[{"name": "A", "value": "1"}], command=["x"], image="b")
    live = group(image="a", command=["y"], environmentVariables=[{"name": "A", "value": "2"}])
    prefix = "/properties/containers/web/properties"
    assert paths(diff(desired, live)) == [
        f"{prefix}/image",
        f"{prefix}/command",
        f"{prefix}/environmentVariables/A/value",
    ]


def test_added_container_with_a_secure_variable_keeps_its_values_but_not_the_secret() -> None:
    live = canonical({"properties": {"containers": [{"name": "web", "properties": {"image": "a"}}]}})
    desired = canonical(
        {
            "properties": {
                "containers": [
                    {"name": "web", "properties": {"image": "a"}},
                    {
                        "name": "new",
                        "properties": {
                            "image": "b",
                            "environmentVariables": [{"name": "PW", "secureValue": "pw-9"}],
                        },
                    },
                ]
            }
        }
    )
    (change,) = diff(desired, live)
    assert not change.sensitive
    assert change.after["properties"]["image"] == "b"
    assert "pw-9" not in change.model_dump_json()


def test_is_ignored_uses_the_same_rules_as_diff() -> None:
    desired = group()
    prefix = "/properties/containers/web/properties"
    assert is_ignored(
        f"{prefix}/environmentVariables/PW/secureValue", [f"{prefix}/environmentVariables"], desired
    )
    assert is_ignored(f"{prefix}/image", ["/properties/containers/0"], desired)
    assert is_ignored(f"{prefix}/image", ["/properties/containers/*/properties/image"], desired)
    assert not is_ignored(f"{prefix}/image", ["/properties/containers/1"], desired)
    assert not is_ignored(f"{prefix}/image", [], desired)


# `diff` answers a converged pair (equal once the server's own choices are set aside) with one comparison
# instead of a walk; whatever the bodies, it must answer exactly as the walk does.

_LEAVES = st.one_of(
    st.sampled_from(["a", "b", "", "20.1.2.3", "Z2Vu"]), st.integers(0, 2), st.none(), st.booleans()
)
_SEGMENTS = st.sampled_from(
    ["properties", "ipAddress", "ip", "confidentialComputeProperties", "ccePolicy", "x"]
)
_BODIES = st.recursive(
    _LEAVES, lambda inner: st.dictionaries(_SEGMENTS, inner, max_size=4), max_leaves=12
).filter(lambda b: isinstance(b, dict))


def _walked(desired: dict[str, Any], observed: dict[str, Any], chosen: tuple[str, ...]) -> list[Any]:
    walk = _Walk(chosen=frozenset(split_pointer(p) for p in chosen))
    _walk(walk, desired, observed, (), [])
    return walk.out


@given(_BODIES, _BODIES, st.sampled_from([SERVER_CHOSEN, (), ("/x", "/properties/x/ip")]))
def test_the_converged_shortcut_answers_as_the_walk_does(
    desired: dict[str, Any], observed: dict[str, Any], chosen: tuple[str, ...]
) -> None:
    assert diff(desired, observed, server_chosen=chosen) == _walked(desired, observed, chosen)
    # The live side as the server may have filled it in: the desired body plus its own choices.
    filled = {
        **desired,
        "properties": {
            "ipAddress": {"ip": "20.1.2.3"},
            "confidentialComputeProperties": {"ccePolicy": "Z2Vu"},
        },
    }
    assert diff(desired, filled, server_chosen=chosen) == _walked(desired, filled, chosen)


def test_a_live_group_that_differs_only_by_its_allocated_ip_is_not_walked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = importlib.import_module("reconciler.planning.diff")  # the package exports its `diff` function

    def no_walk(*_: object) -> None:
        raise AssertionError("walked")

    desired = canonical({"properties": {"ipAddress": {"type": "Public", "ports": [{"port": 80}]}}})
    live = canonical(
        {"properties": {"ipAddress": {"type": "Public", "ip": "20.1.2.3", "ports": [{"port": 80}]}}}
    )
    monkeypatch.setattr(module, "_walk", no_walk)
    assert diff(desired, live) == []
