"""Tests of the emulator's spec validator (`reconciler/emulator/spec.py`).

They pin down how a request body is judged (as ARM and the ACI resource provider judge it), how a response is
judged (exactly as the spec spells it, secrets absent), and that Microsoft's own examples and recorded bodies
pass. Microsoft's material is read from `../shared/azure` relative to the project root; those tests skip when
it is absent.
"""

from __future__ import annotations

import ast
import copy
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from reconciler.emulator import spec
from reconciler.emulator.spec import Violation, normalize, response_violations, validate

SHARED = Path(__file__).parents[2].parent / "shared" / "azure"
EXAMPLES = SHARED / "spec-2023-05-01" / "examples"
RECORDINGS = SHARED / "recordings"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"Microsoft's material is not at {SHARED}")


def minimal_group() -> dict[str, Any]:
    return {
        "location": "westeurope",
        "properties": {
            "osType": "Linux",
            "containers": [
                {
                    "name": "web",
                    "properties": {
                        "image": "nginx",
                        "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                    },
                }
            ],
        },
    }


CONTAINER = "/properties/containers/0/properties"


def paths(violations: list[Violation]) -> list[str]:
    return [v.path for v in violations]


# --- requests: what is accepted ---------------------------------------------------------------------------


def test_minimal_group_is_accepted() -> None:
    assert validate("ContainerGroup", minimal_group()) == []


def test_property_names_match_case_insensitively_as_json_net_does() -> None:
    body = minimal_group()
    body["properties"]["containers"][0]["properties"]["resources"]["requests"] = {"CPU": 1, "memoryInGb": 2}
    body["Properties"] = body.pop("properties")
    assert validate("ContainerGroup", body) == []


def test_enum_values_match_case_insensitively() -> None:
    body = minimal_group()
    body["properties"]["osType"] = "linux"
    body["properties"]["restartPolicy"] = "onfailure"
    body["properties"]["ipAddress"] = {"type": "public", "ports": [{"port": 80, "protocol": "tcp"}]}
    body["identity"] = {"type": "systemassigned,userassigned"}
    assert validate("ContainerGroup", body) == []


def test_numbers_given_as_strings_are_accepted() -> None:
    body = minimal_group()
    body["properties"]["containers"][0]["properties"]["resources"]["requests"] = {
        "cpu": "1",
        "memoryInGB": "1.5",
    }
    body["properties"]["containers"][0]["properties"]["ports"] = [{"port": "80"}]
    assert validate("ContainerGroup", body) == []


def test_scalars_given_for_strings_are_accepted_as_their_text() -> None:
    body = minimal_group()
    body["properties"]["containers"][0]["properties"]["environmentVariables"] = [
        {"name": "PORT", "value": 8080},
        {"name": "DEBUG", "value": True},
    ]
    body["tags"] = {"build": 42}
    assert validate("ContainerGroup", body) == []


def test_boolean_strings_are_accepted() -> None:
    body = minimal_group()
    body["properties"]["containers"][0]["properties"]["securityContext"] = {"privileged": "False"}
    assert validate("ContainerGroup", body) == []


def test_null_is_the_same_as_absent() -> None:
    body = minimal_group()
    body["tags"] = None
    body["zones"] = None
    body["properties"]["ipAddress"] = None
    body["properties"]["containers"][0]["properties"]["command"] = None
    assert validate("ContainerGroup", body) == []


def test_unknown_properties_are_ignored_as_arm_ignores_them() -> None:
    body = minimal_group()
    body["apiVersion"] = "2018-10-01"
    body["properties"]["standbyPoolProfile"] = {"id": "x"}
    body["properties"]["containers"][0]["properties"]["configMap"] = {"keyValuePairs": {}}
    assert validate("ContainerGroup", body) == []


def test_read_only_properties_are_ignored_in_requests_even_when_malformed() -> None:
    body = minimal_group()
    body["id"] = ["not", "a", "string"]
    body["type"] = "Microsoft.ContainerInstance/containerGroups"
    body["properties"]["provisioningState"] = 7
    body["properties"]["instanceView"] = "garbage"
    body["properties"]["containers"][0]["properties"]["instanceView"] = {"restartCount": "many"}
    assert validate("ContainerGroup", body) == []


def test_tags_patch_body_validates_against_resource() -> None:
    assert validate("Resource", {"tags": {"team": "payments"}}) == []
    assert paths(validate("Resource", {"tags": {"team": {"nested": 1}}})) == ["/tags/team"]


# --- requests: what is rejected ---------------------------------------------------------------------------


def test_missing_properties_bag_is_invalid_request_content() -> None:
    assert validate("ContainerGroup", {"location": "westeurope"}) == [
        Violation("/properties", "required property 'properties' is missing", "InvalidRequestContent")
    ]


def test_missing_os_type_is_invalid_os_type() -> None:
    body = minimal_group()
    del body["properties"]["osType"]
    [violation] = validate("ContainerGroup", body)
    assert (violation.path, violation.code) == ("/properties/osType", "InvalidOsType")


def test_unknown_os_type_is_invalid_os_type_and_names_the_allowed_values() -> None:
    body = minimal_group()
    body["properties"]["osType"] = "Solaris"
    [violation] = validate("ContainerGroup", body)
    assert violation.code == "InvalidOsType"
    assert "'Windows', 'Linux'" in violation.message


def test_unknown_enum_value_is_rejected_with_its_path() -> None:
    body = minimal_group()
    body["properties"]["restartPolicy"] = "Sometimes"
    assert paths(validate("ContainerGroup", body)) == ["/properties/restartPolicy"]


def test_missing_resource_requests_is_resource_requests_not_specified() -> None:
    body = minimal_group()
    body["properties"]["containers"][0]["properties"]["resources"] = {}
    [violation] = validate("ContainerGroup", body)
    assert violation.path == f"{CONTAINER}/resources/requests"
    assert violation.code == "ResourceRequestsNotSpecified"


def test_missing_cpu_is_reported_at_its_path() -> None:
    body = minimal_group()
    del body["properties"]["containers"][0]["properties"]["resources"]["requests"]["cpu"]
    assert paths(validate("ContainerGroup", body)) == [f"{CONTAINER}/resources/requests/cpu"]


def test_ip_address_without_ports_is_missing_ip_address_ports() -> None:
    body = minimal_group()
    body["properties"]["ipAddress"] = {"type": "Public"}
    [violation] = validate("ContainerGroup", body)
    assert (violation.path, violation.code) == ("/properties/ipAddress/ports", "MissingIpAddressPorts")


def test_cpu_that_is_not_a_number_is_rejected() -> None:
    body = minimal_group()
    body["properties"]["containers"][0]["properties"]["resources"]["requests"]["cpu"] = "lots"
    [violation] = validate("ContainerGroup", body)
    assert violation.path == f"{CONTAINER}/resources/requests/cpu"
    assert violation.code == "InvalidRequestContent"


@pytest.mark.parametrize("port", [80.5, "80.0", "eighty", 2**31, True, [80]])
def test_port_that_is_not_an_int32_is_rejected(port: object) -> None:
    body = minimal_group()
    body["properties"]["containers"][0]["properties"]["ports"] = [{"port": port}]
    assert paths(validate("ContainerGroup", body)) == [f"{CONTAINER}/ports/0/port"]


def test_integral_float_port_is_accepted() -> None:
    body = minimal_group()
    body["properties"]["containers"][0]["properties"]["ports"] = [{"port": 80.0}]
    assert validate("ContainerGroup", body) == []


def test_object_given_for_a_string_is_rejected() -> None:
    body = minimal_group()
    body["properties"]["containers"][0]["properties"]["image"] = {"name": "nginx"}
    assert paths(validate("ContainerGroup", body)) == [f"{CONTAINER}/image"]


def test_string_given_for_an_array_is_rejected() -> None:
    body = minimal_group()
    body["properties"]["containers"][0]["properties"]["command"] = "/bin/sh -c true"
    assert paths(validate("ContainerGroup", body)) == [f"{CONTAINER}/command"]


def test_null_array_element_is_rejected() -> None:
    body = minimal_group()
    body["properties"]["containers"].append(None)
    assert paths(validate("ContainerGroup", body)) == ["/properties/containers/1"]


def test_body_that_is_not_an_object_is_rejected_at_the_root() -> None:
    assert paths(validate("ContainerGroup", [1, 2])) == [""]


def test_map_keys_with_slashes_are_escaped_in_the_pointer() -> None:
    key = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id"
    body = minimal_group()
    body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {key: "not an object"}}
    expected = "/identity/userAssignedIdentities/" + key.replace("/", "~1")
    assert paths(validate("ContainerGroup", body)) == [expected]


