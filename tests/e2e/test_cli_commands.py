"""The CLI's other commands end to end: status, export, validate, schema, and the `--local` quick start."""

from __future__ import annotations

import json
import os
import re
import shlex
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
    assert "4 manifest(s) valid" in result.stdout


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


README = (ROOT / "README.md").read_text()
INSTALLED = ".venv/bin/reconcile"


def readme_section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def readme_commands(section: str) -> list[str]:
    """Every `.venv/bin/reconcile ...` command of a README section, in code blocks and in the text."""
    found = re.findall(r"\.venv/bin/reconcile[^`&#\n]*", section)
    return list(dict.fromkeys(c.strip() for c in found))


class Walkthrough:
    """Runs README commands as written, `.venv/bin/reconcile` being this checkout's CLI; remembers each."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env, self.ran = cwd, env, set[str]()

    def __call__(self, command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        words = shlex.split(command)
        assert words[0] in (INSTALLED, "reconcile"), command
        self.ran.add(command)
        done = reconcile(*words[1:], cwd=self.cwd, env=self.env if env is None else env)
        assert done.returncode == 0, f"`{command}` (as in the README) failed:\n{done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr
        return done


def placeholder_variables(directory: Path) -> set[str]:
    """The variables the `...From: {env: NAME}` placeholders of exported manifests name."""
    found: set[str] = set()

    def walk(value: object, inside: bool) -> None:
        if isinstance(value, dict):
            if inside and isinstance(value.get("env"), str):
                found.add(value["env"])
            for key, item in value.items():
                walk(item, inside or str(key).endswith("From"))
        elif isinstance(value, list):
            for item in value:
                walk(item, inside)

    for path in directory.glob("*.yaml"):
        walk(yaml.safe_load(path.read_text()), False)
    return found


def test_readme_quick_start_and_walkthrough_work_as_written(tmp_path: Path) -> None:
    """The README's quick start, the commands it prints and the steps it describes, on a copy of the
    examples: plan 3 creates, apply, no changes; status and export without the secrets; an image edit
    updates in place, a cpu edit replaces; and the adoption command of "Adopting groups"."""
    import shutil

    section = readme_section("Quick start (no Azure needed)")
    first, second = re.findall(r"```sh\n(.*?)```", section, re.S)[:2]
    steps = [step.strip() for step in first.strip().split(" && ")]
    assert steps[:2] == ["python3 -m venv .venv", ".venv/bin/pip install -e ."]
    assert steps[2].startswith("export ")
    secrets = dict(word.split("=", 1) for word in shlex.split(steps[2])[1:])
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    bare = plain_env(NO_COLOR="1")
    run = Walkthrough(tmp_path, {**bare, **secrets})

    outputs = [run(step).stdout for step in steps[3:]]
    assert "Plan: 3 to create." in outputs[0]
    assert "Apply complete: 3 created." in outputs[1]
    assert "No changes. Azure matches the manifests." in outputs[2]
    assert (tmp_path / ".reconciler").is_dir()

    # The commands it prints next, run without the secrets: neither needs them.
    looked = [line.split("#")[0].strip() for line in second.strip().splitlines()]
    status = run(looked[0], env=bare)
    rows = [line.split() for line in status.stdout.splitlines()[1:]]
    assert sorted((r[0], r[1], r[2]) for r in rows) == [
        ("rg-aci-demo/demo-report", "job", "-"),  # a job template: applies never start it
        *((f"rg-aci-demo/{name}", "in", "sync") for name in ("demo-reports", "demo-train", "demo-web")),
    ]
    exported = run(looked[1], env=bare)
    assert "? " not in exported.stdout
    assert "[]" not in exported.stdout
    assert yaml.safe_load(exported.stdout)["name"] == "demo-web"
    write(tmp_path / "adopt/demo-web.yaml", exported.stdout)
    for other in ("demo-reports", "demo-train"):  # every example's export is valid input too
        more = reconcile("--local", "export", other, "--resource-group=rg-aci-demo", cwd=tmp_path, env=bare)
        assert more.returncode == 0, more.stderr
        assert "? " not in more.stdout
        write(tmp_path / f"adopt/{other}.yaml", more.stdout)
    # "secrets become placeholders to fill in": filled in, the exports are valid input.
    filled = dict.fromkeys(placeholder_variables(tmp_path / "adopt"), "filled-in")
    assert filled, "the exports reference no secret: the examples have secrets"
    valid = reconcile("validate", "-f", "adopt", cwd=tmp_path, env={**bare, **filled})
    assert valid.returncode == 0, valid.stderr
    assert "3 manifest(s) valid" in valid.stdout
    # Without its resource group, export finds the name in the whole subscription.
    found = reconcile("--local", "export", "demo-web", cwd=tmp_path, env=bare)
    assert found.returncode == 0, found.stderr
    assert found.stdout == exported.stdout
    # "(`reconcile status --local` works too)"
    assert "`reconcile status --local`" in section
    assert run("reconcile status --local", env=bare).stdout == status.stdout

    # "Run a job ...: its log streams to stdout, the secret it prints shows as `***`"
    job_command = re.findall(r"```sh\n(.*?)```", section, re.S)[2].split("#")[0].strip()
    assert job_command == f"{INSTALLED} --local run demo-report"
    job = run(job_command)
    assert job.stdout.splitlines() == [
        "building the nightly report",
        "connecting as reporter with password ***",
        "3 rows written",
    ]
    assert "demo-report succeeded" in job.stderr
    outputs.append(job.stdout + job.stderr)

    # "edit manifests/web-app.yaml (say, the image tag) and run `.venv/bin/reconcile --local` again"
    web = tmp_path / "manifests/web-app.yaml"
    web.write_text(web.read_text().replace("aci-helloworld:latest", "aci-helloworld:v2"))
    assert "Apply complete: 1 updated." in run(f"{INSTALLED} --local").stdout
    # "Change its `cpu` and it replaces it."
    web.write_text(web.read_text().replace("cpu: 1,", "cpu: 2,"))
    assert "Apply complete: 1 replaced." in run(f"{INSTALLED} --local").stdout

    # Adopting groups that already exist: the command with its placeholders filled in.
    adopting = readme_section("Adopting groups that already exist")
    template = re.search(r"`(reconcile export NAME --resource-group RG --local)\|--subscription", adopting)
    assert template is not None, "the README's adoption command changed; update this test with it"
    adopted = run(template.group(1).replace("NAME", "demo-web").replace("RG", "rg-aci-demo"), env=bare)
    container = yaml.safe_load(adopted.stdout)["properties"]["containers"][0]
    assert container["properties"]["image"].endswith(":v2")

    for out in outputs:
        assert secrets["DEMO_SESSION_SECRET"] not in out
    assert set(readme_commands(section)) <= run.ran, "a README command is not run by this test"


def test_export_of_a_name_in_several_resource_groups_asks_for_one_with_a_command_that_works(
    tmp_path: Path,
) -> None:
    for rg in ("rg-one", "rg-two"):
        write(
            tmp_path / f"m/{rg}.yaml",
            group_yaml("twin").replace(f"resourceGroup: {RG}", f"resourceGroup: {rg}"),
        )
    env = plain_env(**SECRETS, NO_COLOR="1")
    assert reconcile("--local", "-f", "m", cwd=tmp_path, env=env).returncode == 0
    ambiguous = reconcile("--local", "export", "twin", cwd=tmp_path, env=plain_env())
    assert ambiguous.returncode == 1
    assert "several resource groups (rg-one, rg-two)" in ambiguous.stderr
    hint = re.search(r"`reconcile (export twin [^`]*)`", ambiguous.stderr)
    assert hint is not None, ambiguous.stderr
    filled = reconcile(*shlex.split(hint.group(1).replace(" RG", " rg-two")), cwd=tmp_path, env=plain_env())
    assert filled.returncode == 0, filled.stderr
    assert yaml.safe_load(filled.stdout)["resourceGroup"] == "rg-two"
