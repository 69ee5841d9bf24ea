"""deploy/github-actions/: the workflow passes GitHub's workflow schema and zizmor's security audits, and the
commands it runs are the CLI's."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.cli import build_parser

WORKFLOW = Path(__file__).resolve().parents[2] / "deploy" / "github-actions" / "aci-reconciler.yml"


def _tool(name: str) -> str:
    found = shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is missing: install the dev extras (pip install -e '.[dev]')")
    return found


def _steps(job: str) -> list[dict[str, Any]]:
    data = yaml.safe_load(WORKFLOW.read_text())
    return list(data["jobs"][job]["steps"])


def test_workflow_matches_githubs_workflow_schema() -> None:
    run = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_workflow_has_no_finding_of_zizmor_even_pedantic() -> None:
    run = subprocess.run(
        [_tool("zizmor"), "--offline", "--persona", "pedantic", "--no-progress", str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "No findings" in run.stdout + run.stderr


def test_every_action_is_pinned_to_a_commit() -> None:
    for job in ("plan", "apply"):
        for step in _steps(job):
            if "uses" in step:
                ref = step["uses"].split("@", 1)[1]
                assert re.fullmatch(r"[0-9a-f]{40}", ref), step["uses"]


def test_plan_job_runs_a_markdown_plan_and_edits_its_comment_by_the_marker() -> None:
    steps = _steps("plan")
    plan = next(s for s in steps if s.get("id") == "plan")["run"]
    assert "reconcile plan --output markdown --detailed-exitcode" in plan
    args = build_parser("plan", {}).parse_args(["--output", "markdown", "--detailed-exitcode"])
    assert (args.output, args.detailed_exitcode) == ("markdown", True)
    script = next(s for s in steps if "github-script" in s.get("uses", ""))["with"]["script"]
    assert "updateComment" in script
    assert "startsWith(marker)" in script


def test_apply_job_runs_only_on_push_behind_an_environment() -> None:
    data = yaml.safe_load(WORKFLOW.read_text())
    apply = data["jobs"]["apply"]
    assert apply["if"] == "github.event_name == 'push'"
    assert apply["environment"] == "production"
    assert "pull-requests" not in apply["permissions"]
    assert any("reconcile apply --output markdown" in s.get("run", "") for s in apply["steps"])
    assert build_parser("apply", {}).parse_args(["--output", "markdown"]).output == "markdown"
