"""The pull-request comment: exact text, escaping of data, and the size limit."""

from __future__ import annotations

import re

from reconciler.model.plan import Action, Change, FieldChange, PlanIssue
from reconciler.render import render_plan_markdown
from reconciler.render.markdown import code_span, md_escape
from tests.render.plans import plan_of, replace_change, update_change


def test_replace_comment_has_summary_table_details_and_diff() -> None:
    worker = "/properties/containers/worker/properties"
    assert render_plan_markdown(plan_of(replace_change())) == (
        "<!-- aci-reconciler:plan instance=default -->\n"
        "### aci-reconciler plan\n"
        "\n"
        "**Plan: 1 to replace.**\n"
        "\n"
        "> [!WARNING]\n"
        "> This plan **replaces 1 group** (deleted, then created again: downtime, a new IP unless it is "
        "static, container-local data lost): `rg-prod/worker`.\n"
        "\n"
        "Revision `3f2c1a9`, instance `default`.\n"
        "\n"
        "| Action | Groups |\n"
        "|:--|--:|\n"
        "| `+` create | 0 |\n"
        "| `~` update in place | 0 |\n"
        "| `~` update tags | 0 |\n"
        "| `-/+` replace | 1 |\n"
        "| `-` delete | 0 |\n"
        "| `!` conflict (not touched) | 0 |\n"
        "| unchanged | 0 |\n"
        "\n"
        "#### Changes\n"
        "\n"
        "<details><summary><code>-/+</code> rg-prod/worker must be replaced (adopting)</summary>\n"
        "\n"
        "**Why:** cpu of container worker changed\n"
        "\n"
        "From `manifests/worker.yaml:4:1`.\n"
        "\n"
        "```diff\n"
        f'~ {worker}/image                  = "worker:7" -> "worker:8"\n'
        f"~ {worker}/resources/requests/cpu = 1.0 -> 2.0 # forces replacement\n"
        "```\n"
        "\n"
        "</details>\n"
    )


def test_empty_plan_comment_says_azure_matches() -> None:
    text = render_plan_markdown(plan_of())
    assert "**No changes. Azure matches the manifests.**\n" in text
    assert "#### Changes" not in text
    assert "#### Issues" not in text


def test_issues_are_listed_with_their_place() -> None:
    plan = plan_of(
        issues=(
            PlanIssue(severity="warning", message="literal secureValue", source="a.yaml:3:5"),
            PlanIssue(
                severity="error", message="bad cpu", source="b.yaml:9:1", resource_group="rg", name="w"
            ),
        )
    )
    assert render_plan_markdown(plan).endswith(
        "#### Issues\n"
        "\n"
        "- **Error** `b.yaml:9:1`: rg/w: bad cpu\n"
        "- **Warning** `a.yaml:3:5`: literal secureValue\n"
    )


def test_held_change_is_marked_in_its_summary_line() -> None:
    change = replace_change().model_copy(update={"held": "suspended"})
    text = render_plan_markdown(plan_of(change))
    assert "must be replaced (adopting) <em>(held)</em></summary>" in text
    assert "**Held:** suspended; nothing will be done.\n" in text
    assert "| held back (suspend, `recreate: never`) | 1 |\n" in text


def test_data_cannot_inject_html_markup_or_mentions() -> None:
    change = update_change().model_copy(
        update={"reason": "ping @org/admins <img src=x onerror=alert(1)> **bold** [link](http://x)"}
    )
    text = render_plan_markdown(plan_of(change))
    assert "@org" not in text
    assert "<img" not in text
    assert (
        "**Why:** ping &#64;org/admins &lt;img src=x onerror=alert(1)&gt; \\*\\*bold\\*\\* \\[link\\](http://x)"
        in text
    )


def test_names_in_summary_lines_are_html_escaped() -> None:
    change = Change(resource_group="rg(<b>)", name="g", action=Action.DELETE)
    assert "<summary><code>-</code> rg(&lt;b&gt;)/g will be deleted</summary>" in render_plan_markdown(
        plan_of(change)
    )


def test_code_fence_is_longer_than_any_backtick_run_in_the_values() -> None:
    change = Change(
        resource_group="rg",
        name="g",
        action=Action.UPDATE,
        fields=(
            FieldChange(
                path="/properties/containers/a/properties/image", kind="change", before="a```b", after="c"
            ),
        ),
    )
    text = render_plan_markdown(plan_of(change))
    assert '````diff\n~ /properties/containers/a/properties/image = "a```b" -> "c"\n````\n' in text


def test_code_span_survives_backticks() -> None:
    assert code_span("a`b") == "``a`b``"
    assert code_span("`x") == "`` `x ``"
    assert md_escape("a|b_c") == "a\\|b\\_c"


def test_huge_plan_is_cut_to_fit_a_github_comment_and_says_so() -> None:
    changes = tuple(
        update_change().model_copy(update={"name": f"api-{i:03d}", "reason": "x" * 300}) for i in range(400)
    )
    text = render_plan_markdown(plan_of(*changes), max_chars=20_000)
    assert len(text) <= 20_000
    shown = len(re.findall(r"<details>", text))
    assert 0 < shown < 400
    assert f"The details of {400 - shown} more groups do not fit in a comment" in text
    assert "- `~` rg-prod/api-000 will be updated in place\n" not in text  # its details are shown
    assert re.search(
        r"\n- `~` rg-prod/api-\d+ will be updated in place\n- \.\.\. and \d+ more groups\n$", text
    )
    assert "**Plan: 400 to update in place.**" in text


def test_banner_warns_only_when_groups_are_replaced_or_pruned() -> None:
    update = Change(resource_group="rg", name="api", action=Action.UPDATE, changed_paths=("/x",))
    assert "[!WARNING]" not in render_plan_markdown(plan_of(update))
    prune = Change(resource_group="rg", name="old", action=Action.DELETE)
    text = render_plan_markdown(plan_of(update, prune))
    assert "> This plan **deletes 1 group** (pruned: the manifest is gone): `rg/old`.\n" in text
    held = Change(resource_group="rg", name="w", action=Action.REPLACE, held="recreate: never")
    assert "[!WARNING]" not in render_plan_markdown(plan_of(held))


def test_banner_names_at_most_ten_groups_and_counts_the_rest() -> None:
    prunes = [Change(resource_group="rg", name=f"g{i:02d}", action=Action.DELETE) for i in range(13)]
    text = render_plan_markdown(plan_of(*prunes))
    assert "**deletes 13 groups**" in text
    assert "`rg/g09` and 3 more." in text
    assert "`rg/g10`:" not in text


def test_errors_get_a_caution_banner() -> None:
    text = render_plan_markdown(plan_of(issues=(PlanIssue(severity="error", message="bad", source="a:1:1"),)))
    assert "> [!CAUTION]\n> 1 error found while planning" in text


def test_comment_marker_is_the_first_line_and_cannot_close_the_html_comment() -> None:
    plan = plan_of().model_copy(update={"instance": "x --> <script>"})
    first = render_plan_markdown(plan).splitlines()[0]
    assert first == "<!-- aci-reconciler:plan instance=x_--___script_ -->"
