"""Terminal text of plans and apply results, in the style of `terraform plan` / `terraform apply`.

Called by the CLI (`reconcile --dry-run`, `reconcile`) and the daemon's logs. Pure: the same data always gives
the same text; ANSI colour only when `color=True`.
"""

from __future__ import annotations

from reconciler.model.outcome import ApplyResult, GroupOutcome, Result
from reconciler.model.plan import Action, Plan, PlanIssue
from reconciler.render.blocks import LEGEND, Block, DiffLine, build_block
from reconciler.render.values import DONE, address, apply_counts, clean, sorted_changes, summary_line

_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_MAGENTA = "\x1b[35m"
_CYAN = "\x1b[36m"

_SIGN_COLOURS = {"+": _GREEN, "~": _YELLOW, "-": _RED, "!": _MAGENTA}

_FIELD_INDENT = " " * 6
_CONT_INDENT = " " * 8


class _Paint:
    """Wraps text in ANSI codes, or returns it unchanged when colour is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str, *codes: str) -> str:
        prefix = "".join(codes)
        if not self.enabled or not prefix or not text:
            return text
        return prefix + text + _RESET

    def symbol(self, symbol: str) -> str:
        if symbol == "-/+":
            return self("-", _RED) + "/" + self("+", _GREEN)
        return self(symbol, _SIGN_COLOURS.get(symbol, ""))


def _field_line(line: DiffLine, width: int, paint: _Paint) -> list[str]:
    first, *rest = line.value.split("\n")
    out = [f"{_FIELD_INDENT}{paint.symbol(line.sign)} {line.path.ljust(width)} = {first}"]
    out.extend(f"{_CONT_INDENT}{r}" for r in rest)
    if line.forces_replacement:
        out[-1] += " " + paint("# forces replacement", _RED)
    return out


def _block_text(block: Block, paint: _Paint) -> list[str]:
    out = [paint(f"  # {block.header}", _BOLD)]
    for comment in block.comments:
        colour = _YELLOW if comment.startswith("held: ") else ""
        out.append(paint(f"  # {comment}" if colour else f"  #   {comment}", colour))
    if block.change.action is Action.NOOP:
        return out
    head = f"{' ' * (3 - len(block.symbol))}{paint.symbol(block.symbol)} container_group {_quote(block)}"
    if not block.lines and not block.hidden:
        out.append(head)
        return out
    out.append(head + " {")
    width = max((len(line.path) for line in block.lines), default=0)
    for line in block.lines:
        out.extend(_field_line(line, width, paint))
    if block.hidden:
        noun = "field" if block.hidden == 1 else "fields"
        out.append(f"{_CONT_INDENT}# ({block.hidden} more {noun})")
    out.append("    }")
    return out


def _quote(block: Block) -> str:
    return f'"{address(block.change)}"'


def issue_line(issue: PlanIssue) -> str:
    """`path:line:col: rg/name: message`, leaving out the parts an issue does not have."""
    parts = []
    if issue.source:
        parts.append(clean(issue.source))
    if issue.resource_group is not None and issue.name is not None:
        parts.append(clean(f"{issue.resource_group}/{issue.name}"))
    elif issue.name is not None:
        parts.append(clean(issue.name))
    parts.append(clean(issue.message))
    return ": ".join(parts)


def _issue_text(issue: PlanIssue, paint: _Paint) -> str:
    if issue.severity == "error":
        return paint("Error:", _BOLD, _RED) + " " + issue_line(issue)
    return paint("Warning:", _BOLD, _YELLOW) + " " + issue_line(issue)


def reads_phrase(reads: int) -> str:
    """How much of ARM's read budget observing cost: `1 Azure read`, `12 Azure reads`."""
    return f"{reads} Azure read{'' if reads == 1 else 's'}"


def render_plan_text(plan: Plan, *, color: bool = False, show_noop: bool = False) -> str:
    """The plan as `terraform plan` would print it: legend, one block per group, issues, a summary line."""
    paint = _Paint(color)
    changes = [c for c in sorted_changes(plan.changes) if show_noop or c.action is not Action.NOOP]
    blocks = [build_block(c) for c in changes]
    title = f"aci-reconciler plan: revision {clean(plan.revision)}, instance {clean(plan.instance)}"
    if plan.reads is not None:
        title += f" ({reads_phrase(plan.reads)})"
    out = [paint(title, _BOLD)]
    used = {b.symbol for b in blocks}
    legend = [s for s in LEGEND if s in used]
    if legend:
        out += ["", "Resource actions are indicated with the following symbols:"]
        out += [f"{' ' * (3 - len(s))}{paint.symbol(s)} {LEGEND[s]}" for s in legend]
    if blocks:
        out += ["", paint("The reconciler will perform the following actions:", _CYAN)]
        for block in blocks:
            out.append("")
            out.extend(_block_text(block, paint))
    issues = sorted(plan.issues, key=lambda i: (i.severity != "error", i.source or "", i.message))
    if issues:
        out.append("")
        out.extend(_issue_text(i, paint) for i in issues)
    summary = summary_line(plan)
    out += ["", paint(summary, _BOLD, _GREEN) if summary.startswith("No changes.") else paint(summary, _BOLD)]
    return "\n".join(out) + "\n"


