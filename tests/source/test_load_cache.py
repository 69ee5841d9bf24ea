"""The daemon's load cache: a load with it gives exactly what a cold load gives, on generated trees through
random edits (files changed, added and removed, defaults changed, variables changed), and it never keeps a
file whose result depends on the environment or holds a secret."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.source import Defaults, LoadCache, LoadResult, load_manifests
from tests.source.conftest import PROPS

NAMES = [f"g{n}" for n in range(6)]


def body(name: str, *, image: str = "nginx:1.27", location: bool = True, rg: str = "rg-a") -> str:
    text = f"name: {name}\nresourceGroup: {rg}\n"
    if location:
        text += "location: westeurope\n"
    return text + PROPS.replace("nginx:1.27", image)


# One file's content: valid, with a ${VAR} image, with a secret reference, invalid, or two documents.
FILE_KINDS = st.sampled_from(["plain", "plain2", "var", "secret", "invalid", "two", "nolocation"])


def content(kind: str, name: str) -> str:
    if kind == "plain":
        return body(name)
    if kind == "plain2":
        return body(name, image="nginx:1.29")
    if kind == "var":
        return body(name, image="nginx:${ACI_TAG}")
    if kind == "secret":
        return body(name) + (
            "      environmentVariables:\n      - name: TOKEN\n        secureValueFrom: {env: ACI_TOKEN}\n"
        )
    if kind == "invalid":
        return body(name).replace("cpu: 1", "cpu: lots")
    if kind == "two":
        return body(name) + "---\n" + body(name + "-b")
    return body(name, location=False)


def snapshot(result: LoadResult) -> Any:
    return (
        [(g.manifest.model_dump(), str(g.source), g.file_digest, g.document) for g in result.groups],
        [str(e) for e in result.errors],
        [str(w) for w in result.warnings],
        result.revision,
        result.failed_keys,
        result.files,
    )


EDIT = st.tuples(
    st.sampled_from(["write", "remove", "defaults", "env"]),
    st.sampled_from(["top", "sub"]),
    st.sampled_from(NAMES),
    FILE_KINDS,
)


def apply_edit(root: Path, env: dict[str, str], edit: tuple[str, str, str, str]) -> None:
    what, where, name, kind = edit
    folder = root if where == "top" else root / "sub"
    folder.mkdir(exist_ok=True)
    if what == "write":
        (folder / f"{name}.yaml").write_text(content(kind, name))
    elif what == "remove":
        (folder / f"{name}.yaml").unlink(missing_ok=True)
    elif what == "defaults":
        location = {"plain": "northeurope", "plain2": "westus"}.get(kind)
        defaults = folder / "_defaults.yaml"
        if location is None:
            defaults.unlink(missing_ok=True)
        else:
            defaults.write_text(f"location: {location}\ntags: {{team: {name}}}\n")
    else:
        env["ACI_TAG"] = {"plain": "1.25", "plain2": "1.27"}.get(kind, "1.29")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.lists(
        st.tuples(st.sampled_from(["top", "sub"]), st.sampled_from(NAMES), FILE_KINDS), max_size=8
    ),
    edits=st.lists(st.lists(EDIT, min_size=1, max_size=4), min_size=1, max_size=4),
)
def test_a_cached_load_equals_a_cold_load_through_any_edits(
    first: list[tuple[str, str, str]], edits: list[list[tuple[str, str, str, str]]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "manifests"
        root.mkdir()
        env = {"ACI_TAG": "1.27", "ACI_TOKEN": "s3cret-token-value"}
        for where, name, kind in first:
            apply_edit(root, env, ("write", where, name, kind))
        cache = LoadCache()

        def both() -> None:
            warm = load_manifests(root, defaults=Defaults(resource_group="rg-a"), environ=env, cache=cache)
            cold = load_manifests(root, defaults=Defaults(resource_group="rg-a"), environ=env)
            assert snapshot(warm) == snapshot(cold)

        both()
        for batch in edits:
            both()  # unchanged: served from the cache, still the same
            for edit in batch:
                apply_edit(root, env, edit)
            both()
        for entry in cache.entries.values():
            for group in entry.groups:
                assert "s3cret-token-value" not in str(group.manifest.model_dump()), "no secret is kept"


def write(root: Path, name: str, text: str) -> None:
    (root / name).write_text(text)


def test_unchanged_files_come_from_the_cache_and_changed_ones_are_parsed_again(tmp_path: Path) -> None:
    for name in NAMES:
        write(tmp_path, f"{name}.yaml", body(name))
    cache = LoadCache()
    load_manifests(tmp_path, defaults=Defaults(), cache=cache)
    assert (cache.hits, cache.misses) == (0, 6)
    load_manifests(tmp_path, defaults=Defaults(), cache=cache)
    assert (cache.hits, cache.misses) == (6, 6)
    write(tmp_path, "g0.yaml", body("g0", image="nginx:1.29"))
    result = load_manifests(tmp_path, defaults=Defaults(), cache=cache)
    assert (cache.hits, cache.misses) == (11, 7)
    g0 = next(g for g in result.groups if g.manifest.name == "g0")
    assert g0.manifest.properties.containers[0].properties.image == "nginx:1.29"
    (tmp_path / "g1.yaml").unlink()
    load_manifests(tmp_path, defaults=Defaults(), cache=cache)
    assert sorted(cache.entries) == sorted(str(tmp_path / f"{n}.yaml") for n in NAMES if n != "g1")


def test_a_file_with_a_variable_is_resolved_every_pass_and_never_kept(tmp_path: Path) -> None:
    write(tmp_path, "web.yaml", body("web", image="nginx:${ACI_TAG}"))
    cache = LoadCache()
    first = load_manifests(tmp_path, defaults=Defaults(), environ={"ACI_TAG": "1.25"}, cache=cache)
    second = load_manifests(tmp_path, defaults=Defaults(), environ={"ACI_TAG": "1.27"}, cache=cache)
    assert first.groups[0].manifest.properties.containers[0].properties.image == "nginx:1.25"
    assert second.groups[0].manifest.properties.containers[0].properties.image == "nginx:1.27"
    assert cache.entries == {}


def test_a_file_with_a_secret_is_never_kept(tmp_path: Path) -> None:
    write(tmp_path, "web.yaml", content("secret", "web"))
    cache = LoadCache()
    result = load_manifests(tmp_path, defaults=Defaults(), environ={"ACI_TOKEN": "t0ken-value"}, cache=cache)
    assert not result.errors, result.errors
    assert cache.entries == {}


def test_a_changed_defaults_file_reloads_the_files_under_it(tmp_path: Path) -> None:
    write(tmp_path, "web.yaml", body("web", location=False))
    write(tmp_path, "_defaults.yaml", "location: westeurope\n")
    cache = LoadCache()
    assert (
        load_manifests(tmp_path, defaults=Defaults(), cache=cache).groups[0].manifest.location == "westeurope"
    )
    write(tmp_path, "_defaults.yaml", "location: northeurope\n")
    assert (
        load_manifests(tmp_path, defaults=Defaults(), cache=cache).groups[0].manifest.location
        == "northeurope"
    )
