"""The job watcher (`reconciler.execution.watch`): log lines, terminal states, restarts and ARM's read budget.

Everything runs on the daemon tests' `FakeClock` against `Aci`, a small scripted container service defined
here: the test prints lines into a container's log at a simulated time and ends groups; every read the
watcher makes is logged with its simulated time, so the budget and intervals can be counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from reconciler.cloud.errors import NotFoundError, RetryableError, StalledError
from reconciler.execution.watch import JobWatcher, LogFollower, Watch, WatcherStoppedError
from reconciler.model.observed import ObservedGroup
from tests.daemon.fakes import FakeClock, settle

# --- a scripted ACI ------------------------------------------------------------------------------


@dataclass
class Container:
    name: str
    clock: FakeClock
    init: bool = False
    state: str = "Running"
    restarts: int = 0
    exit_code: int | None = None
    # (time, text) printed in the current run; a read sees those at or before its time.
    output: list[tuple[float, str]] = field(default_factory=list)

    def print(self, text: str, at: float | None = None) -> None:
        self.output.append((self.clock.monotonic() if at is None else at, text))

    def log(self) -> str:
        now = self.clock.monotonic()
        return "".join(text for t, text in self.output if t <= now)

    def restart(self) -> None:
        self.restarts += 1
        self.output = []
        self.state = "Running"


@dataclass
class Group:
    name: str
    clock: FakeClock
    containers: dict[str, Container]
    state: str = "Running"
    provisioning: str = "Succeeded"
    ends_at: float | None = None  # scripted end: Succeeded from then on
    container_views: bool = True

    def instance_state(self) -> str:
        if self.ends_at is not None and self.clock.monotonic() >= self.ends_at:
            return "Succeeded"
        return self.state

    def end(self, state: str = "Succeeded", exit_code: int = 0) -> None:
        self.state = state
        for c in self.containers.values():
            if c.state == "Running":
                c.state, c.exit_code = "Terminated", exit_code

    def observed(self, rg: str) -> ObservedGroup:
        state = self.instance_state()

        def item(c: Container) -> dict[str, Any]:
            props: dict[str, Any] = {"image": "busybox"}
            if self.container_views:
                cstate = "Terminated" if state != "Running" and c.state == "Running" else c.state
                props["instanceView"] = {
                    "restartCount": c.restarts,
                    "currentState": {"state": cstate, "exitCode": c.exit_code},
                }
            return {"name": c.name, "properties": props}

        body = {
            "name": self.name,
            "properties": {
                "provisioningState": self.provisioning,
                "restartPolicy": "OnFailure",
                "instanceView": {"state": state},
                "initContainers": [item(c) for c in self.containers.values() if c.init],
                "containers": [item(c) for c in self.containers.values() if not c.init],
            },
        }
        return ObservedGroup(
            resource_group=rg,
            name=self.name,
            body=body,
            provisioning_state=self.provisioning,
            instance_state=state,
        )


@dataclass(frozen=True)
class Read:
    at: float
    op: str  # "get" or "logs"
    name: str
    container: str | None = None


class Aci:
    """Implements the reads of `reconciler.cloud.gateway.Gateway` that the watcher makes."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.groups: dict[str, Group] = {}
        self.reads: list[Read] = []
        self.faults: list[tuple[str, str | None, BaseException]] = []  # (op, group name or None, error)

    def add(self, name: str, containers: Sequence[str] = ("main",), *, init: Sequence[str] = ()) -> Group:
        cs = {n: Container(n, self.clock, init=True, state="Terminated", exit_code=0) for n in init}
        cs.update({n: Container(n, self.clock) for n in containers})
        group = Group(name, self.clock, cs)
        self.groups[name] = group
        return group

    def fail(self, op: str, error: BaseException, *, name: str | None = None, times: int = 1) -> None:
        self.faults.extend([(op, name, error)] * times)

    def count(self, op: str | None = None, name: str | None = None) -> int:
        return sum(1 for r in self.reads if (op is None or r.op == op) and (name is None or r.name == name))

    def _fault(self, op: str, name: str) -> None:
        for i, (fop, fname, error) in enumerate(self.faults):
            if fop == op and fname in (None, name):
                del self.faults[i]
                raise error

    async def get_group(self, resource_group: str, name: str) -> ObservedGroup | None:
        self.reads.append(Read(self.clock.monotonic(), "get", name))
        self._fault("get", name)
        group = self.groups.get(name)
        return None if group is None else group.observed(resource_group)

    async def logs(
        self,
        resource_group: str,
        name: str,
        container: str,
        *,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> str:
        self.reads.append(Read(self.clock.monotonic(), "logs", name, container))
        self._fault("logs", name)
        group = self.groups.get(name)
        if group is None:
            raise NotFoundError(f"{resource_group}/{name} not found", status=404)
        return group.containers[container].log()


class Harness:
    def __init__(self, **options: Any) -> None:
        self.clock = FakeClock()
        self.aci = Aci(self.clock)
        self.watcher = JobWatcher(
            self.aci,  # type: ignore[arg-type]  # the reads are all the watcher uses
            clock=self.clock.monotonic,
            sleep=self.clock.sleep,
            **options,
        )
        self.delivered: list[tuple[float, str, str, str]] = []  # (time, group, container, text)

    def watch(self, name: str, containers: Sequence[str] = ("main",), **options: Any) -> Watch:
        def on_log(container: str, text: str) -> None:
            self.delivered.append((self.clock.monotonic(), name, container, text))

        options.setdefault("on_log", on_log)
        return self.watcher.watch("rg", name, containers, **options)

    def text(self, name: str, container: str = "main") -> str:
        return "".join(t for _, g, c, t in self.delivered if g == name and c == container)

    def chunks(self, name: str, container: str = "main") -> list[str]:
        return [t for _, g, c, t in self.delivered if g == name and c == container]

    def hold_log_reads(self) -> asyncio.Event:
        """From now on every log read has its answer but waits for the returned event before giving it."""
        gate = asyncio.Event()
        real_logs = self._real_logs = self.aci.logs

        async def slow_logs(*args: Any, **kwargs: Any) -> str:
            text = await real_logs(*args, **kwargs)
            await gate.wait()
            return text

        self.aci.logs = slow_logs  # type: ignore[method-assign]
        return gate

    def release_log_reads(self) -> None:
        """Log reads answer at once again (those already waiting still wait for their event)."""
        self.aci.logs = self._real_logs  # type: ignore[method-assign]

    async def advance(self, seconds: float, step: float = 0.5) -> None:
        end = self.clock.now + seconds
        while self.clock.now < end - 1e-9:
            await self.clock.advance(min(step, end - self.clock.now))


@contextlib.asynccontextmanager
async def running(**options: Any) -> AsyncIterator[Harness]:
    h = Harness(**options)
    task = asyncio.create_task(h.watcher.run(), name="job-watcher")
    await settle()
    try:
        yield h
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# --- the log diff --------------------------------------------------------------------------------


def test_follower_delivers_whole_lines_and_holds_the_partial_one() -> None:
    f = LogFollower()
    assert f.feed("one\ntw") == ("one\n", True)
    assert f.feed("one\ntwo\nthr") == ("two\n", True)
    assert f.feed("one\ntwo\nthr") == ("", False)
    assert f.flush() == "thr\n"
    assert f.flush() == ""


def test_follower_ignores_an_empty_read_after_text() -> None:
    f = LogFollower()
    f.feed("a\nb\n")
    assert f.feed("") == ("", False)
    assert f.feed("a\nb\nc\n") == ("c\n", True)
    assert f.runs == 0


def test_follower_finds_the_overlap_when_the_log_was_cut_at_the_front() -> None:
    f = LogFollower()
    f.feed("l1\nl2\nl3\nl4\n")
    assert f.feed("l3\nl4\nl5\n") == ("l5\n", True)
    assert f.runs == 0


def test_follower_finds_the_full_window_inside_a_log_cut_at_the_front() -> None:
    f = LogFollower(window=64)
    seen = "".join(f"line {i:03d}\n" for i in range(40))
    f.feed(seen)
    cut = seen[len(seen) // 2 :] + "line new\n"
    assert f.feed(cut) == ("line new\n", True)
    assert f.runs == 0


def test_follower_takes_content_without_overlap_as_a_new_run() -> None:
    f = LogFollower()
    f.feed("starting\nworking\ncrash")
    lines, grew = f.feed("starting\n")
    # The old run's partial line is completed first, then the new run from its beginning.
    assert (lines, grew) == ("crash\nstarting\n", True)
    assert f.runs == 1
    assert f.feed("starting\nagain\n") == ("again\n", True)


def test_follower_does_not_trust_a_short_overlap_inside_a_line() -> None:
    f = LogFollower()
    f.feed("total: 10\n")
    # "0\n" ends what was seen but does not begin a line there: chance, not an overlap.
    assert f.feed("0\nnext\n") == ("0\nnext\n", True)
    assert f.runs == 1


def test_follower_restart_starts_again_from_nothing() -> None:
    f = LogFollower()
    f.feed("same\nout")
    assert f.restart() == "out\n"
    assert f.feed("same\n") == ("same\n", True)


# --- lines, terminal states, logs ----------------------------------------------------------------


async def test_lines_arrive_in_order_whole_and_the_partial_last_line_at_the_end() -> None:
    async with running() as h:
        g = h.aci.add("job")
        main = g.containers["main"]
        w = h.watch("job")
        main.print("one\ntw")
        await h.advance(3)
        assert h.chunks("job") == ["one\n"]
        main.print("o\nthree\n")
        await h.advance(3)
        assert h.chunks("job") == ["one\n", "two\nthree\n"]
        main.print("last, no newline")
        g.end()
        await h.advance(10)
        assert w.done()
        result = await w.result()
    assert result is not None
    assert result.instance_state == "Succeeded"
    assert h.text("job") == "one\ntwo\nthree\nlast, no newline\n"


async def test_the_whole_log_is_read_after_the_terminal_state_before_the_result() -> None:
    async with running() as h:
        g = h.aci.add("job")
        w = h.watch("job")
        await h.advance(2)
        # The job prints its last lines and ends at once: no read saw them while it ran.
        g.containers["main"].print("final 1\nfinal 2\n")
        g.end(exit_code=3)
        result = await asyncio.wait_for(_until_done(h, w), 1)
    assert result is not None
    assert h.text("job") == "final 1\nfinal 2\n"
    terminal_get = next(
        r.at for r in h.aci.reads if r.op == "get" and r.at >= 2 and g.instance_state() != "Running"
    )
    assert any(r.op == "logs" and r.at >= terminal_get for r in h.aci.reads)
    assert _exit_codes(result) == {"main": 3}


async def test_a_log_read_that_began_before_the_end_is_not_taken_as_the_last() -> None:
    async with running() as h:
        g = h.aci.add("job")
        main = g.containers["main"]
        main.print("early\n", at=0.0)
        w = h.watch("job")
        await h.advance(3)
        gate = h.hold_log_reads()
        main.print("middle\n")
        await h.advance(2, step=0.25)  # a log read is in flight with "middle" in it
        main.print("late\n")
        g.end()
        w.refresh()
        await h.advance(0.5, step=0.25)  # the GET saw the end while that read was out
        h.release_log_reads()
        gate.set()
        await _until_done(h, w)
    assert h.text("job") == "early\nmiddle\nlate\n"


async def test_every_container_log_is_read_to_the_end_in_a_multi_container_group() -> None:
    async with running() as h:
        g = h.aci.add("job", ("app", "sidecar"), init=("setup",))
        g.containers["setup"].print("migrated\n", at=0.0)
        w = h.watch("job", ("setup", "app", "sidecar"))
        await h.advance(2)
        g.containers["app"].print("app done\n")
        g.containers["sidecar"].print("side done\n")
        g.end()
        await _until_done(h, w)
    assert h.text("job", "setup") == "migrated\n"
    assert h.text("job", "app") == "app done\n"
    assert h.text("job", "sidecar") == "side done\n"


async def test_a_finished_init_container_log_is_read_once_and_then_left_alone() -> None:
    async with running() as h:
        g = h.aci.add("job", init=("setup",))
        g.containers["setup"].print("setup ok\n", at=0.0)
        w = h.watch("job", ("setup", "main"))
        await h.advance(120)
        setup_reads = [r for r in h.aci.reads if r.container == "setup"]
        assert len(setup_reads) == 1
        g.end()
        await _until_done(h, w)
    assert h.text("job", "setup") == "setup ok\n"
    # One more read at the end (the group ended), none in between.
    assert len([r for r in h.aci.reads if r.container == "setup"]) == 2


async def test_a_container_that_has_not_started_gets_no_log_read() -> None:
    async with running() as h:
        g = h.aci.add("job")
        g.state = "Pending"
        g.containers["main"].state = "Waiting"
        h.watch("job")
        await h.advance(60)
        assert h.aci.count("logs") == 0
        assert h.aci.count("get") >= 3
        g.state = "Running"
        g.containers["main"].state = "Running"
        g.containers["main"].print("hello\n")
        await h.advance(40)
    assert h.text("job") == "hello\n"


async def test_without_logs_no_log_is_read() -> None:
    async with running() as h:
        g = h.aci.add("job")
        g.containers["main"].print("ignored\n", at=0.0)
        w = h.watch("job", logs=False)
        await h.advance(30)
        g.end()
        result = await _until_done(h, w)
    assert result is not None
    assert h.aci.count("logs") == 0
    assert h.delivered == []


async def test_a_stopped_group_ends_the_watch_after_refresh() -> None:
    async with running() as h:
        g = h.aci.add("job")
        w = h.watch("job")
        await h.advance(300)  # long enough for the GET interval to reach its ceiling
        gets = h.aci.count("get")
        g.end("Stopped", exit_code=137)
        w.refresh()
        await h.clock.advance(0.5)
        assert h.aci.count("get") == gets + 1
        result = await _until_done(h, w)
    assert result is not None
    assert result.instance_state == "Stopped"


async def test_a_failed_provisioning_is_terminal() -> None:
    async with running() as h:
        g = h.aci.add("job")
        g.provisioning = "Failed"
        g.state = "Pending"
        g.containers["main"].state = "Waiting"
        result = await _until_done(h, h.watch("job"))
    assert result is not None
    assert result.provisioning_state == "Failed"


async def test_a_service_without_container_views_still_streams_while_the_group_runs() -> None:
    async with running() as h:
        g = h.aci.add("job")
        g.container_views = False
        g.containers["main"].print("hi\n", at=0.0)
        w = h.watch("job")
        await h.advance(5)
        assert h.text("job") == "hi\n"
        g.end()
        await _until_done(h, w)


# --- restarts (restartPolicy OnFailure) ----------------------------------------------------------


async def test_a_restart_seen_in_the_log_first_delivers_the_new_run_once() -> None:
    async with running() as h:
        g = h.aci.add("job")
        main = g.containers["main"]
        w = h.watch("job")
        main.print("try\nboom\n")
        await h.advance(3)
        main.restart()
        main.print("try\n")
        # Logs are re-read within a second of growth; GETs only every few seconds: the log sees it first.
        await h.advance(1.5, step=0.25)
        assert h.text("job") == "try\nboom\ntry\n"
        main.print("ok\n")
        await h.advance(30)
        g.end()
        await _until_done(h, w)
    assert h.text("job") == "try\nboom\ntry\nok\n"


async def test_a_restart_that_prints_the_same_is_known_from_the_restart_count() -> None:
    async with running() as h:
        g = h.aci.add("job")
        main = g.containers["main"]
        w = h.watch("job")
        main.print("same\n")
        await h.advance(3)
        main.restart()
        main.print("same\n")  # the new run's log equals the old one: only restartCount tells
        await h.advance(60)
        g.end()
        await _until_done(h, w)
    assert h.text("job") == "same\nsame\n"


async def test_a_log_read_in_flight_across_a_restart_keeps_the_old_run_and_then_reads_the_new() -> None:
    async with running() as h:
        g = h.aci.add("job")
        main = g.containers["main"]
        main.print("run one\n", at=0.0)
        w = h.watch("job")
        await h.advance(3)
        delivered_before = h.text("job")
        # Hold the next log read until the GET has seen the restart.
        gate = h.hold_log_reads()
        main.print("run one more\n")
        await h.advance(2, step=0.25)
        main.restart()
        main.print("run two\n")
        w.refresh()
        await h.advance(0.5, step=0.25)
        gate.set()
        await settle()
        h.release_log_reads()
        await h.advance(10)
        g.end()
        await _until_done(h, w)
    assert delivered_before == "run one\n"
    # The read in flight brought the old run's last line; the next one the new run, once.
    assert h.text("job") == "run one\nrun one more\nrun two\n"


# --- the budget ----------------------------------------------------------------------------------


async def test_fifty_jobs_stay_within_the_read_budget_and_every_line_arrives() -> None:
    rng = random.Random(12)
    async with running(reads_per_second=8.0, burst=1) as h:
        watches = []
        written: dict[str, str] = {}
        written_at: dict[str, float] = {}
        for i in range(50):
            name = f"job{i:02d}"
            g = h.aci.add(name)
            period = rng.choice([0.5, 1.0, 3.0, 10.0, 40.0])
            end = rng.uniform(60, 180)
            lines = [(t * period, f"{name} line {t}\n") for t in range(int(end / period))]
            for at, text in lines:
                g.containers["main"].print(text, at=at)
            g.ends_at = end
            written[name] = "".join(text for _, text in lines)
            written_at.update((text, at) for at, text in lines)
            watches.append(h.watch(name))
        await h.advance(240, step=1.0)
        assert all(w.done() for w in watches)
    per_second = Counter(int(r.at) for r in h.aci.reads)
    assert max(per_second.values()) <= 9  # 8 a second and a burst of 1
    assert len(h.aci.reads) > 240 * 5  # the budget was used, not idle
    for name, text in written.items():
        assert h.text(name) == text
    delays = sorted(
        t - written_at[line] for t, _, _, text in h.delivered for line in text.splitlines(keepends=True)
    )
    assert delays[len(delays) // 2] <= 5.0  # half the lines within 5 s, with the budget spent on 50 jobs


async def test_the_log_budget_goes_to_the_logs_that_print() -> None:
    async with running(reads_per_second=8.0) as h:
        for i in range(40):
            g = h.aci.add(f"job{i:02d}")
            main = g.containers["main"]
            main.print("started\n", at=0.0)
            if i % 2 == 0:  # half the jobs print a line a second, the others nothing more
                for t in range(1, 300):
                    main.print(f"tick {t}\n", at=float(t))
            h.watch(f"job{i:02d}")
        await h.advance(300, step=1.0)
    reads = Counter(r.name for r in h.aci.reads if r.op == "logs" and r.at >= 60)
    chatty = [reads[f"job{i:02d}"] for i in range(0, 40, 2)]
    quiet = [reads[f"job{i:02d}"] for i in range(1, 40, 2)]
    # Quiet logs are read at their slowest (20 s); the chatty ones share the rest of the budget.
    assert max(quiet) <= 240 / 20 + 1
    assert min(chatty) >= 4 * max(quiet)


async def test_the_most_overdue_read_goes_first() -> None:
    async with running(reads_per_second=0.25) as h:  # a token every 4 s
        h.aci.add("a")
        h.aci.add("b")
        h.watch("a", logs=False)  # read at once; its next GET falls due at 2 s
        await h.advance(0.5, step=0.25)
        h.watch("b", logs=False)  # due at 0.5 s, later in the list than a
        await h.advance(9, step=0.25)
    # At 4 s both are due: b has waited since 0.5 s, a only since 2 s.
    assert [(r.name, r.at) for r in h.aci.reads[:3]] == [("a", 0.0), ("b", 4.0), ("a", 8.0)]


async def test_a_quiet_job_backs_off_towards_the_ceiling() -> None:
    async with running() as h:
        g = h.aci.add("job")
        g.containers["main"].print("started\n", at=0.0)
        h.watch("job")
        await h.advance(120, step=1.0)
    log_times = [r.at for r in h.aci.reads if r.op == "logs"]
    gaps = [b - a for a, b in itertools.pairwise(log_times)]
    assert gaps[:4] == pytest.approx([1.0, 2.0, 4.0, 5.0])  # a second after growth, then doubling
    assert gaps == sorted(gaps)  # never closer together while nothing happens
    assert max(gaps) == pytest.approx(5.0)  # alone: at most 5 s between reads
    assert len(log_times) < 30  # against 120 for a read a second
    get_gaps = [b - a for a, b in itertools.pairwise([r.at for r in h.aci.reads if r.op == "get"])]
    assert get_gaps == sorted(get_gaps)
    assert max(get_gaps) <= 5.0 + 1e-9


async def test_a_growing_log_is_read_again_quickly() -> None:
    async with running() as h:
        g = h.aci.add("job")
        h.watch("job")
        await h.advance(60, step=1.0)  # quiet: reads 5 s apart by now
        main = g.containers["main"]
        start = h.clock.monotonic()
        for k in range(10):
            main.print(f"tick {k}\n", at=start + k)
        await h.advance(12, step=0.25)
    arrivals = {line: t for t, _, _, text in h.delivered for line in text.splitlines()}
    assert len(arrivals) == 10
    # After the first read that sees growth, lines come within about a second of being written.
    late = [t - (start + int(line.split()[1])) for line, t in arrivals.items() if line != "tick 0"]
    assert max(late) <= 1.5


# --- errors, cancellation ------------------------------------------------------------------------


async def test_retryable_errors_back_off_and_never_fail_the_watch() -> None:
    async with running() as h:
        g = h.aci.add("job")
        h.aci.fail("get", RetryableError("busy", status=503), times=3)
        w = h.watch("job")
        await h.advance(10, step=0.25)
        gets = [r.at for r in h.aci.reads if r.op == "get"]
        assert gets[:4] == pytest.approx([0.0, 1.0, 3.0, 7.0])  # 1 s, 2 s, 4 s
        g.end()
        result = await _until_done(h, w)
    assert result is not None


async def test_retry_after_holds_every_read_of_the_watcher() -> None:
    async with running() as h:
        h.aci.add("a")
        h.aci.add("b")
        h.aci.fail("get", RetryableError("throttled", status=429, retry_after=20.0), name="a")
        h.watch("a")
        h.watch("b")
        await h.advance(25, step=0.5)
    reads = h.aci.reads
    assert (reads[0].name, reads[0].at) == ("a", 0.0)
    # b's first GET was due at once, but ARM asked for 20 s of quiet: nothing at all in between.
    assert all(r.at >= 20.0 for r in reads[1:])
    assert {r.name for r in reads[1:]} == {"a", "b"}


async def test_a_stalled_error_fails_that_watch_only() -> None:
    async with running() as h:
        h.aci.add("bad")
        good = h.aci.add("good")
        h.aci.fail("get", StalledError("forbidden", status=403), name="bad")
        bad_watch = h.watch("bad")
        good_watch = h.watch("good")
        await h.advance(2)
        with pytest.raises(StalledError):
            await bad_watch.result()
        good.end()
        assert await _until_done(h, good_watch) is not None
        reads_of_bad = h.aci.count(name="bad")
        await h.advance(30)
        assert h.aci.count(name="bad") == reads_of_bad


async def test_a_vanished_group_gives_none_with_the_partial_line_delivered() -> None:
    async with running() as h:
        g = h.aci.add("job")
        g.containers["main"].print("half a li", at=0.0)
        w = h.watch("job")
        await h.advance(3)
        del h.aci.groups["job"]
        w.refresh()
        result = await _until_done(h, w)
    assert result is None
    assert h.text("job") == "half a li\n"


async def test_a_group_deleted_after_it_ended_keeps_the_log_read_so_far() -> None:
    async with running() as h:
        g = h.aci.add("job")
        g.containers["main"].print("a\n", at=0.0)
        w = h.watch("job")
        await h.advance(3)
        g.end()
        h.aci.fail("logs", NotFoundError("gone", status=404), name="job")
        w.refresh()
        result = await _until_done(h, w)
    assert result is not None
    assert h.text("job") == "a\n"


async def test_cancel_stops_the_reads_of_that_watch() -> None:
    async with running() as h:
        h.aci.add("a")
        h.aci.add("b")
        wa = h.watch("a")
        h.watch("b")
        await h.advance(5)
        wa.cancel()
        with pytest.raises(asyncio.CancelledError):
            await wa.result()
        reads_of_a = h.aci.count(name="a")
        await h.advance(60)
        assert h.aci.count(name="a") == reads_of_a
        assert h.aci.count(name="b") > 5


async def test_a_timeout_on_result_leaves_the_watch_running() -> None:
    async with running() as h:
        g = h.aci.add("job")
        w = h.watch("job")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(w.result(), 0.01)
        g.containers["main"].print("after\n")
        g.end()
        await _until_done(h, w)
    assert h.text("job") == "after\n"


async def test_cancelling_the_watcher_propagates_and_ends_every_watch() -> None:
    h = Harness()
    task = asyncio.create_task(h.watcher.run(), name="job-watcher")
    h.aci.add("job")
    w = h.watch("job")
    await h.advance(3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(WatcherStoppedError):
        await w.result()
    reads = len(h.aci.reads)
    await h.advance(30)
    assert len(h.aci.reads) == reads
    assert h.clock.sleeping == 0


async def test_a_failing_log_callback_fails_its_watch_not_the_watcher() -> None:
    async with running() as h:
        g = h.aci.add("job")
        g.containers["main"].print("x\n", at=0.0)

        def broken(container: str, text: str) -> None:
            raise ValueError("callback bug")

        w = h.watch("job", on_log=broken)
        other = h.aci.add("other")
        ow = h.watch("other")
        await h.advance(3)
        with pytest.raises(ValueError, match="callback bug"):
            await w.result()
        other.end()
        assert await _until_done(h, ow) is not None


def test_nonsense_settings_are_refused() -> None:
    aci: Any = object()
    with pytest.raises(ValueError, match="reads_per_second"):
        JobWatcher(aci, reads_per_second=0)
    with pytest.raises(ValueError, match="log_interval"):
        JobWatcher(aci, log_interval=(5.0, 1.0))


# --- helpers -------------------------------------------------------------------------------------


async def _until_done(h: Harness, w: Watch, limit: float = 600.0) -> ObservedGroup | None:
    """Advance the fake clock until the watch has its result (at most `limit` simulated seconds)."""
    end = h.clock.now + limit
    while not w.done() and h.clock.now < end:
        await h.clock.advance(0.5)
    assert w.done(), "the watch never ended"
    return await w.result()


def _exit_codes(group: ObservedGroup) -> dict[str, int | None]:
    return {
        c["name"]: c["properties"]["instanceView"]["currentState"]["exitCode"]
        for c in group.body["properties"]["containers"]
    }
