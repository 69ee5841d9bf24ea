"""The daemon's load cache: a load with it gives exactly what a cold load gives, on generated trees through
random edits (files changed, added and removed, defaults changed, variables and secrets changed); it keeps a
file with `${VAR}` substitutions with the values they read, a file with secret references as validated before
their values were put in (resolved again every pass), and never a file with a literal secret. A file whose
stat is unchanged and old is not even read; one whose stat moved in any way, or was too fresh to trust, is."""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.source import Defaults, LoadCache, LoadResult, load_manifests, loader
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


# Distinct mtimes for the writes of a test that trusts stats: a test writes faster than the file system's
# clock ticks, and two same-size writes in one tick have the same stat (what `LoadCache.RACY_NS` is for).
_TICKS = itertools.count(1)


def apply_edit(
    root: Path, env: dict[str, str], edit: tuple[str, str, str, str], *, distinct_mtime: bool = False
) -> None:
    what, where, name, kind = edit
    folder = root if where == "top" else root / "sub"
    folder.mkdir(exist_ok=True)
    if what == "write":
        path = folder / f"{name}.yaml"
        path.write_text(content(kind, name))
        if distinct_mtime:
            tick = next(_TICKS) * 1_000_000_000
            os.utime(path, ns=(tick, tick))
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
        token = TOKENS.get(kind)
        if token is None:
            env.pop("ACI_TOKEN", None)
        else:
            env["ACI_TOKEN"] = token


