"""The positioned YAML reader: scalars stay what they were written as, positions, aliases, limits."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from reconciler.source.yamlread import (
    MAX_DEPTH,
    MAX_DOCUMENT_NODES,
    _event_documents,
    _fast_documents,
    _line_documents,
    _positioned_documents,
    parse_documents,
    resolve_plain_scalar,
)

F = Path("f.yaml")


def one(text: str) -> object:
    docs, errors = parse_documents(text, F)
    assert errors == []
    assert len(docs) == 1
    assert docs[0].errors == []
    return docs[0].value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("80", 80),
        ("-3", -3),
        ("1.5", 1.5),
        ("true", True),
        ("False", False),
        ("~", None),
        ("null", None),
        ("", None),
        ("2018-10-01", "2018-10-01"),
        ("2001-12-14t21:59:43.10-05:00", "2001-12-14t21:59:43.10-05:00"),
        ("yes", "yes"),
        ("on", "on"),
        ("NO", "NO"),
        ("0123", "0123"),
        ("1.10", "1.10"),
        ("22:30", "22:30"),
        ("0x1F", "0x1F"),
        ("1_000", "1_000"),
        ("1e3", "1e3"),
        (".inf", ".inf"),
    ],
)
def test_plain_scalars_become_numbers_only_when_their_text_round_trips(text: str, value: object) -> None:
    got = resolve_plain_scalar(text)
    assert got == value
    assert type(got) is type(value)


def test_api_version_date_stays_a_string_and_quoted_numbers_stay_strings() -> None:
    assert one("apiVersion: 2018-10-01\nport: '80'\nn: !!str 12\nm: !!int '12'\n") == {
        "apiVersion": "2018-10-01",
        "port": "80",
        "n": "12",
        "m": 12,
    }


def test_positions_of_values_and_keys_are_one_based() -> None:
    docs, _ = parse_documents("a:\n  b: [x, {c: 1}]\n", F)
    doc = docs[0]
    assert doc.positions[("a",)] == (2, 3)
    assert doc.positions[("a", "b", 1, "c")] == (2, 14)
    assert doc.key_positions[("a", "b")] == (2, 3)
    assert doc.position(("a", "b", 1, "missing")) == (2, 10)


def test_duplicate_keys_are_errors_also_when_only_case_differs() -> None:
    docs, _ = parse_documents("name: a\nName: b\nname: c\n", F)
    assert [str(e) for e in docs[0].errors] == [
        "f.yaml:2:1: duplicate key 'Name' (keys are case-insensitive: 'name')",
        "f.yaml:3:1: duplicate key 'name'",
    ]


def test_secret_volume_file_names_are_case_sensitive() -> None:
    assert one("volumes:\n- secret: {a.txt: x, A.txt: y}\n") == {
        "volumes": [{"secret": {"a.txt": "x", "A.txt": "y"}}]
    }


def test_aliases_expand_with_positions_of_the_anchor() -> None:
    docs, _ = parse_documents("base: &b {cpu: 1}\nother: *b\n", F)
    doc = docs[0]
    assert doc.value == {"base": {"cpu": 1}, "other": {"cpu": 1}}
    assert doc.value["base"] is not doc.value["other"]
    assert doc.positions[("other",)] == (2, 8)
    assert doc.positions[("other", "cpu")] == (1, 16)


def test_merge_keys_merge_and_explicit_keys_win() -> None:
    assert one("a: &a {x: 1, y: 2}\nb:\n  <<: *a\n  y: 3\n") == {"a": {"x": 1, "y": 2}, "b": {"x": 1, "y": 3}}


def test_alias_bomb_fails_fast_with_a_clear_error() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    started = time.perf_counter()
    docs, errors = parse_documents("\n".join(lines) + "\n", Path("bomb.yaml"))
    assert time.perf_counter() - started < 2.0
    assert errors == []
    assert not docs[0].ok
    assert [str(e) for e in docs[0].errors] == [
        f"bomb.yaml:6:8: document expands to more than {MAX_DOCUMENT_NODES} values (aliases included); "
        "is it an alias bomb? Write the values out, or split the document"
    ]


def test_recursive_alias_is_an_error() -> None:
    docs, _ = parse_documents("a: &a [1, *a]\n", F)
    assert [str(e) for e in docs[0].errors] == [
        "f.yaml:1:11: alias *a refers to a value that contains it (recursive alias)"
    ]


def test_unknown_alias_is_an_error() -> None:
    docs, _ = parse_documents("a: *nope\n", F)
    assert [str(e) for e in docs[0].errors] == [
        "f.yaml:1:4: unknown alias *nope; define it with &nope before using it"
    ]


def test_deep_nesting_is_refused_without_crashing_the_interpreter() -> None:
    depth = 200_000
    started = time.perf_counter()
    docs, _ = parse_documents("[" * depth + "]" * depth, F)
    assert time.perf_counter() - started < 2.0
    assert [str(e) for e in docs[0].errors] == [
        f"f.yaml:1:{MAX_DEPTH + 1}: nested more than {MAX_DEPTH} levels deep"
    ]


def test_unsupported_tags_are_errors() -> None:
    docs, _ = parse_documents("a: !!python/object:os.system x\nb: !Ref y\n", F)
    assert [str(e) for e in docs[0].errors] == [
        "f.yaml:1:4: unsupported YAML tag '!!python/object:os.system'; manifests use plain values only",
        "f.yaml:2:4: unsupported YAML tag '!Ref'; manifests use plain values only",
    ]


def test_syntax_error_keeps_earlier_documents_and_names_the_position() -> None:
    docs, errors = parse_documents("a: 1\n---\nb: [1,\n", F)
    assert docs[0].ok
    assert docs[0].value == {"a": 1}
    assert not docs[1].ok
    assert [str(e) for e in errors] == [
        "f.yaml:4:1: invalid YAML: did not find expected node content "
        "(while parsing a flow node started at line 4, column 1)"
    ]


def test_control_characters_are_a_positioned_error() -> None:
    _, errors = parse_documents("a: 1\nb: \x07\n", F)
    assert [str(e) for e in errors] == ["f.yaml:2:4: invalid YAML: control characters are not allowed"]


def test_json_reads_through_the_same_path() -> None:
    assert one('{"name": "web", "cpu": 1.5, "ok": true, "n": null, "l": [1, "2"]}') == {
        "name": "web",
        "cpu": 1.5,
        "ok": True,
        "n": None,
        "l": [1, "2"],
    }


def test_non_string_keys_become_their_text() -> None:
    assert one("80: a\ntrue: b\n") == {"80": "a", "true": "b"}


def test_a_collection_as_key_is_an_error() -> None:
    docs, _ = parse_documents("? [a]\n: b\n", F)
    assert [str(e) for e in docs[0].errors] == [
        "f.yaml:1:3: a mapping key must be a plain string, not a mapping or a list"
    ]


def test_merged_values_keep_the_positions_of_where_they_were_written() -> None:
    docs, _ = parse_documents("a: &a {x: 1, y: [2, {z: 3}]}\nb: &b {w: 4}\nc:\n  <<: [*a, *b]\n  x: 0\n", F)
    doc = docs[0]
    assert doc.value["c"] == {"x": 0, "y": [2, {"z": 3}], "w": 4}
    assert doc.positions[("c", "x")] == (5, 6)
    assert doc.positions[("c", "y", 1, "z")] == (1, 25)
    assert doc.key_positions[("c", "w")] == (2, 8)


def test_many_merge_keys_stay_fast() -> None:
    lines = ["base: &b {" + ", ".join(f"k{i}: {i}" for i in range(200)) + "}"]
    lines += [f"m{i}:\n  <<: *b\n  own: {i}" for i in range(300)]
    started = time.perf_counter()
    docs, _ = parse_documents("\n".join(lines) + "\n", F)
    assert time.perf_counter() - started < 5.0
    assert docs[0].ok
    assert docs[0].value["m299"]["k199"] == 199


# The fast path (no positions) and the positioned builder must agree on every value; the positions of a
# fast-path document are worked out when first asked for, and are the positioned builder's.

_KEYS = st.sampled_from(
    ["name", "Name", "image", "ports", "port", "value", "secret", "<<", "a", "A", "80", "true"]
)
_SCALARS = st.one_of(
    st.sampled_from(
        ["yes", "on", "0123", "1.10", "22:30", "~", "null", "", "1e3", "2018-10-01", "x: y", "- z"]
    ),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=25,
)


def _documents(text: str) -> list[tuple[object, object]]:
    docs, errors = _positioned_documents(text, F)
    return [(d.start, d.value) for d in docs] if not errors and all(d.ok for d in docs) else []


def _fast_agrees_with_positioned(text: str) -> bool:
    """True when the fast path read `text`; then its values are exactly the positioned builder's."""
    fast = _fast_documents(text)
    if fast is None:
        return False
    assert fast == _documents(text)
    for (_, a), (_, b) in zip(fast, _documents(text), strict=True):
        assert repr(a) == repr(b)  # the same types too (1 is not 1.0, True is not 1)
    return True


