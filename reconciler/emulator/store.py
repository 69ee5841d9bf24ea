"""The emulator's state: container groups, their life cycle over time, indexes for paging, persistence.

`server.py` owns one `Store` and calls it from its request handlers, always on one asyncio loop and
without awaiting in between, so no locking is needed. Time is passed in (`now`, seconds since the epoch)
rather than read here, which keeps transitions deterministic under a fake clock: a transition (create,
update, start, restart, delete) records when it will be done, and every read first `advance`s the record,
so no timer task or real sleep is ever needed. With a provisioning delay of 0 a transition is done the
moment it is made.

Lookups are O(1) and listing is O(page): per subscription and per resource group the keys are kept in
sorted lists, and a page resumes after the last key of the previous one.
"""

from __future__ import annotations

import bisect
import copy
import json
import math
import os
import tempfile
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from reconciler.emulator.resource import JSON, assigned_ip, strip_secrets
from reconciler.emulator.runtime import LogLine, Program, go_duration, simulate

STATE_VERSION = 1
# What Azure says of a container stopped through the stop API.
STOPPED_DETAIL = "Container stopped per client request"
# Container-group states that ACI will not update in place any more.
TERMINATED_STATES = frozenset({"Succeeded", "Failed", "Stopped"})
# Restart policies under which containers run their (simulated) program to completion: jobs.
JOB_POLICIES = frozenset({"never", "onfailure"})
# Kubernetes' CrashLoopBackOff, which ACI shows: the first restart comes at once, then the back-off doubles
# from its base up to 30 times it (10 s ... 5 min); never below a millisecond, so that a program that fails at
# once cannot loop in place.
_BACKOFF_CAP_FACTOR = 30
_MIN_BACKOFF = 0.001


class JobSettings(Protocol):
    """The run-time knobs of job containers (`EmulatorConfig` has them)."""

    job_run_time: float
    restart_backoff: float


@dataclass
class DefaultJobSettings:
    job_run_time: float = 1.0
    restart_backoff: float = 10.0


def backoff(base: float, restart: int) -> float:
    """How long a failed container waits before its `restart`-th restart (1 for the first: at once).

    Recorded azure-cli traffic (test_container_create_msi, 2018-10-01) shows the first restart within
    seconds (the image pulled again), the second after "Back-off 10s", and `restartCount` counting the
    restarts done, not the one waited for."""
    if restart <= 1:
        return 0.0
    return max(_MIN_BACKOFF, min(base * float(2 ** min(restart - 2, 5)), base * _BACKOFF_CAP_FACTOR))


