"""Hostile manifests against the real CLI process (issue 10, findings 1, 8 and 9, and `-f` repeated).

- `${VAR}` and `secureValueFrom` never read the reconciler's own credentials: `plan -o json` (the output
  posted as pull-request comments) and `validate` show an error naming file:line:col and the rule, never the
  value, and nothing is written to Azure.
- Secret files inside the manifest root are not parsed as manifests and never stop pruning.
- A file name with a newline cannot forge `error:` lines; a 4 MB group name does not make a 4 MB line.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.harness import EmulatorProcess, run_cli, write
from tests.e2e.test_cli_apply import RG, SECRETS, group_yaml

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

CLIENT_SECRET = "CANARYazure3e1f90ab"
HASH_KEY = "CANARYhashkey5c7d21e0"
WEBHOOK = "CANARYwebhook8a4b6f13"
OWN = {
    "AZURE_CLIENT_SECRET": CLIENT_SECRET,
    "RECONCILER_SECRET_KEY": HASH_KEY,
    "RECONCILER_WEBHOOK_SECRET": WEBHOOK,
}

HOSTILE = f"""\
name: thief
resourceGroup: {RG}
location: westeurope
tags: {{build: "${{AZURE_CLIENT_SECRET}}", fallback: "${{RECONCILER_WEBHOOK_SECRET:-none}}"}}
properties:
  osType: Linux
  containers:
  - name: main
    properties:
      image: nginx:1.25
      command: ["/bin/sh", "-c", "echo ${{RECONCILER_SECRET_KEY}}"]
      resources: {{requests: {{cpu: 1, memoryInGB: 1.5}}}}
      environmentVariables:
      - {{name: PLAIN, value: "${{RECONCILER_WEBHOOK_SECRET}}"}}
      - {{name: COPY, secureValueFrom: {{env: AZURE_CLIENT_SECRET}}}}
