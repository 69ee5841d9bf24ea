"""Secrets: references, resolution, pointers, and that a secret value never shows outside the PUT body."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.model.manifest import GroupManifest, SecretRef, UnresolvedSecretError, parse_manifest
from tests.model.material import base_doc

SECRETS = (
    "s3cret-env",
    "s3cret-literal",
    "s3cret-registry",
    "s3cret-storage",
    "s3cret-workspace",
    "s3cret-kube",
)
# base64 of "s3cret-file"
SECRET_FILE = "czNjcmV0LWZpbGU="


def _secret_doc() -> dict[str, Any]:
    doc = base_doc()
    c = doc["properties"]["containers"][0]["properties"]
    c["environmentVariables"] = [
        {"name": "MODE", "value": "prod"},
        {"name": "DB_PASSWORD", "secureValueFrom": {"env": "DB_PASSWORD"}},
        {"name": "API_TOKEN", "secureValue": "s3cret-literal"},
        {"name": "APP_TOKEN", "secureValueFrom": {"file": "./token"}},
    ]
    c["volumeMounts"] = [{"name": "data", "mountPath": "/data"}, {"name": "certs", "mountPath": "/certs"}]
    doc["properties"]["imageRegistryCredentials"] = [
        {
            "server": "myregistry.azurecr.io",
            "username": "puller",
            "passwordFrom": {"env": "REGISTRY_PASSWORD"},
        }
    ]
    doc["properties"]["volumes"] = [
        {
            "name": "data",
            "azureFile": {
                "shareName": "data",
                "storageAccountName": "stdata",
                "storageAccountKeyFrom": {"env": "STORAGE_KEY"},
            },
        },
        {"name": "certs", "secret": {"tls.crt": SECRET_FILE}},
    ]
    doc["properties"]["diagnostics"] = {
        "logAnalytics": {"workspaceId": "ws-1", "workspaceKeyFrom": {"env": "WORKSPACE_KEY"}}
    }
    doc["properties"]["extensions"] = [
        {
            "name": "kube-proxy",
            "properties": {
                "extensionType": "kube-proxy",
                "version": "1.0",
                "settings": {"clusterCidr": "10.240.0.0/16"},
                "protectedSettings": {"kubeConfig": "s3cret-kube"},
            },
        }
    ]
    return doc


RESOLVED = {
    "DB_PASSWORD": "s3cret-env",
    "./token": "s3cret-env",
    "REGISTRY_PASSWORD": "s3cret-registry",
    "STORAGE_KEY": "s3cret-storage",
    "WORKSPACE_KEY": "s3cret-workspace",
}


def _resolve(ref: SecretRef) -> str:
    return RESOLVED[ref.env or ref.file or ""]


def _resolved() -> GroupManifest:
    return parse_manifest(_secret_doc()).resolve_secrets(_resolve)


def _no_secret_in(text: str) -> None:
    for secret in (*SECRETS, SECRET_FILE):
        assert secret not in text


ENV_PTR = "/properties/containers/web/properties/environmentVariables"
REGISTRY_PTR = "/properties/imageRegistryCredentials/myregistry.azurecr.io/password"


def test_secret_refs_lists_every_reference_with_its_pointer() -> None:
    refs = dict(parse_manifest(_secret_doc()).secret_refs())
    assert refs == {
        f"{ENV_PTR}/DB_PASSWORD/secureValue": SecretRef(env="DB_PASSWORD"),
        f"{ENV_PTR}/APP_TOKEN/secureValue": SecretRef(file="./token"),
        "/properties/imageRegistryCredentials/myregistry.azurecr.io/password": SecretRef(
            env="REGISTRY_PASSWORD"
        ),
        "/properties/volumes/data/azureFile/storageAccountKey": SecretRef(env="STORAGE_KEY"),
        "/properties/diagnostics/logAnalytics/workspaceKey": SecretRef(env="WORKSPACE_KEY"),
    }


def test_secret_values_are_keyed_by_pointers_with_keys_not_indexes() -> None:
    values = _resolved().secret_values()
    assert values == {
        f"{ENV_PTR}/DB_PASSWORD/secureValue": "s3cret-env",
        f"{ENV_PTR}/API_TOKEN/secureValue": "s3cret-literal",
        f"{ENV_PTR}/APP_TOKEN/secureValue": "s3cret-env",
        "/properties/imageRegistryCredentials/myregistry.azurecr.io/password": "s3cret-registry",
        "/properties/volumes/data/azureFile/storageAccountKey": "s3cret-storage",
        "/properties/diagnostics/logAnalytics/workspaceKey": "s3cret-workspace",
        "/properties/volumes/certs/secret/tls.crt": SECRET_FILE,
        "/properties/extensions/kube-proxy/properties/protectedSettings": '{"kubeConfig":"s3cret-kube"}',
    }


def test_arm_body_without_secrets_leaves_every_secret_out_as_a_get_does() -> None:
    body = _resolved().to_arm_body(reveal_secrets=False)
    _no_secret_in(json.dumps(body))
    props = body["properties"]
    envs = props["containers"][0]["properties"]["environmentVariables"]
    assert envs == [
        {"name": "MODE", "value": "prod"},
        {"name": "DB_PASSWORD"},
        {"name": "API_TOKEN"},
        {"name": "APP_TOKEN"},
    ]
    assert props["imageRegistryCredentials"] == [{"server": "myregistry.azurecr.io", "username": "puller"}]
    assert props["volumes"] == [
        {"name": "data", "azureFile": {"shareName": "data", "storageAccountName": "stdata"}},
        {"name": "certs", "secret": {}},
    ]
    assert props["diagnostics"] == {"logAnalytics": {"workspaceId": "ws-1"}}
    assert props["extensions"][0]["properties"] == {
        "extensionType": "kube-proxy",
        "version": "1.0",
        "settings": {"clusterCidr": "10.240.0.0/16"},
    }
    assert "secureValueFrom" not in json.dumps(body)


def test_arm_body_with_secrets_is_the_put_body_with_resolved_values_and_no_references() -> None:
    body = _resolved().to_arm_body(reveal_secrets=True)
    text = json.dumps(body)
    for secret in (*SECRETS, SECRET_FILE):
        assert secret in text
    assert "From" not in text
    envs = body["properties"]["containers"][0]["properties"]["environmentVariables"]
    assert envs[1] == {"name": "DB_PASSWORD", "secureValue": "s3cret-env"}
    assert body["properties"]["volumes"][0]["azureFile"]["storageAccountKey"] == "s3cret-storage"


def test_unresolved_references_cannot_be_sent_or_hashed() -> None:
    m = parse_manifest(_secret_doc())
    with pytest.raises(UnresolvedSecretError) as info:
        m.to_arm_body(reveal_secrets=True)
    assert f"{ENV_PTR}/DB_PASSWORD/secureValue" in info.value.pointers
    with pytest.raises(UnresolvedSecretError):
        m.secret_values()
    # The body a GET would show needs no secret at all.
    assert m.to_arm_body(reveal_secrets=False) == _resolved().to_arm_body(reveal_secrets=False)
    assert m.unresolved_secrets()
    assert not _resolved().unresolved_secrets()


def test_resolve_secrets_returns_a_copy_and_keeps_the_reference_for_export() -> None:
    m = parse_manifest(_secret_doc())
    r = m.resolve_secrets(_resolve)
    assert m.unresolved_secrets()  # the original is untouched
    assert r.secret_refs() == m.secret_refs()
    # Exporting a resolved manifest writes the references, never the values.
    doc = r.to_manifest_dict()
    text = json.dumps(doc)
    assert "s3cret-env" not in text
    assert "s3cret-registry" not in text
    assert parse_manifest(doc) == m


def test_secrets_never_show_in_repr_str_or_default_dump() -> None:
    r = _resolved()
    _no_secret_in(repr(r))
    _no_secret_in(str(r))
    _no_secret_in(str(r.model_dump()))
    _no_secret_in(r.model_dump_json())
    _no_secret_in(repr(r.properties.containers[0].properties.environment_variables))


def test_secrets_never_show_in_log_records(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.secrets")
    with caplog.at_level(logging.INFO):
        log.info("manifest %s, %r", _resolved(), _resolved().properties)
    _no_secret_in(caplog.text)


def test_validation_errors_under_secret_fields_do_not_echo_the_value() -> None:
    doc = base_doc()
    doc["properties"]["containers"][0]["properties"]["environmentVariables"] = [
        {"name": "A", "secureValue": ["s3cret-literal"]},
        {"name": "B", "secureValu": "s3cret-env"},
    ]
    doc["properties"]["volumes"] = [{"name": "v", "secret": {"k": "s3cret-file!"}}]
    with pytest.raises(ValidationError) as info:
        parse_manifest(doc)
    text = str(info.value) + repr(info.value.errors())
    _no_secret_in(text)
    assert "s3cret-file!" not in text
    assert "did you mean 'secureValue'?" in text


def test_literal_secure_value_is_allowed_and_written_back_by_to_manifest_dict() -> None:
    m = parse_manifest(_secret_doc())
    envs = m.to_manifest_dict()["properties"]["containers"][0]["properties"]["environmentVariables"]
    assert {"name": "API_TOKEN", "secureValue": "s3cret-literal"} in envs


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("imageRegistryCredentials", 0), {"password": "p", "passwordFrom": {"env": "P"}}),
        (("volumes", 0, "azureFile"), {"storageAccountKey": "k", "storageAccountKeyFrom": {"env": "K"}}),
        (("diagnostics", "logAnalytics"), {"workspaceKey": "k", "workspaceKeyFrom": {"env": "K"}}),
    ],
)
def test_a_secret_and_its_reference_together_are_rejected(
    where: tuple[Any, ...], value: dict[str, Any]
) -> None:
    doc = _secret_doc()
    node = doc["properties"]
    for p in where:
        node = node[p]
    for key in ("password", "passwordFrom", "storageAccountKey", "storageAccountKeyFrom"):
        node.pop(key, None)
    node.pop("workspaceKeyFrom", None)
    node.update(value)
    with pytest.raises(ValidationError, match="not both"):
        parse_manifest(doc)


def test_registry_may_authenticate_with_a_managed_identity_instead_of_a_password() -> None:
    identity = (
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.ManagedIdentity/userAssignedIdentities/puller"
    )
    doc = base_doc()
    doc["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {identity: {}}}
    doc["properties"]["imageRegistryCredentials"] = [
        {"server": "myregistry.azurecr.io", "identity": identity}
    ]
    m = parse_manifest(doc)
    assert m.secret_values() == {}
    assert m.to_arm_body(reveal_secrets=True)["properties"]["imageRegistryCredentials"] == [
        {"server": "myregistry.azurecr.io", "identity": identity}
    ]


def test_from_arm_turns_stripped_secrets_into_env_references() -> None:
    get_body = _resolved().to_arm_body(reveal_secrets=False)
    get_body["properties"]["provisioningState"] = "Succeeded"
    get_body["properties"]["isCustomProvisioningTimeout"] = False
    get_body["properties"]["someFutureField"] = {"x": 1}
    get_body["id"] = (
        "/subscriptions/x/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web"
    )
    m = GroupManifest.from_arm(get_body, resource_group="rg", name="web")
    refs = {p: r.env for p, r in m.secret_refs()}
    assert refs == {
        f"{ENV_PTR}/DB_PASSWORD/secureValue": "WEB_DB_PASSWORD",
        f"{ENV_PTR}/API_TOKEN/secureValue": "WEB_API_TOKEN",
        f"{ENV_PTR}/APP_TOKEN/secureValue": "WEB_APP_TOKEN",
        REGISTRY_PTR: "MYREGISTRY_AZURECR_IO_PASSWORD",
        "/properties/volumes/data/azureFile/storageAccountKey": "DATA_STORAGE_ACCOUNT_KEY",
        "/properties/diagnostics/logAnalytics/workspaceKey": "LOG_ANALYTICS_WORKSPACE_KEY",
    }
    doc = m.to_manifest_dict()
    assert doc["resourceGroup"] == "rg"
    assert "id" not in doc
    assert "provisioningState" not in doc["properties"]
    # A GET names no secret volume file: the export's `secretFrom: {}` fails validation until filled in.
    assert doc["properties"]["volumes"][1] == {"name": "certs", "secretFrom": {}}
    with pytest.raises(ValidationError) as info:
        parse_manifest(doc)
    assert "secret volume 'certs' has no files" in str(info.value)
    doc["properties"]["volumes"][1]["secretFrom"] = {"tls.crt": {"env": "CERTS_TLS_CRT"}}
    filled = parse_manifest(doc)
    assert filled.unresolved_secrets()[-1] == "/properties/volumes/certs/secret/tls.crt"


def test_literal_secrets_lists_what_the_loader_warns_about_and_no_reference() -> None:
    assert parse_manifest(_secret_doc()).literal_secrets() == [
        f"{ENV_PTR}/API_TOKEN/secureValue",
        "/properties/volumes/certs/secret/tls.crt",
        "/properties/extensions/kube-proxy/properties/protectedSettings",
    ]
    assert _resolved().literal_secrets() == parse_manifest(_secret_doc()).literal_secrets()


def test_an_error_beside_a_secret_does_not_echo_the_object_holding_it() -> None:
    doc = base_doc()
    doc["properties"]["containers"][0]["properties"]["environmentVariables"] = [
        {"secureValue": "s3cret-literal"}
    ]
    doc["properties"]["imageRegistryCredentials"] = [{"username": "u", "password": "s3cret-registry"}]
    with pytest.raises(ValidationError) as info:
        parse_manifest(doc)
    assert len(info.value.errors()) == 2
    _no_secret_in(str(info.value) + repr(info.value.errors()))


def test_resolving_a_manifest_without_references_gives_the_manifest_itself() -> None:
    plain = parse_manifest(base_doc())
    assert plain.resolve_secrets(_resolve) is plain


def test_resolving_copies_only_the_models_on_the_way_to_a_reference() -> None:
    doc = _secret_doc()
    doc["properties"]["containers"].append(
        {
            "name": "side",
            "properties": {"image": "busybox", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}},
        }
    )
    given = parse_manifest(doc)
    resolved = given.resolve_secrets(_resolve)
    web, side = resolved.properties.containers
    assert side is given.properties.containers[1], "no reference in it: not copied"
    assert web is not given.properties.containers[0]
    envs = web.properties.environment_variables or ()
    assert envs[0] is (given.properties.containers[0].properties.environment_variables or ())[0]
    assert resolved.properties.extensions is given.properties.extensions
    assert resolved.secret_values()[f"{ENV_PTR}/DB_PASSWORD/secureValue"] == "s3cret-env"
    assert given.unresolved_secrets()
    assert not resolved.unresolved_secrets()


def test_secret_values_through_a_resolver_equal_the_resolved_copys_for_every_kind_of_reference() -> None:
    doc = _secret_doc()
    doc["properties"]["volumes"].append({"name": "keys", "secretFrom": {"id.key": {"env": "STORAGE_KEY"}}})
    doc["properties"]["containers"][0]["properties"]["volumeMounts"].append(
        {"name": "keys", "mountPath": "/k"}
    )
    given = parse_manifest(doc)
    through = given.secret_values(_resolve)
    assert through == given.resolve_secrets(_resolve).secret_values()
    assert through["/properties/volumes/keys/secret/id.key"] == "czNjcmV0LXN0b3JhZ2U="  # base64, as sent
    with pytest.raises(UnresolvedSecretError):
        given.secret_values()
