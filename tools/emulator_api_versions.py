"""Rebuild `reconciler/emulator/data/api_versions.json` from a local checkout of Azure/azure-rest-api-specs.

Run by hand when the spec repository gains an api-version (the emulator never runs it):

    python tools/emulator_api_versions.py PATH/TO/azure-rest-api-specs [--out FILE] [--check]

The checkout needs `specification/containerinstance` (and `specification/common-types` if a spec refers into
it); a sparse checkout of those two folders is enough. If the checkout is a git work tree, the commit of the
checkout and the last commit that changed each spec file are recorded; otherwise they are `null`.

For every `containerInstance.json`-like file under a `stable/VERSION/` or `preview/VERSION/` folder of
`specification/containerinstance` that defines `GET .../containerGroups/{name}`, the schema of that GET's
200 response is walked: `$ref` followed (local, and into other files by relative path), `allOf` merged,
`properties` become `/name` segments, array items and map values (`additionalProperties`) become `/*`.
Each reachable path is recorded, and whether it is read-only (`readOnly` on it or on an ancestor).
`discriminator`/`x-ms-discriminator-value` polymorphism is not expanded (the ContainerGroup schemas have
none). A definition met again below itself is not expanded a second time (recursive schemas terminate).

The data file keeps the base version (`BASE`, the one the emulator renders) in full and every other version
as the paths it lacks (`absent`) and has in addition (`extra`) against the base, which is much smaller than
full lists. `--check` compares instead of writing and exits 1 when the file is stale.

The pure core (`resource_paths`, `build_data`, `render`) takes parsed documents and a loader, so the tests
feed it a tiny synthetic spec; only `discover`, `git_commit` and `main` touch the disk or git.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BASE = "2023-05-01"
REPOSITORY = "Azure/azure-rest-api-specs"
SPEC_ROOT = "specification/containerinstance"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "reconciler" / "emulator" / "data" / "api_versions.json"

FORMAT = (
    "Property paths of a Microsoft.ContainerInstance container group as GET returns it, per api-version "
    "('*' is an array item or a map value). The base version lists all its paths and the read-only ones; "
    "every other version lists, against the base: 'absent' (the highest base paths it lacks; what is below "
    "them is absent too), 'extra' (all paths it has beyond the base), 'readOnlyAbsent' (base read-only "
    "paths it has but not as read-only) and 'readOnlyExtra' (its read-only paths that are not read-only "
    "in the base). 'order' is date order; 'spec' is the file and 'changed_in' the last commit that "
    "changed it, in 'repository' at 'commit'."
)

_VERSION_DIR = re.compile(r"^(?P<date>\d{4}-\d{2}-\d{2})(?P<preview>-preview)?$")
_GROUP_PATH = re.compile(
    r"/providers/Microsoft\.ContainerInstance/containerGroups/\{[^}/]+\}$", re.IGNORECASE
)

Json = Mapping[str, Any]
Loader = Callable[[str], Json]


@dataclass(frozen=True)
class SpecFile:
    """One api-version's spec document, where it came from, and the commit that last changed it."""

    version: str
    path: str  # relative to the checkout, with forward slashes
    document: Json
    changed_in: str | None = None


@dataclass
class _Node:
    """A schema with `$ref` and `allOf` resolved: what is below it, keyed by path segment."""

    read_only: bool
    children: dict[str, tuple[Json, str]]  # segment -> (schema, the file it is written in)
    refs: frozenset[tuple[str, str]]  # the definitions expanded to build it: (file, JSON pointer)


def channel(version: str) -> str:
    """`stable` or `preview`, as the spec repository files the version."""
    return "preview" if version.endswith("-preview") else "stable"


def version_key(version: str) -> tuple[str, int]:
    """Date order; on the same date a preview sorts before the stable version."""
    match = _VERSION_DIR.match(version)
    if match is None:
        raise ValueError(f"not an api-version: {version!r}")
    return match["date"], 0 if match["preview"] else 1