def test_every_violation_of_a_body_is_reported_not_just_the_first() -> None:
    body = minimal_group()
    body["properties"]["osType"] = "Plan9"
    body["properties"]["containers"][0]["properties"]["image"] = {"x": 1}
    body["properties"]["containers"][0]["properties"]["resources"]["requests"]["memoryInGB"] = "a lot"
    assert len(validate("ContainerGroup", body)) == 3


def test_unknown_definition_is_a_key_error() -> None:
    with pytest.raises(KeyError, match="NoSuchThing"):
        validate("NoSuchThing", {})


def test_definitions_lists_the_spec_definitions() -> None:
    assert {"ContainerGroup", "Resource", "ContainerGroupListResult", "CloudError"} <= spec.definitions()


def test_schema_is_compiled_once() -> None:
    validate("ContainerGroup", minimal_group())
    before = spec._root.cache_info().misses
    for _ in range(10):
        validate("ContainerGroup", minimal_group())
    assert spec._root.cache_info().misses == before


# --- secrets never leak through messages ------------------------------------------------------------------

SECRET = "hunter2-Sup3rS3cret"


@pytest.mark.parametrize(
    "place",
    [
        ("environmentVariables", [{"name": "A", "secureValue": {"v": SECRET}}]),
        ("environmentVariables", [{"name": "A", "value": [SECRET]}]),
        ("image", {"secret": SECRET}),
        ("ports", [{"port": SECRET}]),
        ("ports", [{"port": 80, "protocol": SECRET}]),
    ],
)
def test_violation_messages_never_quote_the_value_sent(place: tuple[str, object]) -> None:
    body = minimal_group()
    body["properties"]["containers"][0]["properties"][place[0]] = place[1]
    violations = validate("ContainerGroup", body)
    assert violations
    assert all(SECRET not in v.message and SECRET not in v.path for v in violations)


