"""Every error the loader reports names the file, line and column; one bad input never hides the others."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.source import MAX_FILE_BYTES, Defaults, load_manifests
from reconciler.source import loader as loader_module
from reconciler.source.walk import WalkItem, walk
from tests.source.conftest import Loader, Writer, manifest, messages


def test_empty_directory_is_valid_and_complete(load: Loader) -> None:
    result = load()
    assert result.groups == ()
    assert result.errors == ()
    assert result.complete


def test_valid_tree_loads_every_group_with_its_source(root: Path, write: Writer, load: Loader) -> None:
    write("a.yaml", manifest("alpha"))
    write("sub/b.yml", manifest("beta") + "---\n" + manifest("gamma"))
    write(
        "c.json",
        '{"name": "delta", "resourceGroup": "rg", "location": "westeurope", "properties": '
        '{"osType": "Linux", "containers": [{"name": "app", "properties": {"image": "nginx", '
        '"resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}}}}]}}',
    )
    write("README.md", "not a manifest")
    result = load()
    assert messages(result, root) == []
    assert [g.manifest.name for g in result.groups] == ["alpha", "delta", "beta", "gamma"]
    assert [str(g.source).replace(f"{root}/", "") for g in result.groups] == [
        "a.yaml:1:1",
        "c.json:1:1",
        "sub/b.yml:1:1",
        "sub/b.yml:11:1",
    ]
    assert result.groups[2].file_digest == result.groups[3].file_digest
    assert result.complete


def test_yaml_syntax_error_is_positioned_and_other_files_still_load(
    root: Path, write: Writer, load: Loader
) -> None:
    write("a.yaml", manifest("alpha"))
    write("b.yaml", "name: beta\nproperties: [unclosed\n")
    result = load()
    assert messages(result, root) == [
        "b.yaml:3:1: invalid YAML: did not find expected ',' or ']' "
        "(while parsing a flow sequence started at line 2, column 13)"
    ]
    assert [g.manifest.name for g in result.groups] == ["alpha"]
    assert not result.complete


def test_one_bad_document_does_not_hide_the_next(root: Path, write: Writer, load: Loader) -> None:
    write("multi.yaml", manifest("alpha", location=None) + "---\n" + manifest("beta"))
    result = load()
    assert messages(result, root) == [
        "multi.yaml:1:1: 'location' is required: set 'location:', e.g. westeurope"
    ]
    assert [g.manifest.name for g in result.groups] == ["beta"]
    assert result.failed_keys == (("rg", "alpha"),)


def test_wrong_type_unknown_field_and_missing_field_are_all_reported(
    root: Path, write: Writer, load: Loader
) -> None:
    write(
        "a.yaml",
        "name: web\n"
        "resourceGroup: rg\n"
        "properties:\n"
        "  osType: Linux\n"
        "  containers:\n"
        "  - name: app\n"
        "    properties:\n"
        "      image: nginx:1.27\n"
        "      resources: {requests: {cpu: lots, memoryInGB: 1.5}}\n"
        "      colour: blue\n",
    )
    result = load()
    assert messages(result, root) == [
        "a.yaml:1:1: 'location' is required: set 'location:', e.g. westeurope",
        "a.yaml:9:35: properties.containers[0].properties.resources.requests.cpu: "
        "'lots' is not a number Azure accepts: write digits with an optional '.' and exponent "
        "(no underscores, hexadecimal, inf or nan)",
        "a.yaml:10:7: properties.containers[0].properties.colour: unknown key 'colour' in "
        "ContainerProperties; allowed keys: command, environmentVariables, image, livenessProbe, ports, "
        "readinessProbe, resources, securityContext, volumeMounts",
    ]
    assert result.failed_keys == (("rg", "web"),)


def test_keys_in_any_case_are_located(root: Path, write: Writer, load: Loader) -> None:
    write("a.yaml", manifest().replace("cpu: 1", "CPU: lots"))
    result = load()
    assert messages(result, root) == [
        "a.yaml:10:35: properties.containers[0].properties.resources.requests.CPU: "
        "'lots' is not a number Azure accepts: write digits with an optional '.' and exponent "
        "(no underscores, hexadecimal, inf or nan)"
    ]


def test_a_document_that_is_not_a_mapping(root: Path, write: Writer, load: Loader) -> None:
    write("a.yaml", "- just\n- a list\n")
    write("b.yaml", "---\njust text\n")
    result = load()
    assert messages(result, root) == [
        "a.yaml:1:1: a manifest is a mapping (name:, location:, properties: ...), not a list",
        "b.yaml:2:1: a manifest is a mapping (name:, location:, properties: ...), not a single value",
    ]


def test_empty_documents_and_comment_only_files_are_skipped(root: Path, write: Writer, load: Loader) -> None:
    write("a.yaml", "# nothing yet\n")
    write("b.yaml", "---\n" + manifest() + "---\n")
    result = load()
    assert messages(result, root) == []
    assert len(result.groups) == 1


def test_duplicate_keys_are_positioned(root: Path, write: Writer, load: Loader) -> None:
    write("a.yaml", manifest() + "location: northeurope\n")
    result = load()
    assert messages(result, root) == ["a.yaml:11:1: duplicate key 'location'"]
    assert result.failed_keys == (("rg", "web"),)


def test_duplicate_group_names_name_both_places(root: Path, write: Writer, load: Loader) -> None:
    write("a.yaml", manifest("web", rg="rg-Prod"))
    write("b/c.yaml", manifest("other") + "---\n" + manifest("web", rg="RG-prod"))
    result = load()
    assert messages(result, root) == [
        "b/c.yaml:11:1: container group 'web' in resource group 'RG-prod' is also defined at a.yaml:1:1; "
        "names are unique per resource group (case-insensitive)"
    ]
    assert [g.manifest.name for g in result.groups] == ["other"]
    assert set(result.failed_keys) == {("rg-Prod", "web"), ("RG-prod", "web")}
    assert not result.complete


def test_same_name_in_different_resource_groups_is_fine(write: Writer, load: Loader) -> None:
    write("a.yaml", manifest("web", rg="rg-a"))
    write("b.yaml", manifest("web", rg="rg-b"))
    result = load()
    assert result.errors == ()
    assert len(result.groups) == 2


def test_alias_bomb_is_an_error_and_other_files_still_load(root: Path, write: Writer, load: Loader) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    write("bomb.yaml", "\n".join(lines) + "\n")
    write("ok.yaml", manifest())
    result = load()
    assert messages(result, root) == [
        "bomb.yaml:6:8: document expands to more than 100000 values (aliases included); "
        "is it an alias bomb? Write the values out, or split the document"
    ]
    assert [g.manifest.name for g in result.groups] == ["web"]


def test_a_huge_file_is_rejected_without_being_read(root: Path, write: Writer, load: Loader) -> None:
    big = write("big.yaml", b"")
    os.truncate(big, 50 * 1024 * 1024)  # sparse: costs nothing, and the loader must not read it
    write("ok.yaml", manifest())
    result = load()
    assert MAX_FILE_BYTES == 4 * 1024 * 1024
    assert messages(result, root) == [
        "big.yaml:1:1: file is larger than 4 MiB (the limit for one manifest file); "
        "split it into several files"
    ]
    assert len(result.groups) == 1


def test_non_utf8_file_names_the_byte_and_its_position(root: Path, write: Writer, load: Loader) -> None:
    write("latin1.yaml", "name: web\nlocation: Z\xfcrich\n".encode("latin-1"))
    write("utf16.yaml", "name: web\n".encode("utf-16"))
    write("bom.yaml", "\ufeff".encode() + manifest().encode())
    result = load()
    assert messages(result, root) == [
        "latin1.yaml:2:12: not UTF-8 text (byte 0xfc); save the file as UTF-8",
        "utf16.yaml:1:1: file is UTF-16; save it as UTF-8",
    ]
    assert [g.manifest.name for g in result.groups] == ["web"]


def test_symlink_loop_is_an_error_not_a_hang(root: Path, write: Writer, load: Loader) -> None:
    write("sub/a.yaml", manifest())
    os.symlink("..", root / "sub" / "up")
    os.symlink("self.yaml", root / "self.yaml")
    result = load()
    assert messages(result, root) == [
        "self.yaml:1:1: symlink loop (the link leads back to itself)",
        f"sub/up:1:1: symlink loop: leads back to {root}",
    ]
    assert len(result.groups) == 1


def test_links_out_of_the_root_are_not_followed(
    tmp_path: Path, root: Path, write: Writer, load: Loader
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.yaml").write_text(manifest("x"))
    os.symlink(outside, root / "dir")
    os.symlink(outside / "x.yaml", root / "file.yaml")
    os.symlink(root / "missing.yaml", root / "broken.yaml")
    result = load()
    assert messages(result, root) == [
        "broken.yaml:1:1: broken symlink (its target does not exist)",
        "dir:1:1: symlink leads outside the manifest directory; not followed",
        "file.yaml:1:1: symlink leads outside the manifest directory; not followed",
    ]
    assert result.groups == ()


def test_links_inside_the_root_are_followed_once(root: Path, write: Writer, load: Loader) -> None:
    write("real/a.yaml", manifest())
    os.symlink("real", root / "zlink")
    result = load()
    assert messages(result, root) == ["zlink:1:1: the same directory as real (a symlink); not read twice"]
    assert len(result.groups) == 1


def test_a_file_that_vanishes_between_walk_and_read(
    root: Path, write: Writer, load: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("a.yaml", manifest("alpha"))
    doomed = write("b.yaml", manifest("beta"))

    def vanishing(path: Path) -> Iterator[WalkItem]:
        for item in walk(path):
            if item.path == doomed:
                doomed.unlink()
            yield item

    monkeypatch.setattr(loader_module, "walk", vanishing)
    result = load()
    assert messages(result, root) == ["b.yaml:1:1: vanished while loading"]
    assert [g.manifest.name for g in result.groups] == ["alpha"]
    assert not result.complete


def test_a_directory_that_vanishes_mid_pass(
    root: Path, write: Writer, load: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    write("a.yaml", manifest("alpha"))
    write("sub/b.yaml", manifest("beta"))

    def vanishing(path: Path) -> Iterator[WalkItem]:
        for item in walk(path):
            yield item
            if item.kind == "manifest" and item.path.name == "a.yaml":
                shutil.rmtree(root / "sub")

    monkeypatch.setattr(loader_module, "walk", vanishing)
    result = load()
    assert messages(result, root) == ["sub:1:1: directory vanished while loading"]
    assert [g.manifest.name for g in result.groups] == ["alpha"]


def test_a_missing_root_is_an_error(tmp_path: Path) -> None:
    result = load_manifests(tmp_path / "nope", defaults=Defaults(), environ={})
    assert [str(e) for e in result.errors] == [f"{tmp_path}/nope:1:1: the manifest directory does not exist"]
    assert not result.complete


def test_a_single_file_can_be_the_root(root: Path, write: Writer, load: Loader) -> None:
    path = write("one.yaml", manifest())
    result = load(at=path)
    assert [g.manifest.name for g in result.groups] == ["web"]


def test_hidden_and_editor_files_are_skipped(root: Path, write: Writer, load: Loader) -> None:
    write(".git/config.yaml", "broken: [")
    write(".hidden.yaml", "broken: [")
    write("a.yaml~", "broken: [")
    write("a.yaml.swp", "broken: [")
    write("#a.yaml#", "broken: [")
    write("a.yaml", manifest())
    result = load()
    assert messages(result, root) == []
    assert len(result.groups) == 1


def test_an_unreadable_file_is_an_error(
    root: Path, write: Writer, load: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = write("a.yaml", manifest("a"))
    write("b.yaml", manifest("b"))
    real_open = os.open

    def denying_open(path: str | Path, flags: int, *args: int) -> int:
        if Path(path) == locked:  # as chmod 0 would, also when the tests run as root
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", denying_open)
    result = load()
    assert messages(result, root) == ["a.yaml:1:1: cannot be read: Permission denied"]
    assert [g.manifest.name for g in result.groups] == ["b"]


def test_json_schema_files_are_not_manifests(root: Path, write: Writer, load: Loader) -> None:
    write(
        "schema.json", '{"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "${NOT_A_VAR}"}'
    )
    write(
        "a.json",
        '{"$schema": "./schema.json", "name": "web", "resourceGroup": "rg", "location": "westeurope", '
        '"properties": {"osType": "Linux", "containers": [{"name": "app", "properties": {"image": "nginx", '
        '"resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}}}}]}}',
    )
    result = load()
    assert messages(result, root) == []
    assert [g.manifest.name for g in result.groups] == ["web"]


def test_the_example_manifests_of_the_repository_load() -> None:
    examples = Path(__file__).resolve().parents[2] / "manifests"
    environ = {"DEMO_SESSION_SECRET": "x", "DEMO_STORAGE_KEY": "y"}
    result = load_manifests(examples, defaults=Defaults(), environ=environ)
    assert [str(e) for e in result.errors] == []
    assert len(result.groups) >= 3


def test_duplicate_key_and_validation_errors_show_together(root: Path, write: Writer, load: Loader) -> None:
    write("a.yaml", manifest().replace("cpu: 1", "cpu: lots") + "name: again\n")
    result = load()
    assert messages(result, root) == [
        "a.yaml:11:1: duplicate key 'name'",
        "a.yaml:10:35: properties.containers[0].properties.resources.requests.cpu: "
        "'lots' is not a number Azure accepts: write digits with an optional '.' and exponent "
        "(no underscores, hexadecimal, inf or nan)",
    ]
    assert result.groups == ()


def test_two_defaults_files_in_one_directory(root: Path, write: Writer, load: Loader) -> None:
    write("_defaults.yaml", "location: westeurope\n")
    write("_defaults.yml", "location: northeurope\n")
    write("a.yaml", manifest(location=None))
    result = load()
    assert messages(result, root) == [
        "_defaults.yml:1:1: a second defaults file in this directory (also _defaults.yaml)"
    ]
    assert result.groups[0].manifest.location == "westeurope"


def test_absurdly_deep_directories_are_an_error_not_a_crash(root: Path, write: Writer, load: Loader) -> None:
    deep = "/".join(["d"] * 70)
    write(f"{deep}/a.yaml", manifest("deep"))
    write("b.yaml", manifest("shallow"))
    result = load()
    assert messages(result, root) == [f"{'/'.join(['d'] * 64)}:1:1: nested more than 64 directories deep"]
    assert [g.manifest.name for g in result.groups] == ["shallow"]


def test_a_valid_group_is_not_applied_when_a_broken_copy_claims_its_name(
    root: Path, write: Writer, load: Loader
) -> None:
    write("a.yaml", manifest("web"))
    write("b.yaml", manifest("web").replace("cpu: 1", "cpu: lots"))
    result = load()
    assert messages(result, root) == [
        "b.yaml:10:35: properties.containers[0].properties.resources.requests.cpu: "
        "'lots' is not a number Azure accepts: write digits with an optional '.' and exponent "
        "(no underscores, hexadecimal, inf or nan)",
        "a.yaml:1:1: container group 'web' in resource group 'rg' is also defined at b.yaml:1:1 "
        "(which has errors); names are unique per resource group (case-insensitive)",
    ]
    assert result.groups == ()
    assert result.failed_keys == (("rg", "web"),)


def test_a_yaml_syntax_error_in_a_later_document_holds_every_group_of_the_file(
    root: Path, write: Writer, load: Loader
) -> None:
    write("multi.yaml", manifest("alpha") + "---\n" + manifest("beta") + "---\nname: [bad\n")
    write("other.yaml", manifest("gamma"))
    result = load()
    assert len(result.errors) == 1
    assert "multi.yaml:" in str(result.errors[0])
    assert [g.manifest.name for g in result.groups] == ["gamma"]
    assert sorted(result.failed_keys) == [("rg", "alpha"), ("rg", "beta")]
    assert not result.complete


def test_an_empty_manifest_file_is_an_error_so_that_its_groups_are_not_pruned(
    root: Path, write: Writer, load: Loader
) -> None:
    write("other.yaml", manifest("gamma"))
    for empty in ("", "\n", "  \n\n"):
        write("web.yaml", empty)
        result = load()
        assert messages(result, root) == [
            "web.yaml:1:1: the file is empty: write its manifest again, or delete the file to remove its "
            "groups (pruning is skipped while it is empty)"
        ]
        assert [g.manifest.name for g in result.groups] == ["gamma"]
        assert not result.complete
