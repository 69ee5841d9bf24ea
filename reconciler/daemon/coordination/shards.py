"""Shards of an instance: which shard a resource group falls in, where each lease lives in the container,
and the balancing rule that spreads shards over the live replicas. Pure functions, no I/O.

Called by `reconciler.daemon.coordination.coordinator` on every tick, and by the HTTP status and tests.

Balancing (DESIGN section 13): with N shards and R live replicas each replica's fair share is between
floor(N/R) and ceil(N/R). A replica claims free shards while it holds fewer than ceil(N/R); it gives back what
it holds above ceil(N/R) (as many as the others have room for), and one more when it holds more than
floor(N/R) while another live replica holds fewer than floor(N/R) and no shard is free. Giving back is
cooperative (release after fencing, never a lease break), so a shard never has two writers; a shard nobody
claims for `ORPHAN_TICKS` ticks is taken by anyone, so no shard is left without an owner because the
replicas disagree about who is alive.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

# Ticks a shard may stay free before any replica takes it, whatever its share.
ORPHAN_TICKS = 3
# Ticks a replica leaves alone a shard it gave back, so that the replica short of shards gets it.
COOLDOWN_TICKS = 5
MAX_SHARDS = 1024


def shard_of(resource_group: str, shards: int) -> int:
    """The shard of a resource group: a stable hash of its case-folded name (ARM names are case-insensitive),
    the same in every process and every version."""
    if shards <= 1:
        return 0
    return _hash64(resource_group.lower()) % shards


@functools.lru_cache(maxsize=1 << 16)
def _hash64(name: str) -> int:
    # Cached: the fence and the books ask for every group of every pass, and a fleet has few resource groups.
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big")


def instance_prefix(instance: str) -> str:
    return f"instances/{quote(instance, safe='-._~')}/"


def layout_blob(instance: str) -> str:
    return f"{instance_prefix(instance)}layout.json"


def shards_prefix(instance: str, shards: int) -> str:
    return f"{instance_prefix(instance)}shards-{shards}/"


def shard_blob(instance: str, shards: int, shard: int) -> str:
    return f"{shards_prefix(instance, shards)}shard-{shard:04d}.json"


def shard_in(name: str, instance: str, shards: int) -> int | None:
    """The shard number a listed blob name stands for, or None when it is not one of this layout's."""
    prefix = f"{shards_prefix(instance, shards)}shard-"
    if not (name.startswith(prefix) and name.endswith(".json")):
        return None
    digits = name[len(prefix) : -len(".json")]
    if not digits.isdigit():
        return None
    shard = int(digits)
    return shard if shard < shards else None


def hook_blob(instance: str) -> str:
    """Rewritten by a replica a webhook reached; the others see its ETag change and fetch too."""
    return f"{instance_prefix(instance)}hook.json"


def replicas_prefix(instance: str) -> str:
    return f"{instance_prefix(instance)}replicas/"


def replica_blob(instance: str, replica: str) -> str:
    return f"{replicas_prefix(instance)}{replica}"


@dataclass(frozen=True)
class Moves:
    claim: tuple[int, ...] = ()
    give: tuple[int, ...] = ()


def fair_share(shards: int, replicas: int) -> tuple[int, int]:
    """(floor, ceil) of the shards each of `replicas` live replicas should hold."""
    live = max(1, replicas)
    return shards // live, math.ceil(shards / live)


def rebalance(
    *,
    me: str,
    shards: int,
    live: Collection[str],
    owners: Mapping[int, str | None],
    mine: Collection[int],
    free_ticks: Mapping[int, int] | None = None,
    cooldown: Collection[int] = (),
) -> Moves:
    """What `me` should do this tick.

    `live`: the replicas whose heartbeat lease is active (`me` counts whatever it says); `owners`: for each
    shard, the replica its lease's holder says it is, or None when no lease is active (shards missing from
    the mapping are taken as free); `mine`: the shards `me` holds; `free_ticks`: how many ticks each free
    shard has been free; `cooldown`: shards `me` gave back recently."""
    free_ticks = free_ticks or {}
    replicas = set(live) | {me}
    low, high = fair_share(shards, len(replicas))
    held = set(mine)
    counts = dict.fromkeys(replicas, 0)
    for shard in range(shards):
        owner = me if shard in held else owners.get(shard)
        if owner in counts:
            counts[owner] += 1
    free = [s for s in range(shards) if s not in held and owners.get(s) is None]
    claim: list[int] = []
    for shard in _preference(free, me):
        wanted = len(held) + len(claim) < high and shard not in cooldown
        if wanted or free_ticks.get(shard, 0) >= ORPHAN_TICKS:
            claim.append(shard)
    give: list[int] = []
    ordered = sorted(held, reverse=True)
    room = sum(max(0, high - n) for r, n in counts.items() if r != me)
    if len(held) > high and room:
        # Only what another replica has room for: a shard nobody else would take stays where it is.
        give = ordered[: min(len(held) - high, room)]
    elif not free and len(held) > low and any(n < low for r, n in counts.items() if r != me):
        give = ordered[:1]
    return Moves(claim=tuple(claim), give=tuple(give))


def _preference(free: Iterable[int], me: str) -> list[int]:
    """Free shards in an order particular to each replica, so that replicas starting together mostly try
    different shards first instead of all racing for shard 0."""
    return sorted(free, key=lambda s: hashlib.sha256(f"{me}/{s}".encode()).digest())