# --- apply results ---

_DONE_COLOURS: dict[Action, str] = {
    Action.CREATE: _GREEN,
    Action.UPDATE: _YELLOW,
    Action.TAGS: _YELLOW,
    Action.REPLACE: _YELLOW,
    Action.DELETE: _RED,
}


def format_duration(seconds: float) -> str:
    """`12.3s` under a minute, `2m05s` under an hour, `1h02m` beyond."""
    if seconds < 60:
        return f"{max(seconds, 0.0):.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{(whole % 3600) // 60:02d}m"


def outcome_sentence(o: GroupOutcome) -> str:
    """What happened to one group, without its address: `created in 12.3s`, `update failed ...: msg`."""
    attempts = f" after {o.attempts} attempts" if o.attempts > 1 else ""
    message = clean(o.message)
    if o.result is Result.SUCCEEDED:
        text = f"{DONE[o.action]} in {format_duration(o.duration_s)}{attempts}"
        return f"{text}: {message}" if message else text
    if o.result is Result.RECREATE_FAILED:
        # The one outcome where a group this reconciler manages is gone: said first, in capitals.
        text = f"RECREATE FAILED: deleted for the {o.action.value}, not created again{attempts}"
        return f"{text}: {message}" if message else text
    if o.result is Result.FAILED:
        text = f"{o.action.value} failed{attempts} in {format_duration(o.duration_s)}"
        if o.retryable is True:
            text += " (will be retried)"
        elif o.retryable is False:
            text += " (stalled: not retried until its manifest changes)"
        if message:
            text += f": {message}"
        if o.interrupted_after_delete:
            text += "; the group was deleted and will be created on the next pass"
        return text
    if o.result is Result.HELD:
        return f"{o.action.value} held" + (f": {message}" if message else "")
    if o.action is Action.CONFLICT:
        return "not touched (exists and is not managed by this reconciler)" + (
            f": {message}" if message else ""
        )
    if o.action is Action.NOOP:
        return "unchanged"
    text = f"{o.action.value} skipped"
    if o.interrupted_after_delete:
        text += "; the group was deleted and will be created on the next pass"
    return text + (f": {message}" if message else "")


def apply_summary_line(result: ApplyResult) -> str:
    """`Apply complete: 2 created, 1 updated, 1 failed.` (zero counts and unchanged groups left out)."""
    counts = apply_counts(result)
    conflicts = "conflict" if counts["conflict"] == 1 else "conflicts"
    words = {"tags_updated": "tags updated", "conflict": conflicts, "recreate_failed": "RECREATE FAILED"}
    parts = [f"{n} {words.get(k, k)}" for k, n in counts.items() if n and k != "unchanged"]
    if not parts:
        return "Apply complete: no changes."
    return "Apply complete: " + ", ".join(parts) + "."


def _outcome_colour(o: GroupOutcome) -> str:
    if o.failed:
        return _RED
    if o.result is Result.SUCCEEDED:
        return _DONE_COLOURS.get(o.action, "")
    return _YELLOW if o.result is Result.HELD or o.action is Action.CONFLICT else ""


def render_apply_text(result: ApplyResult, *, color: bool = False, show_noop: bool = False) -> str:
    """One line per group (`rg/name: created in 12.3s`) and a final `Apply complete: ...` line."""
    paint = _Paint(color)
    out = []
    for o in _sorted_outcomes(result.outcomes):
        if o.action is Action.NOOP and not show_noop and not o.failed:
            continue
        loud = _BOLD if o.result is Result.RECREATE_FAILED else ""
        out.append(f"{address(o)}: {paint(outcome_sentence(o), loud, _outcome_colour(o))}")
    if out:
        out.append("")
    summary = apply_summary_line(result)
    out.append(paint(summary, _BOLD, _RED if result.failed else _GREEN))
    return "\n".join(out) + "\n"


def _sorted_outcomes(outcomes: tuple[GroupOutcome, ...]) -> list[GroupOutcome]:
    return sorted(outcomes, key=lambda o: (o.resource_group.lower(), o.name.lower()))