@given(st.lists(_VALUES, min_size=1, max_size=3), st.sampled_from([False, True]))
def test_fast_path_reads_plain_yaml_exactly_as_the_positioned_builder(
    values: list[object], flow: bool
) -> None:
    text = yaml.safe_dump_all(values, default_flow_style=flow, allow_unicode=True)
    # Plain YAML takes the fast path unless a mapping's keys repeat (case-folded) or hold a merge key.
    assert _fast_agrees_with_positioned(text) == all(_plain_keys(v) for v in values)


def _plain_keys(value: object) -> bool:
    if isinstance(value, dict):
        folded = {k.casefold() for k in value}
        return len(folded) == len(value) and "<<" not in value and all(_plain_keys(v) for v in value.values())
    if isinstance(value, list):
        return all(_plain_keys(v) for v in value)
    return True


@given(
    st.lists(
        st.sampled_from([*"ab:-[]{}&*!|>'\"#,?~ \n", "---\n", "<<: ", "!!str ", "Ab: "]), max_size=120
    ).map("".join)
)
def test_fast_path_never_reads_noise_differently(text: str) -> None:
    _fast_agrees_with_positioned(text)


def test_a_plain_document_is_located_only_when_asked_and_then_exactly() -> None:
    text = "name: a\nproperties:\n  containers:\n  - name: web\n    image: x\n"
    docs, _ = parse_documents(text, F)
    assert docs[0].located is None  # read by the fast path: no positions built
    positioned, _ = _positioned_documents(text, F)
    assert docs[0].positions == positioned[0].positions
    assert docs[0].key_positions == positioned[0].key_positions
    assert docs[0].position(("properties", "containers", 0, "image")) == (5, 12)


