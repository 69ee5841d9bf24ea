"""Real-world material parses: every create example of Microsoft's spec, every PUT body recorded against
live Azure (those of api-version 2023-05-01 and older), `az container export` style YAML, and GET bodies
through the lenient `GroupManifest.from_arm` used by `reconcile export`."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from reconciler.model.manifest import GroupManifest, parse_manifest
from tests.model.material import SHARED, recorded_bodies, spec_examples

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/azure is not present")

EXAMPLES = spec_examples()
PUTS = recorded_bodies("PUT")
GETS = recorded_bodies("GET")


def _as_manifest(body: dict[str, Any], name: str = "demo1") -> dict[str, Any]:
    return {"name": name, "resourceGroup": "rg-test", **body}


def _version_key(version: str) -> str:
    return version.removesuffix("-preview")


def test_material_is_found() -> None:
    assert len(EXAMPLES) >= 5
    assert len(PUTS) >= 20
    assert len(GETS) >= 20


@pytest.mark.parametrize(("file", "body", "response"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_every_spec_create_example_request_parses(file: str, body: dict[str, Any], response: Any) -> None:
    m = parse_manifest(_as_manifest(body))
    assert m.location == body["location"]
    assert len(m.properties.containers) == len(body["properties"]["containers"])


@pytest.mark.parametrize(("file", "body", "response"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_spec_example_request_round_trips_through_the_arm_body(
    file: str, body: dict[str, Any], response: Any
) -> None:
    m = parse_manifest(_as_manifest(body))
    again = parse_manifest(_as_manifest(m.to_arm_body(reveal_secrets=True)))
    assert again.to_arm_body(reveal_secrets=True) == m.to_arm_body(reveal_secrets=True)


CURRENT_PUTS = [p for p in PUTS if _version_key(p[1]) <= "2023-05-01"]
FUTURE_PUTS = [p for p in PUTS if _version_key(p[1]) > "2023-05-01"]


@pytest.mark.parametrize(
    ("cassette", "version", "body"), CURRENT_PUTS, ids=[f"{p[0]}@{p[1]}" for p in CURRENT_PUTS]
)
def test_every_recorded_put_body_up_to_2023_05_01_parses(
    cassette: str, version: str, body: dict[str, Any]
) -> None:
    m = parse_manifest(_as_manifest(body, name="clicontainer000002"))
    sent = m.to_arm_body(reveal_secrets=True)
    assert [c["name"] for c in sent["properties"]["containers"]] == [
        c["name"] for c in body["properties"]["containers"]
    ]


@pytest.mark.parametrize(
    ("cassette", "version", "body"), FUTURE_PUTS, ids=[f"{p[0]}@{p[1]}" for p in FUTURE_PUTS]
)
def test_recorded_put_bodies_of_later_api_versions_name_the_version_they_need(
    cassette: str, version: str, body: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError) as info:
        parse_manifest(_as_manifest(body, name="clicontainer000002"))
    assert "2024-05-01-preview" in str(info.value)


def test_recorded_put_bodies_cover_the_2023_05_01_features() -> None:
    text = str(CURRENT_PUTS)
    for feature in ("gitRepo", "secret", "emptyDir", "priority", "zones", "confidentialComputeProperties"):
        assert feature in text


@pytest.mark.parametrize(("cassette", "version", "body"), GETS, ids=[f"{g[0]}@{g[1]}" for g in GETS])
def test_every_recorded_get_body_becomes_a_manifest_through_from_arm(
    cassette: str, version: str, body: dict[str, Any]
) -> None:
    m = GroupManifest.from_arm(body, resource_group="clitest.rg000001", name=body["name"])
    assert m.name == body["name"]
    _export_is_valid_or_names_its_secret_volume(m)


def _export_is_valid_or_names_its_secret_volume(m: GroupManifest) -> None:
    """The export is a valid manifest document in its own right, unless it holds a secret volume, whose files
    a GET never names: then it fails validation until they are given under secretFrom."""
    document = m.to_manifest_dict()
    if any(v.secret_from is not None for v in m.properties.volumes or ()):
        with pytest.raises(ValidationError) as info:
            parse_manifest(document)
        assert "secretFrom" in str(info.value)
    else:
        assert parse_manifest(document) == m


@pytest.mark.parametrize(("file", "body", "response"), EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_spec_example_responses_become_manifests_through_from_arm(
    file: str, body: dict[str, Any], response: dict[str, Any]
) -> None:
    m = GroupManifest.from_arm(response, resource_group="demo", name="demo1")
    _export_is_valid_or_names_its_secret_volume(m)


EXPORT_YAML = """
additional_properties: {}
apiVersion: 2018-10-01
identity: null
location: westus
name: mycontainer
properties:
  containers:
  - name: mycontainer
    properties:
      environmentVariables:
      - name: MODE
        value: prod
      - name: DB_PASSWORD
      image: mcr.microsoft.com/azuredocs/aci-helloworld:latest
      ports:
      - port: 80
        protocol: TCP
      resources:
        requests:
          cpu: 1.0
          memoryInGB: 1.5
  initContainers: []
  ipAddress:
    ip: 20.66.28.53
    ports:
    - port: 80
      protocol: TCP
    type: Public
  osType: Linux
  restartPolicy: Always
  sku: Standard
tags: null
type: Microsoft.ContainerInstance/containerGroups
"""


def test_az_container_export_yaml_is_accepted_once_its_stripped_secret_is_given_a_source() -> None:
    data = yaml.safe_load(EXPORT_YAML)
    assert isinstance(data["apiVersion"], datetime.date)  # PyYAML reads it as a YAML 1.1 date
    with pytest.raises(ValidationError) as info:
        parse_manifest({**data, "resourceGroup": "rg"})
    messages = " ".join(e["msg"] for e in info.value.errors())
    assert "DB_PASSWORD" in messages
    assert "secureValueFrom" in messages
    assert "additional_properties" in messages  # a key of the CLI's serializer, not of ARM

    del data["additional_properties"]
    data["identity"] = None
    data["properties"]["containers"][0]["properties"]["environmentVariables"][1]["secureValueFrom"] = {
        "env": "DB_PASSWORD"
    }
    m = parse_manifest({**data, "resourceGroup": "rg"})
    assert m.api_version == "2018-10-01"
    assert m.tags == {}
    body = m.to_arm_body(reveal_secrets=False)
    assert "ip" not in body["properties"]["ipAddress"]
    assert "apiVersion" not in body
    assert "type" not in body
    assert "name" not in body
