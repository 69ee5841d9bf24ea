"""Shard hashing and the balancing rule, as a model of replicas ticking against one set of leases."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.daemon.coordination.shards import (
    ORPHAN_TICKS,
    fair_share,
    rebalance,
    shard_blob,
    shard_in,
    shard_of,
)


def test_shard_of_is_stable_case_insensitive_and_in_range() -> None:
    assert shard_of("rg-Prod", 12) == shard_of("RG-PROD", 12)
    # A fixed value: the hash must never change between versions, or a rolling upgrade would give two
    # replicas the same resource group.
    assert [shard_of(f"rg-{i}", 12) for i in range(5)] == [9, 6, 4, 9, 0]
    assert all(0 <= shard_of(f"rg-{i}", 7) < 7 for i in range(500))
    assert shard_of("anything", 1) == 0


def test_shard_hash_spreads_resource_groups_evenly() -> None:
    counts = [0] * 12
    for i in range(12_000):
        counts[shard_of(f"rg-{i}", 12)] += 1
    assert min(counts) > 850
    assert max(counts) < 1150


def test_shard_blob_names_round_trip_and_other_layouts_are_not_shards() -> None:
    name = shard_blob("prod", 12, 7)
    assert shard_in(name, "prod", 12) == 7
    assert shard_in(name, "prod", 6) is None
    assert shard_in(name, "staging", 12) is None
    assert shard_in(shard_blob("prod", 12, 11).replace("0011", "0012"), "prod", 12) is None


class Fleet:
    """Replicas that tick in a random order against one lease table: a claim succeeds only on a free
    shard (the store's lease rule), a give-back frees it."""

    def __init__(self, shards: int, replicas: list[str], seed: int) -> None:
        self.shards = shards
        self.live = list(replicas)
        self.owner: dict[int, str | None] = dict.fromkeys(range(shards))
        self.free_ticks: dict[str, dict[int, int]] = {r: {} for r in replicas}
        self.cooldown: dict[str, dict[int, int]] = {r: {} for r in replicas}
        self.rng = random.Random(seed)

    def round(self) -> None:
        order = list(self.live)
        self.rng.shuffle(order)
        for me in order:
            mine = [s for s, o in self.owner.items() if o == me]
            seen = self.free_ticks.setdefault(me, {})
            for s in range(self.shards):
                seen[s] = seen.get(s, 0) + 1 if self.owner[s] is None else 0
            cool = self.cooldown.setdefault(me, {})
            moves = rebalance(
                me=me,
                shards=self.shards,
                live=self.live,
                owners={s: o for s, o in self.owner.items() if o != me},
                mine=mine,
                free_ticks=seen,
                cooldown=[s for s, n in cool.items() if n > 0],
            )
            for s in moves.give:
                assert self.owner[s] == me
                self.owner[s] = None
                cool[s] = 5
            for s in moves.claim:
                if self.owner[s] is None:
                    self.owner[s] = me
            for s in list(cool):
                cool[s] -= 1

    def kill(self, replica: str) -> None:
        self.live.remove(replica)
        for s, o in self.owner.items():
            if o == replica:
                self.owner[s] = None  # its leases expire

    def counts(self) -> dict[str, int]:
        return {r: sum(1 for o in self.owner.values() if o == r) for r in self.live}

    def balanced(self) -> bool:
        low, high = fair_share(self.shards, len(self.live))
        return all(o is not None for o in self.owner.values()) and all(
            low <= n <= high for n in self.counts().values()
        )


def test_three_replicas_and_twelve_shards_take_four_each() -> None:
    fleet = Fleet(12, ["a", "b", "c"], seed=1)
    for _ in range(10):
        fleet.round()
    assert fleet.counts() == {"a": 4, "b": 4, "c": 4}


def test_a_replica_alone_takes_everything_then_shares_with_newcomers() -> None:
    fleet = Fleet(12, ["a"], seed=2)
    fleet.round()
    assert fleet.counts() == {"a": 12}
    fleet.live += ["b", "c"]
    for _ in range(15):
        fleet.round()
    assert fleet.balanced()
    assert fleet.counts() == {"a": 4, "b": 4, "c": 4}


@settings(max_examples=150, deadline=None)
@given(
    shards=st.integers(1, 40),
    replicas=st.integers(1, 8),
    seed=st.integers(0, 2**32),
    kills=st.integers(0, 3),
)
def test_any_fleet_converges_to_a_fair_share_with_every_shard_owned(
    shards: int, replicas: int, seed: int, kills: int
) -> None:
    names = [f"r{i}" for i in range(replicas)]
    fleet = Fleet(shards, names, seed)
    rounds = 2 * shards + ORPHAN_TICKS + 10
    for _ in range(rounds):
        fleet.round()
    assert fleet.balanced(), fleet.counts()
    for victim in names[: min(kills, replicas - 1)]:
        fleet.kill(victim)
        for _ in range(rounds):
            fleet.round()
        assert fleet.balanced(), fleet.counts()


def test_a_shard_left_free_is_taken_by_a_replica_at_its_share_after_a_few_ticks() -> None:
    # b believes c is alive (c's heartbeat has not expired yet) and so stops at its share; the shard c
    # held must not stay without an owner because of that.
    owners: dict[int, str | None] = {0: "b", 1: "b", 2: None, 3: "c"}
    moves = rebalance(me="b", shards=4, live=["b", "c"], owners=owners, mine=[0, 1])
    assert moves.claim == ()
    moves = rebalance(
        me="b", shards=4, live=["b", "c"], owners=owners, mine=[0, 1], free_ticks={2: ORPHAN_TICKS}
    )
    assert moves.claim == (2,)


def test_an_over_share_replica_keeps_what_nobody_else_has_room_for() -> None:
    moves = rebalance(me="a", shards=4, live=["a", "b"], owners={2: "b", 3: "b"}, mine=[0, 1])
    assert moves == rebalance(me="a", shards=4, live=["a", "b"], owners={2: "b", 3: "b"}, mine=[0, 1])
    assert moves.give == ()
    moves = rebalance(me="a", shards=4, live=["a", "b"], owners={}, mine=[0, 1, 2, 3])
    assert moves.give == (3, 2)
