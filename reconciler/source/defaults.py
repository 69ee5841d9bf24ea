"""Defaults for manifests: from the CLI/environment (`Defaults`) and from `_defaults.yaml` files in the tree.

Called by `reconciler.source.loader`; the CLI builds `Defaults` from `--resource-group`/`--location` (or their
environment variables).

Format of `_defaults.yaml` (also `_defaults.yml` or `_defaults.json`; one per directory, one document):

```yaml
resourceGroup: rg-prod          # for manifests that do not set resourceGroup
location: westeurope            # for manifests that do not set location
tags:                           # merged under each manifest's own tags (the manifest wins per tag)
  team: payments
reconcile:                      # merged under the manifest's `reconcile:` block (the manifest wins per key)
  prune: false
```

A defaults file applies to the manifests of its directory and of all its subdirectories. A nearer file wins
over a farther one (key by key for `tags` and `reconcile`), and the CLI defaults are the weakest of all. Keys
are case-insensitive, as in manifests; `${VAR}` substitution applies. Any other key is an error. When a
defaults file is invalid, the manifests it would apply to are not loaded (the pass is then incomplete and
nothing is pruned), because guessing their resource group could touch the wrong groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.source.errors import SourceError, SourceLocation
from reconciler.source.yamlread import DocPath, ParsedDocument

KEYS = ("resourceGroup", "location", "tags", "reconcile")


@dataclass(frozen=True, slots=True)
class Defaults:
    """The weakest defaults, from the CLI or the environment."""

    resource_group: str | None = None
    location: str | None = None


@dataclass(frozen=True, slots=True)
class Setting:
    """A default value and where it was written (None: the CLI)."""

    value: Any
    origin: SourceLocation | None


@dataclass(frozen=True, slots=True)
class Layer:
    """The defaults in force in one directory: every applicable file folded in, nearest last."""

    resource_group: Setting | None = None
    location: Setting | None = None
    # Case-folded key -> (key as written, setting).
    tags: Mapping[str, tuple[str, Setting]] = field(default_factory=dict)
    reconcile: Mapping[str, tuple[str, Setting]] = field(default_factory=dict)

    @classmethod
    def from_cli(cls, defaults: Defaults) -> Layer:
        group, location = defaults.resource_group, defaults.location
        return cls(
            resource_group=None if group is None else Setting(group, None),
            location=None if location is None else Setting(location, None),
        )

    def under(self, nearer: Layer) -> Layer:
        """This layer overridden by `nearer` (a defaults file in a subdirectory)."""
        return Layer(
            resource_group=nearer.resource_group or self.resource_group,
            location=nearer.location or self.location,
            tags={**self.tags, **nearer.tags},
            reconcile={**self.reconcile, **nearer.reconcile},
        )


def _loc(path: Path, doc: ParsedDocument, at: DocPath) -> SourceLocation:
    line, column = doc.position(at)
    return SourceLocation(path, line, column)


def parse_layer(path: Path, doc: ParsedDocument, value: Any) -> tuple[Layer, list[SourceError]]:
    """The layer of one defaults file whose (substituted) document is `value`."""
    errors: list[SourceError] = []

    def error(at: DocPath, message: str, *, key: bool = False) -> None:
        pos = doc.key_positions.get(at) if key else None
        errors.append(SourceError.at(path, pos or doc.position(at), message))

    if value is None:
        return Layer(), errors
    if not isinstance(value, dict):
        error((), f"a defaults file is a mapping with the keys {', '.join(KEYS)}")
        return Layer(), errors
    canonical = {k.casefold(): k for k in KEYS}
    found: dict[str, tuple[str, Any]] = {}
    for key, item in value.items():
        name = canonical.get(key.casefold())
        if name is None:
            error((key,), f"unknown key {key!r} in a defaults file: use {', '.join(KEYS)}", key=True)
            continue
        found[name] = (key, item)

    def text(name: str) -> Setting | None:
        if name not in found:
            return None
        key, item = found[name]
        if item is None:
            return None
        if not isinstance(item, str) or not item.strip():
            error((key,), f"{name}: must be a non-empty string")
            return None
        return Setting(item, _loc(path, doc, (key,)))

    def mapping(name: str, scalars: bool) -> dict[str, tuple[str, Setting]]:
        if name not in found:
            return {}
        key, item = found[name]
        if item is None:
            return {}
        if not isinstance(item, dict):
            error((key,), f"{name}: must be a mapping")
            return {}
        out: dict[str, tuple[str, Setting]] = {}
        for k, v in item.items():
            if scalars and isinstance(v, dict | list):
                error((key, k), f"{name}.{k}: must be a string")
                continue
            out[k.casefold()] = (k, Setting(v, _loc(path, doc, (key, k))))
        return out

    layer = Layer(
        resource_group=text("resourceGroup"),
        location=text("location"),
        tags=mapping("tags", scalars=True),
        reconcile=mapping("reconcile", scalars=False),
    )
    return layer, errors


def _find(document: dict[str, Any], name: str) -> str | None:
    folded = name.casefold()
    return next((k for k in document if k.casefold() == folded), None)


def apply_layer(document: dict[str, Any], layer: Layer) -> dict[DocPath, SourceLocation | None]:
    """Fill `document` (in place) from `layer`; returns where each injected value came from, by path."""
    origins: dict[DocPath, SourceLocation | None] = {}
    for name, setting in (("resourceGroup", layer.resource_group), ("location", layer.location)):
        if setting is None:
            continue
        key = _find(document, name)
        if key is None or document[key] is None:
            key = key or name
            document[key] = setting.value
            origins[(key,)] = setting.origin
    for name, entries in (("tags", layer.tags), ("reconcile", layer.reconcile)):
        if not entries:
            continue
        key = _find(document, name) or name
        own = document.get(key)
        if own is None:
            own = {}
        elif not isinstance(own, dict):
            continue  # the model reports the wrong type at the manifest's own position
        present = {k.casefold() for k in own}
        merged: dict[str, Any] = {}
        for folded, (k, setting) in entries.items():
            if folded not in present:
                merged[k] = setting.value
                origins[(key, k)] = setting.origin
        merged.update(own)
        document[key] = merged
    return origins
