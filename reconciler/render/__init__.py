"""Renders a Plan (and apply outcomes) as terminal text, markdown and JSON. Pure functions of the data.

Called by the CLI and the daemon's status page. No renderer reads `Change.desired`, and every FieldChange that
is `sensitive` (or whose path names a secret field) shows as `(sensitive)` whatever its values hold.
"""

from reconciler.render.json import (
    apply_to_json,
    change_to_json,
    plan_to_json,
    render_apply_json,
    render_plan_json,
)
from reconciler.render.markdown import render_apply_markdown, render_plan_markdown
from reconciler.render.text import (
    apply_summary_line,
    format_duration,
    render_apply_text,
    render_plan_text,
)
from reconciler.render.values import (
    apply_counts,
    format_value,
    is_sensitive_path,
    redact,
    summary_line,
)

__all__ = [
    "apply_counts",
    "apply_summary_line",
    "apply_to_json",
    "change_to_json",
    "format_duration",
    "format_value",
    "is_sensitive_path",
    "plan_to_json",
    "redact",
    "render_apply_json",
    "render_apply_markdown",
    "render_apply_text",
    "render_plan_json",
    "render_plan_markdown",
    "render_plan_text",
    "summary_line",
]