# The values the secret reference of a "secret" file reads (an "env" edit changes it or unsets it).
TOKENS = {"plain": "s3cret-token-value", "plain2": "another-s3cret", "var": "a-third-s3cret"}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    first=st.lists(
        st.tuples(st.sampled_from(["top", "sub"]), st.sampled_from(NAMES), FILE_KINDS), max_size=8
    ),
    edits=st.lists(st.lists(EDIT, min_size=1, max_size=4), min_size=1, max_size=4),
    trust_stats=st.booleans(),
)
def test_a_cached_load_equals_a_cold_load_through_any_edits(
    first: list[tuple[str, str, str]], edits: list[list[tuple[str, str, str, str]]], trust_stats: bool
) -> None:
    """With `trust_stats` the cache's clock is an hour ahead, so every unchanged stat is old enough to be
    trusted without reading (the writes get distinct mtimes, as writes seconds apart would have)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "manifests"
        root.mkdir()
        env = {"ACI_TAG": "1.27", "ACI_TOKEN": "s3cret-token-value"}
        for where, name, kind in first:
            apply_edit(root, env, ("write", where, name, kind), distinct_mtime=trust_stats)
        cache = LoadCache(clock=_an_hour_ahead) if trust_stats else LoadCache()

        def both() -> None:
            warm = load_manifests(root, defaults=Defaults(resource_group="rg-a"), environ=env, cache=cache)
            cold = load_manifests(root, defaults=Defaults(resource_group="rg-a"), environ=env)
            assert snapshot(warm) == snapshot(cold)

        both()
        for batch in edits:
            both()  # unchanged: served from the cache, still the same
            for edit in batch:
                apply_edit(root, env, edit, distinct_mtime=trust_stats)
            both()
        for entry in cache.entries.values():
            for group in entry.groups:
                try:
                    held = set(group.manifest.secret_values().values())
                except ValueError:  # UnresolvedSecretError: kept without its values, as it must be
                    held = set()
                assert not held & set(TOKENS.values()), "no secret value is kept"


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


def _image(result: LoadResult) -> str:
    return str(result.groups[0].manifest.properties.containers[0].properties.image)


def test_a_file_with_variables_is_kept_with_the_values_it_read_and_loaded_again_when_one_changes(
    tmp_path: Path,
) -> None:
    write(tmp_path, "web.yaml", body("web", image="nginx:${ACI_TAG}${ACI_SUFFIX:-}"))
    cache = LoadCache()

    def load(env: dict[str, str]) -> LoadResult:
        return load_manifests(tmp_path, defaults=Defaults(), environ=env, cache=cache)

    first = load({"ACI_TAG": "1.25", "ACI_OTHER": "x"})
    assert _image(first) == "nginx:1.25"
    [entry] = cache.entries.values()
    assert entry.env == (("ACI_TAG", "1.25"), ("ACI_SUFFIX", None)), "each variable read, set or not"
    again = load({"ACI_TAG": "1.25", "ACI_OTHER": "y"})
    assert (cache.hits, cache.misses) == (1, 1), "a variable it does not read changes nothing"
    assert again.groups[0].manifest is first.groups[0].manifest
    assert _image(load({"ACI_TAG": "1.27"})) == "nginx:1.27"
    assert _image(load({"ACI_TAG": "1.27", "ACI_SUFFIX": "-slim"})) == "nginx:1.27-slim", "set since"
    assert (cache.hits, cache.misses) == (1, 3)


def test_a_file_whose_variable_is_unset_keeps_its_error_until_the_variable_is_set(tmp_path: Path) -> None:
    write(tmp_path, "web.yaml", body("web", image="nginx:${ACI_TAG}"))
    cache = LoadCache()
    for _ in range(2):
        failed = load_manifests(tmp_path, defaults=Defaults(), environ={}, cache=cache)
        assert not failed.groups
        assert ["ACI_TAG is not set" in e.message for e in failed.errors] == [True]
    fixed = load_manifests(tmp_path, defaults=Defaults(), environ={"ACI_TAG": "1.25"}, cache=cache)
    assert _image(fixed) == "nginx:1.25"


def _token(result: LoadResult) -> dict[str, str]:
    return result.groups[0].manifest.secret_values()


def test_a_file_with_a_secret_reference_is_kept_without_its_value_and_resolved_again_every_pass(
    tmp_path: Path,
) -> None:
    write(tmp_path, "web.yaml", content("secret", "web"))
    cache = LoadCache()

    def load(env: dict[str, str]) -> LoadResult:
        return load_manifests(tmp_path, defaults=Defaults(), environ=env, cache=cache)

    first = load({"ACI_TOKEN": "t0ken-value"})
    assert not first.errors, first.errors
    assert list(_token(first).values()) == ["t0ken-value"]
    [entry] = cache.entries.values()
    [kept] = entry.groups
    assert kept.manifest.unresolved_secrets(), "kept as validated, before the value was put in"
    assert "t0ken-value" not in str(kept.manifest.model_dump()) + repr(entry)
    assert first.groups[0].unresolved is kept.manifest

    second = load({"ACI_TOKEN": "rotated-value"})
    assert (cache.hits, cache.misses) == (1, 1)
    assert list(_token(second).values()) == ["rotated-value"], "the value is read again"
    assert second.groups[0].unresolved is kept.manifest

    unset = load({})
    cold = load_manifests(tmp_path, defaults=Defaults(), environ={})
    assert snapshot(unset) == snapshot(cold), (
        "an unresolvable reference loads afresh: its error names the line"
    )
    assert [e.line for e in unset.errors] == [e.line for e in cold.errors] != []
    assert cache.entries == {}, "a load with an error is not kept"
    assert list(_token(load({"ACI_TOKEN": "t0ken-value"})).values()) == ["t0ken-value"]


REFERENCE = "      environmentVariables:\n      - name: TOKEN\n        secureValueFrom: {env: APP_SECRET}\n"
LITERAL = "      - name: OTHER\n        secureValue: written-in-the-file\n"


@pytest.mark.parametrize(
    ("extra", "kept"),
    [
        pytest.param(REFERENCE, True, id="a reference to a variable named like a secret"),
        pytest.param(REFERENCE + LITERAL, False, id="a reference and a literal secret"),
        pytest.param(
            REFERENCE.replace("APP_SECRET", '"${ACI_NAME}"'), True, id="a reference named by a variable"
        ),
    ],
)
def test_only_a_file_without_a_literal_secret_is_kept(tmp_path: Path, extra: str, kept: bool) -> None:
    write(tmp_path, "web.yaml", body("web") + extra)
    cache = LoadCache()
    env = {"APP_SECRET": "t0ken-value", "ACI_NAME": "APP_SECRET"}
    result = load_manifests(tmp_path, defaults=Defaults(), environ=env, cache=cache)
    assert not result.errors, result.errors
    assert "t0ken-value" in result.groups[0].manifest.secret_values().values()
    assert bool(cache.entries) is kept


def test_a_secret_file_named_by_a_manifest_that_is_not_read_again_is_still_never_a_manifest(
    tmp_path: Path, reads: list[Path]
) -> None:
    # The secret file has a manifest's extension: only the reference to it says it is a secret.
    (tmp_path / "token.yaml").write_text("not: a manifest\n")
    write(
        tmp_path,
        "web.yaml",
        body("web")
        + "      environmentVariables:\n      - name: TOKEN\n        secureValueFrom: {file: token.yaml}\n",
    )
    cache = LoadCache(clock=_an_hour_ahead)
    first = load_manifests(tmp_path, defaults=Defaults(), cache=cache)
    assert not first.errors, first.errors
    web = tmp_path / "web.yaml"
    assert reads.count(web) == 1
    again = load_manifests(tmp_path, defaults=Defaults(), cache=cache)
    assert reads.count(web) == 1, "web.yaml is not read again"
    assert not again.errors, "token.yaml is still a secret, not a manifest"
    assert [g.manifest.name for g in again.groups] == ["web"]
    assert list(_token(again).values()) == ["not: a manifest"]
    (tmp_path / "token.yaml").write_text("rotated\n")
    assert list(_token(load_manifests(tmp_path, defaults=Defaults(), cache=cache)).values()) == ["rotated"]
    # New defaults: web.yaml is loaded afresh (read again after the walk found it unchanged), and kept anew.
    (tmp_path / "_defaults.yaml").write_text("tags: {team: web}\n")
    for _ in range(2):
        result = load_manifests(tmp_path, defaults=Defaults(), cache=cache)
        assert not result.errors, "still a secret"
        assert [g.manifest.tags for g in result.groups] == [{"team": "web"}]


EXTENSION = """\
  extensions:
  - name: kube
    properties: {extensionType: kube-proxy, version: '1.0', %s}