@given(st.text(min_size=4).map(lambda text: "Zq9!" + text))
def test_no_secret_value_is_echoed_in_any_message(secret: str) -> None:
    body = minimal_group()
    props = body["properties"]
    props["osType"] = secret
    props["restartPolicy"] = {"x": secret}
    props["containers"][0]["properties"]["resources"]["requests"]["cpu"] = secret + "x"
    props["imageRegistryCredentials"] = [{"server": "r", "password": {"p": secret}}]
    props["volumes"] = [{"name": "v", "secret": {"k": [secret]}}]
    violations = validate("ContainerGroup", body)
    assert len(violations) >= 4
    assert all(secret not in v.message for v in violations)


# --- responses --------------------------------------------------------------------------------------------


def response_group() -> dict[str, Any]:
    body = minimal_group()
    body.update(
        id="/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web",
        name="web",
        type="Microsoft.ContainerInstance/containerGroups",
    )
    body["properties"]["provisioningState"] = "Succeeded"
    body["properties"]["instanceView"] = {"state": "Running", "events": []}
    return body


def test_response_with_read_only_fields_is_valid() -> None:
    assert response_violations("ContainerGroup", response_group(), allow_unknown=False) == []


def test_response_read_only_fields_are_type_checked() -> None:
    body = response_group()
    body["properties"]["instanceView"] = {"state": 3}
    assert paths(response_violations("ContainerGroup", body)) == ["/properties/instanceView/state"]


def test_response_date_times_must_be_iso_8601() -> None:
    body = response_group()
    body["properties"]["instanceView"]["events"] = [{"firstTimestamp": "yesterday"}]
    assert paths(response_violations("ContainerGroup", body)) == [
        "/properties/instanceView/events/0/firstTimestamp"
    ]


VOLUME = "/properties/volumes/0"


