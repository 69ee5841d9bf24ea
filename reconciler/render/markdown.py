"""Markdown of plans and apply results, for pull-request comments (GitHub-flavoured: tables, `<details>`).

Called by the CLI (`reconcile --dry-run -o markdown`) in CI. Pure. Everything that comes from data is escaped
(HTML, markdown punctuation, `@` mentions), code fences are longer than any backtick run inside them, and the
comment is kept under GitHub's size limit by collapsing the details of the last groups.
"""

from __future__ import annotations

import html
import re

from reconciler.model.outcome import ApplyResult
from reconciler.model.plan import Action, Plan, PlanIssue
from reconciler.render.blocks import Block, build_block
from reconciler.render.text import (
    apply_summary_line,
    format_duration,
    issue_line,
    outcome_sentence,
    reads_phrase,
)
from reconciler.render.values import address, clean, counts, sorted_changes, summary_line

# GitHub rejects comments over 65536 characters; leave room for whatever the CI step wraps around ours.
MAX_COMMENT_CHARS = 60_000

_ACTION_ROWS: tuple[tuple[Action, str, str], ...] = (
    (Action.CREATE, "+", "create"),
    (Action.UPDATE, "~", "update in place"),
    (Action.TAGS, "~", "update tags"),
    (Action.REPLACE, "-/+", "replace"),
    (Action.DELETE, "-", "delete"),
    (Action.CONFLICT, "!", "conflict (not touched)"),
)

_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_escape(text: str) -> str:
    """Plain text inside a markdown line or table cell: no markup, no HTML, no `@` mentions.

    Not for the start of a line (a leading `#`, `-` or `1.` would still be block syntax); callers put a
    label first.
    """
    escaped = clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", escaped).replace("@", "&#64;")


def _html(text: str) -> str:
    return html.escape(clean(text)).replace("@", "&#64;")


def code_span(text: str) -> str:
    """Inline code that survives backticks inside `text` (the CommonMark longer-fence rule)."""
    text = clean(text)
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _fence_for(body: str) -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", body)), default=0)
    return "`" * max(3, longest + 1)


def _diff_body(block: Block) -> str:
    lines: list[str] = []
    width = max((len(line.path) for line in block.lines), default=0)
    for line in block.lines:
        first, *rest = line.value.split("\n")
        out = [f"{line.sign} {line.path.ljust(width)} = {first}", *(f"    {r}" for r in rest)]
        if line.forces_replacement:
            out[-1] += " # forces replacement"
        lines.extend(out)
    if block.hidden:
        lines.append(f"  # ({block.hidden} more {'field' if block.hidden == 1 else 'fields'})")
    return "\n".join(lines)


def _details(block: Block) -> str:
    summary = f"<code>{html.escape(block.symbol)}</code> {_html(block.header)}"
    if block.change.held is not None:
        summary += " <em>(held)</em>"
    parts = [f"<details><summary>{summary}</summary>", ""]
    if block.change.reason:
        parts += [f"**Why:** {md_escape(block.change.reason)}", ""]
    if block.change.held is not None:
        parts += [f"**Held:** {md_escape(block.change.held)}; nothing will be done.", ""]
    if block.change.source:
        parts += [f"From {code_span(block.change.source)}.", ""]
    body = _diff_body(block)
    if body:
        fence = _fence_for(body)
        parts += [f"{fence}diff", body, fence, ""]
    parts.append("</details>")
    return "\n".join(parts)


def _issue_item(issue: PlanIssue) -> str:
    label = "**Error**" if issue.severity == "error" else "**Warning**"
    where = f" {code_span(issue.source)}" if issue.source else ""
    rest = PlanIssue(
        severity=issue.severity,
        message=issue.message,
        resource_group=issue.resource_group,
        name=issue.name,
    )
    return f"- {label}{where}: {md_escape(issue_line(rest))}"