def iso(ts: float, *, millis: bool = False) -> str:
    moment = datetime.fromtimestamp(ts, UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def bump_event(
    events: list[JSON], name: str, message: str, ts: float, kind: str = "Normal", *, times: int = 1
) -> None:
    """Count an event that may have happened before, wherever it is in the list, as ACI aggregates the
    events of a restarting container (`Started`, `Killing`, `BackOff` with `count` > 1)."""
    for event in reversed(events):
        if event["name"] == name and event["message"] == message and event["type"] == kind:
            event["count"] += times
            event["lastTimestamp"] = iso(ts)
            return
    add_event(events, name, message, ts, kind)
    events[-1]["count"] = times


def add_event(events: list[JSON], name: str, message: str, ts: float, kind: str = "Normal") -> None:
    """Append an ARM instance-view event, folding a repeat of the last one into its count as ACI does."""
    if events and events[-1]["name"] == name and events[-1]["message"] == message:
        events[-1]["count"] += 1
        events[-1]["lastTimestamp"] = iso(ts)
        return
    events.append(
        {
            "count": 1,
            "firstTimestamp": iso(ts),
            "lastTimestamp": iso(ts),
            "name": name,
            "message": message,
            "type": kind,
        }
    )


@dataclass
class ContainerRuntime:
    """What the instance view says about one container."""

    name: str
    restart_count: int = 0
    state: str = "Waiting"
    start_time: float | None = None
    finish_time: float | None = None
    exit_code: int | None = None
    detail: str = ""
    previous: JSON | None = None
    events: list[JSON] = field(default_factory=list)
    logs: str = ""  # what the control surface scripted (`set_logs`), when `scripted_logs`
    scripted_logs: bool = False
    # A job container's simulated run: when it began, when it was cut short (stop, a scripted exit), and
    # the opaque-program run time it started with. None for containers that run until stopped.
    run_start: float | None = None
    run_end: float | None = None
    run_time: float = 0.0
    wake_at: float | None = None  # in back-off: when it restarts
    queued: bool = False  # waits for the init containers (or, for an init container, its turn)

    def current_state(self) -> JSON:
        out: JSON = {"state": self.state}
        if self.start_time is not None:
            out["startTime"] = iso(self.start_time, millis=True)
        if self.exit_code is not None:
            out["exitCode"] = self.exit_code
        if self.finish_time is not None:
            out["finishTime"] = iso(self.finish_time, millis=True)
        out["detailStatus"] = self.detail
        return out

    def instance_view(self) -> JSON:
        view: JSON = {"restartCount": self.restart_count, "currentState": self.current_state()}
        if self.previous is not None:
            view["previousState"] = self.previous
        if self.events:
            # Azure leaves `events` out when a container has none.
            view["events"] = copy.deepcopy(self.events)
        return view

    def stopped_by_client(self, now: float) -> None:
        """A container stopped through the stop API: Terminated with a finish time and Azure's detail, no
        start time or exit code, and what it was doing before as `previousState`."""
        if self.state == "Running":
            self.previous = self.current_state()
            if self.run_start is not None and self.run_end is None:
                self.run_end = now
        self.wake_at = None
        self.queued = False
        self.state = "Terminated"
        self.start_time = None
        self.exit_code = None
        self.finish_time = now
        self.detail = STOPPED_DETAIL


@dataclass
class Transition:
    """A change in progress: done at `done_at`, then Succeeded, or Failed when `fails`."""

    kind: str  # create | update | start | restart | delete
    started: float
    done_at: float
    fails: bool = False
    op_id: str = ""


@dataclass
class GroupRecord:
    subscription: str
    resource_group: str
    name: str
    spec: JSON  # the stored body, defaults filled; holds secrets in memory only (never persisted)
    created: float
    provisioning_state: str = "Pending"
    group_state: str = "Pending"
    group_events: list[JSON] = field(default_factory=list)
    containers: dict[str, ContainerRuntime] = field(default_factory=dict)
    # A job's init containers, in spec order (other groups keep `init_ran` instead).
    init_containers: dict[str, ContainerRuntime] = field(default_factory=dict)
    transition: Transition | None = None
    # When the init containers last ran to completion (they run before the containers start).
    init_ran: tuple[float, float] | None = None
    starts: int = 0  # how many starts after a stop assigned a new public address
    # The spec without secrets, computed once per change: renders and snapshots share it, never mutate it.
    _public: JSON | None = field(default=None, repr=False, compare=False)
    # Simulated programs by (section, container, run time), computed from the spec once per change.
    _programs: dict[tuple[str, str, float], Program] | None = field(default=None, repr=False, compare=False)

    @property
    def public_spec(self) -> JSON:
        if self._public is None:
            self._public = strip_secrets(self.spec)
        return self._public

    def set_spec(self, spec: JSON) -> None:
        self.spec = spec
        self._public = None
        self._programs = None

    @property
    def is_job(self) -> bool:
        """Containers of `Never` and `OnFailure` groups run their program to completion; those of `Always`
        groups (the default) run until stopped, as servers do."""
        return self.restart_policy.lower() in JOB_POLICIES

    def program(self, section: str, name: str, run_time: float) -> Program:
        """The simulated program of container `name` of `section` (`containers` or `initContainers`)."""
        key = (section, name, run_time)
        if self._programs is None:
            self._programs = {}
        found = self._programs.get(key)
        if found is None:
            specs = (self.spec.get("properties") or {}).get(section) or []
            spec = next((c for c in specs if isinstance(c, dict) and c.get("name") == name), {})
            props = spec.get("properties") or {}
            command = props.get("command")
            env = {
                str(e.get("name")): str(e.get("value") or e.get("secureValue") or "")
                for e in props.get("environmentVariables") or []
                if isinstance(e, dict)
            }
            found = simulate(
                [str(a) for a in command] if isinstance(command, list) else None,
                image=str(props.get("image", "")),
                env=env,
                run_time=run_time,
            )
            self._programs[key] = found
        return found

    def log(self, container: str, now: float) -> list[LogLine] | None:
        """What container (or init container) `container` has printed by `now`, line by line; None when the
        group has no such container. Scripted logs win over the simulation."""
        section, runtime = "containers", self.containers.get(container)
        if runtime is None:
            section, runtime = "initContainers", self.init_containers.get(container)
        if runtime is None:
            return None
        if runtime.scripted_logs or runtime.run_start is None:
            at = runtime.start_time if runtime.start_time is not None else now
            return [LogLine(at, line) for line in runtime.logs.splitlines(keepends=True)]
        until = now if runtime.run_end is None else min(now, runtime.run_end)
        return self.program(section, runtime.name, runtime.run_time).lines(runtime.run_start, until)

    def set_tags(self, tags: dict[str, Any]) -> None:
        self.spec["tags"] = tags
        self._public = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.subscription.lower(), self.resource_group.lower(), self.name.lower())

    @property
    def location(self) -> str:
        return str(self.spec.get("location", ""))

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ContainerInstance/containerGroups/{self.name}"
        )

    @property
    def restart_policy(self) -> str:
        return str((self.spec.get("properties") or {}).get("restartPolicy", "Always"))

    def container_specs(self) -> list[JSON]:
        return [c for c in (self.spec.get("properties") or {}).get("containers") or [] if isinstance(c, dict)]

    @property
    def terminated(self) -> bool:
        return self.transition is None and self.group_state in TERMINATED_STATES

    def render(self, now: float, *, instance_view: bool = True) -> JSON:
        """The group as ARM returns it: secrets stripped, state and (optionally) the instance view.

        Nested values are shared with the cached public spec (copied only along the paths this adds
        to), so the result is for serialising; `json_copy` it before handing it to code that mutates.
        """
        body = self.public_spec
        props: JSON = dict(body.get("properties") or {})
        props["provisioningState"] = self.provisioning_state_at(now)
        ip = props.get("ipAddress")
        if isinstance(ip, dict) and "ip" in ip and self._ip_hidden():
            # Azure has no address for a group it has not placed yet, or whose stop released it.
            props["ipAddress"] = {k: v for k, v in ip.items() if k != "ip"}
        if instance_view:
            if self.init_containers and props.get("initContainers"):
                props["initContainers"] = [self._init_runtime_view(c) for c in props["initContainers"]]
            elif self.init_ran is not None and props.get("initContainers"):
                props["initContainers"] = [self._init_view(c) for c in props["initContainers"]]
            containers = []
            for container in props.get("containers") or []:
                runtime = self.containers.get(str(container.get("name")))
                if runtime is None or not runtime.events:
                    containers.append(container)
                    continue
                cprops = {**(container.get("properties") or {}), "instanceView": runtime.instance_view()}
                containers.append({**container, "properties": cprops})
            props["containers"] = containers
            props["instanceView"] = {"events": copy.deepcopy(self.group_events), "state": self.group_state}
        ordered: JSON = {"properties": _ordered_properties(props)}
        for name in ("identity", "zones"):
            if name in body:
                ordered[name] = body[name]
        ordered["id"] = self.resource_id
        ordered["name"] = self.name
        ordered["type"] = "Microsoft.ContainerInstance/containerGroups"
        ordered["location"] = self.location
        if "tags" in body:
            ordered["tags"] = body["tags"]
        return ordered

    def _ip_hidden(self) -> bool:
        t = self.transition
        return (t is not None and t.kind == "create") or (t is None and self.group_state == "Stopped")

    def _init_runtime_view(self, container: JSON) -> JSON:
        runtime = (
            self.init_containers.get(str(container.get("name"))) if isinstance(container, dict) else None
        )
        if runtime is None or (runtime.queued and runtime.restart_count == 0):
            return container  # it has not run yet
        # No `events` on an init container (recorded at 2022-10-01-preview), so none are kept.
        view = runtime.instance_view()
        return {**container, "properties": {**(container.get("properties") or {}), "instanceView": view}}

    def _init_view(self, container: JSON) -> JSON:
        if self.init_ran is None or not isinstance(container, dict):
            return container
        started, finished = self.init_ran
        view: JSON = {
            "restartCount": 0,
            "currentState": {
                "state": "Terminated",
                "startTime": iso(started, millis=True),
                "exitCode": 0,
                "finishTime": iso(finished, millis=True),
                "detailStatus": "Completed",
            },
        }
        return {**container, "properties": {**(container.get("properties") or {}), "instanceView": view}}

    def provisioning_state_at(self, now: float) -> str:
        t = self.transition
        if t is None:
            return self.provisioning_state
        if t.kind == "delete":
            return "Deleting"
        if t.kind == "restart":
            return "Updating"
        if t.kind == "create" and t.done_at > t.started and now >= t.started + (t.done_at - t.started) / 2:
            return "Creating"
        return "Pending"

    def events_for_operation(self) -> list[JSON]:
        events: list[JSON] = []
        for runtime in self.containers.values():
            events.extend(copy.deepcopy(runtime.events))
        return events


