"""Properties every rendering keeps for any plan: determinism, colour that strips back to plain text, valid
JSON whose counts agree with the plan, and no raw control characters from the data."""

from __future__ import annotations

import json
import random
import re

from hypothesis import given
from hypothesis import strategies as st

from reconciler.model.plan import ACTION_ORDER, Action, Change, FieldChange, Plan, PlanIssue
from reconciler.render import plan_to_json, render_plan_json, render_plan_markdown, render_plan_text

ANSI = re.compile(r"\x1b\[[0-9;]*m")

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
segments = st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=5)

fields = st.builds(
    FieldChange,
    path=segments.map(lambda s: "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in s)),
    kind=st.sampled_from(["add", "remove", "change"]),
    before=json_values,
    after=json_values,
    sensitive=st.booleans(),
    forces_replacement=st.booleans(),
)

changes = st.builds(
    Change,
    resource_group=names,
    name=names,
    action=st.sampled_from(list(Action)),
    adopt=st.booleans(),
    reason=st.text(max_size=30),
    held=st.none() | st.text(min_size=1, max_size=12),
    source=st.none() | st.text(max_size=20),
    fields=st.lists(fields, max_size=4).map(tuple),
)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    entries = draw(st.lists(changes, max_size=5, unique_by=lambda c: c.key))
    issues = draw(
        st.lists(
            st.builds(
                PlanIssue,
                severity=st.sampled_from(["warning", "error"]),
                message=st.text(max_size=30),
                source=st.none() | st.text(max_size=20),
            ),
            max_size=3,
        )
    )
    return Plan(revision=draw(names), instance=draw(names), changes=tuple(entries), issues=tuple(issues))


@given(plans(), st.randoms())
def test_renderings_do_not_depend_on_the_order_of_the_plan(plan: Plan, rnd: random.Random) -> None:
    shuffled = list(plan.changes)
    rnd.shuffle(shuffled)
    other = plan.model_copy(update={"changes": tuple(shuffled)})
    assert render_plan_text(other, show_noop=True) == render_plan_text(plan, show_noop=True)
    assert render_plan_markdown(other) == render_plan_markdown(plan)
    assert render_plan_json(other) == render_plan_json(plan)


@given(plans())
def test_colour_strips_back_to_the_plain_text(plan: Plan) -> None:
    assert ANSI.sub("", render_plan_text(plan, color=True)) == render_plan_text(plan)


@given(plans())
def test_no_raw_control_characters_reach_the_terminal_or_the_comment(plan: Plan) -> None:
    for text in (render_plan_text(plan, show_noop=True), render_plan_markdown(plan)):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]", text)


@given(plans())
def test_json_is_valid_and_its_summary_agrees_with_the_plan(plan: Plan) -> None:
    data = json.loads(render_plan_json(plan))
    assert data == json.loads(json.dumps(plan_to_json(plan)))
    assert data["format_version"] == "1"
    assert data["has_changes"] == plan.has_changes
    for action in ACTION_ORDER:
        assert data["summary"][action.value] == sum(c.action is action for c in plan.changes)
    assert len(data["changes"]) == len(plan.changes)
    for entry in data["changes"]:
        for f in entry["fields"]:
            if f["sensitive"]:
                assert {f["before"], f["after"]} <= {"(sensitive)", None}


@given(plans())
def test_summary_line_says_no_changes_exactly_when_nothing_will_happen(plan: Plan) -> None:
    text = render_plan_text(plan)
    nothing = (
        not plan.changes_something if False else not any(c.action is not Action.NOOP for c in plan.changes)
    )
    assert text.endswith("No changes. Azure matches the manifests.\n") == (nothing and not plan.errors)
