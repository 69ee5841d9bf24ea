"""The walk names each file by the text `str(path)` would give, without making the `Path`: the load cache
keys files by that text, so a root written any way (`.`, `dir/`, `./dir`, absolute) must give the same text
for a file as pathlib does, and the `Path` made on demand must be the one pathlib would make."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.source import LoadCache, load_manifests
from reconciler.source.walk import DEFAULTS_STEM, MANIFEST_SUFFIXES, WalkItem, child_text, file_kind, walk
from tests.source.conftest import PROPS

# Directory texts as a `Path` gives them, from spellings with dots, repeated and trailing separators.
SEGMENTS = st.sampled_from(["", ".", "a", "b.d", "x y", "..", "é"])
DIRECTORIES = st.builds(
    lambda lead, parts, trail: lead + "/".join(parts) + trail,
    st.sampled_from(["", "/", "//", "./"]),
    st.lists(SEGMENTS, max_size=4),
    st.sampled_from(["", "/", "//"]),
)
# Names a directory listing gives: no separator, never `.` or `..`.
NAMES = st.text(st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1).filter(
    lambda n: n not in (".", "..")
)


@given(DIRECTORIES, NAMES)
def test_child_text_is_the_text_of_pathlibs_child(directory: str, name: str) -> None:
    parent = Path(directory) if directory else Path(".")
    assert child_text(str(parent), name) == str(parent / name)


def test_a_walk_item_makes_its_path_once_and_keeps_a_path_it_was_given(tmp_path: Path) -> None:
    made = WalkItem("manifest", str(tmp_path / "a.yaml"))
    assert made.path == tmp_path / "a.yaml"
    assert made.path is made.path
    given_path = tmp_path / "b.yaml"
    assert WalkItem("manifest", given_path).path is given_path
    assert WalkItem("manifest", given_path).text == str(given_path)


def manifest(name: str) -> str:
    return f"name: {name}\nresourceGroup: rg-a\nlocation: westeurope\n" + PROPS


@pytest.mark.parametrize("spelling", [".", "m", "m/", "./m", "./m/", "m//", "ABSOLUTE"])
def test_every_file_of_a_walk_is_named_as_pathlib_names_it_however_the_root_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spelling: str
) -> None:
    base = tmp_path / "m" if spelling in (".", "ABSOLUTE") else tmp_path
    (tmp_path / "m" / "sub").mkdir(parents=True)
    (tmp_path / "m" / "a.yaml").write_text(manifest("a"))
    (tmp_path / "m" / "sub" / "b.yaml").write_text(manifest("b"))
    monkeypatch.chdir(base)
    root = Path(str(tmp_path / "m") if spelling == "ABSOLUTE" else spelling)

    files = [item for item in walk(root) if item.kind == "manifest"]

    assert [item.path.name for item in files] == ["a.yaml", "b.yaml"]
    for item in files:
        assert item.text == str(item.path)
        assert os.path.samefile(item.text, item.path)
        assert item.directory == item.path.parent
    # The cache takes every file by that text on the next pass.
    cache = LoadCache()
    first = load_manifests(root, environ={}, cache=cache)
    second = load_manifests(root, environ={}, cache=cache)
    assert [g.manifest.name for g in second.groups] == ["a", "b"] == [g.manifest.name for g in first.groups]
    assert cache.hits == 2


def test_the_files_of_a_directory_share_one_directory_object(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.yaml").write_text(manifest(name))
    directories = {id(item.directory) for item in walk(tmp_path) if item.kind == "manifest"}
    assert len(directories) == 1


def kind_by_splitext(name: str) -> str | None:
    stem, suffix = os.path.splitext(name)
    if suffix.lower() not in MANIFEST_SUFFIXES:
        return None
    return "defaults" if stem == DEFAULTS_STEM else "manifest"


SUFFIXES = [".yaml", ".YML", ".json", ".Json", "..yaml", ".", "", "_defaults.yaml", "._defaults.yml"]
ENTRY_CHARS = st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",))


@given(
    st.text(st.sampled_from(list("._aYyMmLlJjSsOoNn-#~ ")), max_size=12)
    | st.builds(
        lambda stem, suffix: stem + suffix,
        st.text(ENTRY_CHARS, max_size=5),
        st.sampled_from(SUFFIXES),
    )
    | st.text(ENTRY_CHARS)
)
def test_a_files_kind_is_read_from_its_suffix_as_splitext_reads_it(name: str) -> None:
    assert file_kind(name) == kind_by_splitext(name)
