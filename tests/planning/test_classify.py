"""Every row of the classification table (DESIGN.md section 5), through the real diff of two bodies."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from reconciler.model.plan import Action, FieldChange
from reconciler.planning.classify import TABLE, TERMINATED_REASON, classify, rule_for
from reconciler.planning.diff import diff
from reconciler.planning.normalise import canonical

SUBNET = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/"
UAI = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i"


def base() -> dict[str, Any]:
    return {
        "location": "westeurope",
        "zones": ["1"],
        "properties": {
            "osType": "Linux",
            "restartPolicy": "Always",
            "sku": "Standard",
            "priority": "Regular",
            "containers": [
                {
                    "name": "web",
                    "properties": {
                        "image": "nginx:1",
                        "command": ["nginx"],
                        "environmentVariables": [{"name": "MODE", "value": "prod"}],
                        "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                        "ports": [{"port": 80}],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        "livenessProbe": {"httpGet": {"path": "/", "port": 80}, "periodSeconds": 10},
                    },
                }
            ],
            "initContainers": [{"name": "init", "properties": {"image": "busybox", "command": ["true"]}}],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "ipAddress": {"type": "Private", "dnsNameLabel": "web", "ports": [{"port": 80}]},
            "subnetIds": [{"id": SUBNET + "a"}],
            "encryptionProperties": {
                "vaultBaseUrl": "https://kv.vault.azure.net",
                "keyName": "k",
                "keyVersion": "1",
            },
            "confidentialComputeProperties": {"ccePolicy": "cG9saWN5"},
            "dnsConfig": {"nameServers": ["10.0.0.10"]},
        },
    }


def web(body: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = body["properties"]["containers"][0]["properties"]
    return props


def set_in(path: tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(body: dict[str, Any]) -> None:
        node = body
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


def add_container(body: dict[str, Any]) -> None:
    body["properties"]["containers"].append({"name": "sidecar", "properties": {"image": "envoy"}})


def remove_ip(body: dict[str, Any]) -> None:
    del body["properties"]["ipAddress"]


REPLACE_EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "cpu request": lambda b: web(b)["resources"]["requests"].update(cpu=2),
    "memory request": lambda b: web(b)["resources"]["requests"].update(memoryInGB=3),
    "gpu request": lambda b: web(b)["resources"]["requests"].update(gpu={"count": 1, "sku": "V100"}),
    "cpu limit": lambda b: web(b)["resources"].update(limits={"cpu": 1}),
    "memory limit": lambda b: web(b)["resources"].update(limits={"memoryInGB": 1}),
    "gpu limit": lambda b: web(b)["resources"].update(limits={"gpu": {"count": 1, "sku": "K80"}}),
    "osType": set_in(("properties", "osType"), "Windows"),
    "restartPolicy": set_in(("properties", "restartPolicy"), "Never"),
    "subnetIds": set_in(("properties", "subnetIds"), [{"id": SUBNET + "b"}]),
    "location": set_in(("location",), "northeurope"),
    "zones": set_in(("zones",), ["2"]),
    "sku": set_in(("properties", "sku"), "Confidential"),
    "priority": set_in(("properties", "priority"), "Spot"),
    "encryptionProperties": set_in(("properties", "encryptionProperties", "keyVersion"), "2"),
    "confidentialComputeProperties": set_in(
        ("properties", "confidentialComputeProperties", "ccePolicy"), "bmV3"
    ),
    "ipAddress.type": set_in(("properties", "ipAddress", "type"), "Public"),
    "ipAddress removed": remove_ip,
    "container added": add_container,
    "diagnostics": set_in(("properties", "diagnostics"), {"logAnalytics": {"workspaceId": "w"}}),
}

UPDATE_EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "image": lambda b: web(b).update(image="nginx:2"),
    "command": lambda b: web(b).update(command=["nginx", "-g", "daemon off;"]),
    "env value": lambda b: web(b)["environmentVariables"][0].update(value="dev"),
    "env added": lambda b: web(b)["environmentVariables"].append({"name": "NEW", "value": "1"}),
    "dns name label": set_in(("properties", "ipAddress", "dnsNameLabel"), "web2"),
    "probe": lambda b: web(b)["livenessProbe"].update(periodSeconds=20),
    "volume mount": lambda b: web(b)["volumeMounts"][0].update(mountPath="/var/data"),
    "container port": lambda b: web(b)["ports"].append({"port": 443}),
    "group port": lambda b: b["properties"]["ipAddress"]["ports"].append({"port": 443}),
    "volume added": lambda b: b["properties"]["volumes"].append({"name": "tmp", "emptyDir": {}}),
    "dnsConfig": set_in(("properties", "dnsConfig", "nameServers"), ["10.0.0.11"]),
    "identity added": set_in(("identity",), {"type": "UserAssigned", "userAssignedIdentities": {UAI: {}}}),
    "init container image": lambda b: b["properties"]["initContainers"][0]["properties"].update(
        image="alpine"
    ),
    "init container added": lambda b: b["properties"]["initContainers"].append(
        {"name": "init2", "properties": {"image": "busybox"}}
    ),
    "init container removed": lambda b: b["properties"].update(initContainers=[]),
    "security context": lambda b: web(b).update(securityContext={"privileged": True}),
}


def classify_edit(edit: Callable[[dict[str, Any]], None], *, terminated: bool = False) -> Any:
    before = base()
    after = copy.deepcopy(before)
    edit(after)
    changes = diff(canonical(after), canonical(before))
    assert changes, "the edit must change something"
    return classify(changes, terminated=terminated)


@pytest.mark.parametrize("row", sorted(REPLACE_EDITS))
def test_replace_row_forces_replacement(row: str) -> None:
    result = classify_edit(REPLACE_EDITS[row])
    assert result.action is Action.REPLACE
    assert result.replace_paths
    assert all(f.forces_replacement for f in result.fields if f.path in result.replace_paths)
    assert result.reason


def test_removing_a_container_forces_replacement() -> None:
    before = base()
    add_container(before)
    changes = diff(canonical(base()), canonical(before))
    result = classify(changes)
    assert result.action is Action.REPLACE
    assert result.replace_paths == ("/properties/containers/sidecar",)


@pytest.mark.parametrize("row", sorted(UPDATE_EDITS))
def test_update_row_is_an_update_in_place(row: str) -> None:
    result = classify_edit(UPDATE_EDITS[row])
    assert result.action is Action.UPDATE
    assert result.replace_paths == ()
    assert not any(f.forces_replacement for f in result.fields)


def test_every_table_row_is_exercised() -> None:
    # A row nobody tests is a row nobody knows works: each must decide at least one edit above.
    used = set()
    for edit in REPLACE_EDITS.values():
        before = base()
        after = copy.deepcopy(before)
        edit(after)
        used |= {rule_for(c) for c in diff(canonical(after), canonical(before))}
    before = base()
    add_container(before)
    used |= {rule_for(c) for c in diff(canonical(base()), canonical(before))}
    assert set(TABLE) <= used


def test_no_change_is_noop() -> None:
    assert classify([]).action is Action.NOOP


def test_replace_wins_over_update_and_lists_only_the_forcing_paths() -> None:
    def edit(b: dict[str, Any]) -> None:
        web(b).update(image="nginx:2")
        web(b)["resources"]["requests"]["cpu"] = 2

    result = classify_edit(edit)
    assert result.action is Action.REPLACE
    assert result.replace_paths == ("/properties/containers/web/properties/resources/requests/cpu",)
    image = next(f for f in result.fields if f.path.endswith("/image"))
    assert not image.forces_replacement


@pytest.mark.parametrize("row", ["image", "env value", "dns name label"])
def test_any_change_to_a_terminated_group_is_replace(row: str) -> None:
    result = classify_edit(UPDATE_EDITS[row], terminated=True)
    assert result.action is Action.REPLACE
    assert result.reason == TERMINATED_REASON
    assert all(f.forces_replacement for f in result.fields)


def test_rule_matching_respects_kind_and_exactness() -> None:
    (container_rule,) = [r for r in TABLE if r.pattern == "/properties/containers/*"]
    added = FieldChange(path="/properties/containers/x", kind="add")
    changed_below = FieldChange(path="/properties/containers/x/properties/image", kind="change")
    assert container_rule.matches(added)
    assert not container_rule.matches(changed_below)
