"""The CLI's other commands end to end: status, export, validate, schema, and the `--local` quick start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e.harness import EmulatorProcess, run_cli, write
from tests.e2e.test_cli_apply import RG, SECRETS, apply, group_yaml

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parents[2]


def plain_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "RECONCILER_"))}
    env.update(extra)
    return env


def reconcile(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_status_reports_in_sync_drifted_and_missing_groups(emulator: EmulatorProcess, tmp_path: Path) -> None:
    write(tmp_path / "manifests/a.yaml", group_yaml("a"))
    write(tmp_path / "manifests/b.yaml", group_yaml("b"))
    apply(emulator, tmp_path)
    write(tmp_path / "manifests/b.yaml", group_yaml("b", image="nginx:1.27"))
    write(tmp_path / "manifests/c.yaml", group_yaml("c"))
    result = run_cli(emulator, "status", "-f", "manifests", "-o", "json", cwd=tmp_path, env=SECRETS)
    assert result.code == 0, str(result)
    doc = json.loads(result.stdout)
    by_name = {g["name"]: g for g in doc["groups"]}
    assert by_name["a"]["sync"] == "in sync"
    assert by_name["a"]["instance_state"] == "Running"
    assert by_name["a"]["applied_revision"].startswith("sha256:")
    assert by_name["b"]["sync"] == "drifted"
    assert by_name["c"]["sync"] == "missing"
    text = run_cli(emulator, "status", "-f", "manifests", cwd=tmp_path, env=SECRETS)
    assert "rg-e2e/b  drifted" in text.stdout.replace("   ", "  ")


def test_export_writes_a_manifest_that_adopts_the_group_with_no_write(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    write(tmp_path / "seed/a.yaml", group_yaml("a"))
    result = run_cli(emulator, "-f", "seed", cwd=tmp_path, env=SECRETS)
    assert result.code == 0, str(result)
    exported = run_cli(emulator, "export", "a", "--resource-group", RG, cwd=tmp_path)
    assert exported.code == 0, str(exported)
    assert "token-one" not in exported.stdout
    doc = yaml.safe_load(exported.stdout)
    assert doc["name"] == "a"
    assert not any(k.startswith("aci-reconciler") or k == "managed-by" for k in doc.get("tags") or {})
    env_vars = doc["properties"]["containers"][0]["properties"]["environmentVariables"]
    token = next(e for e in env_vars if e["name"] == "TOKEN")
    assert "env" in token["secureValueFrom"]
    write(tmp_path / "manifests/a.yaml", exported.stdout)
    valid = run_cli(emulator, "validate", "-f", "manifests", "--no-secrets", cwd=tmp_path)
    assert valid.code == 0, str(valid)
    # Filled in with the same secret, the exported manifest is exactly the live group: nothing to do.
    emulator.reset_counters()
    plan = run_cli(
        emulator,
        "plan",
        "-f",
        "manifests",
        "--detailed-exitcode",
        cwd=tmp_path,
        env={token["secureValueFrom"]["env"]: "token-one"},
    )
    assert plan.code == 0, str(plan)
    assert emulator.writes() == {"PUT": 0, "PATCH": 0, "DELETE": 0}


def test_validate_lists_every_error_with_file_line_and_column(tmp_path: Path) -> None:
    write(tmp_path / "m/good.yaml", group_yaml("good"))
    write(tmp_path / "m/bad-cpu.yaml", group_yaml("bad", cpu=-1))
    write(tmp_path / "m/bad-yaml.yaml", "name: x\n  broken: [\n")
    result = reconcile("validate", "-f", "m", cwd=tmp_path, env=plain_env())
    assert result.returncode == 1
    assert "m/bad-cpu.yaml:" in result.stderr
    assert "m/bad-yaml.yaml:" in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: m/")]
    assert len(lines) >= 2
    for line in lines:
        _path, line_no, col = line.removeprefix("error: ").split(":")[:3]
        assert line_no.isdigit(), line
        assert col.isdigit(), line


def test_validate_accepts_the_example_manifests_without_their_secrets(tmp_path: Path) -> None:
    result = reconcile(
        "validate", "-f", str(ROOT / "manifests"), "--no-secrets", cwd=tmp_path, env=plain_env()
    )
    assert result.returncode == 0, result.stderr
    assert "3 manifest(s) valid" in result.stdout


def test_validate_treats_an_unset_secret_reference_like_an_unset_variable(tmp_path: Path) -> None:
    """As plan does: a manifest whose `secureValueFrom` variable is unset cannot be applied."""
    unset = reconcile("validate", "-f", str(ROOT / "manifests"), cwd=tmp_path, env=plain_env())
    assert unset.returncode == 1, unset.stderr
    errors = [line for line in unset.stderr.splitlines() if line.startswith("error: ")]
    assert any("web-app.yaml:" in line and "DEMO_SESSION_SECRET is not set" in line for line in errors), (
        errors
    )
    assert any("DEMO_STORAGE_KEY is not set" in line for line in errors), errors
    env = plain_env(DEMO_SESSION_SECRET="demo-secret", DEMO_STORAGE_KEY="ZGVtbw==")
    both = reconcile("validate", "-f", str(ROOT / "manifests"), cwd=tmp_path, env=env)
    assert both.returncode == 0, both.stderr
    assert "demo-secret" not in both.stdout + both.stderr


def test_schema_command_prints_the_committed_schema(tmp_path: Path) -> None:
    result = reconcile("schema", cwd=tmp_path, env=plain_env())
    assert result.returncode == 0
    assert json.loads(result.stdout) == json.loads((ROOT / "manifests/schema.json").read_text())


def test_readme_quick_start_local_plan_apply_replan(tmp_path: Path) -> None:
    """The README's first command, on a copy of the examples: plan 3 creates, apply, then no changes."""
    import shutil

    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    env = plain_env(DEMO_SESSION_SECRET="demo-secret", DEMO_STORAGE_KEY="ZGVtbw==", NO_COLOR="1")
    first = reconcile("--local", "--dry-run", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert "Plan: 3 to create." in first.stdout
    applied = reconcile("--local", cwd=tmp_path, env=env)
    assert applied.returncode == 0, applied.stderr
    assert "Apply complete: 3 created." in applied.stdout
    again = reconcile("--local", "--dry-run", "--detailed-exitcode", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "No changes. Azure matches the manifests." in again.stdout
    assert (tmp_path / ".reconciler").is_dir()
    for out in (first, applied, again):
        assert "demo-secret" not in out.stdout + out.stderr
