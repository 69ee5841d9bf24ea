"""Defaults: CLI (weakest), `_defaults.yaml` per directory (nearer wins), tags and reconcile merged."""

from __future__ import annotations

from pathlib import Path

from reconciler.source import Defaults
from tests.source.conftest import Loader, Writer, manifest, messages


def test_cli_defaults_fill_resource_group_and_location(write: Writer, load: Loader) -> None:
    write("a.yaml", manifest(rg=None, location=None))
    result = load(defaults=Defaults(resource_group="rg-cli", location="northeurope"))
    assert result.errors == ()
    group = result.groups[0].manifest
    assert (group.resource_group, group.location) == ("rg-cli", "northeurope")


def test_manifest_values_beat_every_default(write: Writer, load: Loader) -> None:
    write("_defaults.yaml", "resourceGroup: rg-dir\nlocation: northeurope\n")
    write("a.yaml", manifest(rg="rg-own", location="westeurope"))
    result = load(defaults=Defaults(resource_group="rg-cli", location="eastus"))
    group = result.groups[0].manifest
    assert (group.resource_group, group.location) == ("rg-own", "westeurope")


def test_nearer_defaults_file_wins_and_cli_is_weakest(write: Writer, load: Loader) -> None:
    write("_defaults.yaml", "resourceGroup: rg-top\nlocation: northeurope\ntags: {team: a, env: prod}\n")
    write("top.yaml", manifest("top", rg=None, location=None))
    write("team/_defaults.yml", "resourceGroup: rg-team\ntags: {team: b}\nreconcile: {prune: false}\n")
    write("team/x.yaml", manifest("x", rg=None, location=None) + "tags: {owner: me, Env: dev}\n")
    write("team/deeper/y.yaml", manifest("y", rg=None, location=None) + "reconcile: {prune: true}\n")
    write("other/z.yaml", manifest("z", rg=None, location=None))
    result = load(defaults=Defaults(resource_group="rg-cli", location="eastus"))
    assert result.errors == ()
    got = {
        g.manifest.name: (
            g.manifest.resource_group,
            g.manifest.location,
            g.manifest.tags,
            g.manifest.policy.prune,
        )
        for g in result.groups
    }
    assert got == {
        "top": ("rg-top", "northeurope", {"team": "a", "env": "prod"}, True),
        "z": ("rg-top", "northeurope", {"team": "a", "env": "prod"}, True),
        "x": ("rg-team", "northeurope", {"team": "b", "owner": "me", "Env": "dev"}, False),
        "y": ("rg-team", "northeurope", {"team": "b", "env": "prod"}, True),
    }


def test_defaults_do_not_leak_into_sibling_directories(write: Writer, load: Loader) -> None:
    write("a/_defaults.yaml", "resourceGroup: rg-a\n")
    write("b/x.yaml", manifest("x", rg=None))
    result = load(defaults=Defaults(resource_group="rg-cli"))
    assert result.groups[0].manifest.resource_group == "rg-cli"


def test_defaults_file_keys_are_case_insensitive_and_substituted(write: Writer, load: Loader) -> None:
    write("_defaults.yaml", "ResourceGroup: rg-${ACI_STAGE}\nLOCATION: westeurope\n")
    write("a.yaml", manifest(rg=None, location=None))
    result = load(environ={"ACI_STAGE": "prod"})
    assert result.errors == ()
    assert result.groups[0].manifest.resource_group == "rg-prod"


def test_unknown_key_in_defaults_file_is_an_error_and_its_scope_is_not_loaded(
    root: Path, write: Writer, load: Loader
) -> None:
    write("_defaults.yaml", "resourceGroup: rg\nlocaton: westeurope\n")
    write("a.yaml", manifest())
    result = load()
    assert messages(result, root) == [
        "_defaults.yaml:2:1: unknown key 'locaton' in a defaults file: use resourceGroup, location, tags, "
        "reconcile, envAllow, secretsDir"
    ]
    assert result.groups == ()
    assert not result.complete


def test_defaults_file_type_errors_are_positioned(root: Path, write: Writer, load: Loader) -> None:
    write("sub/_defaults.yaml", "resourceGroup: [a]\ntags: {a: {b: c}}\nreconcile: yes\n")
    write("ok.yaml", manifest())
    write("sub/a.yaml", manifest("a"))
    result = load()
    assert messages(result, root) == [
        "sub/_defaults.yaml:1:16: resourceGroup: must be a non-empty string",
        "sub/_defaults.yaml:2:11: tags.a: must be a string",
        "sub/_defaults.yaml:3:12: reconcile: must be a mapping",
    ]
    assert [g.manifest.name for g in result.groups] == ["web"]


def test_defaults_file_with_two_documents_is_an_error(root: Path, write: Writer, load: Loader) -> None:
    write("_defaults.yaml", "location: a\n---\nlocation: b\n")
    result = load()
    assert messages(result, root) == ["_defaults.yaml:2:1: a defaults file has one document"]


def test_policy_error_from_a_defaults_file_points_at_the_defaults_file(
    root: Path, write: Writer, load: Loader
) -> None:
    write("_defaults.yaml", "reconcile:\n  recreate: sometimes\n")
    write("a.yaml", manifest())
    result = load()
    assert len(result.errors) == 1
    assert (
        str(result.errors[0]).replace(f"{root}/", "").startswith("_defaults.yaml:2:13: reconcile.recreate: ")
    )


def test_missing_resource_group_explains_where_to_set_it(root: Path, write: Writer, load: Loader) -> None:
    write("a.yaml", manifest(rg=None))
    result = load()
    assert messages(result, root) == [
        "a.yaml:1:1: 'resourceGroup' is required: set 'resourceGroup:' in the manifest, a directory default, "
        "or --resource-group"
    ]
    assert result.failed_keys == ()


def test_groups_under_a_broken_defaults_file_are_known_as_failed(
    root: Path, write: Writer, load: Loader
) -> None:
    write("team/_defaults.yaml", "resourceGroup: [\n")
    write("team/a.yaml", manifest("a", rg="rg-own") + "---\n" + manifest("b", rg=None))
    result = load()
    assert messages(result, root) == [
        "team/_defaults.yaml:2:1: invalid YAML: did not find expected node content "
        "(while parsing a flow node started at line 2, column 1)"
    ]
    assert result.groups == ()
    assert result.failed_keys == (("rg-own", "a"),)
