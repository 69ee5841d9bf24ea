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
envAllow: [BUILD_ID, TEAM_*]    # more variables `${VAR}` may read here (see `reconciler.source.envpolicy`)
secretsDir: keys                # secret files live here (relative to this file): never read as manifests
```

`envAllow` adds to the allowlist in force (`--env-allow`, or `ACI_*`) for this directory and below; the deny
rule for the reconciler's own variables still applies. `secretsDir` (default: `secrets/` at the root) names a
directory whose files are never manifests: `secureValueFrom: {file: ...}` reads them, the loader never parses
or quotes them. A `_defaults.yaml` substitutes `${VAR}` with the allowlist of its parent directory (its own
`envAllow` applies to what it covers, not to itself).

A defaults file applies to the manifests of its directory and of all its subdirectories. A nearer file wins
over a farther one (key by key for `tags` and `reconcile`), and the CLI defaults are the weakest of all. Keys
are case-insensitive, as in manifests; `${VAR}` substitution applies. Any other key is an error. When a
defaults file is invalid, the manifests it would apply to are not loaded (the pass is then incomplete and
nothing is pruned), because guessing their resource group could touch the wrong groups.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.model.text import plain, shown
from reconciler.source.envpolicy import DEFAULT_ALLOW, EnvPolicy, check_pattern
from reconciler.source.errors import SourceError, SourceLocation
from reconciler.source.yamlread import DocPath, ParsedDocument

KEYS = ("resourceGroup", "location", "tags", "reconcile", "envAllow", "secretsDir")


@dataclass(frozen=True, slots=True)
class Defaults:
    """The weakest defaults, from the CLI or the environment."""

    resource_group: str | None = None
    location: str | None = None
    # Patterns of the variables `${VAR}` may read (`--env-allow`); None: the default allowlist.
    env_allow: tuple[str, ...] | None = None


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
    policy: EnvPolicy = field(default_factory=EnvPolicy)
    # Patterns an `envAllow:` of this file adds (only in a file's own layer, before `under` folds it in).
    env_allow: tuple[str, ...] = ()
    # The directory an explicit `secretsDir:` names (only in a file's own layer).
    secrets_dir: Path | None = None

    @classmethod
    def from_cli(cls, defaults: Defaults) -> Layer:
        group, location = defaults.resource_group, defaults.location
        allow = DEFAULT_ALLOW if defaults.env_allow is None else defaults.env_allow
        return cls(
            resource_group=None if group is None else Setting(group, None),
            location=None if location is None else Setting(location, None),
            policy=EnvPolicy(allow=tuple(allow)),
        )

    def under(self, nearer: Layer) -> Layer:
        """This layer overridden by `nearer` (a defaults file in a subdirectory)."""
        return Layer(
            resource_group=nearer.resource_group or self.resource_group,
            location=nearer.location or self.location,
            tags={**self.tags, **nearer.tags},
            reconcile={**self.reconcile, **nearer.reconcile},
            policy=self.policy.widened(nearer.env_allow),
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
            error((key,), f"unknown key {shown(key)} in a defaults file: use {', '.join(KEYS)}", key=True)
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
                error((key, k), f"{name}.{plain(k)}: must be a string")
                continue
            out[k.casefold()] = (k, Setting(v, _loc(path, doc, (key, k))))
        return out

    def patterns() -> tuple[str, ...]:
        if "envAllow" not in found:
            return ()
        key, item = found["envAllow"]
        items = [item] if isinstance(item, str) else item
        if not isinstance(items, list) or not all(isinstance(p, str) for p in items):
            error((key,), "envAllow: must be a list of variable name patterns, e.g. [ACI_*, BUILD_ID]")
            return ()
        out: list[str] = []
        for i, pattern in enumerate(items):
            problem = check_pattern(pattern)
            if problem is not None:
                error((key,) if isinstance(item, str) else (key, i), f"envAllow: {problem}")
                continue
            out.append(pattern)
        return tuple(out)

    layer = Layer(
        resource_group=text("resourceGroup"),
        location=text("location"),
        tags=mapping("tags", scalars=True),
        reconcile=mapping("reconcile", scalars=False),
        env_allow=patterns(),
        secrets_dir=secrets_dir(path, value, error),
    )
    return layer, errors


def secrets_dir(path: Path, value: Any, error: Callable[[DocPath, str], None] | None = None) -> Path | None:
    """The directory the `secretsDir:` of the defaults file `path` (document `value`) names, if any."""
    if not isinstance(value, dict):
        return None
    key = _find(value, "secretsDir")
    if key is None or value[key] is None:
        return None
    item = value[key]
    if not isinstance(item, str) or not item.strip():
        if error is not None:
            error((key,), "secretsDir: must be a directory relative to this file, e.g. secrets")
        return None
    relative = Path(item)
    if relative.is_absolute() or ".." in relative.parts:
        if error is not None:
            error(
                (key,),
                f"secretsDir: {shown(item)} must be a directory inside the manifest root, "
                "relative to this file",
            )
        return None
    return path.parent / relative


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
