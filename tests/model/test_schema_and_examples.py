"""The committed JSON Schema is current; the example manifests are valid, realistic and as documented."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.model.manifest import GroupManifest, parse_manifest
from reconciler.model.schema import manifest_json_schema
from tests.model.material import ROOT

MANIFESTS = ROOT / "manifests"
SCHEMA_FILE = MANIFESTS / "schema.json"
EXAMPLES = sorted(MANIFESTS.glob("*.yaml"))


def test_committed_schema_is_current() -> None:
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == manifest_json_schema(), (
        "manifests/schema.json is out of date: regenerate it with `reconcile schema > manifests/schema.json`"
    )


def test_schema_is_draft_2020_12_with_an_id_and_descriptions() -> None:
    schema = manifest_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"]
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "resourceGroup", "location", "properties"}
    for name, definition in schema["$defs"].items():
        assert definition.get("description"), name
        for key, prop in definition.get("properties", {}).items():
            assert prop.get("description") or prop.get("$ref"), f"{name}.{key}"


def test_schema_uses_canonical_arm_keys_and_enums() -> None:
    defs = manifest_json_schema()["$defs"]
    assert "memoryInGB" in defs["ResourceRequests"]["properties"]
    assert defs["GroupProperties"]["properties"]["osType"]["enum"] == ["Linux", "Windows"]
    # A number, or a numeric string as ARM reads it (`port: '80'`).
    port = defs["ContainerPort"]["properties"]["port"]
    assert port["description"] == "The port number (1-65535)."
    assert port["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 65535}
    assert port["anyOf"][1]["type"] == "string"
    assert defs["EnvironmentVariable"]["properties"]["secureValue"]["writeOnly"] is True


def test_schema_is_a_fresh_copy_each_time() -> None:
    manifest_json_schema()["title"] = "changed"
    assert manifest_json_schema()["title"] != "changed"


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def _check(schema: dict[str, Any], node: Any, root: dict[str, Any], where: str) -> None:
    """A small structural check (keys, types, enums, required) against the schema, enough to prove that an
    editor using the schema would not flag the examples."""
    if "$ref" in schema:
        _check(root["$defs"][schema["$ref"].split("/")[-1]], node, root, where)
        return
    kind = schema.get("type")
    if kind == "object":
        assert isinstance(node, dict), where
        props = schema.get("properties", {})
        for key in schema.get("required", ()):
            assert key in node, f"{where}: {key} missing"
        for key, value in node.items():
            if key in props:
                _check(props[key], value, root, f"{where}.{key}")
            else:
                extra = schema.get("additionalProperties", True)
                assert extra is not False, f"{where}: unknown key {key}"
                if isinstance(extra, dict):
                    _check(extra, value, root, f"{where}.{key}")
    elif kind == "array":
        assert isinstance(node, list), where
        for i, item in enumerate(node):
            _check(schema.get("items", {}), item, root, f"{where}[{i}]")
    elif kind == "string":
        assert isinstance(node, str), where
    elif kind == "integer":
        assert isinstance(node, int), where
    elif kind == "number":
        assert isinstance(node, int | float), where
    elif kind == "boolean":
        assert isinstance(node, bool), where
    if "enum" in schema:
        assert node in schema["enum"], where


def test_there_are_the_four_documented_examples() -> None:
    assert [p.name for p in EXAMPLES] == [
        "gpu-job.yaml",
        "nightly-report.yaml",
        "sidecar-files.yaml",
        "web-app.yaml",
    ]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_manifest_validates_and_points_editors_at_the_schema(path: Path) -> None:
    assert path.read_text().startswith("# yaml-language-server: $schema=./schema.json\n")
    data = _load(path)
    m = parse_manifest(data)
    assert m.resource_group
    assert m.location
    schema = json.loads(SCHEMA_FILE.read_text())
    _check(schema, data, schema, path.name)


def _example(name: str) -> GroupManifest:
    return parse_manifest(_load(MANIFESTS / name))


def test_web_app_example_has_a_public_ip_dns_label_probes_and_a_secret_from_the_environment() -> None:
    m = _example("web-app.yaml")
    ip = m.properties.ip_address
    assert ip is not None
    assert ip.type_ == "Public"
    assert ip.dns_name_label
    c = m.properties.containers[0].properties
    assert c.liveness_probe is not None
    assert c.readiness_probe is not None
    assert any(ref.env for _, ref in m.secret_refs())


def test_sidecar_example_has_two_containers_and_an_azure_files_volume_keyed_from_the_environment() -> None:
    m = _example("sidecar-files.yaml")
    assert len(m.properties.containers) == 2
    volumes = {v.name: v for v in m.properties.volumes or ()}
    azure_files = [v.azure_file for v in volumes.values() if v.azure_file is not None]
    assert len(azure_files) == 1
    assert azure_files[0].storage_account_key_from is not None
    assert azure_files[0].storage_account_key_from.env


def test_gpu_job_example_never_restarts_and_requests_a_gpu() -> None:
    m = _example("gpu-job.yaml")
    assert m.properties.restart_policy == "Never"
    assert m.properties.containers[0].properties.resources.requests.gpu is not None
