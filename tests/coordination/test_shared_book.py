"""The state book cut into shard books and taken over by another replica: history, backoff, stalls and the
job ledger carry over; what another shard holds is left alone."""

from __future__ import annotations

import json
from collections.abc import Callable

from reconciler.daemon.coordination.shards import shard_of
from reconciler.daemon.state import BackoffPolicy, Phase, Reason, StateBook, split_saved
from tests.daemon.fakes import START, change, fail, succeed

SHARDS = 4


def rg_in(shard: int, skip: int = 0) -> str:
    found = [f"rg-{i}" for i in range(400) if shard_of(f"rg-{i}", SHARDS) == shard]
    return found[skip]


def in_shard(shard: int) -> Callable[[str], bool]:
    return lambda rg: shard_of(rg, SHARDS) == shard


def leader_book() -> StateBook:
    book = StateBook(backoff=BackoffPolicy(base=10, cap=100, jitter=0))
    ok, flaky, broken = (
        change("ok", rg=rg_in(0)),
        change("flaky", rg=rg_in(0, 1)),
        change("broken", rg=rg_in(1)),
    )
    book.record_outcome(ok, succeed(ok), "r1", START)
    book.record_outcome(flaky, fail(retryable=True)(flaky), "r1", START)
    book.record_outcome(broken, fail(retryable=False, message="InvalidImage")(broken), "r1", START)
    entry = book.jobs.entry(rg_in(0), "nightly")
    entry.schedule_cursor = START + 3600
    return book


def test_a_saved_book_splits_by_shard_and_each_part_names_only_its_resource_groups() -> None:
    parts = split_saved(leader_book().to_json(), lambda rg: shard_of(rg, SHARDS))
    assert set(parts) == {0, 1}
    assert {g["name"] for g in parts[0]["groups"]} == {"ok", "flaky"}
    assert [j["name"] for j in parts[0]["jobs"]] == ["nightly"]
    assert {g["name"] for g in parts[1]["groups"]} == {"broken"}
    assert parts[1]["jobs"] == []


def test_a_new_leader_adopts_history_backoff_stalls_and_the_job_ledger() -> None:
    saved = json.loads(json.dumps(split_saved(leader_book().to_json(), lambda rg: shard_of(rg, SHARDS))[0]))
    successor = StateBook(backoff=BackoffPolicy(base=10, cap=100, jitter=0))
    successor.adopt(saved, in_shard(0), now=START + 5)
    flaky = successor.groups[(rg_in(0, 1), "flaky")]
    assert (flaky.phase, flaky.reason, flaky.failures) == (Phase.RECONCILING, Reason.RETRYABLE_ERROR, 1)
    assert not successor.admit(change("flaky", rg=rg_in(0, 1)), "r1", START + 5).apply, "backoff survives"
    assert [h.result for h in successor.groups[(rg_in(0), "ok")].history] == ["succeeded"]
    job = successor.jobs.get((rg_in(0), "nightly"))
    assert job is not None
    assert job.schedule_cursor == START + 3600


def test_adopting_a_shard_replaces_only_that_shard() -> None:
    book = leader_book()
    stale = StateBook()
    stale.record_held(change("gone", rg=rg_in(0, 2)), Reason.PLANNED, "standby")
    book_saved = split_saved(book.to_json(), lambda rg: shard_of(rg, SHARDS))
    mine = StateBook()
    mine.adopt(book_saved[1], in_shard(1))
    mine.record_held(change("planned", rg=rg_in(0, 2)), Reason.PLANNED, "standby")
    mine.adopt(book_saved[0], in_shard(0))
    assert {k[1] for k in mine.groups} == {"ok", "flaky", "broken"}, "shard 0's standby entry is replaced"
    mine.drop(in_shard(0))
    assert {k[1] for k in mine.groups} == {"broken"}
    assert mine.jobs.jobs == {}


def test_a_job_run_the_old_leader_left_running_is_interrupted_and_its_slot_not_run_again() -> None:
    from reconciler.daemon.jobs.ledger import RunRecord

    book = leader_book()
    entry = book.jobs.entry(rg_in(0), "nightly")
    entry.add(RunRecord(trigger="schedule", slot="2026-12-03T02:00:00Z", started_at=START))
    saved = split_saved(book.to_json(), lambda rg: shard_of(rg, SHARDS))[0]
    successor = StateBook()
    successor.adopt(saved, in_shard(0), now=START + 30)
    job = successor.jobs.get((rg_in(0), "nightly"))
    assert job is not None
    (run,) = job.runs
    assert run.result == "interrupted"
    assert not run.running
    assert job.has_run("schedule", "2026-12-03T02:00:00Z")


def test_forgetting_is_limited_to_what_the_pass_covered() -> None:
    book = leader_book()
    book.forget_except([], within=in_shard(1))
    assert {k[1] for k in book.groups} == {"ok", "flaky"}
