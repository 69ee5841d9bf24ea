"""Per-group state: backoff with a cap, stalled until the manifest or revision changes, the state file."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.daemon.state import (
    BackoffPolicy,
    GroupState,
    OutcomeRecord,
    Phase,
    Reason,
    StateBook,
    StateStore,
    compact_group,
)
from reconciler.model.outcome import GroupOutcome, Result
from reconciler.model.plan import Action
from tests.daemon.fakes import START, change, fail, succeed


@given(failures=st.integers(min_value=1, max_value=200), seed=st.integers())
def test_backoff_never_exceeds_its_cap(failures: int, seed: int) -> None:
    policy = BackoffPolicy(base=10, cap=600, jitter=0.2)
    delay = policy.delay(failures, random.Random(seed))
    assert 0 < delay <= 600


def test_backoff_grows_exponentially_until_the_cap() -> None:
    policy = BackoffPolicy(base=10, cap=300, jitter=0.0)
    rng = random.Random(1)
    assert [policy.delay(n, rng) for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]


def test_backoff_honours_retry_after() -> None:
    assert BackoffPolicy(base=1, cap=60, jitter=0).delay(1, random.Random(), retry_after=45) == 45


def test_retryable_failure_holds_only_that_group_until_its_time() -> None:
    book = StateBook(backoff=BackoffPolicy(base=10, cap=100, jitter=0))
    web, api = change("web"), change("api")
    book.begin(web, "r1")
    book.record_outcome(web, fail(retryable=True)(web), "r1", START)
    state = book.groups[web.key]
    assert (state.phase, state.reason, state.failures) == (Phase.RECONCILING, Reason.RETRYABLE_ERROR, 1)
    assert state.next_retry_at == START + 10
    assert not book.admit(web, "r1", START + 5).apply
    assert book.admit(api, "r1", START + 5).apply, "other groups are not delayed"
    assert book.admit(web, "r1", START + 10).apply
    book.record_outcome(web, fail(retryable=True)(web), "r1", START + 10)
    assert book.groups[web.key].next_retry_at == START + 10 + 20
    assert book.next_retry() == START + 30


def test_success_clears_failures_and_records_applied_revision() -> None:
    book = StateBook(backoff=BackoffPolicy(jitter=0))
    web = change("web")
    book.record_outcome(web, fail(retryable=True)(web), "r1", START)
    book.record_outcome(web, succeed(web), "r2", START + 60)
    state = book.groups[web.key]
    assert (state.phase, state.reason) == (Phase.READY, Reason.APPLIED)
    assert state.last_applied_revision == "r2"
    assert (state.failures, state.next_retry_at, state.last_error) == (0, None, None)
    assert [h.result for h in state.history] == ["failed", "succeeded"]


def test_stalled_group_is_not_retried_until_its_manifest_changes() -> None:
    book = StateBook()
    web = change("web", spec="s1")
    book.record_outcome(web, fail(retryable=False, message="InvalidImage")(web), "r1", START)
    state = book.groups[web.key]
    assert (state.phase, state.reason, state.last_error) == (
        Phase.STALLED,
        Reason.APPLY_REJECTED,
        "InvalidImage",
    )
    assert not book.admit(web, "r1", START + 10_000).apply, "time alone never un-stalls"
    assert book.admit(change("web", spec="s2"), "r1", START).apply, "a new manifest is tried"


def test_stalled_group_is_retried_at_a_new_revision() -> None:
    book = StateBook()
    web = change("web")
    book.record_outcome(web, fail(retryable=False)(web), "r1", START)
    assert book.admit(web, "r2", START).apply


def test_invalid_manifest_stalls_its_group() -> None:
    book = StateBook()
    book.record_invalid(("rg", "web"), "web.yaml:3:5: cpu must be a number", "r1")
    state = book.groups[("rg", "web")]
    assert (state.phase, state.reason) == (Phase.STALLED, Reason.INVALID_MANIFEST)
    assert "cpu must be a number" in (state.last_error or "")


def test_pruned_group_leaves_the_book() -> None:
    book = StateBook()
    gone = change("old", Action.DELETE)
    book.begin(gone, "r1")
    assert book.record_outcome(gone, succeed(gone), "r1", START) is None
    assert gone.key not in book.groups


def test_interrupted_replace_is_reported_and_kept_in_flight() -> None:
    book = StateBook()
    web = change("web", Action.REPLACE)
    book.begin(web, "r1")
    outcome = GroupOutcome(
        resource_group="rg",
        name="web",
        action=Action.REPLACE,
        result=Result.SKIPPED,
        interrupted_after_delete=True,
    )
    state = book.record_outcome(web, outcome, "r1", START)
    assert state is not None
    assert state.reason is Reason.INTERRUPTED
    assert state.in_flight == "replace"


def test_drift_is_a_change_to_what_was_already_applied() -> None:
    book = StateBook()
    web = change("web", spec="s1")
    book.record_outcome(web, succeed(web), "r1", START)
    assert book.is_drift(change("web", spec="s1"), "r1")
    assert not book.is_drift(change("web", spec="s2"), "r1"), "a new manifest is not drift"
    assert not book.is_drift(change("web", spec="s1"), "r2"), "a new revision is not drift"


def test_a_plan_entry_seen_again_keeps_the_fingerprint_it_gave_even_after_another_was_applied() -> None:
    # The plan memo hands back the same entry for an unchanged group; its fingerprint is not hashed again,
    # but an apply in between must not leave the applied one standing for it.
    book = StateBook()
    kept = change("web", Action.NOOP, spec="s1")
    book.record_noop(kept, "r1")
    assert book.is_drift(change("web", spec="s1"), "r1")
    other = change("web", spec="s2")
    book.record_outcome(other, succeed(other), "r1", START)
    assert book.is_drift(change("web", spec="s2"), "r1")
    book.record_noop(kept, "r1")
    assert book.is_drift(change("web", spec="s1"), "r1"), "the entry's own fingerprint, again"
    assert not book.is_drift(change("web", spec="s2"), "r1")


def test_history_is_bounded() -> None:
    book = StateBook(backoff=BackoffPolicy(jitter=0))
    web = change("web")
    for i in range(25):
        book.record_outcome(web, succeed(web), f"r{i}", START + i)
    assert len(book.groups[web.key].history) == 10
    assert book.groups[web.key].history[-1].revision == "r24"


def test_state_file_round_trip_reports_what_was_in_flight(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    book = StateBook()
    ok, cut = change("ok"), change("cut", Action.REPLACE)
    book.record_outcome(ok, succeed(ok), "r1", START)
    book.begin(cut, "r2")
    store.save(book.to_json())
    assert [p.name for p in (tmp_path / "state").iterdir()] == ["daemon-state.json"], "no temp file left"

    again = StateBook()
    data = store.load()
    assert data is not None
    unfinished = again.restore(data)
    assert unfinished == [{"resource_group": "rg", "name": "cut", "action": "replace", "revision": "r2"}]
    restored = again.groups[cut.key]
    assert restored.reason is Reason.INTERRUPTED
    assert "cut short" in restored.message
    assert again.groups[ok.key].last_applied_revision == "r1"
    assert again.groups[ok.key].history[0].result == "succeeded"


def test_damaged_state_file_is_ignored(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.path.write_text("{not json")
    assert store.load() is None
    store.path.write_text(json.dumps({"version": 999, "groups": [{"x": 1}]}))
    data = store.load()
    assert data is not None
    assert StateBook().restore(data) == []


def test_counts_by_state() -> None:
    book = StateBook()
    a, b, c = change("a"), change("b"), change("c")
    book.record_outcome(a, succeed(a), "r1", START)
    book.record_outcome(b, fail(retryable=False)(b), "r1", START)
    book.begin(c, "r1")
    assert book.counts() == {"Ready": 1, "Reconciling": 1, "Stalled": 1}


# -- a damaged state file never stops the daemon (issue 10, finding 5) -------------------------------------

_VALID_GROUP = {
    "resource_group": "rg",
    "name": "web",
    "state": "Stalled",
    "reason": "ApplyRejected",
    "message": "m",
    "last_applied_revision": "abc",
    "last_attempted_revision": "def",
    "last_error": "e",
    "stalled_on": ["fp", "def"],
    "failures": 2,
    "next_retry_at": 12.5,
    "in_flight": "update",
    "applied_fingerprint": "fp",
    "history": [
        {"at": 1.0, "action": "update", "result": "failed", "duration_s": 0.5, "revision": "r", "message": ""}
    ],
}

_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=20),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@st.composite
def _damaged_state(draw: st.DrawFn) -> bytes:
    import copy

    data: Any = {"version": 1, "groups": [copy.deepcopy(_VALID_GROUP), copy.deepcopy(_VALID_GROUP)]}
    data["groups"][1]["name"] = "api"
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["top", "groups", "group", "history", "entry"]))
        junk = draw(_JUNK)
        if not isinstance(data, dict) or not isinstance(data.get("groups"), list) or not data["groups"]:
            break
        index = draw(st.integers(0, len(data["groups"]) - 1))
        if where == "top":
            data = junk if draw(st.booleans()) else {**data, "version": junk}
        elif where == "groups":
            data["groups"] = junk
        elif where == "group":
            data["groups"][index] = junk
        else:
            group = data["groups"][index]
            if not isinstance(group, dict):
                continue
            if where == "history":
                group["history"] = junk
            else:
                group[draw(st.sampled_from(sorted(_VALID_GROUP)))] = junk
    try:
        text = json.dumps(data).encode()
    except ValueError:  # an integer of more digits than Python converts: written out by hand
        text = (
            b'{"version": 1, "groups": [{"resource_group": "rg", "name": "x", "failures": '
            + b"9" * 5000
            + b"}]}"
        )
    cut = draw(st.one_of(st.none(), st.integers(0, len(text))))
    text = text if cut is None else text[:cut]
    return text + draw(st.binary(max_size=3)) if draw(st.booleans()) else text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=_damaged_state())
def test_a_damaged_state_file_never_stops_the_start_and_keeps_only_usable_entries(
    raw: bytes, tmp_path: Path
) -> None:
    store = StateStore(tmp_path)
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_bytes(raw)
    book = StateBook()
    saved = store.load()
    if saved is not None:
        book.restore(saved)
    for state in book.groups.values():
        assert isinstance(state.phase, Phase)
        assert isinstance(state.reason, Reason)
        assert isinstance(state.resource_group, str)
        assert isinstance(state.name, str)
        assert isinstance(state.failures, int)
        assert all(isinstance(h.at, float) for h in state.history)
    json.dumps(book.to_json())  # what it keeps can be written again


@pytest.mark.parametrize(
    "raw",
    [
        b'{"version": 1, "groups": [{"resource_group": "rg", "name": "x", "failures": '
        + b"9" * 5000
        + b"}]}",
        b"\xff\xfe\x00garbage",
        b"[" * 100_000,
        b'"just a string"',
        b"",
    ],
    ids=["5000-digit number", "not UTF-8", "deep nesting", "not an object", "empty"],
)
def test_a_state_file_python_cannot_even_parse_starts_empty(raw: bytes, tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_bytes(raw)
    assert store.load() is None


def test_an_unknown_phase_drops_that_group_only_with_one_log_line(tmp_path: Path) -> None:
    import copy

    bad = copy.deepcopy(_VALID_GROUP) | {"name": "bad", "state": "Exploded"}
    good = copy.deepcopy(_VALID_GROUP)
    book = StateBook()
    with structlog.testing.capture_logs() as logs:
        book.restore({"version": 1, "groups": [bad, good, {"resource_group": 5}]})
    assert sorted(book.groups) == [("rg", "web")]
    assert [e["event"] for e in logs] == ["state file entries dropped"]
    assert logs[0]["count"] == 2


_OPTIONAL_TEXT = st.one_of(st.none(), st.text(max_size=8))


@st.composite
def _group_state(draw: st.DrawFn) -> GroupState:
    state = GroupState(
        resource_group=draw(st.text("abc-", min_size=1, max_size=6)),
        name=draw(st.text("xyz-", min_size=1, max_size=6)),
        phase=draw(st.sampled_from(list(Phase))),
        reason=draw(st.sampled_from(list(Reason))),
        message=draw(st.text(max_size=8)),
        last_applied_revision=draw(_OPTIONAL_TEXT),
        last_attempted_revision=draw(_OPTIONAL_TEXT),
        last_error=draw(_OPTIONAL_TEXT),
        stalled_on=draw(st.one_of(st.none(), st.tuples(st.text(max_size=4), st.text(max_size=4)))),
        failures=draw(st.integers(0, 1000)),
        next_retry_at=draw(st.one_of(st.none(), st.floats(0, 1e10))),
        in_flight=draw(st.one_of(st.none(), st.sampled_from(["create", "replace", "update"]))),
        applied_fingerprint=draw(_OPTIONAL_TEXT),
    )
    for _ in range(draw(st.integers(0, 3))):
        state.remember(
            OutcomeRecord(
                at=draw(st.floats(0, 1e10)),
                action=draw(st.sampled_from(["create", "update"])),
                result=draw(st.sampled_from(["succeeded", "failed"])),
                duration_s=draw(st.floats(0, 100)),
                revision=draw(st.text(max_size=4)),
                message=draw(st.text(max_size=4)),
            )
        )
    return state


@given(_group_state())
def test_a_compacted_group_reads_back_as_the_same_group(state: GroupState) -> None:
    saved = state.to_json()
    compact = compact_group(saved)
    assert GroupState.from_json(compact).to_json() == saved
    assert {"resource_group", "name"} <= compact.keys()


def test_a_converged_group_compacts_to_what_is_not_a_default() -> None:
    book = StateBook()
    book.record_noop(change("web"), "r1")
    (saved,) = book.to_json()["groups"]
    assert set(compact_group(saved)) == {
        "resource_group",
        "name",
        "state",
        "reason",
        "message",
        "last_applied_revision",
        "applied_fingerprint",
    }


def test_the_state_file_is_written_only_when_what_it_holds_changed(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    book = StateBook()
    book.record_noop(change("web", Action.NOOP), "r1")
    store.save(book.to_json())
    first = store.path.stat()
    store.save(book.to_json())  # a converged pass: the same state
    assert store.path.stat().st_ino == first.st_ino, "not written again"
    book.record_noop(change("web", Action.NOOP), "r2")
    store.save(book.to_json())
    assert store.path.stat().st_ino != first.st_ino
    assert StateStore(tmp_path).load() == book.to_json()
    store.path.unlink()
    store.save(book.to_json())
    assert store.path.exists(), "a file removed meanwhile is written again"
