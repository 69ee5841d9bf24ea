"""The desired container group: the manifest format of DESIGN.md section 3 as pydantic v2 models.

CONTRACT (placeholder until the full model lands; keep these names and signatures):

- `GroupManifest`: one validated manifest document. Attributes `name`, `resource_group`, `location`,
  `tags: dict[str, str]`, `policy: ReconcilePolicy` (key `reconcile`), and the ARM body fields.
- `GroupManifest.to_arm_body(*, reveal_secrets: bool) -> dict[str, Any]`: the ARM request body (camelCase,
  canonical enum case, numbers as JSON numbers): `location`, `tags`, `zones`, `identity`, `properties`.
  With `reveal_secrets=False` every secret field is left out, exactly as a GET leaves it out.
- `GroupManifest.secret_values() -> dict[str, str]`: resolved secret values keyed by the JSON Pointer of the
  field in the ARM body (keyed lists addressed by key, see `reconciler.model.plan.FieldChange`).
- `parse_manifest(data: Mapping[str, Any]) -> GroupManifest`: validates one document; raises
  `pydantic.ValidationError` whose `loc` tuples are paths into `data`, so the loader can map them to lines.

Called by the source loader (which builds it), planning (which diffs it) and execution (which PUTs it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ReconcilePolicy(BaseModel):
    """The `reconcile:` block of a manifest: policy of this reconciler for this group."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    fail_if_exists: bool = Field(default=True, alias="failIfExists")
    recreate: Literal["auto", "never"] = "auto"
    prune: bool = True
    suspend: bool = False
    ignore: tuple[str, ...] = ()


class GroupManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    name: str
    resource_group: str = Field(alias="resourceGroup")
    location: str
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, Any]
    policy: ReconcilePolicy = Field(default_factory=ReconcilePolicy, alias="reconcile")

    def to_arm_body(self, *, reveal_secrets: bool) -> dict[str, Any]:
        del reveal_secrets
        return {"location": self.location, "tags": dict(self.tags), "properties": dict(self.properties)}

    def secret_values(self) -> dict[str, str]:
        return {}


def parse_manifest(data: Mapping[str, Any]) -> GroupManifest:
    return GroupManifest.model_validate(dict(data))