"""


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param(EXTENSION % "protectedSettings: {token: t0ken-value}", id="protected settings"),
        pytest.param(
            EXTENSION % '"protected\\x53ettings": {token: t0ken-value}', id="key spelled by an escape"
        ),
        pytest.param(
            '  volumes:\n  - name: v\n    "s\\x65cret": {token: dDBrZW4tdmFsdWU=}\n',
            id="secret volume by an escape",
        ),
        pytest.param(
            '  imageRegistryCredentials:\n  - {server: r.io, username: u, "pass\\u0077ord": t0ken-value}\n',
            id="password by an escape",
        ),
    ],
)
def test_every_literal_secret_is_warned_about_and_its_file_never_kept(tmp_path: Path, extra: str) -> None:
    write(tmp_path, "web.yaml", body("web") + extra)
    cache = LoadCache()
    result = load_manifests(tmp_path, defaults=Defaults(), cache=cache)
    assert not result.errors, result.errors
    [warning] = result.warnings
    assert "literal secret" in warning.message
    assert "t0ken-value" not in str(warning)
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


def _an_hour_ahead() -> int:
    return time.time_ns() + 3600 * 1_000_000_000


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every manifest file the loader reads from disk, in order."""
    seen: list[Path] = []
    real_read = loader._read

    def counting(path: Path) -> tuple[bytes | None, Any]:
        seen.append(path)
        return real_read(path)

    monkeypatch.setattr(loader, "_read", counting)
    return seen


def test_a_file_whose_stat_is_unchanged_and_old_is_not_read_again(tmp_path: Path, reads: list[Path]) -> None:
    for name in NAMES:
        write(tmp_path, f"{name}.yaml", body(name))
    cache = LoadCache(clock=_an_hour_ahead)
    first = load_manifests(tmp_path, defaults=Defaults(), cache=cache)
    assert len(reads) == 6
    again = load_manifests(tmp_path, defaults=Defaults(), cache=cache)
    assert len(reads) == 6, "nothing read the second time"
    assert snapshot(again) == snapshot(first)
    assert again.fresh == {}, "nothing parsed afresh either"


def test_a_file_rewritten_with_the_same_size_and_mtime_is_read_again(
    tmp_path: Path, reads: list[Path]
) -> None:
    # What only ctime tells: `cp -p`, `rsync -t` or `touch -r` can put the old mtime back, never the ctime.
    path = tmp_path / "web.yaml"
    path.write_text(body("web", image="nginx:1.27"))
    before = path.stat()
    cache = LoadCache(clock=_an_hour_ahead)
    load_manifests(tmp_path, defaults=Defaults(), cache=cache)
    path.write_text(body("web", image="nginx:1.29"))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size
    result = load_manifests(tmp_path, defaults=Defaults(), cache=cache)
    assert result.groups[0].manifest.properties.containers[0].properties.image == "nginx:1.29"
    assert reads == [path, path]
    assert str(path) in result.fresh


def test_a_stat_too_recent_when_read_is_never_trusted(tmp_path: Path, reads: list[Path]) -> None:
    # A second write in the same tick of a coarse file-system clock would leave the stat as it was.
    write(tmp_path, "web.yaml", body("web"))
    cache = LoadCache()  # the real clock: the file was written just now
    load_manifests(tmp_path, defaults=Defaults(), cache=cache)
    load_manifests(tmp_path, defaults=Defaults(), cache=cache)
    assert len(reads) == 2, "read again, and compared by content"
    assert cache.hits == 1
    (entry,) = cache.entries.values()
    assert entry.stamp is not None
    assert not cache.trusts(entry, entry.stamp)
    aged = LoadCache(clock=_an_hour_ahead)
    assert aged.trusts(entry, entry.stamp) is False, "trust is judged by when it was read, not by now"
    old = loader._Cached(**{**_fields(entry), "read_at": max(entry.stamp[3:]) + LoadCache.RACY_NS + 1})
    assert cache.trusts(old, entry.stamp)
    assert not cache.trusts(old, (*entry.stamp[:4], entry.stamp[4] + 1)), "another ctime is another file"


def _fields(entry: Any) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in entry.__slots__}


def test_a_file_reached_from_two_roots_is_loaded_once(tmp_path: Path) -> None:
    # `reconcile plan -f manifests -f manifests/web.yaml`: one group, not a duplicate of itself.
    write(tmp_path, "web.yaml", body("web"))
    for cache in (None, LoadCache()):
        result = load_manifests([tmp_path, tmp_path / "web.yaml"], defaults=Defaults(), cache=cache)
        assert not result.errors, result.errors
        assert [g.manifest.name for g in result.groups] == ["web"]
