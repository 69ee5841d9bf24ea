"""Job watching: ARM reads and log latency of our one shared watcher against the anchors' per-task loops.

Run: `.venv/bin/python bench/jobs_watch.py [--jobs 50] [--seed 1] [--latency 0.15] [--sizes 1,10,50,100,200]`.

Everything is simulated and runs in virtual time (an asyncio event loop whose clock jumps to the next timer
instead of waiting), so eight simulated minutes of 50 jobs take seconds and no run is disturbed by the
machine's load. A simulated ACI (`SimAci`) answers the two reads a watcher makes, a group GET with its
instance view and a container's logs (with `tail` and `timestamps` as Azure has them), each after
`--latency` seconds, and counts every call with its start time.

The jobs: N single-container groups that start within the first minute and run 3 to 8 minutes, printing
unique lines at five rhythms, a fifth of the jobs each: chatty (a line every 0.5-2 s), steady (every 5-15 s),
sparse (every 30-90 s), bursty (10-40 lines at once every 30-120 s) and quiet (a line at the start and one
at the end); every job prints a last line just before it exits. Each way watches the same jobs from the
moment their group runs (creation and its long-running operation are left out for every way) until it
decides the job ended:

- ours: one `reconciler.execution.watch.JobWatcher` (default settings: 8 reads/s, burst 1) for all jobs.
- Airflow's `AzureContainerInstancesOperator._monitor_logging` (apache/airflow, providers/microsoft/azure,
  operators/container_instances.py): per task, a GET of the group, and while the first container is
  Running or Terminated a log read of its last 1,000 lines, printing those after the last line it printed
  before; returns on Terminated (after that read); sleeps 1 s between rounds.
- Prefect's `AzureContainerInstanceJob._watch_task_and_get_exit_code` (PrefectHQ/prefect-azure,
  prefect_azure/container_instance.py) with `stream_output=True` and the default
  `task_watch_poll_interval=5`: one log read after the start, then per round a GET, and unless the
  container is Terminated a log read of the last 100 lines with timestamps, printing the lines newer than
  the newest printed so far; stops at Terminated without reading the log again; sleeps 5 s between rounds.

The anchors are modelled from their public source (described, not copied) as coroutines on the same
simulated ACI; their blocking SDK calls become awaits of the same latency. Nothing throttles them here: the
figures are what they ask of ARM. Lines "lost" were written but never printed (a tail too short for the
interval, or no read after the end).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import random
import selectors
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from common import percentile, ratio, table

from reconciler.execution.watch import JobWatcher
from reconciler.model.observed import ObservedGroup

RG = "rg-jobs"
RHYTHMS = ("chatty", "steady", "sparse", "bursty", "quiet")


# --- virtual time ---------------------------------------------------------------------------------


class _VirtualSelector(selectors.DefaultSelector):
    """Never blocks: the time the loop would wait is added to the loop's clock instead."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:
            raise RuntimeError("virtual time: nothing is scheduled and nothing is ready (a deadlock)")
        if timeout > 0 and self.loop is not None:
            self.loop.now += timeout
        return super().select(0)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop whose `time()` moves only when every task waits: sleeps cost no wall time."""

    def __init__(self) -> None:
        self.now = 0.0
        selector = _VirtualSelector()
        super().__init__(selector)
        selector.loop = self

    def time(self) -> float:
        return self.now


def run_virtual(main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    with asyncio.Runner(loop_factory=VirtualTimeLoop) as runner:
        return runner.run(main())


def now() -> float:
    return asyncio.get_running_loop().time()


# --- the jobs --------------------------------------------------------------------------------------


@dataclass
class Job:
    name: str
    rhythm: str
    start: float
    end: float
    exit_code: int
    times: list[float] = field(default_factory=list)  # when each line is in the log
    lines: list[str] = field(default_factory=list)  # each ends with a newline
    _text: str = ""
    _offsets: list[int] = field(default_factory=list)
    _stamped: str = ""
    _stamped_offsets: list[int] = field(default_factory=list)

    def seal(self) -> None:
        """Precompute the log as one string with line offsets, so a read is a slice."""
        self._text = "".join(self.lines)
        self._offsets = [0]
        stamped = []
        self._stamped_offsets = [0]
        for t, line in zip(self.times, self.lines, strict=True):
            self._offsets.append(self._offsets[-1] + len(line))
            s = f"{t:013.6f} {line}"
            stamped.append(s)
            self._stamped_offsets.append(self._stamped_offsets[-1] + len(s))
        self._stamped = "".join(stamped)

    def log(self, at: float, *, tail: int | None, timestamps: bool) -> str:
        count = bisect.bisect_right(self.times, at)
        first = 0 if tail is None else max(0, count - tail)
        text, offsets = (self._stamped, self._stamped_offsets) if timestamps else (self._text, self._offsets)
        return text[offsets[first] : offsets[count]]


def make_jobs(count: int, seed: int) -> list[Job]:
    rng = random.Random(seed)
    jobs = []
    for i in range(count):
        rhythm = RHYTHMS[i % len(RHYTHMS)]
        start = rng.uniform(0.0, 60.0)
        end = start + rng.uniform(180.0, 480.0)
        job = Job(f"job-{i:03d}", rhythm, start, end, 1 if rng.random() < 0.2 else 0)
        t = start + rng.uniform(0.0, 1.0)

        def emit(at: float, job: Job = job) -> None:
            job.times.append(at)
            job.lines.append(f"{job.name} {len(job.lines):05d} {job.rhythm} {rng.getrandbits(32):08x}\n")

        emit(t)
        while True:
            if rhythm == "chatty":
                t += rng.uniform(0.5, 2.0)
            elif rhythm == "steady":
                t += rng.uniform(5.0, 15.0)
            elif rhythm == "sparse":
                t += rng.uniform(30.0, 90.0)
            elif rhythm == "bursty":
                t += rng.uniform(30.0, 120.0)
            else:
                t = end
            if t >= end - 0.5:
                break
            if rhythm == "bursty":
                for k in range(rng.randint(10, 40)):
                    emit(t + k * 0.02)
                t += 1.0
            else:
                emit(t)
        emit(end - 0.1)  # "done": the last line, just before the exit
        job.seal()
        jobs.append(job)
    return jobs


# --- the simulated ACI -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    at: float
    op: str  # "get" or "logs"
    job: str


class SimAci:
    """The reads of the Gateway protocol over scripted jobs; a job's group runs from `start` to `end`."""

    def __init__(self, jobs: Sequence[Job], latency: float) -> None:
        self.jobs = {j.name: j for j in jobs}
        self.latency = latency
        self.calls: list[Call] = []

    async def get_group(self, resource_group: str, name: str) -> ObservedGroup | None:
        self.calls.append(Call(now(), "get", name))
        await asyncio.sleep(self.latency / 2)
        job = self.jobs[name]
        ended = now() >= job.end
        state = ("Succeeded" if job.exit_code == 0 else "Failed") if ended else "Running"
        current: dict[str, Any] = {"state": "Terminated" if ended else "Running"}
        if ended:
            current["exitCode"] = job.exit_code
        body = {
            "name": name,
            "properties": {
                "provisioningState": "Succeeded",
                "restartPolicy": "Never",
                "instanceView": {"state": state},
                "containers": [
                    {
                        "name": "main",
                        "properties": {"instanceView": {"restartCount": 0, "currentState": current}},
                    }
                ],
            },
        }
        await asyncio.sleep(self.latency / 2)
        return ObservedGroup(
            resource_group=resource_group,
            name=name,
            body=body,
            provisioning_state="Succeeded",
            instance_state=state,
        )

    async def logs(
        self,
        resource_group: str,
        name: str,
        container: str,
        *,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> str:
        self.calls.append(Call(now(), "logs", name))
        await asyncio.sleep(self.latency / 2)
        text = self.jobs[name].log(now(), tail=tail, timestamps=timestamps)
        await asyncio.sleep(self.latency / 2)
        return text


def container_state(group: ObservedGroup) -> str:
    return str(
        group.body["properties"]["containers"][0]["properties"]["instanceView"]["currentState"]["state"]
    )


# --- the ways --------------------------------------------------------------------------------------


@dataclass
class Outcome:
    way: str
    jobs: Sequence[Job]
    calls: list[Call]
    delivered: dict[str, dict[str, float]]  # job -> line -> when printed (the first time)
    duplicates: int
    ended_at: dict[str, float]  # job -> when the way knew it ended

    def reads_per_job_minute(self) -> float:
        minutes = sum(j.end - j.start for j in self.jobs) / 60.0
        return len(self.calls) / minutes

    def peak_per_second(self) -> int:
        """The most reads started in any window of one second (sliding)."""
        times = sorted(c.at for c in self.calls)
        best, lo = 0, 0
        for hi, t in enumerate(times):
            while times[lo] <= t - 1.0:
                lo += 1
            best = max(best, hi - lo + 1)
        return best

    def mean_per_second(self) -> float:
        span = max(j.end for j in self.jobs) - min(j.start for j in self.jobs)
        return len(self.calls) / span

    def latencies(self, rhythm: str | None = None) -> list[float]:
        out = []
        for job in self.jobs:
            if rhythm is not None and job.rhythm != rhythm:
                continue
            seen = self.delivered.get(job.name, {})
            for t, line in zip(job.times, job.lines, strict=True):
                if line in seen:
                    out.append(seen[line] - t)
        return out

    def lost(self) -> int:
        return sum(len(j.lines) for j in self.jobs) - sum(len(v) for v in self.delivered.values())

    def end_delays(self) -> list[float]:
        return [self.ended_at[j.name] - j.end for j in self.jobs if j.name in self.ended_at]


class Recorder:
    def __init__(self) -> None:
        self.delivered: dict[str, dict[str, float]] = {}
        self.duplicates = 0
        self.ended_at: dict[str, float] = {}

    def lines(self, job: str, text: str) -> None:
        seen = self.delivered.setdefault(job, {})
        for line in text.splitlines(keepends=True):
            if line in seen:
                self.duplicates += 1
            else:
                seen[line] = now()


async def ours(aci: SimAci, jobs: Sequence[Job], rec: Recorder, **options: Any) -> None:
    watcher = JobWatcher(aci, clock=now, sleep=asyncio.sleep, **options)  # type: ignore[arg-type]
    runner = asyncio.create_task(watcher.run(), name="job-watcher")

    async def one(job: Job) -> None:
        await asyncio.sleep(job.start)
        w = watcher.watch(RG, job.name, ["main"], on_log=lambda _c, text: rec.lines(job.name, text))
        await w.result()
        rec.ended_at[job.name] = now()

    await asyncio.gather(*(one(j) for j in jobs))
    runner.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runner


async def airflow(aci: SimAci, jobs: Sequence[Job], rec: Recorder) -> None:
    async def one(job: Job) -> None:
        await asyncio.sleep(job.start)
        last_line: str | None = None
        while True:
            group = await aci.get_group(RG, job.name)
            assert group is not None
            state = container_state(group)
            if state in ("Running", "Terminated"):
                lines = (await aci.logs(RG, job.name, "main", tail=1000)).splitlines(keepends=True)
                if lines:
                    # Print after the last occurrence of the line printed last (from the start when absent).
                    start = 0
                    for i in range(len(lines) - 1, -1, -1):
                        if lines[i] == last_line:
                            start = i + 1
                            break
                    rec.lines(job.name, "".join(lines[start:]))
                    last_line = lines[-1]
            if state == "Terminated":
                rec.ended_at[job.name] = now()
                return
            await asyncio.sleep(1.0)

    await asyncio.gather(*(one(j) for j in jobs))


async def prefect(aci: SimAci, jobs: Sequence[Job], rec: Recorder, poll: float = 5.0) -> None:
    async def stream(job: Job, newest: float) -> float:
        text = await aci.logs(RG, job.name, "main", tail=100, timestamps=True)
        for entry in text.split("\n"):
            if not entry.strip():
                continue
            stamp, _, line = entry.partition(" ")
            if float(stamp) > newest:
                rec.lines(job.name, line + "\n")
                newest = float(stamp)
        return newest

    async def one(job: Job) -> None:
        await asyncio.sleep(job.start)
        newest = await stream(job, job.start - 1.0)
        while True:
            group = await aci.get_group(RG, job.name)
            assert group is not None
            if container_state(group) == "Terminated":
                rec.ended_at[job.name] = now()
                return
            newest = await stream(job, newest)
            await asyncio.sleep(poll)

    await asyncio.gather(*(one(j) for j in jobs))


def simulate(way: str, jobs: Sequence[Job], latency: float, **options: Any) -> Outcome:
    aci = SimAci(jobs, latency)
    rec = Recorder()

    async def main() -> None:
        if way == "ours":
            await ours(aci, jobs, rec, **options)
        elif way == "airflow":
            await airflow(aci, jobs, rec)
        else:
            await prefect(aci, jobs, rec)

    run_virtual(main)
    return Outcome(way, jobs, aci.calls, rec.delivered, rec.duplicates, rec.ended_at)


# --- report ----------------------------------------------------------------------------------------

LABELS = {
    "ours": "ours: one JobWatcher, 8 reads/s",
    "airflow": "Airflow operator: 1 s per task, GET + logs",
    "prefect": "Prefect job: 5 s per task, GET + logs",
}


def row(o: Outcome, label: str | None = None) -> list[Any]:
    lat = o.latencies()
    within = sum(1 for v in lat if v <= 5.0) / len(lat) * 100 if lat else float("nan")
    ends = o.end_delays()
    return [
        label or LABELS[o.way],
        len(o.jobs),
        len(o.calls),
        f"{o.reads_per_job_minute():.1f}",
        o.peak_per_second(),
        f"{o.mean_per_second():.2f}",
        f"{percentile(lat, 50):.2f}",
        f"{percentile(lat, 95):.2f}",
        f"{max(lat):.2f}" if lat else "nan",
        f"{within:.1f}%",
        o.lost(),
        o.duplicates,
        f"{percentile(ends, 50):.1f}",
        f"{max(ends):.1f}" if ends else "nan",
    ]


HEADERS = [
    "way",
    "jobs",
    "reads",
    "reads/job-min",
    "peak reads/s",
    "mean reads/s",
    "latency p50 s",
    "p95 s",
    "max s",
    "<= 5 s",
    "lines lost",
    "dup",
    "end seen p50 s",
    "max s",
]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=50, help="jobs running at once (default 50)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.15, help="seconds per ARM read (default 0.15)")
    parser.add_argument(
        "--sizes", default="1,10,50,100,200", help="job counts for ours alone (empty: skip that table)"
    )
    parser.add_argument("--reads-per-second", type=float, default=8.0, help="our watcher's budget")
    parser.add_argument(
        "--as-prefect",
        type=float,
        default=12.0,
        help="one more row: ours with this budget, about the Prefect loop's mean reads/s (0: skip)",
    )
    args = parser.parse_args(argv)

    jobs = make_jobs(args.jobs, args.seed)
    options = {"reads_per_second": args.reads_per_second}
    results = {way: simulate(way, jobs, args.latency, **options) for way in ("ours", "airflow", "prefect")}
    lines = sum(len(j.lines) for j in jobs)
    minutes = sum(j.end - j.start for j in jobs) / 60
    print(
        f"Job watching: {args.jobs} jobs at once ({minutes:.0f} job-minutes, {lines} log lines), "
        f"{args.latency * 1000:.0f} ms per ARM read, virtual time, seed {args.seed}\n"
    )
    rows = [row(results[w]) for w in ("ours", "airflow", "prefect")]
    if args.as_prefect:
        same = simulate("ours", jobs, args.latency, reads_per_second=args.as_prefect)
        rows.insert(1, row(same, f"ours with {args.as_prefect:g} reads/s (Prefect's mean)"))
    print(table(HEADERS, rows))

    print("\nours by rhythm (latency of the lines of the jobs of that rhythm):\n")
    o = results["ours"]
    by_rhythm = []
    for rhythm in RHYTHMS:
        lat = o.latencies(rhythm)
        within = sum(1 for v in lat if v <= 5.0) / len(lat) * 100
        by_rhythm.append(
            [
                rhythm,
                len(lat),
                f"{percentile(lat, 50):.2f}",
                f"{percentile(lat, 95):.2f}",
                f"{max(lat):.2f}",
                f"{within:.1f}%",
            ]
        )
    print(table(["rhythm", "lines", "p50 s", "p95 s", "max s", "<= 5 s"], by_rhythm))

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if sizes:
        print("\nours alone as the number of jobs grows (same mix of rhythms):\n")
        rows = []
        for n in sizes:
            out = simulate("ours", make_jobs(n, args.seed), args.latency, **options)
            rows.append(row(out, f"ours, {n} jobs"))
        print(table(HEADERS, rows))

    a, p = results["airflow"], results["prefect"]
    o_lat, a_lat, p_lat = o.latencies(), a.latencies(), p.latencies()
    per_minute = o.reads_per_job_minute()
    print(
        f"\ntarget: {args.jobs} jobs under 10 ARM reads/s in total, logs within 5 s of being written\n"
        f"RATIOS reads_per_job_minute airflow/ours={ratio(a.reads_per_job_minute(), per_minute)} "
        f"prefect/ours={ratio(p.reads_per_job_minute(), per_minute)} "
        f"peak_reads_per_s ours={o.peak_per_second()} airflow={a.peak_per_second()} "
        f"prefect={p.peak_per_second()} "
        f"latency_p50 ours={percentile(o_lat, 50):.2f}s airflow={percentile(a_lat, 50):.2f}s "
        f"prefect={percentile(p_lat, 50):.2f}s "
        f"latency_p95 ours={percentile(o_lat, 95):.2f}s airflow={percentile(a_lat, 95):.2f}s "
        f"prefect={percentile(p_lat, 95):.2f}s "
        f"lost ours={o.lost()} airflow={a.lost()} prefect={p.lost()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
