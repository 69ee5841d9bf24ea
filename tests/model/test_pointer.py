"""JSON Pointers: `join` escapes exactly as RFC 6901 says, on its fast path and off it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconciler.model import pointer

# Tokens rich in the two characters RFC 6901 escapes, and in the escapes' own spelling.
_tokens = st.lists(st.text(alphabet="ab/~01", max_size=6) | st.integers(0, 99), max_size=6)


@given(_tokens)
def test_join_escapes_each_token_as_rfc_6901_says(tokens: list[str | int]) -> None:
    expected = "".join("/" + str(t).replace("~", "~0").replace("/", "~1") for t in tokens)
    assert pointer.join(tokens) == expected


@given(_tokens)
def test_split_of_join_gives_the_tokens_back(tokens: list[str | int]) -> None:
    assert pointer.split(pointer.join(tokens)) == [str(t) for t in tokens]


def test_join_of_names_with_slashes_and_tildes_escapes_them() -> None:
    assert pointer.join(["properties", "volumes", "a/b", "~x"]) == "/properties/volumes/a~1b/~0x"
    assert pointer.join([]) == ""
    assert pointer.join([""]) == "/"
