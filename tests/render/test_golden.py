"""Whole renderings of a plan with every kind of entry, compared with files under `golden/`.

The files are the reviewed expected output. After an intended change of format, regenerate them with
`UPDATE_GOLDEN=1 .venv/bin/pytest tests/render/test_golden.py` and review the diff before committing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from reconciler.render import (
    render_apply_json,
    render_apply_markdown,
    render_apply_text,
    render_plan_json,
    render_plan_markdown,
    render_plan_text,
)
from tests.render.plans import full_plan, full_result

GOLDEN = Path(__file__).parent / "golden"

CASES: dict[str, Callable[[], str]] = {
    "plan.txt": lambda: render_plan_text(full_plan()),
    "plan-noop.txt": lambda: render_plan_text(full_plan(), show_noop=True),
    "plan-color.txt": lambda: render_plan_text(full_plan(), color=True),
    "plan.md": lambda: render_plan_markdown(full_plan()),
    "plan.json": lambda: render_plan_json(full_plan()),
    "apply.txt": lambda: render_apply_text(full_result()),
    "apply.md": lambda: render_apply_markdown(full_result()),
    "apply.json": lambda: render_apply_json(full_result()),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_rendering_matches_the_reviewed_golden_file(name: str) -> None:
    actual = CASES[name]()
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(actual, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == actual