def _split_ref(ref: str, current: str) -> tuple[str, str]:
    file_part, _, pointer = ref.partition("#")
    target = (
        current
        if not file_part
        else posixpath.normpath(posixpath.join(posixpath.dirname(current), file_part))
    )
    return target, pointer


def _pointer(document: Json, pointer: str) -> Json:
    node: Any = document
    for raw in pointer.strip("/").split("/") if pointer.strip("/") else []:
        part = raw.replace("~1", "/").replace("~0", "~")
        node = node[part]
    if not isinstance(node, Mapping):
        raise ValueError(f"$ref {pointer!r} does not name a schema object")
    return node


def _flatten(schema: Json, where: str, load: Loader, stack: frozenset[tuple[str, str]]) -> _Node:
    read_only = bool(schema.get("readOnly", False))
    children: dict[str, tuple[Json, str]] = {}
    refs = stack
    ref = schema.get("$ref")
    if isinstance(ref, str):
        key = _split_ref(ref, where)
        if key not in stack:
            inner = _flatten(_pointer(load(key[0]), key[1]), key[0], load, stack | {key})
            read_only = read_only or inner.read_only
            children.update(inner.children)
            refs = refs | inner.refs
    for part in schema.get("allOf", ()):
        inner = _flatten(part, where, load, stack)
        children.update(inner.children)
        refs = refs | inner.refs
    for name, prop in schema.get("properties", {}).items():
        children[name] = (prop, where)
    items = schema.get("items")
    if isinstance(items, Mapping):
        children["*"] = (items, where)
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        children["*"] = (extra, where)
    elif extra is True:
        children["*"] = ({}, where)
    return _Node(read_only, children, refs)


def resource_paths(schema: Json, where: str, load: Loader) -> dict[str, bool]:
    """Every property path below `schema` (written in file `where`), mapped to whether it is read-only."""
    out: dict[str, bool] = {}

    def walk(node: _Node, prefix: str, inherited: bool, seen: frozenset[tuple[str, str]]) -> None:
        for segment, (child, child_where) in sorted(node.children.items()):
            path = f"{prefix}/{segment}"
            child_node = _flatten(child, child_where, load, frozenset())
            read_only = inherited or child_node.read_only
            out[path] = read_only
            # A definition already expanded above this point is recursive: its path stops here.
            if not child_node.refs & seen:
                walk(child_node, path, read_only, seen | child_node.refs)

    root = _flatten(schema, where, load, frozenset())
    walk(root, "", root.read_only, root.refs)
    return out


def group_schema(document: Json) -> Json:
    """The schema of the 200 answer to `GET .../containerGroups/{name}` in one spec document."""
    for path, operations in document.get("paths", {}).items():
        if _GROUP_PATH.search(path) and "get" in operations:
            schema: Json = operations["get"]["responses"]["200"]["schema"]
            return schema
    raise LookupError("the document defines no GET .../containerGroups/{name}")


