"""The emulator's pure rules and building blocks: defaults, secret stripping, immutability, paging, limits."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.emulator.limits import FaultInjector, FaultSettings, TokenBucket, WindowQuota
from reconciler.emulator.resource import apply_defaults, immutable_changes, strip_secrets
from reconciler.emulator.routing import arm_path, match_route
from reconciler.emulator.store import GroupRecord, Store
from tests.emulator.conftest import body

secret_text = st.text(alphabet=string.ascii_letters + string.digits, min_size=12, max_size=24).map(
    lambda s: "SECRET-" + s
)


def _with_secrets(env: str, registry: str, volume: str, key: str, workspace: str) -> dict[str, Any]:
    b = body(
        imageRegistryCredentials=[{"server": "r.io", "username": "u", "password": registry}],
        volumes=[
            {"name": "s", "secret": {"f": volume}},
            {
                "name": "a",
                "azureFile": {"shareName": "x", "storageAccountName": "y", "storageAccountKey": key},
            },
        ],
        diagnostics={"logAnalytics": {"workspaceId": "w", "workspaceKey": workspace}},
    )
    secure = [{"name": "E", "secureValue": env}]
    b["properties"]["containers"][0]["properties"]["environmentVariables"] = secure
    b["properties"]["initContainers"] = [
        {"name": "init", "properties": {"image": "busybox", "environmentVariables": [dict(secure[0])]}}
    ]
    return b


@given(secret_text, secret_text, secret_text, secret_text, secret_text)
def test_no_secret_survives_stripping(env: str, registry: str, volume: str, key: str, workspace: str) -> None:
    stored = apply_defaults(
        _with_secrets(env, registry, volume, key, workspace), key="k", location="westeurope", previous=None
    )
    text = json.dumps(strip_secrets(stored))
    for secret in (env, registry, volume, key, workspace):
        assert secret not in text
    assert stored["properties"]["volumes"][0]["secret"] == {"f": volume}  # stripping copies, never mutates


def test_defaults_match_what_azure_fills() -> None:
    b = body(ipAddress={"type": "Public", "dnsNameLabel": "web", "ports": [{"port": 80}]})
    b["location"] = "West Europe"
    stored = apply_defaults(b, key="sub/rg/web", location="West Europe", previous=None)
    props = stored["properties"]
    assert stored["location"] == "westeurope"
    assert props["sku"] == "Standard"
    assert "restartPolicy" not in props  # Azure returns none when none was sent (it runs as Always)
    assert props["initContainers"] == []
    assert props["ipAddress"]["fqdn"] == "web.westeurope.azurecontainer.io"
    assert props["ipAddress"]["ports"] == [{"port": 80, "protocol": "TCP"}]
    container = props["containers"][0]["properties"]
    assert container["ports"] == []
    assert container["environmentVariables"] == []
    assert container["resources"]["requests"] == {"cpu": 1.0, "memoryInGB": 1.5}
    assert isinstance(container["resources"]["requests"]["cpu"], float)


def test_ip_address_is_kept_across_updates_of_the_same_type() -> None:
    b = body(ipAddress={"type": "Public", "ports": [{"port": 80}]})
    first = apply_defaults(b, key="one", location="westeurope", previous=None)
    second = apply_defaults(b, key="other-key", location="westeurope", previous=first)
    assert second["properties"]["ipAddress"]["ip"] == first["properties"]["ipAddress"]["ip"]


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"cpu": 2}, "/properties/containers/0/properties/resources/requests/cpu"),
        ({"memory": 2}, "/properties/containers/0/properties/resources/requests/memoryInGB"),
        ({"osType": "Windows"}, "/properties/osType"),
        ({"restartPolicy": "Never"}, "/properties/restartPolicy"),
        ({"subnetIds": [{"id": "/subnets/a"}]}, "/properties/subnetIds"),
    ],
)
def test_immutable_changes_are_named(change: dict[str, Any], path: str) -> None:
    old = body()
    new = body(**change)
    assert path in immutable_changes(old, new)


def test_updatable_changes_and_number_spellings_are_not_immutable() -> None:
    old = body(cpu=1, memory=1.5)
    new = body(image="nginx:2", cpu=1.0, memory=1.5, restartPolicy="always")
    assert immutable_changes(old, new) == []


@given(
    names=st.sets(st.text(alphabet="abcdefghij0123456789-", min_size=1, max_size=8), max_size=40),
    page=st.integers(min_value=1, max_value=7),
)
def test_paging_yields_every_group_once_in_order(names: set[str], page: int) -> None:
    store = Store()
    for name in names:
        store.insert(GroupRecord("sub", "rg", name, {"location": "x", "properties": {}}, created=0.0))
    seen: list[str] = []
    after: str | None = None
    while True:
        records, after = store.page_resource_group("SUB", "RG", after, page, 0.0)
        seen.extend(r.name for r in records)
        if after is None:
            break
    assert seen == sorted(names)
    seen_sub: list[str] = []
    token: tuple[str, str] | None = None
    while True:
        recs, token = store.page_subscription("sub", token, page, 0.0)
        seen_sub.extend(r.name for r in recs)
        if token is None:
            break
    assert seen_sub == sorted(names)


def test_paging_skips_groups_whose_delete_finished() -> None:
    store = Store()
    for name in "abcd":
        store.insert(GroupRecord("s", "rg", name, {"location": "x", "properties": {}}, created=0.0))
    for name in "bc":
        rec = store.get("s", "rg", name, 0.0)
        assert rec is not None
        store.begin(rec, "delete", 0.0, 5.0)
    records, after = store.page_resource_group("s", "rg", None, 10, 10.0)
    assert [r.name for r in records] == ["a", "d"]
    assert after is None
    assert len(store) == 2


def test_token_bucket_refills_at_its_rate() -> None:
    bucket = TokenBucket(size=2, rate=0.5, now=0.0)
    assert bucket.take(0.0) == (True, 1, 0)
    assert bucket.take(0.0) == (True, 0, 0)
    assert bucket.take(0.0) == (False, 0, 2)
    assert bucket.take(2.0) == (True, 0, 0)
    assert bucket.take(100.0)[1] == 1  # never above its size


def test_window_quota_frees_slots_as_the_window_slides() -> None:
    quota = WindowQuota(limit=2, window=300)
    for t in (0.0, 10.0):
        assert quota.check(t)[0]
        quota.record(t)
    assert quota.check(20.0) == (False, 0, 280)
    assert quota.check(300.0) == (True, 0, 0)


def test_fault_settings_reject_unknown_kinds_and_rates() -> None:
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultSettings(rate=1, kinds=("teapot",))
    with pytest.raises(ValueError, match="between 0 and 1"):
        FaultSettings(rate=2, kinds=("500",))
    with pytest.raises(ValueError, match="unknown fault settings"):
        FaultSettings.from_json({"rate": 1, "colour": "red"})


def test_fault_injector_honours_filters_and_count() -> None:
    faults = FaultInjector()
    faults.set(rate=1.0, kinds=["503"], methods=["put"], path_contains="/web", count=2)
    assert faults.pick("GET", "/x/web") is None
    assert faults.pick("PUT", "/x/db") is None
    assert faults.pick("PUT", "/x/web") == "503"
    assert faults.pick("PUT", "/x/web") == "503"
    assert faults.pick("PUT", "/x/web") is None
    faults.set(rate=1.0, kinds=["provision_fail"], methods=[], path_contains="", count=None)
    assert faults.pick("GET", "/x") is None  # provisioning failures only make sense for a PUT
    assert faults.pick("PUT", "/x") == "provision_fail"


def test_routes_are_matched_case_insensitively() -> None:
    route = match_route(
        "/SUBSCRIPTIONS/s/resourcegroups/RG/providers/microsoft.containerinstance/CONTAINERGROUPS/n/Containers/c/LOGS"
    )
    assert route is not None
    assert (route.name, route.resource_group, route.group, route.container) == (
        "containers.logs",
        "RG",
        "n",
        "c",
    )
    assert match_route("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Other/things/x") is None
    assert (
        arm_path("/properties/containers/0/properties/image") == "properties.containers[0].properties.image"
    )


def test_extension_settings_and_workspace_resource_id_are_secret() -> None:
    b = body(
        extensions=[
            {
                "name": "kube",
                "properties": {
                    "extensionType": "kube-proxy",
                    "version": "1.0",
                    "settings": {"a": 1},
                    "protectedSettings": {"kubeConfig": "SECRET-kubeconfig"},
                },
            }
        ],
        diagnostics={"logAnalytics": {"workspaceId": "w", "workspaceResourceId": "SECRET-resource-id"}},
    )
    text = json.dumps(strip_secrets(apply_defaults(b, key="k", location="x", previous=None)))
    assert "SECRET-" not in text
    assert '"settings": {"a": 1}' in text


def test_label_scope_is_dropped_without_a_label_as_azure_does() -> None:
    ip = {"type": "Public", "ports": [{"port": 80}], "autoGeneratedDomainNameLabelScope": "Unsecure"}
    without = apply_defaults(body(ipAddress=dict(ip)), key="k", location="x", previous=None)
    assert "autoGeneratedDomainNameLabelScope" not in without["properties"]["ipAddress"]
    with_label = body(ipAddress={**ip, "dnsNameLabel": "l"})
    labelled = apply_defaults(with_label, key="k", location="x", previous=None)
    assert labelled["properties"]["ipAddress"]["autoGeneratedDomainNameLabelScope"] == "Unsecure"


def test_confidential_groups_get_a_default_policy_and_identities_a_tenant() -> None:
    b = body(sku="Confidential")
    b["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {"/ids/one": {}}}
    stored = apply_defaults(b, key="k", location="x", previous=None)
    assert stored["properties"]["confidentialComputeProperties"]["ccePolicy"]
    assert stored["identity"]["tenantId"]
    assert set(stored["identity"]["userAssignedIdentities"]["/ids/one"]) == {"principalId", "clientId"}
