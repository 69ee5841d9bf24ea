"""Turns a directory of manifests into validated desired groups and a revision.

Called by the engine (one reconcile pass) and by `reconcile validate`. The entry point is `load_manifests`;
the format of `_defaults.yaml` is documented in `reconciler.source.defaults`, the `${VAR}` syntax in
`reconciler.source.substitute`, secret references in `reconciler.source.secrets`, the YAML rules in
`reconciler.source.yamlread`, and the walk in `reconciler.source.walk`.
"""

from reconciler.source.defaults import Defaults
from reconciler.source.errors import SourceError, SourceLocation
from reconciler.source.loader import LoadCache, LoadedGroup, LoadResult, load_manifests
from reconciler.source.yamlread import MAX_FILE_BYTES

__all__ = [
    "MAX_FILE_BYTES",
    "Defaults",
    "LoadCache",
    "LoadResult",
    "LoadedGroup",
    "SourceError",
    "SourceLocation",
    "load_manifests",
]