"""


def no_canary(text: str) -> None:
    for value in (CLIENT_SECRET, HASH_KEY, WEBHOOK):
        assert value not in text


def test_plan_json_and_validate_refuse_the_reconcilers_own_credentials(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    write(tmp_path / "manifests/thief.yaml", HOSTILE)
    write(tmp_path / "manifests/good.yaml", group_yaml("good", tags='{build: "${ACI_BUILD}"}'))
    env = {**SECRETS, **OWN, "ACI_BUILD": "build-42"}
    plan = run_cli(emulator, "plan", "-f", "manifests", "-o", "json", cwd=tmp_path, env=env)
    assert plan.code == 1, str(plan)
    no_canary(plan.stdout + plan.stderr)
    doc = json.loads(plan.stdout)
    errors = [(i["source"], i["message"]) for i in doc["issues"] if i["severity"] == "error"]
    where = {source.rsplit("/", 1)[-1] for source, _ in errors}
    # Each refused read, at its own place: the tags (line 4), the command (11), PLAIN (14), COPY (15).
    assert {w.split(":")[0] for w in where} == {"thief.yaml"}, errors
    assert {int(w.split(":")[1]) for w in where} == {4, 11, 14, 15}, errors
    assert all("refused" in m and "never read" in m for _, m in errors), errors
    # The allowed variable works: the good group is planned with its value.
    assert "build-42" in plan.stdout
    assert emulator.writes() == {"PUT": 0, "PATCH": 0, "DELETE": 0}

    validate = run_cli(emulator, "validate", "-f", "manifests", cwd=tmp_path, env=env)
    assert validate.code == 1, str(validate)
    no_canary(validate.stdout + validate.stderr)
    lines = [line for line in validate.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 5, lines  # tags.build, tags.fallback, command, PLAIN, COPY
    assert all("thief.yaml:" in line and "AZURE_*, RECONCILER_*" in line for line in lines), lines

    # Even an allowlist of everything does not open them.
    wide = run_cli(emulator, "validate", "-f", "manifests", "--env-allow", "*", cwd=tmp_path, env=env)
    assert wide.code == 1, str(wide)
    no_canary(wide.stdout + wide.stderr)


def test_a_variable_outside_the_allowlist_is_refused_until_allowed(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    write(tmp_path / "manifests/a.yaml", group_yaml("a", image="nginx:${BUILD_TAG}"))
    env = {**SECRETS, "BUILD_TAG": "1.27"}
    refused = run_cli(emulator, "validate", "-f", "manifests", cwd=tmp_path, env=env)
    assert refused.code == 1, str(refused)
    assert "a.yaml:10:14: " in refused.stderr, str(refused)
    assert "--env-allow BUILD_TAG" in refused.stderr, str(refused)
    allowed = run_cli(
        emulator, "validate", "-f", "manifests", "--env-allow", "BUILD_*", cwd=tmp_path, env=env
    )
    assert allowed.code == 0, str(allowed)
    by_env = run_cli(
        emulator, "validate", "-f", "manifests", cwd=tmp_path, env={**env, "RECONCILER_ENV_ALLOW": "BUILD_*"}
    )
    assert by_env.code == 0, str(by_env)
    bad = run_cli(emulator, "validate", "-f", "manifests", "--env-allow", "a b", cwd=tmp_path, env=env)
    assert bad.code == 1
    assert "--env-allow: 'a b' is not a variable name pattern" in bad.stderr


def test_secret_files_in_the_root_are_not_manifests_and_do_not_stop_pruning(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    secret = "CANARYfile71c3: [unclosed"
    manifests = tmp_path / "manifests"
    write(manifests / "a.yaml", group_yaml("a"))
    write(manifests / "b.yaml", group_yaml("b"))
    first = run_cli(emulator, "-f", "manifests", cwd=tmp_path, env=SECRETS)
    assert first.code == 0, str(first)
    # A secret that is not YAML, named by a reference and one more in secrets/; then b's manifest goes.
    write(manifests / "token.yaml", secret)
    write(manifests / "secrets/spare.json", "{" + secret)
    (manifests / "a.yaml").write_text(
        group_yaml("a").replace("secureValueFrom: {env: APP_TOKEN}", "secureValueFrom: {file: token.yaml}")
    )
    (manifests / "b.yaml").unlink()
    result = run_cli(emulator, "-f", "manifests", "-o", "json", cwd=tmp_path, env=SECRETS)
    assert result.code == 0, str(result)
    assert "CANARYfile" not in result.stdout + result.stderr
    assert [i.rsplit("/", 1)[1] for i in emulator.group_ids()] == ["a"], "b was pruned"
    valid = run_cli(emulator, "validate", "-f", "manifests", cwd=tmp_path)
    assert valid.code == 0, str(valid)
    assert "1 manifest(s) valid" in valid.stdout


def test_a_file_name_with_a_newline_cannot_forge_error_lines(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    write(tmp_path / "manifests/x\nerror: all good.yaml\n.yaml", "name: [\n")
    write(tmp_path / "manifests/\x1b[2Jclear.yaml", "name: [\n")
    result = run_cli(emulator, "validate", "-f", "manifests", cwd=tmp_path)
    assert result.code == 1, str(result)
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 2, lines
    assert lines[-1] == "2 error(s) in manifests"
    assert "\x1b" not in result.stderr
    assert any("x\\nerror: all good.yaml\\n.yaml:2:1:" in line for line in errors), errors


def test_a_four_megabyte_group_name_does_not_make_a_four_megabyte_line(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    write(tmp_path / "manifests/big.yaml", group_yaml("g" * 4_000_000))
    for args in (("validate",), ("plan", "-o", "json"), ("plan",)):
        result = run_cli(emulator, *args, "-f", "manifests", cwd=tmp_path, env=SECRETS)
        assert result.code == 1, args
        longest = max(len(line) for line in (result.stdout + result.stderr).splitlines())
        assert longest < 5_000, (args, longest)
        assert "chars)" in result.stdout + result.stderr


def test_manifests_option_takes_files_and_directories_and_repeats(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    write(tmp_path / "team-a/a.yaml", group_yaml("a"))
    write(tmp_path / "team-b/b.yaml", group_yaml("b"))
    write(tmp_path / "single.yaml", group_yaml("c"))
    args = ("-f", "team-a", "-f", "team-b", "--manifests", "single.yaml")
    valid = run_cli(emulator, "validate", *args, cwd=tmp_path, env=SECRETS)
    assert valid.code == 0, str(valid)
    assert "3 manifest(s) valid in team-a, team-b, single.yaml" in valid.stdout
    applied = run_cli(emulator, *args, cwd=tmp_path, env=SECRETS)
    assert applied.code == 0, str(applied)
    assert sorted(i.rsplit("/", 1)[1] for i in emulator.group_ids()) == ["a", "b", "c"]
    # One file alone is a manifest set of its own (the other groups would be pruned: plan says so).
    plan = run_cli(emulator, "plan", "-f", "single.yaml", "-o", "json", cwd=tmp_path, env=SECRETS)
    assert plan.code == 0, str(plan)
    changes = json.loads(plan.stdout)["changes"]
    assert {c["name"]: c["action"] for c in changes if c["action"] != "noop"} == {
        "a": "delete",
        "b": "delete",
    }
    # A group in two roots is a duplicate, whichever roots hold it.
    write(tmp_path / "team-b/again.yaml", group_yaml("a"))
    dup = run_cli(emulator, "validate", *args, cwd=tmp_path, env=SECRETS)
    assert dup.code == 1, str(dup)
    assert "is also defined at" in dup.stderr
    missing = run_cli(emulator, "validate", "-f", "team-a", "-f", "nowhere", cwd=tmp_path, env=SECRETS)
    assert missing.code == 1
    assert "nowhere: no such directory or file of manifests" in missing.stderr
