"""Test doubles for the daemon: a fake clock, scripted file events, a scripted engine, plan builders."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Sequence
from typing import Any

from reconciler.daemon.worker import ApplyView, OnEvent, PlanView
from reconciler.model.outcome import ApplyResult, GroupOutcome, Result
from reconciler.model.plan import Action, Change, Plan, PlanIssue

START = 1_700_000_000.0


async def settle(rounds: int = 40) -> None:
    """Let every ready task run until the loop is quiet (no real time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class FakeClock:
    """Wall clock, monotonic clock and sleep that only move when the test advances them."""

    def __init__(self, start: float = START) -> None:
        self.start = start
        self.now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now - self.start

    async def sleep(self, delay: float) -> None:
        self.slept.append(delay)
        if delay <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + delay, next(self._seq), future))
        await future

    @property
    def sleeping(self) -> int:
        return sum(1 for _, _, f in self._sleepers if not f.done())

    async def advance(self, seconds: float) -> None:
        target = self.now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, future = heapq.heappop(self._sleepers)
            if future.done():
                continue
            self.now = max(self.now, deadline)
            future.set_result(None)
            await settle()
        self.now = target
        await settle()


class ScriptedFiles:
    """An async iterator of file-event batches that the test pushes, as watchfiles.awatch yields them."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[set[tuple[object, str]] | None] = asyncio.Queue()

    def push(self, *paths: str) -> None:
        self._queue.put_nowait({("modified", p) for p in paths})

    def end(self) -> None:
        self._queue.put_nowait(None)

    def __aiter__(self) -> ScriptedFiles:
        return self

    async def __anext__(self) -> set[tuple[object, str]]:
        item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        return item


def change(
    name: str,
    action: Action = Action.UPDATE,
    *,
    rg: str = "rg",
    spec: str = "s1",
    held: str | None = None,
    paths: Sequence[str] = ("/properties/containers/web/properties/image",),
) -> Change:
    return Change(
        resource_group=rg,
        name=name,
        action=action,
        changed_paths=tuple(paths) if action not in (Action.NOOP, Action.DELETE) else (),
        held=held,
        write_tags={
            "managed-by": "aci-reconciler",
            "aci-reconciler.spec": spec,
            "aci-reconciler.revision": "x",
        },
    )


def plan(revision: str, *changes: Change, issues: Sequence[PlanIssue] = ()) -> Plan:
    return Plan(revision=revision, instance="default", changes=tuple(changes), issues=tuple(issues))


Outcome = Callable[[Change], GroupOutcome]


def succeed(c: Change) -> GroupOutcome:
    return GroupOutcome(
        resource_group=c.resource_group, name=c.name, action=c.action, result=Result.SUCCEEDED, duration_s=0.5
    )


def fail(*, retryable: bool, message: str = "boom") -> Outcome:
    def outcome(c: Change) -> GroupOutcome:
        return GroupOutcome(
            resource_group=c.resource_group,
            name=c.name,
            action=c.action,
            result=Result.FAILED,
            retryable=retryable,
            message=message,
        )

    return outcome


class FakeEngine:
    """Plans what the test scripted; applies by the per-group outcome functions; can block inside apply."""

    def __init__(self, view: PlanView | None = None) -> None:
        self.view = view or PlanView(plan=plan("r1"))
        self.outcomes: dict[str, Outcome] = {}
        self.applied: list[list[str]] = []
        self.plan_calls = 0
        self.focus_asked: list[frozenset[str] | None] = []
        self.gate: asyncio.Event | None = None
        self.in_apply = asyncio.Event()
        # Blocks inside plan (a long plan of a large fleet).
        self.plan_gate: asyncio.Event | None = None
        self.in_plan = asyncio.Event()
        self.plan_error: Exception | None = None
        self.unconverged: frozenset[tuple[str, str]] = frozenset()
        self.drained = False

    def drain(self) -> None:
        self.drained = True

    def set_plan(self, p: Plan, **kwargs: Any) -> None:
        self.view = PlanView(plan=p, **kwargs)

    async def plan(self, focus: frozenset[str] | None = None) -> PlanView:
        self.plan_calls += 1
        self.focus_asked.append(focus)
        if self.plan_error is not None:
            raise self.plan_error
        if self.plan_gate is not None:
            self.in_plan.set()
            await self.plan_gate.wait()
        return self.view

    async def apply(self, planned: PlanView, changes: Sequence[Change], on_event: OnEvent) -> ApplyView:
        self.applied.append([c.name for c in changes])
        self.in_apply.set()
        if self.gate is not None:
            await self.gate.wait()
        outcomes = tuple(self.outcomes.get(c.name, succeed)(c) for c in changes)
        self.in_apply.clear()
        return ApplyView(
            result=ApplyResult(revision=planned.plan.revision, outcomes=outcomes),
            unconverged=self.unconverged,
        )
