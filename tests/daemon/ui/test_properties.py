"""Properties of the page's rendering: whatever a name, tag, message or log line holds, the page's element
structure is the same as for plain text, and the text reads back exactly; a sensitive value never appears."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.daemon.state import GroupState, OutcomeRecord, Phase, Reason
from reconciler.daemon.ui import views
from reconciler.daemon.ui.routes import environment

ENV = environment()
# Text as people (and attackers) type it: markup characters, quotes, entities, template syntax, any letter.
TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from("<>&\"'`{}%#;/=!-"), st.characters(codec="utf-8", exclude_categories=["Cs"])
    ),
    min_size=1,
    max_size=40,
)


class Shape(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag + "|" + ",".join(sorted(k for k, _ in attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def shape(html: str) -> Shape:
    parser = Shape()
    parser.feed(html)
    return parser


STATUS: dict[str, Any] = {"instance": "default", "jobs": []}


def state(name: str, message: str) -> GroupState:
    group = GroupState(resource_group="rg", name=name)
    group.set(Phase.STALLED, Reason.APPLY_REJECTED, message)
    group.last_error = message
    group.remember(OutcomeRecord(at=0.0, action="update", result="failed", duration_s=1.0, revision="r",
                                       message=message))  # fmt: skip
    return group


def fleet_html(name: str, message: str) -> str:
    model = views.fleet(STATUS, [state(name, message)], {}, {}, now=10.0)
    return ENV.get_template("fleet_main.html").render(m=model, refresh_ms=1000)


def group_html(name: str, message: str) -> str:
    live = {"ok": True, "containers": [{"name": "c", "state": "Running", "detail": message, "exit_code": None,
            "started": None, "restart_count": 0, "events": [], "log": [message]}], "events": []}  # fmt: skip
    model = views.group(STATUS, state(name, message), None, None, now=10.0, live=live)
    return ENV.get_template("group_main.html").render(g=model, refresh_ms=1000)


@settings(max_examples=150, deadline=None)
@given(name=TEXT, message=TEXT)
def test_any_name_or_message_leaves_the_pages_structure_alone_and_reads_back_as_text(
    name: str, message: str
) -> None:
    for render in (fleet_html, group_html):
        plain = shape(render("plain", "plain message"))
        hostile = shape(render(name, message))
        assert hostile.tags == plain.tags, render.__name__
        assert name in "".join(hostile.text)
    assert message in "".join(shape(group_html(name, message)).text)
