"""The ownership tags of DESIGN.md section 4: the inventory this reconciler keeps on the groups it manages.

Called by `reconciler.planning.plan` (which writes them into `Change.write_tags` and reads them off observed
groups), and usable by the engine and the daemon (`is_managed_by`, `owner_of`, `spec_fingerprint`) for status.

The tags on a managed group:

| tag | value |
|---|---|
| `managed-by` | `aci-reconciler` |
| `aci-reconciler.instance` | the reconciler instance name (several may share a resource group) |
| `aci-reconciler.revision` | the source revision last applied (informational: never a reason to write) |
| `aci-reconciler.spec` | sha256 of the canonical desired body (stable across runs and key order) |
| `aci-reconciler.secrets` | HMAC-SHA256, keyed by the engine's secret key, of the secret values; absent when
  the group has none. Keyed so that a tag reader cannot test guesses of a low-entropy secret offline |
| `aci-reconciler.prune` | `true`/`false`: the manifest's prune policy, so a group whose manifest is gone
  knows whether it may be pruned |

Names avoid the characters Azure forbids in tag names (`<>%&\\?/`); values are at most 256 characters. Azure
treats tag names case-insensitively, so lookups here do too. Nothing secret is ever written: the HMAC is
one-way and keyed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from reconciler.model.observed import ObservedGroup

MANAGED_BY_TAG = "managed-by"
MANAGED_BY_VALUE = "aci-reconciler"
INSTANCE_TAG = "aci-reconciler.instance"
REVISION_TAG = "aci-reconciler.revision"
SPEC_TAG = "aci-reconciler.spec"
SECRETS_TAG = "aci-reconciler.secrets"
PRUNE_TAG = "aci-reconciler.prune"

OWNERSHIP_TAGS: tuple[str, ...] = (
    MANAGED_BY_TAG,
    INSTANCE_TAG,
    REVISION_TAG,
    SPEC_TAG,
    SECRETS_TAG,
    PRUNE_TAG,
)
_RESERVED = frozenset(t.lower() for t in OWNERSHIP_TAGS)

# Tags whose difference alone is no reason to write: the revision moves with every commit, and the spec
# fingerprint is derived from the spec that the field diff already compares.
INFORMATIONAL_TAGS = frozenset({REVISION_TAG, SPEC_TAG})

TAG_VALUE_MAX = 256
TAG_NAME_MAX = 512
TAGS_PER_RESOURCE_MAX = 50
FORBIDDEN_TAG_NAME_CHARS = frozenset("<>%&\\?/")


def is_reserved(name: str) -> bool:
    """True for a tag name that belongs to this reconciler (case-insensitive, as Azure compares them)."""
    return name.lower() in _RESERVED


def _get(tags: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((v for k, v in tags.items() if k.lower() == wanted), None)


def live_tags(observed: ObservedGroup) -> dict[str, str]:
    """The tags of a live group (the model's `tags`, else the body's)."""
    if observed.tags:
        return dict(observed.tags)
    raw = observed.body.get("tags")
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def owner_of(observed: ObservedGroup) -> str | None:
    """The instance that manages a live group: None when no aci-reconciler manages it, the instance name
    otherwise ('' when the `managed-by` tag is there but the instance tag is not)."""
    tags = live_tags(observed)
    if (_get(tags, MANAGED_BY_TAG) or "").lower() != MANAGED_BY_VALUE:
        return None
    return _get(tags, INSTANCE_TAG) or ""


def is_managed_by(observed: ObservedGroup, instance: str) -> bool:
    """True when the live group carries this instance's ownership tags (the only groups it may prune)."""
    return owner_of(observed) == instance


def prune_allowed(observed: ObservedGroup) -> bool:
    """The prune policy recorded on a live group; a group without the tag may be pruned (the default)."""
    return (_get(live_tags(observed), PRUNE_TAG) or "true").lower() != "false"


def user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """`tags` without the ownership tags."""
    return {k: v for k, v in tags.items() if not is_reserved(k)}


def _canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def spec_fingerprint(canonical_body: Mapping[str, Any]) -> str:
    """sha256 (hex) of a canonical body; independent of key order."""
    return hashlib.sha256(_canonical_json(canonical_body)).hexdigest()


def secrets_hash(secret_values: Mapping[str, str], key: bytes) -> str | None:
    """HMAC-SHA256 (hex) of the secret values keyed by path, or None when there are none."""
    if not secret_values:
        return None
    return hmac.new(key, _canonical_json(dict(secret_values)), hashlib.sha256).hexdigest()


def _clip(value: str) -> str:
    return value[:TAG_VALUE_MAX]


def ownership_tags(
    *,
    instance: str,
    revision: str,
    fingerprint: str,
    secret_hash: str | None,
    prune: bool,
) -> dict[str, str]:
    """The ownership tags a write puts on a group."""
    tags = {
        MANAGED_BY_TAG: MANAGED_BY_VALUE,
        INSTANCE_TAG: _clip(instance),
        REVISION_TAG: _clip(revision),
        SPEC_TAG: fingerprint,
        PRUNE_TAG: "true" if prune else "false",
    }
    if secret_hash is not None:
        tags[SECRETS_TAG] = secret_hash
    return tags


def tag_problems(tags: Mapping[str, str]) -> list[str]:
    """What is wrong with a manifest's user tags, as messages that say the fix; empty when nothing is."""
    problems: list[str] = []
    for name, value in tags.items():
        if is_reserved(name):
            problems.append(
                f"tag {name!r} is reserved for aci-reconciler's ownership tags; rename or remove it"
            )
            continue
        bad = sorted(set(name) & FORBIDDEN_TAG_NAME_CHARS)
        if bad:
            problems.append(f"tag name {name!r} contains {''.join(bad)!r}, which Azure forbids in tag names")
        if not name.strip():
            problems.append("a tag name is empty; Azure requires a name")
        if len(name) > TAG_NAME_MAX:
            problems.append(f"tag name {name[:40]!r}... is longer than Azure's {TAG_NAME_MAX} characters")
        if len(str(value)) > TAG_VALUE_MAX:
            problems.append(f"the value of tag {name!r} is longer than Azure's {TAG_VALUE_MAX} characters")
    room = TAGS_PER_RESOURCE_MAX - len(OWNERSHIP_TAGS)
    if len(tags) > room:
        problems.append(
            f"{len(tags)} tags: Azure allows {TAGS_PER_RESOURCE_MAX} per resource and aci-reconciler "
            f"needs {len(OWNERSHIP_TAGS)}, so a manifest may have at most {room}"
        )
    return problems


def instance_problems(instance: str) -> list[str]:
    """What is wrong with an instance name for use as a tag value."""
    if not instance.strip():
        return ["the reconciler instance name is empty; give one (it tags every group this instance owns)"]
    if len(instance) > TAG_VALUE_MAX:
        return [f"the reconciler instance name is longer than Azure's {TAG_VALUE_MAX}-character tag values"]
    return []