def comment_marker(instance: str) -> str:
    """The hidden first line of a plan comment: a CI step finds its earlier comment by it and edits that one
    instead of adding another (one comment per instance). The instance is user input: anything outside
    letters, digits, `.`, `_` and `-` is replaced so it cannot close the HTML comment."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", instance)[:80]
    return f"<!-- aci-reconciler:plan instance={safe} -->"


def _banner(plan: Plan) -> list[str]:
    """A GitHub warning alert when the plan destroys something: replaces (downtime, local state lost) and
    prunes; an error alert when the plan has errors (apply would fail). Empty otherwise."""
    out: list[str] = []
    replaces = [c for c in plan.changes if c.action is Action.REPLACE and c.changes_something]
    deletes = [c for c in plan.changes if c.action is Action.DELETE and c.changes_something]
    if replaces or deletes:
        parts = []
        if replaces:
            parts.append(
                f"**replaces {_groups(len(replaces))}** (deleted, then created again: downtime, a new IP "
                "unless it is static, container-local data lost)"
            )
        if deletes:
            parts.append(f"**deletes {_groups(len(deletes))}** (pruned: the manifest is gone)")
        names = ", ".join(code_span(address(c)) for c in sorted_changes([*replaces, *deletes])[:10])
        more = len(replaces) + len(deletes) - 10
        names += f" and {more} more" if more > 0 else ""
        out += ["> [!WARNING]", f"> This plan {' and '.join(parts)}: {names}.", ""]
    if plan.errors:
        out += [
            "> [!CAUTION]",
            f"> {_count(len(plan.errors), 'error')} found while planning (listed under Issues): "
            "the apply fails for the groups they name until they are fixed.",
            "",
        ]
    return out


def _count(n: int, noun: str) -> str:
    return f"{n} {noun if n == 1 else noun + 's'}"


def _groups(n: int) -> str:
    return _count(n, "group")


def render_plan_markdown(plan: Plan, *, max_chars: int = MAX_COMMENT_CHARS) -> str:
    """A pull-request comment: a hidden marker line (`comment_marker`), the summary line, a warning banner
    for replaces and prunes, the action table, one `<details>` diff per group, issues."""
    acted, held = counts(plan)
    head = [
        comment_marker(plan.instance),
        "### aci-reconciler plan",
        "",
        f"**{md_escape(summary_line(plan))}**",
        "",
        *_banner(plan),
        f"Revision {code_span(plan.revision)}, instance {code_span(plan.instance)}"
        + (f", {reads_phrase(plan.reads)}." if plan.reads is not None else "."),
        "",
        "| Action | Groups |",
        "|:--|--:|",
    ]
    head += [f"| `{sym}` {words} | {acted[action]} |" for action, sym, words in _ACTION_ROWS]
    if held:
        head.append(f"| held back (suspend, `recreate: never`) | {held} |")
    head.append(f"| unchanged | {acted[Action.NOOP]} |")

    tail: list[str] = []
    issues = sorted(plan.issues, key=lambda i: (i.severity != "error", i.source or "", i.message))
    if issues:
        tail += ["", "#### Issues", "", *_fit([_issue_item(i) for i in issues], max_chars // 4, "issue")]

    changes = [c for c in sorted_changes(plan.changes) if c.action is not Action.NOOP]
    budget = max_chars - len("\n".join(head + tail)) - 300
    blocks = [build_block(c) for c in changes]
    bullets = [f"- `{b.symbol}` {md_escape(b.header)}" for b in blocks]
    # after[i]: room the one-line entries of groups i.. need if their details are left out.
    after = [0] * (len(bullets) + 1)
    for i in range(len(bullets) - 1, -1, -1):
        after[i] = after[i + 1] + len(bullets[i]) + 1
    details: list[str] = []
    for i, block in enumerate(blocks):
        text = _details(block)
        if len(text) + 2 + min(after[i + 1], budget // 2) > budget:
            break
        details += ["", text]
        budget -= len(text) + 2
    left_out = bullets[len(details) // 2 :]
    body = head
    if blocks:
        body += ["", "#### Changes", *details]
    if left_out:
        body += [
            "",
            f"The details of {len(left_out)} more {'group' if len(left_out) == 1 else 'groups'} do not fit "
            "in a comment; the job log has the full plan:",
            "",
            *_fit(left_out, budget, "group"),
        ]
    return "\n".join(body + tail) + "\n"


def _fit(items: list[str], budget: int, noun: str) -> list[str]:
    """As many list items as fit in `budget` characters, then one item saying how many were left out."""
    out: list[str] = []
    used = 0
    for n, item in enumerate(items):
        if used + len(item) + 1 > budget - 60:
            rest = len(items) - n
            out.append(f"- ... and {rest} more {noun if rest == 1 else noun + 's'}")
            break
        out.append(item)
        used += len(item) + 1
    return out


def render_apply_markdown(result: ApplyResult) -> str:
    """Apply outcomes for a pull-request or deployment comment: summary line and one table row per group."""
    out = [
        "### aci-reconciler apply",
        "",
        f"**{md_escape(apply_summary_line(result))}**",
        "",
        f"Revision {code_span(result.revision)}.",
    ]
    rows = [
        o
        for o in sorted(result.outcomes, key=lambda o: (o.resource_group.lower(), o.name.lower()))
        if o.action is not Action.NOOP or o.failed
    ]
    if rows:
        out += ["", "| Group | Action | Result | Time | Details |", "|:--|:--|:--|--:|:--|"]
        for o in rows:
            sentence = outcome_sentence(o)
            took = format_duration(o.duration_s) if o.attempts or o.duration_s else ""
            out.append(
                f"| {code_span(address(o))} | {o.action.value} | {o.result.value} "
                f"| {took} | {md_escape(sentence)} |"
            )
    return "\n".join(out) + "\n"