def build_data(specs: Iterable[SpecFile], load: Loader, commit: str | None) -> dict[str, Any]:
    """The data file's content: versions in date order, their sources, the base in full, others as diffs."""
    by_version: dict[str, tuple[SpecFile, dict[str, bool]]] = {}
    for spec in specs:
        paths = resource_paths(group_schema(spec.document), spec.path, load)
        if spec.version in by_version:
            other, other_paths = by_version[spec.version]
            if other_paths != paths:
                raise ValueError(f"{spec.version}: {other.path} and {spec.path} describe different groups")
            if spec.path > other.path:
                continue
        by_version[spec.version] = (spec, paths)
    if BASE not in by_version:
        raise LookupError(f"the base api-version {BASE} is not among the spec files")
    base_paths = by_version[BASE][1]
    base_ro = sorted(p for p, ro in base_paths.items() if ro)
    versions: dict[str, Any] = {}
    for version in sorted(by_version, key=version_key):
        spec, paths = by_version[version]
        entry: dict[str, Any] = {
            "channel": channel(version),
            "spec": spec.path,
            "changed_in": spec.changed_in,
        }
        if version == BASE:
            entry["paths"] = sorted(paths)
            entry["readOnly"] = base_ro
        else:
            entry["absent"] = _roots(set(base_paths) - set(paths))
            entry["extra"] = sorted(set(paths) - set(base_paths))
            read_only = {p for p, ro in paths.items() if ro}
            entry["readOnlyAbsent"] = sorted(set(base_ro) & set(paths) - read_only)
            entry["readOnlyExtra"] = sorted(read_only - set(base_ro))
        versions[version] = entry
    return {
        "format": FORMAT,
        "generator": "tools/emulator_api_versions.py",
        "repository": REPOSITORY,
        "commit": commit,
        "base": BASE,
        "order": list(versions),
        "versions": versions,
    }


def _roots(paths: set[str]) -> list[str]:
    return sorted(p for p in paths if p.rsplit("/", 1)[0] not in paths)


def render(data: Mapping[str, Any]) -> str:
    """The exact text of the data file: one path per line, so a regeneration diffs readably."""
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def expand(data: Mapping[str, Any], version: str) -> dict[str, bool]:
    """The paths of one version (path -> read-only) from the data file's diff form."""
    base = data["versions"][data["base"]]
    base_ro = set(base["readOnly"])
    if version == data["base"]:
        return {p: p in base_ro for p in base["paths"]}
    entry = data["versions"][version]
    gone = tuple(entry["absent"])
    kept = {p for p in base["paths"] if not any(p == g or p.startswith(g + "/") for g in gone)}
    paths = kept | set(entry["extra"])
    read_only = ((base_ro & paths) - set(entry["readOnlyAbsent"])) | set(entry["readOnlyExtra"])
    return {p: p in read_only for p in sorted(paths)}


def discover(checkout: Path) -> list[Path]:
    """The spec documents of containerGroups api-versions: JSON files directly in stable/V or preview/V."""
    found: list[Path] = []
    for path in sorted((checkout / SPEC_ROOT).rglob("*.json")):
        parent, grandparent = path.parent.name, path.parent.parent.name
        if grandparent not in ("stable", "preview") or not _VERSION_DIR.match(parent):
            continue
        if channel(parent) != grandparent:
            continue
        document = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(document, Mapping) and "paths" in document:
            try:
                group_schema(document)
            except LookupError:
                continue
            found.append(path)
    return found


def git_commit(checkout: Path, relative: str | None = None) -> str | None:
    """The checkout's commit, or the last commit that changed `relative`; None outside a git work tree."""
    command = ["git", "-C", str(checkout), "log", "-1", "--format=%H"]
    if relative is not None:
        command += ["--", relative]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip() or None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("checkout", type=Path, help="a checkout of Azure/azure-rest-api-specs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs; write nothing")
    args = parser.parse_args(argv)
    checkout: Path = args.checkout.resolve()
    cache: dict[str, Json] = {}

    def load(relative: str) -> Json:
        if relative not in cache:
            cache[relative] = json.loads((checkout / relative).read_text(encoding="utf-8"))
        return cache[relative]

    specs = []
    for path in discover(checkout):
        relative = path.relative_to(checkout).as_posix()
        specs.append(SpecFile(path.parent.name, relative, load(relative), git_commit(checkout, relative)))
    text = render(build_data(specs, load, git_commit(checkout)))
    out: Path = args.out
    if args.check:
        current = out.read_text(encoding="utf-8") if out.exists() else ""
        if current != text:
            print(
                f"{out} is stale; run: python tools/emulator_api_versions.py {args.checkout}", file=sys.stderr
            )
            return 1
        return 0
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}: {len(specs)} spec files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
