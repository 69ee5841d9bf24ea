"""Microsoft's tutorial YAML (tests/model/tutorials/) loads as `az container create --file` takes it
(issue 9, finding 9): upper-case group names, a sidecar, `additional_properties: {}` as a warning."""

from __future__ import annotations

import shutil
from pathlib import Path

from reconciler.source import Defaults, load_manifests

TUTORIALS = Path(__file__).parent / "tutorials"
# `az container create --resource-group myResourceGroup --file ...`: the group and location come from there.
DEFAULTS = Defaults(resource_group="myResourceGroup", location="eastus")


def _load(name: str, tmp_path: Path) -> tuple[list[str], list[str], list[str]]:
    shutil.copy(TUTORIALS / name, tmp_path / name)
    result = load_manifests(tmp_path, defaults=DEFAULTS, environ={})
    return (
        [g.manifest.name for g in result.groups],
        [str(e) for e in result.errors],
        [str(w) for w in result.warnings],
    )


def test_the_multi_container_yaml_tutorial_deploys_my_container_group_with_its_sidecar(
    tmp_path: Path,
) -> None:
    names, errors, _ = _load("multi-container-yaml.yaml", tmp_path)
    assert errors == []
    assert names == ["myContainerGroup"]
    result = load_manifests(tmp_path, defaults=DEFAULTS, environ={})
    body = result.groups[0].manifest.to_arm_body(reveal_secrets=True)
    assert [c["name"] for c in body["properties"]["containers"]] == [
        "aci-tutorial-app",
        "aci-tutorial-sidecar",
    ]
    assert body["properties"]["ipAddress"]["ports"][0]["protocol"] == "TCP"


def test_the_gpu_tutorial_loads_and_its_additional_properties_leftover_is_a_warning(tmp_path: Path) -> None:
    names, errors, warnings = _load("gpu.yaml", tmp_path)
    assert errors == []
    assert names == ["gpucontainergroup"]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{tmp_path / 'gpu.yaml'}:1:1: additional_properties: ")
    assert "ignored" in warnings[0]


def test_additional_properties_with_content_is_still_an_error(tmp_path: Path) -> None:
    text = (
        (TUTORIALS / "gpu.yaml")
        .read_text()
        .replace("additional_properties: {}", "additional_properties: {a: 1}")
    )
    (tmp_path / "gpu.yaml").write_text(text)
    result = load_manifests(tmp_path, defaults=DEFAULTS, environ={})
    assert not result.groups
    assert any("additional_properties" in e.message for e in result.errors)
