"""The canonical form: a request body and the service's response to it normalise to the same thing."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from reconciler.model.manifest import parse_manifest
from reconciler.model.observed import ObservedGroup
from reconciler.model.plan import Action
from reconciler.planning.diff import diff
from reconciler.planning.normalise import SECURE, canonical
from reconciler.planning.plan import DesiredGroup, diff_group, write_tags_for
from tests.planning.support import SHARED

RECORDINGS = SHARED / "recordings"
EXAMPLES = SHARED / "spec-2023-05-01" / "examples"


def _body(raw: Any) -> Any:
    if isinstance(raw, dict):
        raw = raw.get("string")
    if isinstance(raw, bytes):
        raw = raw.decode()
    if not raw:
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return None


def _recorded_pairs() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(cassette, PUT body, last GET of that group) for every cassette that has both."""
    if not RECORDINGS.is_dir():
        return []
    pairs = []
    for path in sorted(RECORDINGS.rglob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        puts: dict[str, dict[str, Any]] = {}
        gets: dict[str, dict[str, Any]] = {}
        for interaction in data.get("interactions", []):
            request = interaction["request"]
            uri = request["uri"].split("?")[0]
            if uri.split("/")[-2:-1] != ["containerGroups"]:
                continue  # not a container group itself (logs, exec, operations, profiles)
            name = uri.rsplit("/", 1)[-1]
            if request["method"] == "PUT":
                body = _body(request.get("body"))
                if body is not None:
                    puts.setdefault(name, body)
            elif request["method"] == "GET" and interaction["response"]["status"]["code"] == 200:
                body = _body(interaction["response"]["body"])
                if body is not None:
                    gets[name] = body
        if "standbypool" in path.name:
            # Groups taken from a standby pool get their containers from a container-group profile
            # (2024-05-01-preview); a 2023-05-01 manifest cannot describe them.
            continue
        for name, put in puts.items():
            if name in gets:
                pairs.append((f"{path.relative_to(RECORDINGS)}:{name}", put, gets[name]))
    return pairs


PAIRS = _recorded_pairs()


@pytest.mark.skipif(not PAIRS, reason="../shared/azure/recordings is not available")
@pytest.mark.parametrize(("cassette", "put", "got"), PAIRS, ids=[p[0] for p in PAIRS])
def test_recorded_request_body_equals_recorded_get_response(
    cassette: str, put: dict[str, Any], got: dict[str, Any]
) -> None:
    # The API versions differ between cassettes; the canonical form still projects onto one schema, so
    # a manifest equal to the request body is in sync with what Azure returned.
    del cassette
    assert diff(canonical(put), canonical(got)) == []


# Spec examples whose response echoes the request faithfully. Left out on purpose: the sample response of
# `ContainerGroupsCreateOrUpdate.json` drops the request's identity, subnetIds, logType and metadata, and that
# of `ContainerGroupExtensions.json` drops its Private ipAddress; no recorded real response does that.
FAITHFUL_EXAMPLES = [
    "ContainerGroupEncryptionProperties.json",
    "ContainerGroupCreateConfidential.json",
    "ContainerGroupsCreatePriority.json",
]


@pytest.mark.parametrize("example", FAITHFUL_EXAMPLES)
def test_spec_example_request_equals_its_response(example: str) -> None:
    path = EXAMPLES / example
    if not path.exists():
        pytest.skip("../shared/azure/spec-2023-05-01 is not available")
    data = json.loads(path.read_text(encoding="utf-8"))
    request = data["parameters"]["containerGroup"]
    response = next(r["body"] for code, r in data["responses"].items() if code in ("200", "201"))
    assert diff(canonical(request), canonical(response)) == []


def test_recordings_cover_secrets_and_server_defaults() -> None:
    if not PAIRS:
        pytest.skip("../shared/azure/recordings is not available")
    names = " ".join(p[0] for p in PAIRS)
    # The cassettes that exercise secret stripping, defaults and the generated ccePolicy are among them.
    for needed in ("test_container_create.yaml", "with_acr", "confidential_sku", "with_zone", "export"):
        assert needed in names


def test_read_only_and_unknown_fields_are_dropped() -> None:
    body = {
        "id": "/subscriptions/x",
        "name": "web",
        "type": "Microsoft.ContainerInstance/containerGroups",
        "location": "westus",
        "properties": {
            "provisioningState": "Succeeded",
            "isCustomProvisioningTimeout": False,
            "provisioningTimeoutInSeconds": 1800,
            "instanceView": {"state": "Running"},
            "containers": [{"name": "c", "properties": {"image": "i", "instanceView": {"restartCount": 1}}}],
            "ipAddress": {"type": "Public", "fqdn": "x.westus.azurecontainer.io", "ports": [{"port": 80}]},
        },
        "identity": {"type": "SystemAssigned", "principalId": "p", "tenantId": "t"},
    }
    assert canonical(body) == {
        "location": "westus",
        "identity": {"type": "SystemAssigned"},
        "properties": {
            "containers": {"c": {"properties": {"image": "i"}}},
            "restartPolicy": "Always",
            "ipAddress": {"ports": {"80": {"protocol": "TCP"}}, "type": "Public"},
            "sku": "Standard",
        },
    }


@pytest.mark.parametrize(
    ("manifest_ip", "live_ip"),
    [
        # Omitted in the PUT, `Unsecure` in Azure's answer (test_container_create_with_auto_gen_dnl_scope).
        (
            {"dnsNameLabel": "web-a"},
            {"dnsNameLabel": "web-a", "autoGeneratedDomainNameLabelScope": "Unsecure"},
        ),
        # Sent, then left out of the GET (test_container_attach).
        (
            {"dnsNameLabel": "web-a", "autoGeneratedDomainNameLabelScope": "Unsecure"},
            {"dnsNameLabel": "web-a"},
        ),
        # Any case Azure answers in.
        (
            {"dnsNameLabel": "web-a", "autoGeneratedDomainNameLabelScope": "TenantReuse"},
            {"dnsNameLabel": "web-a", "autoGeneratedDomainNameLabelScope": "tenantReuse"},
        ),
        # No label: Azure drops the scope, so a scope stated without one is no difference.
        ({"autoGeneratedDomainNameLabelScope": "TenantReuse"}, {}),
    ],
)
def test_label_scope_server_default_equals_omitted(
    manifest_ip: dict[str, Any], live_ip: dict[str, Any]
) -> None:
    def body(ip: dict[str, Any]) -> dict[str, Any]:
        return {"location": "westus", "properties": {"ipAddress": {"type": "Public", **ip}}}

    assert canonical(body(manifest_ip)) == canonical(body(live_ip))


def test_a_different_label_scope_is_a_difference() -> None:
    def body(scope: str) -> dict[str, Any]:
        ip = {"type": "Public", "dnsNameLabel": "web-a", "autoGeneratedDomainNameLabelScope": scope}
        return {"location": "westus", "properties": {"ipAddress": ip}}

    assert canonical(body("TenantReuse")) != canonical(body("Unsecure"))


def test_numbers_compare_by_value_whatever_their_json_type() -> None:
    a = {"properties": {"containers": [{"name": "c", "properties": {"resources": {"requests": {"cpu": 1}}}}]}}
    b = {
        "properties": {"containers": [{"name": "c", "properties": {"resources": {"requests": {"cpu": 1.0}}}}]}
    }
    c = {
        "properties": {"containers": [{"name": "c", "properties": {"resources": {"requests": {"cpu": "1"}}}}]}
    }
    assert canonical(a) == canonical(b) == canonical(c)
    half = {
        "properties": {"containers": [{"name": "c", "properties": {"resources": {"requests": {"cpu": 0.5}}}}]}
    }
    assert canonical(half) != canonical(a)


def test_enum_case_and_location_spelling_do_not_matter() -> None:
    a = {"location": "West Europe", "properties": {"osType": "linux", "restartPolicy": "onfailure"}}
    b = {"location": "westeurope", "properties": {"osType": "Linux", "restartPolicy": "OnFailure"}}
    assert canonical(a) == canonical(b)
    assert canonical(a)["properties"]["restartPolicy"] == "OnFailure"


def test_omitted_fields_equal_the_defaults_azure_fills() -> None:
    bare = {
        "properties": {"containers": [{"name": "c", "properties": {"image": "i", "ports": [{"port": 80}]}}]}
    }
    full = {
        "properties": {
            "sku": "Standard",
            "restartPolicy": "Always",
            "initContainers": [],
            "imageRegistryCredentials": [],
            "containers": [
                {
                    "name": "c",
                    "properties": {
                        "image": "i",
                        "command": [],
                        "environmentVariables": [],
                        "ports": [{"port": 80, "protocol": "TCP"}],
                        "securityContext": {"capabilities": {}},
                    },
                }
            ],
        }
    }
    assert canonical(bare) == canonical(full)


def test_keyed_lists_ignore_order_but_command_keeps_it() -> None:
    def group(envs: list[dict[str, str]], command: list[str]) -> dict[str, Any]:
        return {
            "properties": {
                "containers": [
                    {
                        "name": "c",
                        "properties": {"image": "i", "environmentVariables": envs, "command": command},
                    }
                ]
            }
        }

    a = group([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], ["x", "y"])
    b = group([{"name": "B", "value": "2"}, {"name": "A", "value": "1"}], ["x", "y"])
    c = group([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], ["y", "x"])
    assert canonical(a) == canonical(b)
    assert canonical(a) != canonical(c)


def test_containers_and_ports_become_maps_keyed_by_name_and_number() -> None:
    body = {
        "properties": {
            "containers": [
                {"name": "b", "properties": {"image": "i"}},
                {"name": "a", "properties": {"image": "j"}},
            ],
            "ipAddress": {
                "type": "Public",
                "ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}, {"port": 80}],
            },
        }
    }
    props = canonical(body)["properties"]
    assert list(props["containers"]) == ["b", "a"]  # the manifest's order, for numeric ignore pointers
    assert props["ipAddress"]["ports"] == {
        "53:UDP": {"protocol": "UDP"},
        "53:TCP": {"protocol": "TCP"},
        "80": {"protocol": "TCP"},
    }


def test_secure_env_var_is_a_marker_on_both_sides_and_differs_from_a_plain_one() -> None:
    def group(env: dict[str, str]) -> dict[str, Any]:
        return {"properties": {"containers": [{"name": "c", "properties": {"environmentVariables": [env]}}]}}

    manifest_side = canonical(group({"name": "DB_PASSWORD", "secureValue": "hunter2"}))
    get_side = canonical(group({"name": "DB_PASSWORD"}))
    plain = canonical(group({"name": "DB_PASSWORD", "value": "hunter2"}))
    assert manifest_side == get_side
    env = manifest_side["properties"]["containers"]["c"]["properties"]["environmentVariables"]
    assert env == {"DB_PASSWORD": SECURE}
    assert manifest_side != plain
    assert "hunter2" not in json.dumps(manifest_side)


def test_secret_fields_never_reach_the_canonical_form() -> None:
    body = {
        "properties": {
            "imageRegistryCredentials": [{"server": "Reg.azurecr.io", "username": "u", "password": "pw-1"}],
            "volumes": [
                {"name": "s", "secret": {"k": "c2VjcmV0"}},
                {
                    "name": "f",
                    "azureFile": {"shareName": "s", "storageAccountName": "a", "storageAccountKey": "key-1"},
                },
            ],
            "diagnostics": {"logAnalytics": {"workspaceId": "w", "workspaceKey": "wk-1"}},
            "extensions": [
                {"name": "e", "properties": {"extensionType": "t", "protectedSettings": {"x": "ps-1"}}}
            ],
        }
    }
    out = json.dumps(canonical(body))
    for secret in ("pw-1", "c2VjcmV0", "key-1", "wk-1", "ps-1"):
        assert secret not in out
    props = canonical(body)["properties"]
    assert props["volumes"]["s"] == {"secret": SECURE}
    assert list(props["imageRegistryCredentials"]) == ["reg.azurecr.io"]


def test_arm_ids_compare_case_insensitively() -> None:
    a = {"properties": {"subnetIds": [{"id": "/subscriptions/S/resourceGroups/RG/providers/x/subnets/A"}]}}
    b = {"properties": {"subnetIds": [{"id": "/subscriptions/s/resourcegroups/rg/providers/x/subnets/a"}]}}
    assert canonical(a) == canonical(b)


def test_zones_are_a_set() -> None:
    assert canonical({"zones": ["2", "1"]}) == canonical({"zones": ["1", "2"]})


def test_identity_none_equals_no_identity() -> None:
    assert canonical({"identity": {"type": "None"}}) == canonical({})
    uai = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i"
    a = {"identity": {"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": {uai: {}}}}
    b = {
        "identity": {
            "type": "SystemAssigned, UserAssigned",
            "principalId": "p",
            "userAssignedIdentities": {uai.upper(): {"principalId": "p", "clientId": "c"}},
        }
    }
    assert canonical(a) == canonical(b)


def test_canonical_is_idempotent_on_a_rich_body() -> None:
    path = EXAMPLES / "ContainerGroupsCreateOrUpdate.json"
    if not path.exists():
        pytest.skip("../shared/azure/spec-2023-05-01 is not available")
    request = json.loads(path.read_text(encoding="utf-8"))["parameters"]["containerGroup"]
    once = canonical(request)
    assert canonical(once) == once


@pytest.mark.skipif(not PAIRS, reason="../shared/azure/recordings is not available")
@pytest.mark.parametrize(("cassette", "put", "got"), PAIRS, ids=[p[0] for p in PAIRS])
def test_manifest_equal_to_recorded_request_is_noop_against_recorded_response(
    cassette: str, put: dict[str, Any], got: dict[str, Any]
) -> None:
    # End to end through the manifest model: the request body as a manifest, the GET as the live group
    # (carrying the tags this reconciler would have written when it applied that manifest).
    data = copy.deepcopy(put)
    for container in data["properties"]["containers"]:
        # `configMap: {keyValuePairs: {}}` (with_acr, api 2024-05-01-preview) is empty and not 2023-05-01.
        if container["properties"].get("configMap") == {"keyValuePairs": {}}:
            del container["properties"]["configMap"]
    data["name"] = got["name"]
    data["resourceGroup"] = "clitest.rg000001"
    group = DesiredGroup(manifest=parse_manifest(data), source=cassette)
    tags = write_tags_for(group, instance="ci", revision="r1", secret_key=b"k")
    live = ObservedGroup(resource_group="clitest.rg000001", name=got["name"], body=got, tags=tags)
    change = diff_group(group, live, instance="ci", revision="r2", secret_key=b"k")
    assert change.action is Action.NOOP, change.changed_paths


# Every field the manifest model can state, at once (values chosen to be distinct from the defaults).
UAI = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i"
RICH: dict[str, Any] = {
    "name": "rich",
    "resourceGroup": "rg",
    "location": "westeurope",
    "zones": ["2"],
    "identity": {"type": "UserAssigned", "userAssignedIdentities": {UAI: {}}},
    "properties": {
        "osType": "Linux",
        "restartPolicy": "OnFailure",
        "sku": "Confidential",
        "priority": "Regular",
        "confidentialComputeProperties": {"ccePolicy": "cG9saWN5"},
        "encryptionProperties": {
            "vaultBaseUrl": "https://kv.vault.azure.net",
            "keyName": "k",
            "keyVersion": "v1",
            "identity": UAI,
        },
        "containers": [
            {
                "name": "app",
                "properties": {
                    "image": "app:1",
                    "command": ["run", "--fast"],
                    "ports": [{"port": 8080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}],
                    "environmentVariables": [{"name": "A", "value": "1"}, {"name": "S", "secureValue": "sv"}],
                    "resources": {
                        "requests": {"cpu": 2, "memoryInGB": 4},
                        "limits": {"cpu": 2, "memoryInGB": 4},
                    },
                    "volumeMounts": [{"name": "repo", "mountPath": "/src", "readOnly": True}],
                    "livenessProbe": {
                        "httpGet": {
                            "path": "/h",
                            "port": 8080,
                            "scheme": "http",
                            "httpHeaders": [{"name": "X", "value": "y"}],
                        },
                        "initialDelaySeconds": 5,
                        "periodSeconds": 10,
                        "failureThreshold": 3,
                        "successThreshold": 1,
                        "timeoutSeconds": 2,
                    },
                    "readinessProbe": {"exec": {"command": ["cat", "/ready"]}, "periodSeconds": 7},
                    "securityContext": {
                        "privileged": False,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                        "runAsGroup": 1000,
                        "runAsUser": 1000,
                        "seccompProfile": "cHJvZmlsZQ==",
                    },
                },
            }
        ],
        "initContainers": [
            {
                "name": "init",
                "properties": {
                    "image": "busybox",
                    "command": ["true"],
                    "environmentVariables": [{"name": "I", "value": "2"}],
                    "volumeMounts": [{"name": "repo", "mountPath": "/i"}],
                    "securityContext": {"runAsUser": 1},
                },
            }
        ],
        "imageRegistryCredentials": [
            {"server": "reg.azurecr.io", "username": "u", "password": "p"},
            {"server": "id.azurecr.io", "identity": UAI, "identityUrl": "https://id"},
        ],
        "ipAddress": {
            "type": "Public",
            "ports": [{"port": 8080}],
            "dnsNameLabel": "rich-app",
            "autoGeneratedDomainNameLabelScope": "TenantReuse",
        },
        "volumes": [
            {
                "name": "repo",
                "gitRepo": {"repository": "https://github.com/x/y", "directory": "d", "revision": "abc"},
            },
            {
                "name": "share",
                "azureFile": {
                    "shareName": "s",
                    "storageAccountName": "a",
                    "storageAccountKey": "k",
                    "readOnly": True,
                },
            },
        ],
        "diagnostics": {
            "logAnalytics": {
                "workspaceId": "w",
                "workspaceKey": "wk",
                "logType": "ContainerInstanceLogs",
                "metadata": {"m": "v"},
            }
        },
        "subnetIds": [
            {
                "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v"
                "/subnets/a",
                "name": "a",
            }
        ],
        "dnsConfig": {
            "nameServers": ["10.0.0.10", "10.0.0.11"],
            "searchDomains": "svc.local",
            "options": "ndots:2",
        },
        "extensions": [
            {
                "name": "kube-proxy",
                "properties": {
                    "extensionType": "kube-proxy",
                    "version": "1.0",
                    "settings": {"clusterCidr": "10.240.0.0/16"},
                    "protectedSettings": {"kubeConfig": "c2VjcmV0"},
                },
            }
        ],
    },
}


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, (*path, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))]
    return [path]


def _mutated(body: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    out = copy.deepcopy(body)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    value = node[path[-1]]
    if isinstance(value, bool):
        node[path[-1]] = not value
    elif isinstance(value, (int, float)):
        node[path[-1]] = value + 1
    else:
        node[path[-1]] = f"{value}x9"
    return out


def test_no_field_the_model_emits_is_lost_by_normalisation() -> None:
    # If canonical() dropped a field the model writes, a change to it would never be planned.
    body = parse_manifest(RICH).to_arm_body(reveal_secrets=False)
    reference = canonical(body)
    leaves = [p for p in _leaves(body) if p[0] != "tags"]
    assert len(leaves) > 60
    lost = [p for p in leaves if canonical(_mutated(body, p)) == reference]
    assert lost == []
