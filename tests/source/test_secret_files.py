"""Secret files inside the manifest root are never manifests: the files a `...From: {file: ...}` names and
everything under `secrets/` (or the `secretsDir:` of a `_defaults.yaml`) are not parsed, so their values are
never quoted in an error, and a secret that is not valid YAML does not make the load incomplete (which would
stop pruning)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.source import load_manifests
from tests.source.conftest import Loader, Writer, manifest, messages

SECRET = "s3cr3t: [unclosed CANARY-file-9f2e"  # invalid YAML that an error message would quote


def referencing(path: str) -> str:
    return (
        manifest() + f"      environmentVariables:\n      - {{name: S, secureValueFrom: {{file: {path}}}}}\n"
    )


@pytest.mark.parametrize("name", ["token.yaml", "token.json", "keys/token.yml", "sub/../token.yaml"])
def test_a_file_named_by_a_secret_reference_is_not_a_manifest(
    root: Path, write: Writer, load: Loader, name: str
) -> None:
    write(name.replace("sub/../", ""), SECRET + "\n")
    write("a.yaml", referencing(name))
    result = load()
    assert result.errors == ()
    assert result.complete, "a secret that is not YAML must not stop pruning"
    assert list(result.groups[0].manifest.secret_values().values()) == [SECRET]


def test_a_reference_whose_key_is_spelled_by_an_escape_still_keeps_its_file_out(
    root: Path, write: Writer, load: Loader
) -> None:
    write("token.yaml", SECRET + "\n")
    write("a.yaml", referencing("token.yaml").replace("secureValueFrom", '"secureValue\\x46rom"'))
    result = load()
    assert result.errors == ()
    assert list(result.groups[0].manifest.secret_values().values()) == [SECRET]


def test_a_secret_file_referenced_from_a_subdirectory_is_found_relative_to_its_manifest(
    root: Path, write: Writer, load: Loader
) -> None:
    write("team/creds/db.yaml", SECRET)
    write("team/a.yaml", referencing("creds/db.yaml"))
    assert load().errors == ()


def test_files_under_secrets_are_never_manifests_even_unreferenced(
    root: Path, write: Writer, load: Loader
) -> None:
    write("secrets/spare.yaml", SECRET)
    write("secrets/deeper/other.json", "{" + SECRET)
    write("a.yaml", manifest())
    result = load()
    assert result.errors == ()
    assert result.complete
    assert len(result.groups) == 1


def test_secrets_dir_in_the_root_defaults_file_names_another_directory(
    root: Path, write: Writer, load: Loader
) -> None:
    write("_defaults.yaml", "secretsDir: vault\n")
    write("vault/key.yaml", SECRET)
    write("a.yaml", manifest())
    assert load().errors == ()


def test_a_secrets_dir_that_leaves_the_root_is_an_error(root: Path, write: Writer, load: Loader) -> None:
    write("_defaults.yaml", "secretsDir: ../elsewhere\n")
    write("a.yaml", manifest())
    assert messages(load(), root) == [
        "_defaults.yaml:1:13: secretsDir: '../elsewhere' must be a directory inside the manifest root, "
        "relative to this file"
    ]


def test_a_broken_file_elsewhere_is_still_an_error_and_never_quotes_a_secret(
    root: Path, write: Writer, load: Loader
) -> None:
    write("token.yaml", SECRET)
    write("a.yaml", referencing("token.yaml"))
    write("b.yaml", "name: [\n")
    result = load()
    assert [e.path.name for e in result.errors] == ["b.yaml"]
    assert all("CANARY" not in str(e) for e in result.errors)


def test_revision_ignores_secret_files(root: Path, write: Writer, load: Loader) -> None:
    write("a.yaml", referencing("token.yaml"))
    write("token.yaml", "one")
    first = load().revision
    write("token.yaml", "two")
    assert load().revision == first


def test_several_roots_load_as_one_set_and_find_duplicates_across_them(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "a.yaml").write_text(manifest("web"))
    (two / "b.yaml").write_text(manifest("api"))
    (tmp_path / "single.yaml").write_text(manifest("solo"))
    result = load_manifests([one, two, tmp_path / "single.yaml"], environ={})
    assert sorted(g.manifest.name for g in result.groups) == ["api", "solo", "web"]
    assert result.revision.startswith("sha256:")
    (two / "c.yaml").write_text(manifest("web"))
    result = load_manifests([one, two], environ={})
    assert [g.manifest.name for g in result.groups] == ["api"]
    assert len(result.errors) == 1
    assert "is also defined at" in str(result.errors[0])


def test_a_file_given_twice_is_read_once(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(manifest("web"))
    result = load_manifests([tmp_path, tmp_path / "a.yaml"], environ={})
    assert result.errors == ()
    assert len(result.groups) == 1
