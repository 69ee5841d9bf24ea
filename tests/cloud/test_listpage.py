"""A list page read item by item: each item's text is cut out of the page and decodes to exactly what
`json.loads` makes of the page, whatever its shape; a listed group keeps its body as that text
(`PackedBody`), read like the dict it stands for."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.cloud.listpage import _split, next_link_at_end, page_items
from reconciler.model.observed import PackedBody

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=12,
)
SPACE = st.sampled_from(["", " ", "\n", "\r\n  ", "\t"])


@st.composite
def pages(draw: st.DrawFn) -> str:
    """A page as a server could write it: `value`, maybe `nextLink` and other keys, any order and spacing."""
    entries = [("value", draw(st.lists(JSON, max_size=4)))]
    if draw(st.booleans()):
        entries.append(("nextLink", draw(st.none() | st.text(max_size=10))))
    entries += draw(st.lists(st.tuples(st.sampled_from(["x", "odata.count", "é"]), JSON), max_size=2))
    entries = list(dict(draw(st.permutations(entries))).items())
    sp = draw(SPACE)
    ascii_only = draw(st.booleans())

    def dump(value: Any) -> str:
        indent = None if not sp.strip(" ") else 1
        return json.dumps(value, ensure_ascii=ascii_only, indent=indent)

    inner = f",{sp}".join(f"{sp}{json.dumps(k)}{sp}:{sp}{dump(v)}" for k, v in entries)
    return f"{sp}{{{inner}{sp}}}{sp}"


@given(pages())
def test_each_item_decodes_to_what_json_loads_makes_of_the_page(text: str) -> None:
    found = page_items(text.encode())
    assert found is not None
    items, next_link = found
    page = json.loads(text)
    assert [item for item, _ in items] == page["value"]
    assert [json.loads(t) for _, t in items] == page["value"]
    assert next_link == page.get("nextLink")
    assert _split(text) is not None, "a well-formed page is cut, not decoded and encoded again"


@pytest.mark.parametrize(
    ("text", "value", "next_link"),
    [
        ('{"value": [1], "value": [2]}', [2], None),  # json.loads keeps the last
        ('{"value": {"a": 1}}', [], None),  # not a list: nothing listed
        ('{"value": null, "nextLink": "n"}', [], "n"),
        ('{"nextLink": "n", "value": [{"a": "\\u00e9"}]}', [{"a": "é"}], "n"),
    ],
)
def test_odd_pages_are_read_as_json_loads_reads_them(text: str, value: list[Any], next_link: Any) -> None:
    found = page_items(text.encode())
    assert found is not None
    items, link = found
    assert [item for item, _ in items] == value
    assert [json.loads(t) for _, t in items] == value
    assert link == next_link


@pytest.mark.parametrize("raw", [b"", b"[]", b"not json", b'{"value": [1,', b"\xff\xfe\xfa"])
def test_a_page_that_is_not_a_json_object_lists_nothing(raw: bytes) -> None:
    assert page_items(raw) is None


def test_a_packed_body_reads_as_the_dict_it_stands_for() -> None:
    body = {"properties": {"containers": [{"name": "web"}]}, "tags": {"a": "b"}, "location": "westeurope"}
    packed = PackedBody.of(body)
    assert packed == body
    assert body == packed
    assert dict(packed) == body
    assert {**packed} == body
    assert packed.get("properties") == body["properties"]
    assert packed.get("missing", 3) == 3
    assert "tags" in packed
    assert "x" not in packed
    assert list(packed) == list(body)
    assert len(packed) == 3
    assert packed != {**body, "location": "eastus"}
    assert PackedBody(json.dumps(body, indent=2)) == packed
    assert json.loads(packed.text) == body
    with pytest.raises(TypeError):
        hash(packed)


def test_reads_of_one_body_in_a_row_decode_it_once() -> None:
    one, two = PackedBody('{"a": {"b": 1}}'), PackedBody('{"a": {"b": 1}}')
    first = one.decoded()
    assert one.decoded() is first
    assert one["a"] is first["a"]
    other = two.decoded()
    assert other == first
    assert other is not first
    assert one.decoded() is not first, "only the last body read stays decoded"


@given(pages())
def test_a_link_read_off_the_end_of_a_page_is_the_pages_own_and_is_found_when_it_ends_the_page(
    text: str,
) -> None:
    page = json.loads(text)
    found = next_link_at_end(text.encode())
    link = page.get("nextLink")
    if found is not None:
        assert found == link, "never a link the page does not name"
    ends_with_it = list(page)[-1] == "nextLink" and isinstance(link, str) and link != ""
    assert (found is not None) == ends_with_it


@pytest.mark.parametrize(
    ("raw", "link"),
    [
        (
            b'{"value":[{"name":"a"}],"nextLink":"https://m.example/x?$skipToken=2"}',
            "https://m.example/x?$skipToken=2",
        ),
        (rb'{"value":[],"nextLink":"a\"b\u00e9"}' + b"\n", 'a"b\u00e9'),  # escapes, as JSON decodes them
        (b'{"nextLink":"n","value":[]}', None),  # not the last member: the page is decoded first
        (b'{"value":[{"tags":{"nextLink":"https://evil.example/"}}]}', None),  # an item's key, not the page's
        (b'{"value":[],"nextLink":null}', None),
        (b'{"value":[],"nextLink":""}', None),
        (b'{"value":[],"nextLink":"unterminated}', None),
    ],
)
def test_a_link_is_read_off_the_end_only_where_the_page_itself_ends_with_it(
    raw: bytes, link: str | None
) -> None:
    assert next_link_at_end(raw) == link
