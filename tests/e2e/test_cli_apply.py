"""The real `reconcile` CLI in a subprocess against the emulator in another: the behaviour of DESIGN.md §5-8.

Each test counts the container-group writes the emulator saw, so "nothing changed" means no API write at all.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.harness import EmulatorProcess, run_cli, write

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

EXAMPLE_SECRETS = {"DEMO_SESSION_SECRET": "s3cr3t-session-value", "DEMO_STORAGE_KEY": "c3RvcmFnZS1rZXk="}
RG = "rg-e2e"
CG = "/providers/Microsoft.ContainerInstance/containerGroups"


def group_yaml(
    name: str, *, image: str = "nginx:1.25", cpu: float = 1, tags: str = "{app: demo}", policy: str = ""
) -> str:
    text = f"""\
name: {name}
resourceGroup: {RG}
location: westeurope
tags: {tags}
properties:
  osType: Linux
  containers:
  - name: main
    properties:
      image: {image}
      resources: {{requests: {{cpu: {cpu}, memoryInGB: 1.5}}}}
      environmentVariables:
      - {{name: MODE, value: prod}}
      - name: TOKEN
        secureValueFrom: {{env: APP_TOKEN}}
"""
    if policy:
        text += f"reconcile: {policy}\n"
    return text


SECRETS = {"APP_TOKEN": "token-one"}


def apply(emu: EmulatorProcess, cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = run_cli(emu, "-f", "manifests", *args, cwd=cwd, env={**SECRETS, **(env or {})})
    assert result.code == 0, str(result)
    return result.stdout


def plan_json(emu: EmulatorProcess, cwd: Path, env: dict[str, str] | None = None) -> dict[str, object]:
    result = run_cli(emu, "plan", "-f", "manifests", "-o", "json", cwd=cwd, env={**SECRETS, **(env or {})})
    assert result.code in (0, 1), str(result)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def actions(plan: dict[str, object]) -> dict[str, str]:
    return {c["name"]: c["action"] for c in plan["changes"]}  # type: ignore[index,union-attr]


def test_first_apply_creates_every_example_group_and_a_replan_writes_nothing(
    emulator: EmulatorProcess, examples: Path
) -> None:
    cwd = examples.parent
    first = run_cli(emulator, "-f", "manifests", cwd=cwd, env=EXAMPLE_SECRETS)
    assert first.code == 0, str(first)
    created = emulator.group_ids()
    assert len(created) == 3
    assert emulator.writes()["PUT"] == 3

    emulator.reset_counters()
    again = run_cli(
        emulator, "--dry-run", "--detailed-exitcode", "-f", "manifests", cwd=cwd, env=EXAMPLE_SECRETS
    )
    assert again.code == 0, str(again)
    assert "No changes" in again.stdout
    second_apply = run_cli(emulator, "-f", "manifests", cwd=cwd, env=EXAMPLE_SECRETS)
    assert second_apply.code == 0, str(second_apply)
    assert emulator.writes() == {"PUT": 0, "PATCH": 0, "DELETE": 0}
    assert emulator.group_ids() == created
    for secret in EXAMPLE_SECRETS.values():
        for output in (first, again, second_apply):
            assert secret not in output.stdout + output.stderr


def test_dry_run_with_detailed_exitcode_says_2_when_changes_are_present_and_writes_nothing(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    write(tmp_path / "manifests/a.yaml", group_yaml("a"))
    result = run_cli(
        emulator, "--dry-run", "--detailed-exitcode", "-f", "manifests", cwd=tmp_path, env=SECRETS
    )
    assert result.code == 2, str(result)
    assert '+ containergroup "rg-e2e/a"' in result.stdout or "rg-e2e/a will be created" in result.stdout
    assert emulator.writes() == {"PUT": 0, "PATCH": 0, "DELETE": 0}
    assert emulator.group_ids() == []


def test_image_change_is_one_put_on_the_same_group(emulator: EmulatorProcess, tmp_path: Path) -> None:
    write(tmp_path / "manifests/a.yaml", group_yaml("a"))
    apply(emulator, tmp_path)
    ids = emulator.group_ids()
    emulator.reset_counters()

    write(tmp_path / "manifests/a.yaml", group_yaml("a", image="nginx:1.27"))
    assert actions(plan_json(emulator, tmp_path)) == {"a": "update"}
    apply(emulator, tmp_path)
    assert emulator.writes() == {"PUT": 1, "PATCH": 0, "DELETE": 0}
    assert emulator.group_ids() == ids
    live = emulator.get(RG, "a")
    assert live is not None
    assert live["properties"]["containers"][0]["properties"]["image"] == "nginx:1.27"


def test_cpu_change_is_a_replace_delete_then_create(emulator: EmulatorProcess, tmp_path: Path) -> None:
    write(tmp_path / "manifests/a.yaml", group_yaml("a"))
    apply(emulator, tmp_path)
    emulator.reset_counters()

    write(tmp_path / "manifests/a.yaml", group_yaml("a", cpu=2))
    plan = plan_json(emulator, tmp_path)
    assert actions(plan) == {"a": "replace"}
    assert any("cpu" in p for p in plan["changes"][0]["replace_paths"])  # type: ignore[index]
    apply(emulator, tmp_path)
    assert emulator.writes() == {"PUT": 1, "PATCH": 0, "DELETE": 1}
    requests = emulator.control("GET", "requests")["requests"]
    writes = [r["method"] for r in requests if r["route"] == "containerGroup" and r["method"] != "GET"]
    assert writes == ["DELETE", "PUT"]
    live = emulator.get(RG, "a")
    assert live is not None
    assert live["properties"]["containers"][0]["properties"]["resources"]["requests"]["cpu"] == 2


def test_tags_only_change_is_one_patch_and_no_put(emulator: EmulatorProcess, tmp_path: Path) -> None:
    write(tmp_path / "manifests/a.yaml", group_yaml("a"))
    apply(emulator, tmp_path)
    emulator.reset_counters()

    write(tmp_path / "manifests/a.yaml", group_yaml("a", tags="{app: demo, owner: team-b}"))
    assert actions(plan_json(emulator, tmp_path)) == {"a": "tags"}
    apply(emulator, tmp_path)
    assert emulator.writes() == {"PUT": 0, "PATCH": 1, "DELETE": 0}
    live = emulator.get(RG, "a")
    assert live is not None
    assert live["tags"]["owner"] == "team-b"


def _create_unmanaged(emulator: EmulatorProcess, name: str) -> None:
    status, _ = emulator.arm(
        "PUT",
        f"/resourceGroups/{RG}{CG}/{name}",
        {
            "location": "westeurope",
            "tags": {"made-by": "hand"},
            "properties": {
                "osType": "Linux",
                "containers": [
                    {
                        "name": "main",
                        "properties": {
                            "image": "nginx:1.25",
                            "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                        },
                    }
                ],
            },
        },
    )
    assert status in (200, 201)


def test_unmanaged_group_with_fail_if_exists_is_a_conflict_left_untouched(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    _create_unmanaged(emulator, "legacy")
    emulator.reset_counters()
    write(tmp_path / "manifests/legacy.yaml", group_yaml("legacy", image="nginx:1.27"))
    result = run_cli(emulator, "-f", "manifests", cwd=tmp_path, env=SECRETS)
    assert result.code == 1, str(result)
    assert "legacy" in result.stdout
    assert "not managed" in result.stdout
    assert emulator.writes() == {"PUT": 0, "PATCH": 0, "DELETE": 0}
    live = emulator.get(RG, "legacy")
    assert live is not None
    assert live["tags"] == {"made-by": "hand"}


def test_unmanaged_group_without_fail_if_exists_is_adopted(emulator: EmulatorProcess, tmp_path: Path) -> None:
    _create_unmanaged(emulator, "legacy")
    emulator.reset_counters()
    write(
        tmp_path / "manifests/legacy.yaml",
        group_yaml("legacy", image="nginx:1.27", policy="{failIfExists: false}"),
    )
    plan = plan_json(emulator, tmp_path)
    assert plan["changes"][0]["adopt"] is True  # type: ignore[index]
    apply(emulator, tmp_path)
    live = emulator.get(RG, "legacy")
    assert live is not None
    assert live["tags"]["managed-by"] == "aci-reconciler"
    assert live["properties"]["containers"][0]["properties"]["image"] == "nginx:1.27"
    emulator.reset_counters()
    assert actions(plan_json(emulator, tmp_path)) == {"legacy": "noop"}
    assert emulator.writes() == {"PUT": 0, "PATCH": 0, "DELETE": 0}


def test_removed_manifest_is_pruned_only_when_ours_and_prune_is_on(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    write(tmp_path / "manifests/keep.yaml", group_yaml("keep"))
    write(tmp_path / "manifests/gone.yaml", group_yaml("gone"))
    write(tmp_path / "manifests/stays.yaml", group_yaml("stays", policy="{prune: false}"))
    apply(emulator, tmp_path)
    _create_unmanaged(emulator, "foreign")
    (tmp_path / "manifests/gone.yaml").unlink()
    (tmp_path / "manifests/stays.yaml").unlink()

    emulator.reset_counters()
    no_prune = run_cli(emulator, "-f", "manifests", "--no-prune", cwd=tmp_path, env=SECRETS)
    assert no_prune.code == 0, str(no_prune)
    assert emulator.writes()["DELETE"] == 0

    plan = plan_json(emulator, tmp_path)
    assert actions(plan) == {"keep": "noop", "gone": "delete", "stays": "delete"}
    held = {c["name"]: c["held"] for c in plan["changes"]}  # type: ignore[index,union-attr]
    assert held["gone"] is None
    assert held["stays"] is not None  # listed, but its manifest said prune: false
    apply(emulator, tmp_path)
    assert emulator.writes()["DELETE"] == 1
    assert emulator.get(RG, "gone") is None
    for name in ("keep", "stays", "foreign"):
        assert emulator.get(RG, name) is not None, name


def test_secret_changed_only_in_the_environment_is_detected_and_applied(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    write(tmp_path / "manifests/a.yaml", group_yaml("a"))
    apply(emulator, tmp_path, env={"APP_TOKEN": "first-secret-value"})
    emulator.reset_counters()

    changed = {"APP_TOKEN": "second-secret-value"}
    result = run_cli(emulator, "plan", "-f", "manifests", cwd=tmp_path, env={**SECRETS, **changed})
    assert result.code == 0, str(result)
    assert "(sensitive)" in result.stdout
    assert "second-secret-value" not in result.stdout + result.stderr
    assert actions(plan_json(emulator, tmp_path, env=changed)) == {"a": "update"}
    apply(emulator, tmp_path, env=changed)
    assert emulator.writes()["PUT"] == 1
    emulator.reset_counters()
    assert actions(plan_json(emulator, tmp_path, env=changed)) == {"a": "noop"}
    assert emulator.writes() == {"PUT": 0, "PATCH": 0, "DELETE": 0}


def test_no_target_is_an_error_that_says_how_to_choose_one(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    write(tmp_path / "manifests/a.yaml", group_yaml("a"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "RECONCILER_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", "--dry-run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1
    assert "--local" in proc.stderr
    assert "--subscription" in proc.stderr


def test_apply_with_json_output_prints_one_document_with_plan_and_outcomes(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    write(tmp_path / "manifests/a.yaml", group_yaml("a"))
    result = run_cli(emulator, "apply", "-f", "manifests", "-o", "json", cwd=tmp_path, env=SECRETS)
    assert result.code == 0, str(result)
    document = json.loads(result.stdout)
    assert document["plan"]["format_version"] == "1"
    assert [c["action"] for c in document["plan"]["changes"]] == ["create"]
    assert [o["result"] for o in document["apply"]["outcomes"]] == ["succeeded"]
    assert document["unconverged"] == []
