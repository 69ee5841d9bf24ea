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
| `aci-reconciler.suspend`, `aci-reconciler.recreate` | the rest of the manifest's policy (`true`/`false`,
  `auto`/`never`); written even when the spec change itself is held |
| `aci-reconciler.proof` | HMAC-SHA256, keyed by the engine's secret key, over the subscription, resource
  group and name (both lowercased: ARM names are case-insensitive) and the instance: the proof of ownership.
  Plain tags anyone with tag-write rights could copy; only a group whose proof verifies is ours |
| `aci-reconciler.key-id` | the first 16 hex digits of a hash of the key (never the key), so a change of
  the key is told apart from a forgery |

Ownership of a live group (`ownership`): `proven` (the proof verifies: ours, may be pruned); `legacy` (our
plain tags, including the spec fingerprint and prune tags every earlier release wrote, but no proof and no key
id: tagged before proofs existed); `other-key` (our plain tags with a proof under another key id: the key was
changed); `invalid` (our plain tags with a missing or wrong proof: copied or forged); `other` (another
instance); `none` (no aci-reconciler tags). Only `proven` groups are ever pruned. `legacy` and `other-key`
groups that a manifest names are written from that manifest (which gives them a proof); that is no more than
adoption, which a manifest may ask for anyway, and it can never delete a group no manifest names.

Names avoid the characters Azure forbids in tag names (`<>%&\\?/`); values are at most 256 characters. Azure
treats tag names case-insensitively, so lookups here do too. Nothing secret is ever written: the HMAC is
one-way and keyed.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from reconciler.model.observed import ObservedGroup

MANAGED_BY_TAG = "managed-by"
MANAGED_BY_VALUE = "aci-reconciler"
INSTANCE_TAG = "aci-reconciler.instance"
REVISION_TAG = "aci-reconciler.revision"
SPEC_TAG = "aci-reconciler.spec"
SECRETS_TAG = "aci-reconciler.secrets"
PRUNE_TAG = "aci-reconciler.prune"
SUSPEND_TAG = "aci-reconciler.suspend"
RECREATE_TAG = "aci-reconciler.recreate"
PROOF_TAG = "aci-reconciler.proof"
KEY_ID_TAG = "aci-reconciler.key-id"
# On the group of a job run that is not the template's own group (a concurrent run under `concurrency:
# Allow`): the template's name. While the template exists such a group is its run, not an orphan.
JOB_TAG = "aci-reconciler.job"

OWNERSHIP_TAGS: tuple[str, ...] = (
    MANAGED_BY_TAG,
    INSTANCE_TAG,
    REVISION_TAG,
    SPEC_TAG,
    SECRETS_TAG,
    PRUNE_TAG,
    SUSPEND_TAG,
    RECREATE_TAG,
    PROOF_TAG,
    KEY_ID_TAG,
)
# The manifest's policy, recorded on the group even when its spec change is held.
POLICY_TAGS: tuple[str, ...] = (PRUNE_TAG, SUSPEND_TAG, RECREATE_TAG)
# What proves (and names the key of) ownership.
PROOF_TAGS: tuple[str, ...] = (PROOF_TAG, KEY_ID_TAG)
_RESERVED = frozenset(t.lower() for t in (*OWNERSHIP_TAGS, JOB_TAG))

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
    return folded_tags(tags).get(name.lower())


def live_tags(observed: ObservedGroup) -> dict[str, str]:
    """The tags of a live group (the model's `tags`, else the body's)."""
    if observed.tags:
        return dict(observed.tags)
    raw = observed.body.get("tags")
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def folded_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """`tags` by lower-cased name (as Azure compares tag names), the first spelling's value where one name is
    spelled twice; one dict for a group whose tags are asked after several times."""
    out: dict[str, str] = {}
    for name, value in tags.items():
        out.setdefault(name.lower(), value)
    return out


def owner_of(observed: ObservedGroup) -> str | None:
    """The instance that manages a live group: None when no aci-reconciler manages it, the instance name
    otherwise ('' when the `managed-by` tag is there but the instance tag is not)."""
    return _owner(folded_tags(live_tags(observed)))


def _owner(folded: Mapping[str, str]) -> str | None:
    if (folded.get(MANAGED_BY_TAG) or "").lower() != MANAGED_BY_VALUE:
        return None
    return folded.get(INSTANCE_TAG) or ""


def is_managed_by(observed: ObservedGroup, instance: str) -> bool:
    """True when the live group carries this instance's ownership tags (the only groups it may prune)."""
    return owner_of(observed) == instance


def prune_allowed(observed: ObservedGroup) -> bool:
    """The prune policy recorded on a live group; a group without the tag may be pruned (the default)."""
    return (_get(live_tags(observed), PRUNE_TAG) or "true").lower() != "false"


def suspended(observed: ObservedGroup) -> bool:
    """Whether the live group's recorded policy says `suspend: true` (a suspended group is never pruned)."""
    return (_get(live_tags(observed), SUSPEND_TAG) or "false").lower() == "true"