@pytest.mark.parametrize(
    ("where", "value", "path"),
    [
        ("env", {"name": "A", "secureValue": "s"}, f"{CONTAINER}/environmentVariables/0/secureValue"),
        ("cred", {"server": "r", "password": "p"}, "/properties/imageRegistryCredentials/0/password"),
        (
            "file",
            {"shareName": "s", "storageAccountName": "a", "storageAccountKey": "k"},
            f"{VOLUME}/azureFile/storageAccountKey",
        ),
        ("secret", {"k": "dmFsdWU="}, f"{VOLUME}/secret/k"),
        (
            "logs",
            {"workspaceId": "w", "workspaceKey": "k"},
            "/properties/diagnostics/logAnalytics/workspaceKey",
        ),
    ],
)
def test_response_that_returns_a_secret_is_flagged(where: str, value: dict[str, str], path: str) -> None:
    body = response_group()
    props = body["properties"]
    if where == "env":
        props["containers"][0]["properties"]["environmentVariables"] = [value]
    elif where == "cred":
        props["imageRegistryCredentials"] = [value]
    elif where == "file":
        props["volumes"] = [{"name": "v", "azureFile": value}]
    elif where == "secret":
        props["volumes"] = [{"name": "v", "secret": value}]
    else:
        props["diagnostics"] = {"logAnalytics": value}
    assert paths(response_violations("ContainerGroup", body)) == [path]


def test_response_without_secrets_does_not_need_the_required_secret_fields() -> None:
    body = response_group()
    body["properties"]["diagnostics"] = {"logAnalytics": {"workspaceId": "w"}}
    body["properties"]["volumes"] = [{"name": "v", "secret": {}}]
    assert response_violations("ContainerGroup", body) == []


def test_response_must_spell_property_names_as_the_spec_does() -> None:
    body = response_group()
    requests = body["properties"]["containers"][0]["properties"]["resources"]["requests"]
    requests["memoryInGb"] = requests.pop("memoryInGB")
    assert paths(response_violations("ContainerGroup", body)) == [
        f"{CONTAINER}/resources/requests/memoryInGb",
        f"{CONTAINER}/resources/requests/memoryInGB",
    ]


def test_response_must_spell_enum_values_as_the_spec_does() -> None:
    body = response_group()
    body["properties"]["osType"] = "linux"
    [violation] = response_violations("ContainerGroup", body)
    assert violation.path == "/properties/osType"
    assert "'Linux'" in violation.message


def test_response_numbers_must_be_numbers_not_strings() -> None:
    body = response_group()
    body["properties"]["containers"][0]["properties"]["resources"]["requests"]["cpu"] = "1"
    assert paths(response_violations("ContainerGroup", body)) == [f"{CONTAINER}/resources/requests/cpu"]


def test_response_unknown_properties_pass_unless_disallowed() -> None:
    body = response_group()
    body["properties"]["isCustomProvisioningTimeout"] = False
    assert response_violations("ContainerGroup", body) == []
    assert paths(response_violations("ContainerGroup", body, allow_unknown=False)) == [
        "/properties/isCustomProvisioningTimeout"
    ]


# --- normalize --------------------------------------------------------------------------------------------


def test_normalize_canonicalises_names_enums_and_numbers_and_drops_the_rest() -> None:
    body = {
        "id": "ignored",
        "Location": "westeurope",
        "apiVersion": "2018-10-01",
        "tags": None,
        "properties": {
            "ostype": "linux",
            "containers": [
                {
                    "name": "web",
                    "properties": {
                        "image": "nginx",
                        "environmentVariables": [
                            {"name": "PORT", "value": 8080},
                            {"name": "X", "value": 1.0},
                        ],
                        "resources": {"requests": {"cpu": "1", "memoryInGb": 2}},
                        "ports": [{"port": "80", "protocol": "tcp"}],
                        "securityContext": {"privileged": "TRUE"},
                        "instanceView": {"restartCount": 0},
                    },
                }
            ],
        },
    }
    assert normalize("ContainerGroup", body) == {
        "location": "westeurope",
        "properties": {
            "osType": "Linux",
            "containers": [
                {
                    "name": "web",
                    "properties": {
                        "image": "nginx",
                        "environmentVariables": [
                            {"name": "PORT", "value": "8080"},
                            {"name": "X", "value": "1"},
                        ],
                        "resources": {"requests": {"cpu": 1.0, "memoryInGB": 2.0}},
                        "ports": [{"port": 80, "protocol": "TCP"}],
                        "securityContext": {"privileged": True},
                    },
                }
            ],
        },
    }


def test_normalize_keeps_free_form_objects_and_map_keys_as_sent() -> None:
    body = minimal_group()
    body["tags"] = {"Team": "payments"}
    body["properties"]["extensions"] = [
        {"name": "kp", "properties": {"extensionType": "kube-proxy", "version": "1.0", "settings": {"A": 1}}}
    ]
    out = normalize("ContainerGroup", body)
    assert isinstance(out, dict)
    assert out["tags"] == {"Team": "payments"}
    assert out["properties"]["extensions"][0]["properties"]["settings"] == {"A": 1}