@pytest.mark.parametrize(
    "text",
    [
        "a: &x 1\nb: *x\n",  # anchor, alias
        "a: !!str 1\n",  # tag
        "<<: {a: 1}\n",  # merge key
        "a: 1\nA: 2\n",  # keys equal but for case
        "a: 1\na: 2\n",  # duplicate
        "? [a]\n: b\n",  # a list as key
        "a: [1,\n",  # syntax error
        "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),  # too deep
    ],
)
def test_the_fast_path_leaves_anything_unusual_to_the_positioned_builder(text: str) -> None:
    assert _fast_documents(text) is None


def test_the_documents_of_one_file_are_located_by_one_read_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.source import yamlread

    reads: list[str] = []
    positioned = yamlread._positioned_documents

    def counting(text: str, path: Path) -> object:
        reads.append(text)
        return positioned(text, path)

    monkeypatch.setattr(yamlread, "_positioned_documents", counting)
    docs, _ = parse_documents("".join(f"---\nname: g{i}\n" for i in range(50)), F)
    assert reads == [], "plain documents take the fast path"
    assert [d.position(("name",)) for d in docs] == [(2 + 2 * i, 7) for i in range(50)]
    assert len(reads) == 1


def test_short_values_of_files_read_apart_are_one_object_and_long_ones_are_left_alone() -> None:
    long = "x" * 65
    text = "name: web\nimage: {image}\nenv: [MODE, prod]\nnote: {long}\n"
    first = one(text.format(image="nginx:1.25", long=long))
    second = one(text.format(image="nginx" + ":1.25", long=long))
    assert isinstance(first, dict)
    assert isinstance(second, dict)
    assert first == second
    assert first["image"] is second["image"]
    assert first["env"][0] is second["env"][0]
    assert first["note"] == second["note"]
    assert first["note"] is not second["note"]


# The line reader (`_line_documents`) reads the common shape of a manifest without libyaml; whatever it
# takes it must read exactly as libyaml's events do, and anything else it must leave to them.


def _line_agrees_with_events(text: str) -> bool:
    """True when the line reader read `text`; then its documents are exactly the events' (types too)."""
    lines = _line_documents(text)
    if lines is None:
        return False
    events = _event_documents(text)
    assert events is not None, (
        f"the line reader took a text libyaml's events leave to the positioned builder: {text!r}"
    )
    assert repr(lines) == repr(events), text
    return True