class Ownership(StrEnum):
    """Who a live group belongs to, as far as its tags prove it (see the module docstring)."""

    NONE = "none"
    OTHER = "other"
    PROVEN = "proven"
    LEGACY = "legacy"
    OTHER_KEY = "other-key"
    INVALID = "invalid"


_KEY_ID_SALT = b"aci-reconciler/key-id/v1\x00"
_PROOF_CONTEXT = "aci-reconciler/ownership/v1"
_HEX64 = frozenset("0123456789abcdef")


@functools.lru_cache(maxsize=4)
def key_id(key: bytes) -> str:
    """A short public name of a key: 16 hex digits of a one-way hash; never the key.

    Asked twice per group and pass, of the one key a process uses (a few across a re-key): worked out once,
    and every plan entry's tags hold the one text."""
    return hashlib.sha256(_KEY_ID_SALT + key).hexdigest()[:16]


def ownership_proof(*, key: bytes, subscription: str, resource_group: str, name: str, instance: str) -> str:
    """HMAC-SHA256 (hex) over the group's place and the instance; names lowercased as ARM compares them."""
    message = "\n".join(
        (_PROOF_CONTEXT, subscription.lower(), resource_group.lower(), name.lower(), instance)
    )
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def proof_tags(
    *, key: bytes, subscription: str, resource_group: str, name: str, instance: str
) -> dict[str, str]:
    """The proof and key id tags a write puts on a group."""
    return {
        PROOF_TAG: ownership_proof(
            key=key, subscription=subscription, resource_group=resource_group, name=name, instance=instance
        ),
        KEY_ID_TAG: key_id(key),
    }


def ownership(observed: ObservedGroup, *, instance: str, subscription: str, key: bytes) -> Ownership:
    """Whose the live group is, by its tags and the proof on them."""
    tags = folded_tags(live_tags(observed))
    owner = _owner(tags)
    if owner is None:
        return Ownership.NONE
    if owner != instance:
        return Ownership.OTHER
    proof, kid = tags.get(PROOF_TAG), tags.get(KEY_ID_TAG)
    if proof is None and kid is None:
        spec = (tags.get(SPEC_TAG) or "").lower()
        prune = (tags.get(PRUNE_TAG) or "").lower()
        # Every earlier release wrote the fingerprint and the prune policy with the plain tags.
        if len(spec) == 64 and set(spec) <= _HEX64 and prune in ("true", "false"):
            return Ownership.LEGACY
        return Ownership.INVALID
    if proof is None or kid is None:
        return Ownership.INVALID
    if kid.lower() != key_id(key):
        return Ownership.OTHER_KEY
    want = ownership_proof(
        key=key,
        subscription=subscription,
        resource_group=observed.resource_group,
        name=observed.name,
        instance=instance,
    )
    return Ownership.PROVEN if hmac.compare_digest(want, proof.lower()) else Ownership.INVALID


def job_of(observed: ObservedGroup) -> str | None:
    """The job template whose extra run this group is (`JOB_TAG`), or None."""
    return _get(live_tags(observed), JOB_TAG)


def live_key_id(observed: ObservedGroup) -> str | None:
    return _get(live_tags(observed), KEY_ID_TAG)


def user_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """`tags` without the ownership tags."""
    return {k: v for k, v in tags.items() if not is_reserved(k)}


# What `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)` writes, made once
# rather than per call (a fingerprint a group, every cold pass). The values are canonical forms and secret
# maps this module's callers build: never circular, so the check for it is left out (it changes no output).
_CANONICAL_JSON = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False
)


def _canonical_json(value: Any) -> bytes:
    return _CANONICAL_JSON.encode(value).encode()


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


def at_revision(tags: Mapping[str, str], revision: str) -> Mapping[str, str]:
    """`tags` (written by `ownership_tags` at some revision) as they are at `revision`: the revision tag is
    the only one that depends on it. `tags` itself when it has no revision tag or already this one."""
    value = _clip(revision)
    if tags.get(REVISION_TAG, value) == value:
        return tags
    return {**tags, REVISION_TAG: value}


def ownership_tags(
    *,
    instance: str,
    revision: str,
    fingerprint: str,
    secret_hash: str | None,
    prune: bool,
    suspend: bool = False,
    recreate: str = "auto",
    proof: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The ownership tags a write puts on a group (`proof`: from `proof_tags`)."""
    tags = {
        MANAGED_BY_TAG: MANAGED_BY_VALUE,
        INSTANCE_TAG: _clip(instance),
        REVISION_TAG: _clip(revision),
        SPEC_TAG: fingerprint,
        PRUNE_TAG: "true" if prune else "false",
        SUSPEND_TAG: "true" if suspend else "false",
        RECREATE_TAG: recreate,
    }
    if secret_hash is not None:
        tags[SECRETS_TAG] = secret_hash
    if proof is not None:
        tags.update(proof)
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