_PROPERTY_ORDER = ("sku", "provisioningState", "provisioningTimeoutInSeconds", "isCustomProvisioningTimeout")


def _ordered_properties(props: JSON) -> JSON:
    # Azure puts sku and provisioning state first; clients do not care, people reading a dump do.
    out: JSON = {k: props[k] for k in _PROPERTY_ORDER if k in props}
    out.update({k: v for k, v in props.items() if k not in out})
    return out


@dataclass
class Operation:
    """An ARM async operation, polled at `.../locations/<loc>/operations/<id>`."""

    id: str
    subscription: str
    location: str
    resource_id: str
    key: tuple[str, str, str]
    kind: str
    started: float
    done_at: float
    fails: bool = False

    def status_at(self, now: float) -> str:
        if now < self.done_at:
            # A create goes Pending -> Creating -> Succeeded, as the group's provisioning state does.
            # A restart reports Updating throughout (recorded .NET traffic, 2020-11-01).
            if self.kind == "restart":
                return "Updating"
            halfway = self.started + (self.done_at - self.started) / 2
            return "Creating" if self.kind == "create" and now >= halfway else "Pending"
        return "Failed" if self.fails else "Succeeded"


class Store:
    """All container groups and async operations, with the life-cycle rules of ACI."""

    def __init__(self, max_operations: int = 100_000, settings: JobSettings | None = None) -> None:
        # Read at each use, so that a knob changed at run time applies to the runs that start after it.
        self.settings: JobSettings = settings if settings is not None else DefaultJobSettings()
        self._records: dict[tuple[str, str, str], GroupRecord] = {}
        self._by_rg: dict[tuple[str, str], list[str]] = {}
        self._by_sub: dict[str, list[tuple[str, str]]] = {}
        self._operations: OrderedDict[str, Operation] = OrderedDict()
        self._max_operations = max_operations
        self.version = 0  # bumped on every change; the persister writes when it moves

    # -- indexes -----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._records)

    def _index(self, rec: GroupRecord) -> None:
        sub, rg, name = rec.key
        bisect.insort(self._by_rg.setdefault((sub, rg), []), name)
        bisect.insort(self._by_sub.setdefault(sub, []), (rg, name))

    def _unindex(self, rec: GroupRecord) -> None:
        sub, rg, name = rec.key
        names = self._by_rg.get((sub, rg), [])
        i = bisect.bisect_left(names, name)
        if i < len(names) and names[i] == name:
            del names[i]
        pairs = self._by_sub.get(sub, [])
        j = bisect.bisect_left(pairs, (rg, name))
        if j < len(pairs) and pairs[j] == (rg, name):
            del pairs[j]

    def insert(self, rec: GroupRecord) -> None:
        self._records[rec.key] = rec
        self._index(rec)
        self.version += 1

    def remove(self, rec: GroupRecord) -> None:
        if self._records.pop(rec.key, None) is not None:
            self._unindex(rec)
            self.version += 1

    def touch(self) -> None:
        self.version += 1

    # -- life cycle --------------------------------------------------------------------------------

    def advance(self, rec: GroupRecord, now: float) -> GroupRecord | None:
        """Finish `rec`'s transition if its time has come and run a job's programs up to `now`; None when
        that removed the group."""
        t = rec.transition
        if t is None or now < t.done_at:
            if t is None:
                self._run_jobs(rec, now)
            return rec
        rec.transition = None
        self.version += 1
        if t.kind == "delete":
            self.remove(rec)
            return None
        if t.fails:
            rec.provisioning_state = "Failed"
            rec.group_state = "Pending"
            self._pull_only(rec, t)
            add_event(
                rec.group_events,
                "FailedProvisioning",
                "The container group failed to provision (fault injected by the emulator).",
                t.done_at,
                "Warning",
            )
            return rec
        rec.provisioning_state = "Succeeded"
        self._run_containers(rec, t)
        rec.group_state = "Running"
        self._run_jobs(rec, now)
        return rec

    def _pull_only(self, rec: GroupRecord, t: Transition) -> None:
        # A failed deployment still pulled its images; the containers wait (Azure's Get_Failed example).
        for spec in rec.container_specs():
            name = str(spec.get("name"))
            image = str((spec.get("properties") or {}).get("image", ""))
            runtime = rec.containers.setdefault(name, ContainerRuntime(name=name))
            add_event(runtime.events, "Pulling", f'pulling image "{image}"', t.started)
            add_event(runtime.events, "Pulled", f'Successfully pulled image "{image}"', t.done_at)
            if runtime.state != "Running":
                runtime.state = "Waiting"
                runtime.start_time = t.done_at

    def _run_containers(self, rec: GroupRecord, t: Transition) -> None:
        init_specs = [
            c for c in (rec.spec.get("properties") or {}).get("initContainers") or [] if isinstance(c, dict)
        ]
        job = rec.is_job
        if job:
            # A job runs its init containers one after the other, each its own program, after provisioning;
            # every start runs them again.
            rec.init_ran = None
            rec.init_containers = {
                str(c.get("name")): ContainerRuntime(name=str(c.get("name")), queued=True) for c in init_specs
            }
            if rec.init_containers:
                self._start_run(rec, next(iter(rec.init_containers.values())), t.done_at, events=False)
        elif init_specs:
            rec.init_ran = (t.started, t.done_at)
        ip = (rec.spec.get("properties") or {}).get("ipAddress")
        if isinstance(ip, dict) and not ip.get("ip"):
            # A stopped group released its address; a start gets a new one.
            rec.starts += 1
            ip["ip"] = assigned_ip(f"{rec.key}#{rec.starts}", str(ip.get("type", "Public")))
            rec.set_spec(rec.spec)
        wanted = {str(c.get("name")): c for c in rec.container_specs()}
        for name in list(rec.containers):
            if name not in wanted:
                del rec.containers[name]
        for name, spec in wanted.items():
            image = str((spec.get("properties") or {}).get("image", ""))
            runtime = rec.containers.setdefault(name, ContainerRuntime(name=name))
            if runtime.state == "Running" and t.kind == "update":
                runtime.previous = {
                    **runtime.current_state(),
                    "state": "Terminated",
                    "exitCode": 0,
                    "finishTime": iso(t.started, millis=True),
                    "detailStatus": "Killed",
                }
                runtime.restart_count += 1
                add_event(runtime.events, "Killing", f"Killing container with id {name}.", t.started)
            elif runtime.state == "Running" and t.kind == "restart":
                # The restart API kills and starts the container again without counting a restart or keeping a
                # previous state (recorded PowerShell traffic: FINDINGS.md, section 5).
                add_event(runtime.events, "Killing", f"Killing container with id {name}.", t.started)
            elif t.kind == "start":
                runtime.restart_count = 0
                runtime.previous = None
            add_event(runtime.events, "Pulling", f'pulling image "{image}"', t.started)
            add_event(runtime.events, "Pulled", f'Successfully pulled image "{image}"', t.done_at)
            if job and rec.init_containers:
                # Pulled, but waiting for the init containers.
                runtime.state, runtime.start_time, runtime.detail = "Waiting", None, ""
                runtime.finish_time = runtime.exit_code = runtime.wake_at = runtime.run_start = None
                runtime.queued = True
                continue
            add_event(runtime.events, "Started", "Started container", t.done_at)
            runtime.state = "Running"
            runtime.start_time = t.done_at
            runtime.finish_time = None
            runtime.exit_code = None
            runtime.detail = ""
            if job:
                self._start_run(rec, runtime, t.done_at, events=False)

    # -- jobs: simulated programs ----------------------------------------------------------------------

    def _run_jobs(self, rec: GroupRecord, now: float) -> None:
        """Run a job group's programs up to `now`: init containers in order, then the containers, each
        exiting when its program ends and restarting (after a back-off) under `OnFailure` when it failed.
        Everything follows from the record and `now`, so reads at any times give the same answers."""
        if (
            not rec.is_job
            or rec.group_state not in ("Pending", "Running")
            or rec.provisioning_state != "Succeeded"
        ):
            return
        before = self._job_fingerprint(rec)
        policy = rec.restart_policy.lower()
        inits = list(rec.init_containers.values())
        init_failed, inits_done = False, True
        for i, runtime in enumerate(inits):
            self._step(rec, "initContainers", runtime, policy, now, events=False)
            if runtime.state == "Terminated" and runtime.exit_code == 0 and runtime.finish_time is not None:
                if i + 1 < len(inits) and inits[i + 1].queued:
                    self._start_run(rec, inits[i + 1], runtime.finish_time, events=False)
                continue
            inits_done = False
            init_failed = runtime.state == "Terminated" and bool(runtime.exit_code)
            break
        if inits_done:
            ready = inits[-1].finish_time if inits else None
            for runtime in rec.containers.values():
                if runtime.queued and ready is not None:
                    self._start_run(rec, runtime, ready, events=True)
                self._step(rec, "containers", runtime, policy, now, events=True)
        runtimes = list(rec.containers.values())
        if init_failed:
            rec.group_state = "Failed"
        elif runtimes and all(r.state == "Terminated" for r in runtimes):
            rec.group_state = "Succeeded" if all(r.exit_code == 0 for r in runtimes) else "Failed"
        else:
            rec.group_state = "Running" if inits_done else "Pending"
        if self._job_fingerprint(rec) != before:
            self.version += 1

    @staticmethod
    def _job_fingerprint(rec: GroupRecord) -> tuple[object, ...]:
        return (
            rec.group_state,
            tuple((r.state, r.restart_count, r.run_start) for r in rec.containers.values()),
            tuple((r.state, r.restart_count, r.run_start) for r in rec.init_containers.values()),
        )

    def _step(
        self,
        rec: GroupRecord,
        section: str,
        runtime: ContainerRuntime,
        policy: str,
        now: float,
        *,
        events: bool,
    ) -> None:
        """Move one container along its runs up to `now`."""
        while True:
            if runtime.state == "Running" and runtime.run_start is not None and runtime.run_end is None:
                program = rec.program(section, runtime.name, runtime.run_time)
                end = runtime.run_start + program.duration
                if end > now:
                    return
                self._exit_run(runtime, program.exit_code, end, policy, events=events)
            elif runtime.state == "Waiting" and runtime.wake_at is not None and runtime.wake_at <= now:
                self._skip_cycles(rec, section, runtime, now, events=events)
                runtime.restart_count += 1
                self._start_run(
                    rec, runtime, runtime.wake_at, events=events, image=self._image(rec, section, runtime)
                )
            else:
                return

    def _skip_cycles(
        self, rec: GroupRecord, section: str, runtime: ContainerRuntime, now: float, *, events: bool
    ) -> None:
        """Jump over whole fail-and-wait cycles once the back-off is at its cap, so a failing container read
        long after it started costs a few steps, not one per restart."""
        base = self.settings.restart_backoff
        cap = backoff(base, 10**6)
        wake = runtime.wake_at
        # The run that starts at `wake` is restart `restart_count + 1`; when it fails, the next one waits
        # the back-off of restart `restart_count + 2`.
        if wake is None or backoff(base, runtime.restart_count + 2) < cap:
            return
        program = rec.program(section, runtime.name, self.settings.job_run_time)
        period = program.duration + cap
        if program.exit_code == 0 or not math.isfinite(period):
            return
        skip = int((now - wake) // period) - 1
        if skip <= 0:
            return
        runtime.restart_count += skip
        runtime.wake_at = wake + skip * period
        if events:
            last_start = wake + (skip - 1) * period
            ended = last_start + program.duration
            image = self._image(rec, section, runtime)
            bump_event(runtime.events, "Pulling", f'pulling image "{image}"', last_start, times=skip)
            bump_event(
                runtime.events, "Pulled", f'Successfully pulled image "{image}"', last_start, times=skip
            )
            bump_event(runtime.events, "Started", "Started container", last_start, times=skip)
            bump_event(
                runtime.events, "Killing", f"Killing container with id {runtime.name}.", ended, times=skip
            )
            bump_event(
                runtime.events,
                "BackOff",
                "Back-off restarting failed container",
                ended,
                "Warning",
                times=skip,
            )

    @staticmethod
    def _image(rec: GroupRecord, section: str, runtime: ContainerRuntime) -> str:
        specs = (rec.spec.get("properties") or {}).get(section) or []
        spec = next((c for c in specs if isinstance(c, dict) and c.get("name") == runtime.name), {})
        return str((spec.get("properties") or {}).get("image", ""))

    def _start_run(
        self,
        rec: GroupRecord,
        runtime: ContainerRuntime,
        at: float,
        *,
        events: bool,
        image: str | None = None,
    ) -> None:
        """Start (or restart) a job container's program from scratch at `at`: a fresh log. A restart
        (`image` given) pulls the image again, as recorded."""
        if events and image is not None:
            bump_event(runtime.events, "Pulling", f'pulling image "{image}"', at)
            bump_event(runtime.events, "Pulled", f'Successfully pulled image "{image}"', at)
        if events:
            bump_event(runtime.events, "Started", "Started container", at)
        runtime.state, runtime.detail = "Running", ""
        runtime.start_time = runtime.run_start = at
        runtime.run_end = runtime.finish_time = runtime.exit_code = runtime.wake_at = None
        runtime.run_time = self.settings.job_run_time
        runtime.queued = False

    def _exit_run(
        self, runtime: ContainerRuntime, exit_code: int, at: float, policy: str, *, events: bool
    ) -> None:
        """A job container's program ended at `at` with `exit_code`: Terminated; under `OnFailure` a failure
        is restarted, at once the first time and then after a back-off (Waiting, `CrashLoopBackOff`), with
        the failed run as `previousState`, as ACI shows."""
        if events:
            # ACI reports the end of a job's container as a `Killing` event at its finish time (recorded
            # azure-cli traffic, 2023-05-01: test_container_attach).
            bump_event(runtime.events, "Killing", f"Killing container with id {runtime.name}.", at)
        runtime.state = "Terminated"
        runtime.exit_code = exit_code
        runtime.finish_time = at
        runtime.detail = "Completed" if exit_code == 0 else "Error"
        runtime.wake_at = None
        runtime.queued = False
        if policy != "onfailure" or exit_code == 0:
            return
        runtime.previous = runtime.current_state()
        wait = backoff(self.settings.restart_backoff, runtime.restart_count + 1)
        runtime.state = "Waiting"
        runtime.detail = f"CrashLoopBackOff: Back-off {go_duration(wait)} restarting failed" if wait else ""
        runtime.start_time = runtime.exit_code = runtime.finish_time = None
        runtime.wake_at = at + wait
        if events and wait:
            bump_event(runtime.events, "BackOff", "Back-off restarting failed container", at, "Warning")

    def begin(
        self, rec: GroupRecord, kind: str, now: float, delay: float, *, fails: bool = False
    ) -> Operation:
        """Start a transition of `rec` and the async operation that reports on it."""
        op = Operation(
            id=str(uuid.uuid4()),
            subscription=rec.subscription,
            location=rec.location,
            resource_id=rec.resource_id,
            key=rec.key,
            kind=kind,
            started=now,
            done_at=now + max(0.0, delay),
            fails=fails,
        )
        rec.transition = Transition(kind, now, op.done_at, fails, op.id)
        if kind in ("create",):
            rec.provisioning_state = "Pending"
            rec.group_state = "Pending"
        self._operations[op.id] = op
        while len(self._operations) > self._max_operations:
            self._operations.popitem(last=False)
        self.version += 1
        return op

    def stop(self, rec: GroupRecord, now: float) -> None:
        """Stop the group's containers and release its address; a restart or start under way is cut short
        (Azure accepts a stop right after a restart)."""
        if rec.transition is not None and rec.transition.kind != "delete":
            # A stop that cuts a restart short leaves the group `Failed` while Stopped (recorded PowerShell
            # traffic, 2021-09-01: tests/emulator/evidence/FINDINGS.md, section 7); its operation fails too.
            cut = rec.transition
            rec.transition = None
            op = self._operations.get(cut.op_id)
            if op is not None:
                op.done_at = min(op.done_at, now)
                op.fails = True
            rec.provisioning_state = "Failed"
        for runtime in rec.containers.values():
            if runtime.state == "Running":
                add_event(runtime.events, "Killing", f"Killing container with id {runtime.name}.", now)
            runtime.stopped_by_client(now)
        for runtime in rec.init_containers.values():
            if runtime.state == "Running" or runtime.wake_at is not None:
                runtime.stopped_by_client(now)
        ip = (rec.spec.get("properties") or {}).get("ipAddress")
        if isinstance(ip, dict) and ip.pop("ip", None) is not None:
            rec.set_spec(rec.spec)
        rec.group_state = "Stopped"
        self.version += 1

    def terminate(self, rec: GroupRecord, exit_code: int, now: float, container: str | None) -> str:
        """Make containers exit with `exit_code`, following the group's restart policy.

        `Never` leaves them Terminated; `OnFailure` restarts them unless the exit code is 0; `Always`
        restarts them. Returns the group's instance-view state afterwards. In a job group the scripted exit
        wins over the simulated program: it cuts the run short, as the program's own exit would have ended
        it (so `OnFailure` waits out the back-off before the program runs again).
        """
        policy = rec.restart_policy.lower()
        if rec.is_job:
            for runtime in rec.containers.values():
                if container is not None and runtime.name != container:
                    continue
                if runtime.state == "Running" and runtime.run_start is not None and runtime.run_end is None:
                    runtime.run_end = now
                self._exit_run(runtime, exit_code, now, policy, events=True)
            self._run_jobs(rec, now)
            self.version += 1
            return rec.group_state
        for runtime in rec.containers.values():
            if container is not None and runtime.name != container:
                continue
            restart = policy == "always" or (policy == "onfailure" and exit_code != 0)
            if restart:
                runtime.previous = {
                    **runtime.current_state(),
                    "state": "Terminated",
                    "exitCode": exit_code,
                    "finishTime": iso(now, millis=True),
                    "detailStatus": "Completed" if exit_code == 0 else "Error",
                }
                runtime.restart_count += 1
                add_event(runtime.events, "Started", "Started container", now)
                runtime.state = "Running"
                runtime.start_time = now
            else:
                runtime.state = "Terminated"
                runtime.exit_code = exit_code
                runtime.finish_time = now
                runtime.detail = "Completed" if exit_code == 0 else "Error"
        states = list(rec.containers.values())
        if states and all(r.state == "Terminated" for r in states):
            rec.group_state = "Succeeded" if all(r.exit_code == 0 for r in states) else "Failed"
        self.version += 1
        return rec.group_state

    # -- reads -------------------------------------------------------------------------------------

    def get(self, subscription: str, resource_group: str, name: str, now: float) -> GroupRecord | None:
        rec = self._records.get((subscription.lower(), resource_group.lower(), name.lower()))
        return None if rec is None else self.advance(rec, now)

    def find(self, resource_group: str, name: str, now: float) -> GroupRecord | None:
        """A group by resource group and name in any subscription (for the control API)."""
        rg, nm = resource_group.lower(), name.lower()
        for sub, pairs in self._by_sub.items():
            i = bisect.bisect_left(pairs, (rg, nm))
            if i < len(pairs) and pairs[i] == (rg, nm):
                return self.get(sub, rg, nm, now)
        return None

    def operation(self, op_id: str, now: float) -> Operation | None:
        op = self._operations.get(op_id)
        if op is not None and now >= op.done_at:
            rec = self._records.get(op.key)
            if rec is not None and rec.transition is not None and rec.transition.op_id == op.id:
                self.advance(rec, now)
        return op

    def page_resource_group(
        self, subscription: str, resource_group: str, after: str | None, size: int, now: float
    ) -> tuple[list[GroupRecord], str | None]:
        sub, rg = subscription.lower(), resource_group.lower()
        names = self._by_rg.get((sub, rg), [])
        out: list[GroupRecord] = []
        i = bisect.bisect_right(names, after) if after is not None else 0
        while len(out) < size and i < len(names):
            name = names[i]
            rec = self.advance(self._records[(sub, rg, name)], now)
            if rec is None:
                continue  # the delete finished and removed names[i]; the next name moved into place
            out.append(rec)
            i += 1
        more = i < len(names)
        return out, (out[-1].name.lower() if more and out else None)

    def page_subscription(
        self, subscription: str, after: tuple[str, str] | None, size: int, now: float
    ) -> tuple[list[GroupRecord], tuple[str, str] | None]:
        sub = subscription.lower()
        pairs = self._by_sub.get(sub, [])
        out: list[GroupRecord] = []
        i = bisect.bisect_right(pairs, after) if after is not None else 0
        while len(out) < size and i < len(pairs):
            rg, name = pairs[i]
            rec = self.advance(self._records[(sub, rg, name)], now)
            if rec is None:
                continue
            out.append(rec)
            i += 1
        more = i < len(pairs)
        return out, ((out[-1].key[1], out[-1].key[2]) if more and out else None)

    def records(self) -> Iterator[GroupRecord]:
        return iter(list(self._records.values()))

    # -- persistence -------------------------------------------------------------------------------

    def to_json(self) -> JSON:
        groups = []
        for rec in self._records.values():
            data = {f.name: getattr(rec, f.name) for f in fields(GroupRecord) if not f.name.startswith("_")}
            data["spec"] = rec.public_spec  # the state file never holds a secret
            data["containers"] = {name: asdict(c) for name, c in rec.containers.items()}
            data["init_containers"] = {name: asdict(c) for name, c in rec.init_containers.items()}
            data["transition"] = asdict(rec.transition) if rec.transition is not None else None
            groups.append(data)
        return {"version": STATE_VERSION, "groups": groups}

    def load_json(self, data: JSON) -> None:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported state version {data.get('version')!r} (expected {STATE_VERSION})")
        for raw in data.get("groups", []):
            item: dict[str, Any] = dict(raw)
            containers = {
                name: ContainerRuntime(**runtime) for name, runtime in (item.pop("containers") or {}).items()
            }
            inits = {
                name: ContainerRuntime(**runtime)
                for name, runtime in (item.pop("init_containers", None) or {}).items()
            }
            transition = item.pop("transition", None)
            init_ran = item.pop("init_ran", None)
            rec = GroupRecord(**item, containers=containers, init_containers=inits)
            rec.init_ran = (float(init_ran[0]), float(init_ran[1])) if init_ran else None
            rec.transition = Transition(**transition) if transition else None
            self.insert(rec)

    def snapshot(self) -> str:
        """The state as JSON text; taken on the event loop, so no request can change it half-way."""
        return json.dumps(self.to_json(), separators=(",", ":"))

    def save(self, path: Path) -> None:
        write_atomic(path, self.snapshot())

    def load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(
                f"{path}: not a valid emulator state file (line {exc.lineno}, column {exc.colno}: "
                f"{exc.msg}); move it away or pass another --state file"
            ) from exc
        try:
            self.load_json(data)
        except (TypeError, KeyError, AttributeError, ValueError) as exc:
            raise ValueError(
                f"{path}: not an emulator state file this version can read ({exc}); move it away or pass "
                "another --state file"
            ) from exc


class StateSaveError(Exception):
    """The state file could not be written (a full disk, a read-only directory); the old file is intact."""

    def __init__(self, message: str, errno: int | None) -> None:
        super().__init__(message)
        self.errno = errno


def write_atomic(path: Path, payload: str) -> None:
    """Write `payload` atomically (temp file, fsync, rename), readable by the owner only.

    On any failure (ENOSPC while writing or syncing, say) the temp file is removed, `path` keeps its
    previous content, and a `StateSaveError` says so.
    """
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise StateSaveError(
            f"cannot save the emulator state to {path} ({exc.strerror or exc}); the previous state is kept, "
            "without the changes since it was written",
            exc.errno,
        ) from exc
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
