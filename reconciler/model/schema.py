"""The JSON Schema (draft 2020-12) of the manifest format, generated from `GroupManifest`.

`reconcile schema` prints it; `manifests/schema.json` is a committed copy that editors load through a
`# yaml-language-server: $schema=./schema.json` line, and a test keeps that copy current.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from reconciler.model.aci import API_VERSION
from reconciler.model.manifest import GroupManifest

SCHEMA_ID = "urn:aci-reconciler:manifest:v1"
DRAFT = "https://json-schema.org/draft/2020-12/schema"


@cache
def _schema() -> dict[str, Any]:
    generated = _tidy(GroupManifest.model_json_schema(by_alias=True, mode="validation"))
    return {
        "$schema": DRAFT,
        "$id": SCHEMA_ID,
        "title": "aci-reconciler manifest",
        "description": (
            "One Azure Container Instances container group, as the ARM request body of api-version "
            f"{API_VERSION} (what `az container create --file` takes and `az container export` writes), plus "
            "the keys `resourceGroup` and `reconcile` of aci-reconciler. ARM accepts keys in any case and so "
            "does the reconciler; this schema lists their canonical spelling."
        ),
        **{k: v for k, v in generated.items() if k not in ("title", "description")},
    }


def _tidy(node: Any) -> Any:
    """Shape pydantic's output for editors: an optional field is its type (not `anyOf [type, null]` with
    `default: null`), properties carry their description rather than a title made from the field name, and
    descriptions are one line."""
    if isinstance(node, list):
        return [_tidy(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _tidy(v) for k, v in node.items()}
    any_of = out.get("anyOf")
    if (
        isinstance(any_of, list)
        and len(any_of) == 2
        and {"type": "null"} in any_of
        and out.get("default", 0) is None
    ):
        (kept,) = [s for s in any_of if s != {"type": "null"}]
        del out["anyOf"], out["default"]
        out = {**kept, **out}
    props = out.get("properties")
    if isinstance(props, dict) and out.get("type") == "object":
        out["properties"] = {k: {a: b for a, b in v.items() if a != "title"} for k, v in props.items()}
    return out


def manifest_json_schema() -> dict[str, Any]:
    """The JSON Schema of one manifest document (a fresh copy; generated once per process)."""
    import copy

    return copy.deepcopy(_schema())
