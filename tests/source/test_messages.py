"""Every message that quotes input is one bounded line: `reconciler.model.text.plain`/`shown` escape control
characters and cut long values with a count, and every loader error goes through them (file names, keys,
values), so hostile input can neither forge an output line nor flood it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.model.text import MAX_SHOWN_CHARS, plain, shown
from reconciler.source import load_manifests
from reconciler.source.errors import MAX_MESSAGE_CHARS, MAX_PATH_CHARS
from tests.source.conftest import Loader, Writer, manifest


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("web", "'web'"),
        ("a\nerror: forged", "'a\\nerror: forged'"),
        ("a\r\nb\tc", "'a\\r\\nb\\tc'"),
        ("\x1b[31mred", "'\\x1b[31mred'"),
        ("nul\x00", "'nul\\x00'"),
        ("del\x7f", "'del\\x7f'"),
        ("c1\x85", "'c1\\x85'"),
        ("bidi\u202eevil", "'bidi\\u202eevil'"),
        ("line\u2028sep", "'line\\u2028sep'"),
        ("zero\u200bwidth", "'zero\\u200bwidth'"),
        ("surrogate\udcff", "'surrogate\\udcff'"),
        ("é ü 名前", "'é ü 名前'"),
        ("x" * (MAX_SHOWN_CHARS + 4_194_000), "'" + "x" * MAX_SHOWN_CHARS + "…(+4,194,000 chars)'"),
        (12, "'12'"),
        (Path("dir/a.yaml"), "'dir/a.yaml'"),
    ],
)
def test_shown_escapes_and_bounds(value: object, expected: str) -> None:
    assert shown(value) == expected


@given(st.text(), st.integers(min_value=1, max_value=300))
def test_plain_is_always_one_printable_bounded_line(text: str, limit: int) -> None:
    out = plain(text, limit=limit)
    assert out.isprintable()
    assert "\n" not in out
    assert "\r" not in out
    assert len(out) <= 6 * limit + len("…(+0,000,000,000 chars)")
    if len(text) <= limit and text.isprintable():
        assert out == text


def _lines(result_errors: tuple[object, ...]) -> list[str]:
    return [str(e) for e in result_errors]


def test_a_file_name_with_a_newline_stays_on_its_line(root: Path, write: Writer, load: Loader) -> None:
    write("x\nerror: forged.yaml", "name: [\n")
    (line,) = _lines(load().errors)
    assert "\n" not in line
    assert "x\\nerror: forged.yaml:" in line


def test_a_huge_group_name_does_not_make_a_huge_line(root: Path, write: Writer, load: Loader) -> None:
    big = "g" * 4_000_000
    write("a.yaml", manifest(big))
    errors = _lines(load().errors)
    assert errors
    for line in errors:
        assert len(line) < MAX_PATH_CHARS + MAX_MESSAGE_CHARS + 50
        assert "chars)" in line


@pytest.mark.parametrize(
    "document",
    [
        manifest() + "tags: {'k\\nerror: forged': v}\n",  # a key
        manifest()
        + '  ipAddress: {type: Public, dnsNameLabel: "v\\nerror: forged\\e[2J", ports: [{port: 80}]}\n',
        manifest() + '"unknown\\nerror: forged": 1\n',  # an unknown key
        'name: "web\\nerror: forged"\nresourceGroup: rg\nlocation: westeurope\n'
        + manifest().split("\n", 3)[3],
        manifest() + 'tags: {a: "${ACI_X\\nerror: forged}"}\n',  # a bad substitution
        manifest() + "{x: 1, x: 2}\n",  # a duplicate key (not a valid manifest either way)
        manifest().replace("image: nginx:1.27", 'image: "nginx\\nerror: forged"')
        + "      environmentVariables:\n"
        + '      - {name: "E\\nerror: forged", secureValueFrom: {env: "B\\nerror: x"}}\n',
    ],
)
def test_keys_and_values_with_control_characters_never_forge_a_line(
    root: Path, write: Writer, document: str
) -> None:
    write("a.yaml", document)
    result = load_manifests(root, environ={})
    lines = _lines((*result.errors, *result.warnings))
    assert lines, "the document is invalid"
    for line in lines:
        assert "\n" not in line, line
        assert "\x1b" not in line, line
        assert "\r" not in line, line
        assert line.isprintable(), line