def test_normalize_does_not_modify_its_input() -> None:
    body = minimal_group()
    body["properties"]["osType"] = "linux"
    before = copy.deepcopy(body)
    normalize("ContainerGroup", body)
    assert body == before


# --- properties over generated bodies ---------------------------------------------------------------------


def _leaf(node: Any, draw: Any) -> object:
    kind = node.kind
    if node.enum is not None:
        value: str = draw(st.sampled_from(sorted(node.enum.values())))
        return draw(st.sampled_from([value, value.lower(), value.upper()]))
    if kind == spec._STRING:
        return draw(st.one_of(st.text(max_size=8), st.integers(-5, 5)))
    if kind == spec._NUMBER:
        number = draw(st.floats(0, 64, allow_nan=False).map(lambda f: round(f, 2)))
        return draw(st.sampled_from([number, str(number)]))
    if kind == spec._INTEGER:
        integer = draw(st.integers(0, 65535))
        return draw(st.sampled_from([integer, str(integer), float(integer)]))
    if kind == spec._BOOLEAN:
        flag = draw(st.booleans())
        return draw(st.sampled_from([flag, str(flag).lower(), str(flag)]))
    return {}


@st.composite
def request_bodies(draw: Any, node: Any = None, depth: int = 0) -> object:
    """Bodies the resource provider accepts, in all the spellings it accepts, generated from the spec."""
    node = spec._root("ContainerGroup") if node is None else node
    if node.kind == spec._OBJECT:
        out: dict[str, object] = {}
        for name, prop in node.props.items():
            if prop.read_only or prop.node.kind == spec._ANY:
                continue
            wanted = name in node.required or (depth < 4 and draw(st.booleans()))
            if not wanted:
                continue
            key = draw(st.sampled_from([name, name.lower(), name.upper()]))
            out[key] = draw(request_bodies(prop.node, depth + 1))
        if node.additional is not None and node.additional.kind != spec._OBJECT:
            for key in draw(st.lists(st.text("abc", min_size=1, max_size=3), max_size=2, unique=True)):
                out[key] = draw(request_bodies(node.additional, depth + 1))
        return out
    if node.kind == spec._ARRAY:
        size = draw(st.integers(0 if depth > 2 else 1, 2))
        return [draw(request_bodies(node.items, depth + 1)) for _ in range(size)]
    return _leaf(node, draw)


@given(request_bodies())
def test_generated_valid_bodies_are_accepted(body: object) -> None:
    assert validate("ContainerGroup", body) == []


@given(request_bodies())
def test_normalized_body_is_valid_canonical_and_stable(body: object) -> None:
    once = normalize("ContainerGroup", body)
    assert validate("ContainerGroup", once) == []
    assert normalize("ContainerGroup", once) == once
    # Canonical spelling is what responses use: a normalised body passes the strict response rules, apart from
    # the secrets a request legitimately carries.
    leftover = response_violations("ContainerGroup", once, allow_unknown=False)
    assert all("secret" in v.message for v in leftover), leftover


def _scalar_pointers(value: object, path: str = "") -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _scalar_pointers(v, f"{path}/{k.replace('/', '~1')}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _scalar_pointers(v, f"{path}/{i}")]
    return [path]


def _replace(body: Any, pointer: str, new: object) -> None:
    parts = [p.replace("~1", "/") for p in pointer.split("/")[1:]]
    node = body
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(parts[-1])] = new
    else:
        node[parts[-1]] = new


@given(request_bodies(), st.data())
def test_a_field_of_the_wrong_json_type_is_reported_at_its_path(body: Any, data: st.DataObject) -> None:
    pointers = _scalar_pointers(body)
    pointer = data.draw(st.sampled_from(pointers))
    _replace(body, pointer, {"unexpected": ["object"]})
    assert pointer in paths(validate("ContainerGroup", body))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.sampled_from(["properties", "location", "tags", "identity", "zones"]), json_values))
def test_arbitrary_json_never_crashes_the_validator(body: dict[str, object]) -> None:
    for violation in validate("ContainerGroup", body) + response_violations("ContainerGroup", body):
        assert violation.path == "" or violation.path.startswith("/")
        assert violation.message


