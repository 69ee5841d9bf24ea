"""The real CLI against the emulator: scope, keyed ownership and held policy (DESIGN.md section 4; issue 9
findings 1, 4 and 5).

Each test counts the container-group writes the emulator saw, so "kept" means no DELETE was ever sent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import EmulatorProcess, run_cli, write

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

CG = "/providers/Microsoft.ContainerInstance/containerGroups"
NO_WRITES = {"PUT": 0, "PATCH": 0, "DELETE": 0}


def group_yaml(name: str, rg: str, *, cpu: float = 1, policy: str = "") -> str:
    text = f"""\
name: {name}
resourceGroup: {rg}
location: westeurope
properties:
  osType: Linux
  containers:
  - name: main
    properties:
      image: nginx:1.25
      resources: {{requests: {{cpu: {cpu}, memoryInGB: 1.5}}}}
"""
    return text + (f"reconcile: {policy}\n" if policy else "")


def cli(emu: EmulatorProcess, cwd: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return run_cli(emu, *args, "-f", "manifests", cwd=cwd, env=env)


def plan_json(emu: EmulatorProcess, cwd: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    result = cli(emu, cwd, "plan", "-o", "json", *args, env=env)
    assert result.code in (0, 1), str(result)
    return json.loads(result.stdout)


def status_json(emu: EmulatorProcess, cwd: Path, *args: str) -> dict[tuple[str, str], str]:
    result = cli(emu, cwd, "status", "-o", "json", *args)
    assert result.code in (0, 1), str(result)
    return {(g["resource_group"], g["name"]): g["sync"] for g in json.loads(result.stdout)["groups"]}


def changes(plan: Any) -> dict[str, tuple[str, str | None]]:
    return {c["name"]: (c["action"], c["held"]) for c in plan["changes"]}


def create_by_hand(emu: EmulatorProcess, rg: str, name: str, tags: dict[str, str]) -> None:
    status, _ = emu.arm(
        "PUT",
        f"/resourceGroups/{rg}{CG}/{name}",
        {
            "location": "westeurope",
            "tags": tags,
            "properties": {
                "osType": "Linux",
                "containers": [
                    {
                        "name": "app",
                        "properties": {
                            "image": "busybox:1",
                            "resources": {"requests": {"cpu": 1, "memoryInGB": 1}},
                        },
                    }
                ],
            },
        },
    )
    assert status in (200, 201)


# --- finding 1: orphans across resource groups --------------------------------------------------------


def test_a_group_whose_manifest_left_its_resource_group_is_shown_by_status_and_pruned(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    write(tmp_path / "manifests/solo.yaml", group_yaml("solo", "rg-solo"))
    write(tmp_path / "manifests/web.yaml", group_yaml("web", "rg-main"))
    first = cli(emulator, tmp_path)
    assert first.code == 0, str(first)
    (tmp_path / "manifests/solo.yaml").unlink()

    assert changes(plan_json(emulator, tmp_path)) == {"web": ("noop", None), "solo": ("delete", None)}
    assert status_json(emulator, tmp_path)[("rg-solo", "solo")] == "orphaned"
    no_prune = cli(emulator, tmp_path, "--no-prune")
    assert no_prune.code == 0, str(no_prune)
    assert "No changes" not in no_prune.stdout
    assert emulator.get("rg-solo", "solo") is not None

    emulator.reset_counters()
    pruned = cli(emulator, tmp_path)
    assert pruned.code == 0, str(pruned)
    assert emulator.writes() == {"PUT": 0, "PATCH": 0, "DELETE": 1}
    assert emulator.get("rg-solo", "solo") is None
    # One subscription-wide list per pass (plan, then the verifying re-plan), never one per resource group.
    assert emulator.counters().get("GET containerGroups.listByResourceGroup", 0) == 0


def test_when_the_only_manifest_is_deleted_the_orphan_is_shown_and_pruned_only_with_allow_empty(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    write(tmp_path / "manifests/solo.yaml", group_yaml("solo", "rg-solo"))
    assert cli(emulator, tmp_path).code == 0
    (tmp_path / "manifests/solo.yaml").unlink()

    refused = cli(emulator, tmp_path)
    assert refused.code == 1, str(refused)
    assert "No changes" not in refused.stdout
    assert "solo" in refused.stdout
    assert "--allow-empty" in refused.stderr + refused.stdout
    assert status_json(emulator, tmp_path) == {("rg-solo", "solo"): "orphaned"}
    assert emulator.get("rg-solo", "solo") is not None

    allowed = cli(emulator, tmp_path, "--allow-empty")
    assert allowed.code == 0, str(allowed)
    assert emulator.get("rg-solo", "solo") is None


def test_a_scope_inferred_from_the_manifests_is_said_in_the_plan(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    write(tmp_path / "manifests/web.yaml", group_yaml("web", "rg-main"))
    inferred = cli(emulator, tmp_path, "plan", env={"RECONCILER_SCOPE": "manifests"})
    assert inferred.code == 0, str(inferred)
    assert "inferred from the manifests" in inferred.stdout + inferred.stderr
    named = plan_json(emulator, tmp_path, "--scope", "rg-main,rg-other")
    assert named["issues"] == []
    bad = cli(emulator, tmp_path, "plan", "--scope", "rg/bad")
    assert bad.code == 1
    assert "not a resource group name" in bad.stderr


# --- finding 5: forged ownership ------------------------------------------------------------------------


def test_forged_plain_ownership_tags_never_get_a_group_pruned(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    forged = {"managed-by": "aci-reconciler", "aci-reconciler.instance": "default"}
    create_by_hand(emulator, "rg-main", "theirs", forged)
    create_by_hand(emulator, "rg-elsewhere", "also-theirs", forged)
    write(tmp_path / "manifests/web.yaml", group_yaml("web", "rg-main"))
    emulator.reset_counters()
    result = cli(emulator, tmp_path)
    assert result.code == 0, str(result)
    assert emulator.writes()["DELETE"] == 0
    assert emulator.get("rg-main", "theirs") is not None
    assert emulator.get("rg-elsewhere", "also-theirs") is not None
    assert "without a valid ownership proof" in result.stdout + result.stderr
    assert ("rg-main", "theirs") not in status_json(emulator, tmp_path)

    # A manifest that names the forged group finds it foreign: a conflict under failIfExists: true.
    write(tmp_path / "manifests/theirs.yaml", group_yaml("theirs", "rg-main"))
    emulator.reset_counters()
    conflict = cli(emulator, tmp_path)
    assert conflict.code == 1, str(conflict)
    assert "ownership proof" in conflict.stdout
    assert emulator.writes() == NO_WRITES


def test_a_placeholder_secret_key_is_refused_with_the_fix(emulator: EmulatorProcess, tmp_path: Path) -> None:
    write(tmp_path / "manifests/web.yaml", group_yaml("web", "rg-main"))
    for key in ("changeme", "replace-with-64-hex-characters", "x" * 32):
        result = cli(emulator, tmp_path, "plan", env={"RECONCILER_SECRET_KEY": key})
        assert result.code == 1, str(result)
        assert "RECONCILER_SECRET_KEY" in result.stderr
        assert "openssl rand -hex 32" in result.stderr
        assert key not in result.stderr


def test_a_changed_key_is_warned_about_writes_nothing_and_rekey_retags_by_patch(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    write(tmp_path / "manifests/web.yaml", group_yaml("web", "rg-main"))
    assert cli(emulator, tmp_path).code == 0
    new_key = {"RECONCILER_SECRET_KEY": "a-brand-new-key-0123456789abcdef"}
    emulator.reset_counters()
    changed = cli(emulator, tmp_path, env=new_key)
    assert changed.code == 0, str(changed)
    assert "secret-hash key changed" in changed.stdout + changed.stderr
    assert emulator.writes() == NO_WRITES

    rekeyed = cli(emulator, tmp_path, "--rekey", env=new_key)
    assert rekeyed.code == 0, str(rekeyed)
    assert emulator.writes() == {"PUT": 0, "PATCH": 1, "DELETE": 0}
    emulator.reset_counters()
    settled = cli(emulator, tmp_path, "--detailed-exitcode", env=new_key)
    assert settled.code == 0, str(settled)
    assert "secret-hash key changed" not in settled.stdout + settled.stderr
    assert emulator.writes() == NO_WRITES


# --- finding 4: held changes still record the policy ----------------------------------------------------


@pytest.mark.parametrize("policy", ["{suspend: true, prune: false}", "{recreate: never, prune: false}"])
def test_a_held_change_records_prune_false_so_removing_the_manifest_keeps_the_group(
    emulator: EmulatorProcess, tmp_path: Path, policy: str
) -> None:
    write(tmp_path / "manifests/web.yaml", group_yaml("web", "rg-main"))
    write(tmp_path / "manifests/keep.yaml", group_yaml("keep", "rg-main"))
    assert cli(emulator, tmp_path).code == 0
    write(tmp_path / "manifests/web.yaml", group_yaml("web", "rg-main", cpu=2, policy=policy))

    emulator.reset_counters()
    held = cli(emulator, tmp_path)
    assert held.code == 0, str(held)
    assert emulator.writes() == {"PUT": 0, "PATCH": 1, "DELETE": 0}
    live = emulator.get("rg-main", "web")
    assert live is not None
    assert live["tags"]["aci-reconciler.prune"] == "false"
    assert live["properties"]["containers"][0]["properties"]["resources"]["requests"]["cpu"] == 1
    assert "/0]" not in held.stderr  # the progress line never counts held changes against a zero total

    (tmp_path / "manifests/web.yaml").unlink()
    emulator.reset_counters()
    after = cli(emulator, tmp_path)
    assert after.code == 0, str(after)
    assert emulator.writes()["DELETE"] == 0
    assert "rg-main/web: held" in after.stderr
    assert "/0]" not in after.stderr
    assert emulator.get("rg-main", "web") is not None


def test_a_refused_subscription_list_falls_back_to_the_manifests_resource_groups_and_says_so(
    tmp_path: Path,
) -> None:
    (tmp_path / "emu").mkdir()
    emu = EmulatorProcess(tmp_path / "emu", "--deny-subscription-list")
    try:
        write(tmp_path / "manifests/web.yaml", group_yaml("web", "rg-main"))
        result = cli(emu, tmp_path)
        assert result.code == 0, str(result)
        assert emu.get("rg-main", "web") is not None
        said = result.stdout + result.stderr
        assert "inferred from the manifests" in said
        assert "AuthorizationFailed" in said
        named = plan_json(emu, tmp_path, "--scope", "rg-main")
        assert named["issues"] == []
        assert changes(named) == {"web": ("noop", None)}
    finally:
        emu.stop()