# Scalars as written on a line: plain, quoted, flow collections, and texts that are not one value at all.
_SAFE_WRITTEN = [
    "web",
    "nginx:1.25",
    "myregistry.azurecr.io/web:1.25",
    "/healthz",
    "1",
    "-3",
    "1.5",
    "80",
    "0123",
    "1.10",
    "1e3",
    "~",
    "null",
    "Null",
    "true",
    "FALSE",
    "yes",
    "on",
    "22:30",
    "a b  c",
    "http://x:80/y",
    "--port",
    "-a",
    "a#b",
    "a,b",
    "a]",
    "a[0]",
    "x=y",
    "$(VAR)",
    "''",
    '""',
    "'it''s'",
    '"x # y"',
    "'a: b'",
    '"- z"',
    "[]",
    "{}",
    "[a, b]",
    "[ a ,b ]",
    '["/app/serve", "--port", "80"]',
    "[-1, -a, 1.5]",
    "{cpu: 1, memoryInGB: 1.5}",
    "{path: /healthz, port: 80}",
    "[a, [b, c], {d: e}]",
    "{a: [1, 2], b: x}",
    "[{port: 80}]",
    "['a''b', \"c\"]",
    "a :b",
    "a ,b",
    "a  # c",
    "x #",
    "'#'",
    "0x1F",
    "1_000",
    ".inf",
    "-.5",
    "+5",
    "1e400",
    "1" * 40,
    "=",
    "a'b",
    "a?b",
    "a!b",
    "a&b",
    "a|b",
    "a%b",
    "[a b, c]",
    "[~, null, true]",
    "{a: b,c: d}",
    "[ ]",
    "a\\b",
]
_ODD_WRITTEN = [
    "a: b",
    "a:",
    "- a",
    "-",
    "&a x",
    "*a",
    "!t x",
    "!!str 1",
    "|",
    ">",
    "|-",
    "@x",
    "`x",
    "%x",
    "?x",
    ":x",
    ",a",
    "]",
    "}",
    '"unterminated',
    "'unterminated",
    "[a,",
    "{a: 1",
    "[a,]",
    "{a:1}",
    "[a: b]",
    '{"a": 1}',
    "{a: 1, a: 2}",
    "{a: 1, A: 2}",
    '"a\\tb"',
    '"a" b',
    "'a'b",
    "[a] b",
    "[- a]",
    "[a, - b]",
    "a\tb",
    "é",
    "a\\b",
    "{? a}",
    "{a b: c}",
    "[a]]",
    "{a: b}}",
    "[a #c]",
    "{a: }",
    "[,]",
    "- - a",
]
_KEYS_WRITTEN = [
    "name",
    "Name",
    "image",
    "a.b",
    "x-y",
    "a/b",
    "_k",
    "80",
    "true",
    "<<",
    "a b",
    '"q"',
    "-k",
    "k:",
]


@st.composite
def _block_texts(draw: st.DrawFn, odd: bool) -> str:
    """A text of one to three documents in the block style of a hand-written manifest: indentation of any
    width, lists under keys indented or not, comments and blank lines anywhere; with `odd`, also keys,
    values and lines the line reader leaves to libyaml."""
    # An odd part now and then: a text full of them is only ever an error.
    written = st.sampled_from(_SAFE_WRITTEN * (6 if odd else 1) + (_ODD_WRITTEN if odd else []))
    keys = st.sampled_from(_KEYS_WRITTEN[:9] * (6 if odd else 1) + (_KEYS_WRITTEN[9:] if odd else []))
    lines: list[str] = []

    def comment() -> None:
        if draw(st.integers(0, 9)) == 0:
            lines.append(" " * draw(st.integers(0, 6)) + draw(st.sampled_from(["# note", "#", ""])))

    def trailer() -> str:
        return draw(st.sampled_from(["", "", "", " # why", "  ", "  #"]))

    def mapping(indent: int, depth: int, first_prefix: str | None = None) -> None:
        used: set[str] = set()
        for i in range(draw(st.integers(1, 4))):
            key = draw(keys)
            if not odd and key.lower() in used:
                continue
            used.add(key.lower())
            prefix = first_prefix if (i == 0 and first_prefix is not None) else " " * indent
            comment()
            shape = draw(st.integers(0, 3)) if depth < 4 else 0
            if shape == 0:
                lines.append(f"{prefix}{key}: {draw(written)}{trailer()}")
            elif shape == 1:
                lines.append(f"{prefix}{key}:{trailer()}")
                mapping(indent + draw(st.integers(1, 4)), depth + 1)
            else:
                lines.append(f"{prefix}{key}:{trailer()}")
                sequence(indent + (0 if shape == 2 else draw(st.integers(1, 4))), depth + 1)
        if odd and draw(st.integers(0, 15)) == 0:
            lines.append(" " * (indent + draw(st.integers(1, 3))) + draw(written))  # a continued line

    def sequence(indent: int, depth: int) -> None:
        for _ in range(draw(st.integers(1, 3))):
            comment()
            dash = " " * indent + "-" + " " * draw(st.integers(1, 3))
            if depth < 4 and draw(st.booleans()):
                mapping(len(dash), depth + 1, first_prefix=dash)
            else:
                lines.append(f"{dash}{draw(written)}{trailer()}")

    for n in range(draw(st.integers(1, 3))):
        if n or draw(st.booleans()):
            lines.append(
                draw(
                    st.sampled_from(["---", "--- # doc", "---  "] + (["---x", "...", "--- a"] if odd else []))
                )
            )
        comment()
        if draw(st.integers(0, 4)) == 0:
            sequence(draw(st.integers(0, 2)), 1)
        else:
            mapping(draw(st.integers(0, 2)), 1)
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n"]))