def test_non_finite_numbers_are_rejected() -> None:
    body = minimal_group()
    body["properties"]["containers"][0]["properties"]["resources"]["requests"]["cpu"] = math.inf
    assert paths(validate("ContainerGroup", body)) == [f"{CONTAINER}/resources/requests/cpu"]


# --- Microsoft's material ---------------------------------------------------------------------------------


def _example_names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.json")) if EXAMPLES.is_dir() else []


def _response_definition(body: dict[str, Any]) -> str | None:
    if "value" in body and isinstance(body["value"], list):
        if (
            body["value"]
            and "properties" in body["value"][0]
            and "containers" in body["value"][0]["properties"]
        ):
            return "ContainerGroupListResult"
        return None
    if "containers" in body.get("properties", {}):
        return "ContainerGroup"
    return None


@needs_shared
@pytest.mark.parametrize("name", _example_names())
def test_microsoft_example_request_and_responses_validate(name: str) -> None:
    example = json.loads((EXAMPLES / f"{name}.json").read_text("utf-8"))
    group = example["parameters"].get("containerGroup")
    if group is not None:
        assert validate("ContainerGroup", group) == []
    for response in example["responses"].values():
        body = response.get("body")
        definition = _response_definition(body) if isinstance(body, dict) else None
        if definition is not None:
            assert response_violations(definition, body, allow_unknown=False) == []


def recorded_json(raw: object) -> Any:
    """A cassette body as JSON. Old vcrpy cassettes (2018) stored the Python repr of the bytes: `b'{...}'`."""
    if not raw:
        return None
    if isinstance(raw, str) and raw.startswith(("b'", 'b"')):
        raw = ast.literal_eval(raw)
    assert isinstance(raw, str | bytes)
    return json.loads(raw)


GROUP_URI = re.compile(
    r"^https://[^/]+/subscriptions/[^/]+/resourceGroups/[^/]+/providers/"
    r"Microsoft\.ContainerInstance/containerGroups/[^/?]+(\?|$)",
    re.IGNORECASE,
)


def _recorded_group_bodies() -> list[tuple[str, str, int, Any, Any]]:
    """(id, method, status, request body, response body) of every containerGroups PUT/GET in the cassettes."""
    found: list[tuple[str, str, int, Any, Any]] = []
    if not RECORDINGS.is_dir():
        return found
    for path in sorted(RECORDINGS.rglob("*.yaml")):
        cassette = yaml.safe_load(path.read_text("utf-8"))
        for index, interaction in enumerate(cassette["interactions"]):
            request, response = interaction["request"], interaction["response"]
            if not GROUP_URI.match(request["uri"]):
                continue
            body = recorded_json(request.get("body"))
            text = response.get("body", {}).get("string") or ""
            found.append(
                (
                    f"{path.stem}#{index}",
                    request["method"],
                    response["status"]["code"],
                    body,
                    json.loads(text) if text else None,
                )
            )
    return found


RECORDED = _recorded_group_bodies()
# Bodies that rely on features newer than 2023-05-01 (standby pools fill image, resources and osType from a
# container group profile), so at 2023-05-01 Azure, and the emulator, must reject them.
NEWER_THAN_SPEC = {
    "test_container_reuse_from_standbypool",
    "test_container_reuse_from_standbypool_outbound",
    "test_container_reuse_from_standbypool_vnet",
}


@needs_shared
@pytest.mark.parametrize(
    ("ident", "body"),
    [(r[0], r[3]) for r in RECORDED if r[1] == "PUT"],
    ids=[r[0] for r in RECORDED if r[1] == "PUT"],
)
def test_recorded_request_body_is_accepted_unless_it_needs_a_newer_api(ident: str, body: Any) -> None:
    violations = validate("ContainerGroup", body)
    if ident.split("#", maxsplit=1)[0] in NEWER_THAN_SPEC:
        assert {v.path.rsplit("/", 1)[-1] for v in violations} >= {"image", "osType"}
    else:
        assert violations == []


@needs_shared
@pytest.mark.parametrize(
    ("ident", "body"),
    [(r[0], r[4]) for r in RECORDED if r[2] in (200, 201) and r[4]],
    ids=[r[0] for r in RECORDED if r[2] in (200, 201) and r[4]],
)
def test_recorded_azure_response_fits_the_spec(ident: str, body: Any) -> None:
    assert response_violations("ContainerGroup", body) == []
