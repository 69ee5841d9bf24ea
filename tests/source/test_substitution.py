"""`${VAR}` substitution: strict, with defaults and escapes, positioned errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.source.substitute import substitute, substitute_text
from tests.source.conftest import Loader, Writer, manifest, messages


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nginx:${ACI_TAG}", "nginx:1.2"),
        ("${ACI_TAG}${ACI_TAG}", "1.21.2"),
        ("${ACI_MISSING:-fallback}", "fallback"),
        ("${ACI_EMPTY:-fallback}", "fallback"),
        ("${ACI_TAG:-fallback}", "1.2"),
        ("${ACI_MISSING:-}", ""),
        ("$${ACI_TAG}", "${ACI_TAG}"),
        ("$ACI_TAG and 5$", "$ACI_TAG and 5$"),
        ("no dollars", "no dollars"),
    ],
)
def test_substitution_forms(text: str, expected: str) -> None:
    assert substitute_text(text, {"ACI_TAG": "1.2", "ACI_EMPTY": ""}) == (expected, [])


def test_undefined_variable_is_an_error_naming_it() -> None:
    assert substitute_text("a${ACI_NOPE}b", {}) == (
        "a${ACI_NOPE}b",
        ["environment variable ACI_NOPE is not set (use ${ACI_NOPE:-default} to give it a default)"],
    )


@pytest.mark.parametrize("text", ["${", "${1ABC}", "${A B}", "${}", "${A:-${B}}"])
def test_malformed_references_are_errors(text: str) -> None:
    _, problems = substitute_text(text, {"A": "x"})
    assert len(problems) == 1


def test_keys_are_never_substituted_and_non_strings_are_kept() -> None:
    value, problems = substitute({"${ACI_K}": ["${ACI_V}", 1, None, True]}, {"ACI_K": "k", "ACI_V": "v"})
    assert value == {"${ACI_K}": ["v", 1, None, True]}
    assert problems == []


@given(st.text())
def test_text_without_dollar_is_unchanged(text: str) -> None:
    text = text.replace("$", "")
    assert substitute_text(text, {}) == (text, [])


@given(st.text(alphabet=st.characters(blacklist_characters="}"), max_size=30))
def test_substituted_values_are_inserted_verbatim_and_never_re_expanded(value: str) -> None:
    assert substitute_text("<${ACI_V}>", {"ACI_V": value}) == (f"<{value}>", [])


def test_loader_substitutes_before_validation(write: Writer, load: Loader) -> None:
    write(
        "a.yaml",
        manifest().replace("nginx:1.27", "nginx:${ACI_TAG}").replace("cpu: 1", "cpu: '${ACI_CPU:-2}'"),
    )
    result = load(environ={"ACI_TAG": "1.28"})
    assert result.errors == ()
    body = result.groups[0].manifest.to_arm_body(reveal_secrets=False)
    container = body["properties"]["containers"][0]["properties"]
    assert container["image"] == "nginx:1.28"
    assert container["resources"]["requests"]["cpu"] == 2


def test_undefined_variables_are_reported_at_their_scalar(root: Path, write: Writer, load: Loader) -> None:
    write(
        "a.yaml",
        manifest()
        .replace("nginx:1.27", "${ACI_REGISTRY}/nginx:${ACI_TAG}")
        .replace("westeurope", "${ACI_LOC}"),
    )
    result = load()
    assert messages(result, root) == [
        "a.yaml:3:11: location: environment variable ACI_LOC is not set (use ${ACI_LOC:-default} to give "
        "it a default)",
        "a.yaml:9:14: properties.containers[0].properties.image: environment variable ACI_REGISTRY is not "
        "set "
        "(use ${ACI_REGISTRY:-default} to give it a default)",
        "a.yaml:9:14: properties.containers[0].properties.image: environment variable ACI_TAG is not set "
        "(use ${ACI_TAG:-default} to give it a default)",
    ]
    assert result.failed_keys == (("rg", "web"),)
    assert not result.complete
