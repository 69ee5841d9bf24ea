"""What Azure would reject is rejected, each with a message that says what and how to fix it, at a loc that
is the path in the input document; and what ARM accepts loosely (key case, string numbers, enum case,
`tags: null`) is accepted."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from reconciler.model.manifest import GroupManifest, parse_manifest
from tests.model.material import base_doc

Doc = dict[str, Any]
C0 = ("properties", "containers", 0, "properties")
USER_ID = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/i"


def _container(doc: Doc, i: int = 0) -> Doc:
    props: Doc = doc["properties"]["containers"][i]["properties"]
    return props


def _errors(doc: Doc) -> list[ErrorDetails]:
    with pytest.raises(ValidationError) as info:
        parse_manifest(doc)
    return info.value.errors()


def _one_error(doc: Doc) -> tuple[tuple[Any, ...], str]:
    errors = _errors(doc)
    assert len(errors) == 1, errors
    return tuple(errors[0]["loc"]), errors[0]["msg"]


def _set(path: tuple[Any, ...], value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        node = doc
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value

    return mutate


def _delete(path: tuple[Any, ...]) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        node = doc
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]

    return mutate


def _add_container(name: str, **props: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        body = {"image": "busybox", "resources": {"requests": {"cpu": 0.5, "memoryInGB": 0.5}}, **props}
        doc["properties"]["containers"].append({"name": name, "properties": body})

    return mutate


def _both(first: Callable[[Doc], None], second: Callable[[Doc], None]) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        first(doc)
        second(doc)

    return mutate


def _volumes(*volumes: Doc) -> Callable[[Doc], None]:
    return _set(("properties", "volumes"), list(volumes))


SECRET_VOLUME = {"name": "certs", "secret": {"tls.crt": "aGVsbG8="}}

# (id, mutation, expected loc, words the message must contain)
REJECTIONS: list[tuple[str, Callable[[Doc], None], tuple[Any, ...], tuple[str, ...]]] = [
    ("group name underscore", _set(("name",), "my_Group"), ("name",), ("'my_Group'", "letters")),
    ("group name double dash", _set(("name",), "web--prod"), ("name",), ("'--'",)),
    ("group name trailing dash", _set(("name",), "web-"), ("name",), ("ending",)),
    ("group name too long", _set(("name",), "a" * 64), ("name",), ("1-63",)),
    # A YAML block scalar (`name: |`) ends in a newline, which a name pattern ending in '$' lets through.
    ("group name ending in a newline", _set(("name",), "web\n"), ("name",), ("'web\\n'",)),
    ("resource group ending in a newline", _set(("resourceGroup",), "rg\n"), ("resourceGroup",), ("1-90",)),
    (
        "container name ending in a newline",
        _set(("properties", "containers", 0, "name"), "web\n"),
        ("properties", "containers", 0, "name"),
        ("lowercase",),
    ),
    (
        "dns label ending in a newline",
        _set(
            ("properties", "ipAddress"),
            {"type": "Public", "ports": [{"port": 80}], "dnsNameLabel": "web-prod\n"},
        ),
        ("properties", "ipAddress", "dnsNameLabel"),
        ("5-63",),
    ),
    (
        "container name uppercase",
        _set(("properties", "containers", 0, "name"), "Web"),
        ("properties", "containers", 0, "name"),
        ("container name 'Web'", "lowercase"),
    ),
    (
        "container name underscore",
        _set(("properties", "containers", 0, "name"), "my_app"),
        ("properties", "containers", 0, "name"),
        ("'my_app'",),
    ),
    (
        "resource group trailing dot",
        _set(("resourceGroup",), "rg."),
        ("resourceGroup",),
        ("not ending with '.'",),
    ),
    ("resource group bad char", _set(("resourceGroup",), "rg/prod"), ("resourceGroup",), ("1-90",)),
    ("resource group too long", _set(("resourceGroup",), "r" * 91), ("resourceGroup",), ("1-90",)),
    ("location missing", _delete(("location",)), ("location",), ("required", "westeurope")),
    ("resource group missing", _delete(("resourceGroup",)), ("resourceGroup",), ("--resource-group",)),
    ("osType missing", _delete(("properties", "osType")), ("properties", "osType"), ("osType: Linux",)),
    (
        "no containers",
        _set(("properties", "containers"), []),
        ("properties", "containers"),
        ("at least one",),
    ),
    ("image missing", _delete((*C0, "image")), (*C0, "image"), ("required",)),
    ("resources missing", _delete((*C0, "resources")), (*C0, "resources"), ("cpu", "memoryInGB")),
    (
        "cpu zero",
        _set((*C0, "resources", "requests", "cpu"), 0),
        (*C0, "resources", "requests", "cpu"),
        ("cpu 0", "0.01-32"),
    ),
    (
        "memory negative",
        _set((*C0, "resources", "requests", "memoryInGB"), -1),
        (*C0, "resources", "requests", "memoryInGB"),
        ("memoryInGB -1", "0.1-256"),
    ),
    (
        "memory not a tenth",
        _set((*C0, "resources", "requests", "memoryInGB"), 1.25),
        (*C0, "resources", "requests", "memoryInGB"),
        ("multiple of 0.1", "1.2", "1.3"),
    ),
    (
        "gpu sku",
        _set((*C0, "resources", "requests", "gpu"), {"count": 1, "sku": "A100"}),
        (*C0, "resources", "requests", "gpu", "sku"),
        ("'K80'", "'V100'"),
    ),
    (
        "gpu count",
        _set((*C0, "resources", "requests", "gpu"), {"count": 3, "sku": "V100"}),
        (*C0, "resources", "requests", "gpu"),
        ("1, 2 or 4",),
    ),
    (
        "cpu limit below request",
        _set((*C0, "resources", "limits"), {"cpu": 0.5}),
        (*C0, "resources", "limits", "cpu"),
        ("below the request",),
    ),
    (
        "cpu limit above group total",
        _set((*C0, "resources", "limits"), {"cpu": 2}),
        (*C0, "resources", "limits", "cpu"),
        ("group's total cpu request 1",),
    ),
    (
        "port zero",
        _set((*C0, "ports"), [{"port": 0}]),
        (*C0, "ports", 0, "port"),
        ("port 0", "1-65535"),
    ),
    ("port too big", _set((*C0, "ports"), [{"port": 70000}]), (*C0, "ports", 0, "port"), ("65535",)),
    (
        "port not a number",
        _set((*C0, "ports"), [{"port": "http"}]),
        (*C0, "ports", 0, "port"),
        ("'http'", "not a number"),
    ),
    (
        "protocol",
        _set((*C0, "ports"), [{"port": 80, "protocol": "SCTP"}]),
        (*C0, "ports", 0, "protocol"),
        ("'TCP' or 'UDP'", "case does not matter"),
    ),
    ("duplicate container", _add_container("web"), ("properties", "containers", 1, "name"), ("used twice",)),
    (
        "duplicate env",
        _set((*C0, "environmentVariables"), [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]),
        (*C0, "environmentVariables", 1, "name"),
        ("'A'", "used twice"),
    ),
    (
        "env without value",
        _set((*C0, "environmentVariables"), [{"name": "A"}]),
        (*C0, "environmentVariables", 0),
        ("no value", "secureValueFrom"),
    ),
    (
        "env value and secure value",
        _set((*C0, "environmentVariables"), [{"name": "A", "value": "1", "secureValue": "2"}]),
        (*C0, "environmentVariables", 0),
        ("more than one",),
    ),
    (
        "env boolean value",
        _set((*C0, "environmentVariables"), [{"name": "A", "value": True}]),
        (*C0, "environmentVariables", 0, "value"),
        ("quote",),
    ),
    (
        "secret ref with both",
        _set((*C0, "environmentVariables"), [{"name": "A", "secureValueFrom": {"env": "A", "file": "f"}}]),
        (*C0, "environmentVariables", 0, "secureValueFrom"),
        ("exactly one of 'env' or 'file'",),
    ),
    (
        "secret ref bad env name",
        _set((*C0, "environmentVariables"), [{"name": "A", "secureValueFrom": {"env": "1-X"}}]),
        (*C0, "environmentVariables", 0, "secureValueFrom"),
        ("not an environment variable name",),
    ),
    (
        "mount of undeclared volume",
        _set((*C0, "volumeMounts"), [{"name": "data", "mountPath": "/data"}]),
        (*C0, "volumeMounts", 0, "name"),
        ("'data'", "properties.volumes"),
    ),
    (
        "mount path with colon",
        _both(
            _volumes(SECRET_VOLUME),
            _set((*C0, "volumeMounts"), [{"name": "certs", "mountPath": "c:/x"}]),
        ),
        (*C0, "volumeMounts", 0),
        ("':'",),
    ),
    (
        "two volume kinds",
        _volumes({"name": "v", "emptyDir": {}, "secret": {}}),
        ("properties", "volumes", 0),
        ("exactly one of", "emptyDir, secret"),
    ),
    ("no volume kind", _volumes({"name": "v"}), ("properties", "volumes", 0), ("got none",)),
    (
        "duplicate volume",
        _volumes({"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}),
        ("properties", "volumes", 1, "name"),
        ("used twice",),
    ),
    (
        "secret volume not base64",
        _volumes({"name": "v", "secret": {"a": "not base64!"}}),
        ("properties", "volumes", 0, "secret", "a"),
        ("base64",),
    ),
    (
        "azure file without account",
        _volumes({"name": "v", "azureFile": {"shareName": "s"}}),
        ("properties", "volumes", 0, "azureFile", "storageAccountName"),
        ("required",),
    ),
    (
        "git repo dotdot",
        _volumes({"name": "v", "gitRepo": {"repository": "https://x/y.git", "directory": "../x"}}),
        ("properties", "volumes", 0, "gitRepo"),
        ("'..'",),
    ),
    (
        "public ip without ports",
        _set(("properties", "ipAddress"), {"type": "Public"}),
        ("properties", "ipAddress", "ports"),
        ("required", "[{port: 80}]"),
    ),
    (
        "ip type wrong",
        _set(("properties", "ipAddress"), {"type": "Internet", "ports": [{"port": 80}]}),
        ("properties", "ipAddress", "type"),
        ("'Public' or 'Private'",),
    ),
    (
        "private ip without subnet",
        _set(("properties", "ipAddress"), {"type": "Private", "ports": [{"port": 80}]}),
        ("properties", "ipAddress", "type"),
        ("subnetIds",),
    ),
    (
        "dns label too short",
        _set(("properties", "ipAddress"), {"type": "Public", "ports": [{"port": 80}], "dnsNameLabel": "web"}),
        ("properties", "ipAddress", "dnsNameLabel"),
        ("5-63",),
    ),
    (
        "dns label starting with digit",
        _set(
            ("properties", "ipAddress"),
            {"type": "Public", "ports": [{"port": 80}], "dnsNameLabel": "1web-prod"},
        ),
        ("properties", "ipAddress", "dnsNameLabel"),
        ("starting with a letter",),
    ),
    (
        "dns label on private ip",
        _set(
            ("properties", "ipAddress"),
            {"type": "Private", "ports": [{"port": 80}], "dnsNameLabel": "web-prod"},
        ),
        ("properties", "ipAddress"),
        ("public IP",),
    ),
    (
        "restart policy",
        _set(("properties", "restartPolicy"), "Sometimes"),
        ("properties", "restartPolicy"),
        ("'Always', 'OnFailure' or 'Never'",),
    ),
    (
        "windows with two containers",
        _both(_set(("properties", "osType"), "Windows"), _add_container("side")),
        ("properties", "containers"),
        ("Linux only",),
    ),
    (
        "gpu on windows",
        _both(
            _set(("properties", "osType"), "Windows"),
            _set((*C0, "resources", "requests", "gpu"), {"count": 1, "sku": "K80"}),
        ),
        ("properties", "osType"),
        ("Linux",),
    ),
    (
        "registry with scheme",
        _set(
            ("properties", "imageRegistryCredentials"),
            [{"server": "https://r.io", "username": "u", "password": "p"}],
        ),
        ("properties", "imageRegistryCredentials", 0),
        ("'r.io'",),
    ),
    (
        "registry without credentials",
        _set(("properties", "imageRegistryCredentials"), [{"server": "r.io", "username": "u"}]),
        ("properties", "imageRegistryCredentials", 0),
        ("passwordFrom", "identity"),
    ),
    (
        "registry identity not on group",
        _set(
            ("properties", "imageRegistryCredentials"),
            [
                {
                    "server": "r.io",
                    "identity": USER_ID,
                }
            ],
        ),
        ("properties", "imageRegistryCredentials", 0, "identity"),
        ("userAssignedIdentities",),
    ),
    (
        "user identity without ids",
        _set(("identity",), {"type": "UserAssigned"}),
        ("identity",),
        ("userAssignedIdentities",),
    ),
    (
        "identity id malformed",
        _set(("identity",), {"type": "UserAssigned", "userAssignedIdentities": {"my-id": {}}}),
        ("identity",),
        ("resource ID",),
    ),
    (
        "log analytics without key",
        _set(("properties", "diagnostics"), {"logAnalytics": {"workspaceId": "w"}}),
        ("properties", "diagnostics", "logAnalytics"),
        ("workspaceKeyFrom",),
    ),
    (
        "dns config without servers",
        _set(("properties", "dnsConfig"), {"nameServers": []}),
        ("properties", "dnsConfig", "nameServers"),
        ("at least one",),
    ),
    ("sku", _set(("properties", "sku"), "Premium"), ("properties", "sku"), ("'Standard'",)),
    (
        "cce policy without confidential sku",
        _set(("properties", "confidentialComputeProperties"), {"ccePolicy": "e30="}),
        ("properties", "confidentialComputeProperties"),
        ("sku: Confidential",),
    ),
    (
        "probe without action",
        _set((*C0, "livenessProbe"), {"periodSeconds": 5}),
        (*C0, "livenessProbe"),
        ("exactly one of 'exec' or 'httpGet'",),
    ),
    (
        "probe period zero",
        _set((*C0, "livenessProbe"), {"exec": {"command": ["true"]}, "periodSeconds": 0}),
        (*C0, "livenessProbe", "periodSeconds"),
        ("0", "1-2147483647"),
    ),
    ("two zones", _set(("zones",), ["1", "2"]), ("zones",), ("one availability zone",)),
    ("tag name forbidden char", _set(("tags",), {"a/b": "x"}), ("tags", "a/b"), ("tag name",)),
    ("tag value too long", _set(("tags",), {"a": "x" * 257}), ("tags", "a"), ("256",)),
    ("wrong resource type", _set(("type",), "Microsoft.Web/sites"), ("type",), ("not a container group",)),
    ("api version malformed", _set(("apiVersion",), "latest"), ("apiVersion",), ("pattern",)),
    (
        "unknown key suggests",
        _set((*C0, "resources", "requests", "memory"), 1),
        (*C0, "resources", "requests", "memory"),
        ("unknown key 'memory'", "did you mean 'memoryInGB'?"),
    ),
    ("unknown top-level key", _set(("sku",), "Standard"), ("sku",), ("unknown key 'sku'",)),
    (
        "key of a later api-version",
        _set((*C0, "configMap"), {"keyValuePairs": {}}),
        (*C0, "configMap"),
        ("2024-05-01-preview", "remove it"),
    ),
    (
        "same key twice in different case",
        _set((*C0, "Image"), "nginx"),
        (*C0, "Image"),
        ("case-insensitive",),
    ),
    (
        "ignore pointer syntax",
        _set(("reconcile",), {"ignore": ["properties/containers"]}),
        ("reconcile", "ignore", 0),
        ("must start with '/'",),
    ),
    (
        "ignore pointer escape",
        _set(("reconcile",), {"ignore": ["/tags/a~2b"]}),
        ("reconcile", "ignore", 0),
        ("'~0'",),
    ),
    (
        "recreate value",
        _set(("reconcile",), {"recreate": "always"}),
        ("reconcile", "recreate"),
        ("'auto' or 'never'",),
    ),
    (
        "policy unknown key",
        _set(("reconcile",), {"failIfExist": False}),
        ("reconcile", "failIfExist"),
        ("did you mean 'failIfExists'?",),
    ),
]


@pytest.mark.parametrize(
    ("mutate", "loc", "words"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS]
)
def test_azure_rule_is_enforced_with_a_precise_message_at_the_input_loc(
    mutate: Callable[[Doc], None], loc: tuple[Any, ...], words: tuple[str, ...]
) -> None:
    doc = base_doc()
    mutate(doc)
    got_loc, msg = _one_error(doc)
    assert got_loc == loc, msg
    for word in words:
        assert word in msg


def test_sixty_one_containers_are_too_many() -> None:
    doc = base_doc()
    for i in range(60):
        _add_container(f"c{i}")(doc)
    doc["properties"]["containers"][0]["properties"]["ports"] = []
    assert _one_error(doc) == (("properties", "containers"), "61 containers: ACI allows at most 60 per group")


def test_twenty_one_volumes_are_too_many() -> None:
    doc = base_doc()
    _volumes(*({"name": f"v{i}", "emptyDir": {}} for i in range(21)))(doc)
    loc, msg = _one_error(doc)
    assert loc == ("properties", "volumes")
    assert "at most 20" in msg


def test_errors_are_all_reported_at_once() -> None:
    doc = base_doc()
    doc["name"] = "Bad_Name"
    doc["properties"]["containers"][0]["properties"]["ports"] = [{"port": 0}]
    doc["properties"]["restartPolicy"] = "Sometimes"
    locs = {tuple(e["loc"]) for e in _errors(doc)}
    assert {
        ("properties", "containers", 0, "properties", "ports", 0, "port"),
        ("properties", "restartPolicy"),
    } <= locs


def test_container_names_may_contain_double_dashes_unlike_group_names() -> None:
    doc = base_doc()
    doc["properties"]["containers"][0]["name"] = "single--container"
    assert parse_manifest(doc).properties.containers[0].name == "single--container"


def test_loc_uses_the_key_spelling_of_the_input() -> None:
    doc = base_doc()
    doc["Properties"] = doc.pop("properties")
    doc["Properties"]["containers"][0]["properties"]["Resources"] = {"requests": {"CPU": 0, "memoryingb": 1}}
    del doc["Properties"]["containers"][0]["properties"]["resources"]
    loc, _ = _one_error(doc)
    assert loc == ("Properties", "containers", 0, "properties", "Resources", "requests", "CPU")


def test_keys_are_accepted_in_any_case_and_canonicalised() -> None:
    doc = {
        "NAME": "web",
        "resourcegroup": "rg",
        "Location": "westeurope",
        "PROPERTIES": {
            "ostype": "linux",
            "RestartPolicy": "onfailure",
            "containers": [
                {
                    "Name": "web",
                    "Properties": {
                        "IMAGE": "nginx",
                        "resources": {"Requests": {"Cpu": 1, "memoryInGb": 1.5}},
                        "EnvironmentVariables": [{"NAME": "A", "Value": "1"}],
                        "Ports": [{"Port": 80, "Protocol": "udp"}],
                    },
                }
            ],
            "IPADDRESS": {
                "Type": "public",
                "Ports": [{"Port": 80, "Protocol": "udp"}],
                "DNSNameLabel": "web-prod",
            },
        },
        "Reconcile": {"FailIfExists": False, "recreate": "NEVER"},
    }
    m = parse_manifest(doc)
    body = m.to_arm_body(reveal_secrets=False)
    props = body["properties"]
    assert props["osType"] == "Linux"
    assert props["restartPolicy"] == "OnFailure"
    assert props["containers"][0]["properties"]["resources"] == {"requests": {"memoryInGB": 1.5, "cpu": 1.0}}
    assert props["ipAddress"] == {
        "ports": [{"port": 80, "protocol": "UDP"}],
        "type": "Public",
        "dnsNameLabel": "web-prod",
    }
    assert m.policy.fail_if_exists is False
    assert m.policy.recreate == "never"


def test_numbers_written_as_strings_become_numbers() -> None:
    doc = base_doc()
    c = _container(doc)
    c["ports"] = [{"port": "8080"}]
    c["resources"] = {"requests": {"cpu": "0.5", "memoryInGB": "2"}, "limits": {"cpu": "0.5"}}
    c["environmentVariables"] = [{"name": "PORT", "value": 8080}, {"name": "RATIO", "value": 0.5}]
    body = parse_manifest(doc).to_arm_body(reveal_secrets=False)["properties"]["containers"][0]["properties"]
    assert body["ports"] == [{"port": 8080}]
    assert body["resources"] == {"requests": {"memoryInGB": 2.0, "cpu": 0.5}, "limits": {"cpu": 0.5}}
    assert isinstance(body["resources"]["requests"]["cpu"], float)
    assert body["environmentVariables"] == [
        {"name": "PORT", "value": "8080"},
        {"name": "RATIO", "value": "0.5"},
    ]


def test_enum_values_are_accepted_in_any_case_and_written_canonically() -> None:
    doc = base_doc()
    doc["properties"].update(
        {"osType": "LINUX", "sku": "standard", "priority": "spot", "restartPolicy": "never"}
    )
    doc["identity"] = {
        "type": "systemassigned,userassigned",
        "userAssignedIdentities": {USER_ID.lower(): {}},
    }
    _container(doc)["livenessProbe"] = {"httpGet": {"port": 80, "scheme": "HTTPS"}}
    m = parse_manifest(doc)
    body = m.to_arm_body(reveal_secrets=False)
    assert (body["properties"]["osType"], body["properties"]["sku"], body["properties"]["priority"]) == (
        "Linux",
        "Standard",
        "Spot",
    )
    assert body["identity"]["type"] == "SystemAssigned, UserAssigned"
    assert body["properties"]["containers"][0]["properties"]["livenessProbe"]["httpGet"]["scheme"] == "https"


def test_tags_null_means_no_tags_and_numeric_tag_values_become_text() -> None:
    doc = base_doc()
    doc["tags"] = None
    assert parse_manifest(doc).tags == {}
    doc["tags"] = {"version": 1.5, "build": 42}
    assert parse_manifest(doc).tags == {"version": "1.5", "build": "42"}


@pytest.mark.parametrize("value", [datetime.date(2018, 10, 1), "2018-10-01", "2024-05-01-preview"])
def test_api_version_is_accepted_as_a_yaml_date_or_a_string(value: Any) -> None:
    doc = base_doc()
    doc["apiVersion"] = value
    doc["type"] = "microsoft.containerinstance/containergroups"
    m = parse_manifest(doc)
    assert m.api_version == str(value)
    assert m.type_ == "Microsoft.ContainerInstance/containerGroups"


def test_read_only_fields_of_a_get_are_dropped() -> None:
    doc = base_doc()
    doc["id"] = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web"
    doc["properties"]["provisioningState"] = "Succeeded"
    doc["properties"]["instanceView"] = {"state": "Running", "events": []}
    doc["properties"]["ipAddress"] = {
        "type": "Public",
        "ports": [{"port": 80}],
        "ip": "1.2.3.4",
        "fqdn": "x.y",
    }
    _container(doc)["instanceView"] = {"restartCount": 0}
    body = parse_manifest(doc).to_arm_body(reveal_secrets=False)
    assert "id" not in body
    assert "provisioningState" not in body["properties"]
    assert "instanceView" not in body["properties"]["containers"][0]["properties"]
    assert body["properties"]["ipAddress"] == {"ports": [{"port": 80}], "type": "Public"}


def test_arm_body_leaves_out_our_keys_and_omitted_fields() -> None:
    doc = base_doc()
    doc["reconcile"] = {"prune": False}
    doc["apiVersion"] = "2023-05-01"
    body = parse_manifest(doc).to_arm_body(reveal_secrets=True)
    assert set(body) == {"location", "tags", "properties"}
    assert set(body["properties"]) == {"osType", "containers"}
    assert body["properties"]["containers"][0] == {
        "name": "web",
        "properties": {
            "image": "nginx:1.27",
            "ports": [{"port": 80}],
            "resources": {"requests": {"memoryInGB": 1.5, "cpu": 1.0}},
        },
    }


def test_policy_defaults_follow_design() -> None:
    p = parse_manifest(base_doc()).policy
    assert (p.fail_if_exists, p.recreate, p.prune, p.suspend, p.ignore) == (True, "auto", True, False, ())


def test_policy_ignore_accepts_escaped_pointers() -> None:
    doc = base_doc()
    doc["reconcile"] = {"ignore": ["/tags/team~1owner", "/properties/containers/web/properties/image"]}
    assert parse_manifest(doc).policy.ignore == (
        "/tags/team~1owner",
        "/properties/containers/web/properties/image",
    )


def test_model_validate_alone_also_rejects_cross_field_rules() -> None:
    doc = base_doc()
    _add_container("web")(doc)
    with pytest.raises(ValidationError, match="used twice"):
        GroupManifest.model_validate(doc)


def test_manifest_is_immutable() -> None:
    m = parse_manifest(base_doc())
    with pytest.raises(ValidationError):
        m.name = "other"  # type: ignore[misc]  # assigning to a frozen model is the point of the test


@pytest.mark.parametrize("document", [None, [], "name: web", 42])
def test_a_document_that_is_not_a_mapping_is_a_validation_error_at_the_root(document: Any) -> None:
    with pytest.raises(ValidationError) as info:
        parse_manifest(document)
    assert [e["loc"] for e in info.value.errors()] == [()]