@given(_block_texts(odd=False))
def test_line_reader_reads_hand_written_block_yaml_exactly_as_libyaml(text: str) -> None:
    assert _line_agrees_with_events(text), f"the line reader left plain block YAML to libyaml: {text!r}"


@given(_block_texts(odd=True))
def test_line_reader_reads_odd_block_yaml_as_libyaml_or_leaves_it_to_libyaml(text: str) -> None:
    _line_agrees_with_events(text)


@given(
    st.lists(
        st.sampled_from(
            [*"ab1:-[]{}&*!|>'\"#,?~ \n", "\n  ", "\n- ", "---\n", "<<: ", "!!str ", "Ab: ", "a: "]
        ),
        max_size=120,
    ).map("".join)
)
def test_line_reader_never_reads_noise_differently(text: str) -> None:
    _line_agrees_with_events(text)


@given(st.data())
def test_line_reader_reads_edited_manifests_as_libyaml_or_leaves_them(data: st.DataObject) -> None:
    text = data.draw(st.sampled_from(_EXAMPLES))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        piece = data.draw(
            st.sampled_from([*" -:#'\"[]{},\n&*!|>%@`\t", "  ", "\n  ", "- ", ": ", " #", "---"])
        )
        text = text[:at] + piece + text[at + data.draw(st.integers(0, 2)) :]
    _line_agrees_with_events(text)


_EXAMPLES = [p.read_text() for p in sorted((Path(__file__).parents[2] / "manifests").glob("*.yaml"))]


@pytest.mark.parametrize("text", _EXAMPLES, ids=range(len(_EXAMPLES)))
def test_line_reader_reads_the_example_manifests_as_libyaml(text: str) -> None:
    # Only a block scalar (`|`, `>-`: a script) sends an example to libyaml.
    assert _line_agrees_with_events(text) or re.search(r": [|>][-+]?$|^ *- [|>][-+]?$", text, re.MULTILINE)


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\n  b: 2\n",  # a deeper line after a value
        "a: b\n  c\n",  # a plain scalar continued on the next line
        "a: |\n  x\n",  # a block scalar
        'a: "x\n  y"\n',  # a quoted scalar continued
        'a: "x\\ty"\n',  # an escape
        "a: [1,\n  2]\n",  # a flow collection continued
        "a:\n\tb: 1\n",  # a tab
        "a: caf\u00e9\n",  # not ASCII
        "a: 1\r\nb: 2\r\n",  # CR
        "-\n  a: 1\n",  # a dash alone
        "- - a\n",  # a list in a list on one line
        '"a": 1\n',  # a quoted key
        "a: 1\n...\n",  # a document end marker
        "%YAML 1.2\n---\na: 1\n",  # a directive
        "x\n",  # a scalar document
        "a: &x 1\nb: *x\n",  # an anchor and an alias
    ],
)
def test_line_reader_leaves_what_it_does_not_read_to_libyaml(text: str) -> None:
    assert _line_documents(text) is None
