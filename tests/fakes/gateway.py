"""`FakeGateway`: an in-memory Azure implementing `reconciler.cloud.gateway.Gateway`, for any test.

Used by the executor tests here and by engine and daemon tests elsewhere. What it offers:

- State: `groups`, keyed by `(resource_group.lower(), name.lower())`, holds `ObservedGroup`s the way a GET
  would return them: a PUT stores the body with secrets stripped (`secureValue`, registry `password`,
  storage keys, secret volumes, workspace keys), `provisioningState: Succeeded` and an instance view whose
  state is `instance_state` (default `Running`). Seed it with `add(...)`.
- A call log: `calls` lists every call as a `Call(op, resource_group, name, body)` (ops `list`,
  `list_subscription` (resource group `*`), `get`, `put`, `patch`, `delete`, `logs`, `start`, `stop`);
  `body` is the PUT body as sent (secrets included: assert on it, never print it) or the PATCH tags.
  `count(op, ...)` and `ops(...)` summarise it.
- Scripted faults: `fail(op, error, rg=..., name=..., times=1, after=False)` makes the next `times` matching
  calls raise `error` (a `GatewayError`, or any exception); `after=True` raises after the call took effect
  (a PUT applied whose response was lost). Faults are consumed in the order they were scripted.
- Holding calls: `hold(op, rg=..., name=...)` returns an `asyncio.Event`; matching calls wait on it (after
  being logged and counted in flight) until the test sets it. `in_flight`/`max_in_flight` count concurrent
  calls, so concurrency bounds can be asserted without a clock. `entered` is set each time a call starts
  waiting on a hold, so a test can wait for "the call is in progress" without sleeping. Nothing in the
  fake waits on time.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from reconciler.cloud.errors import NotFoundError
from reconciler.model.observed import ObservedGroup

# Keys ACI never returns on GET (DESIGN.md section 5); stripped from stored bodies like Azure does.
SECRET_KEYS = frozenset({"secureValue", "password", "storageAccountKey", "workspaceKey", "secret"})


def strip_secrets(value: Any) -> Any:
    """A copy of an ARM body without the fields a GET never returns."""
    if isinstance(value, dict):
        return {k: strip_secrets(v) for k, v in value.items() if k not in SECRET_KEYS}
    if isinstance(value, list):
        return [strip_secrets(v) for v in value]
    return value


def _without_instance_view(group: ObservedGroup) -> ObservedGroup:
    props = {k: v for k, v in (group.body.get("properties") or {}).items() if k != "instanceView"}
    return group.model_copy(update={"instance_state": None, "body": {**group.body, "properties": props}})


@dataclass(frozen=True)
class Call:
    op: str
    resource_group: str
    name: str | None = None
    body: Any = None


@dataclass
class Fault:
    op: str
    error: BaseException
    resource_group: str | None = None
    name: str | None = None
    times: int = 1  # how many matching calls still fail; -1: every one
    after: bool = False

    def matches(self, op: str, resource_group: str, name: str | None) -> bool:
        if self.times == 0 or op != self.op:
            return False
        if self.resource_group is not None and self.resource_group.lower() != resource_group.lower():
            return False
        return self.name is None or (name is not None and self.name.lower() == name.lower())


@dataclass
class _Hold:
    op: str
    resource_group: str | None
    name: str | None
    release: asyncio.Event

    def matches(self, op: str, resource_group: str, name: str | None) -> bool:
        if op != self.op:
            return False
        if self.resource_group is not None and self.resource_group.lower() != resource_group.lower():
            return False
        return self.name is None or (name is not None and self.name.lower() == name.lower())


@dataclass
class FakeGateway:
    groups: dict[tuple[str, str], ObservedGroup] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    instance_state: str = "Running"
    in_flight: int = 0
    max_in_flight: int = 0
    closed: bool = False
    logs_by_container: dict[tuple[str, str, str], str] = field(default_factory=dict)
    _holds: list[_Hold] = field(default_factory=list)
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    # Groups someone else creates at a name while our delete of it finishes: `delete` returns them.
    recreated_by_other: dict[tuple[str, str], ObservedGroup] = field(default_factory=dict)

    # --- scripting -------------------------------------------------------------------------------

    def add(
        self,
        resource_group: str,
        name: str,
        *,
        body: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        instance_state: str | None = None,
        provisioning_state: str = "Succeeded",
    ) -> ObservedGroup:
        """Seed a live group (as if someone created it earlier)."""
        data = copy.deepcopy(body) if body is not None else {"location": "westeurope", "properties": {}}
        if tags is not None:
            data["tags"] = dict(tags)
        group = self._observed(resource_group, name, data, provisioning_state, instance_state)
        self.groups[(resource_group.lower(), name.lower())] = group
        return group

    def fail(
        self,
        op: str,
        error: BaseException,
        *,
        rg: str | None = None,
        name: str | None = None,
        times: int = 1,
        after: bool = False,
    ) -> Fault:
        """Make the next `times` calls of `op` (on `rg`/`name` when given) raise `error`."""
        fault = Fault(op, error, rg, name, times, after)
        self.faults.append(fault)
        return fault

    def hold(self, op: str, *, rg: str | None = None, name: str | None = None) -> asyncio.Event:
        """Block matching calls until the returned event is set."""
        release = asyncio.Event()
        self._holds.append(_Hold(op, rg, name, release))
        return release

    # --- inspection ------------------------------------------------------------------------------

    def ops(self, *, rg: str | None = None, name: str | None = None) -> list[str]:
        return [
            c.op
            for c in self.calls
            if (rg is None or c.resource_group.lower() == rg.lower())
            and (name is None or (c.name or "").lower() == name.lower())
        ]

    def count(self, op: str, *, rg: str | None = None, name: str | None = None) -> int:
        return self.ops(rg=rg, name=name).count(op)

    def writes(self) -> list[Call]:
        return [c for c in self.calls if c.op in ("put", "patch", "delete")]

    def exists(self, resource_group: str, name: str) -> bool:
        return (resource_group.lower(), name.lower()) in self.groups

    # --- the protocol ----------------------------------------------------------------------------

    async def list_groups(self, resource_group: str, *, cursor: Any = None) -> list[ObservedGroup]:
        async with self._call("list", resource_group, None, None):
            # As on Azure, a list carries no instance view: only a GET tells whether a job has finished.
            return [
                _without_instance_view(g)
                for (rg, _), g in sorted(self.groups.items())
                if rg == resource_group.lower()
            ]

    async def list_subscription_groups(self, *, cursor: Any = None) -> list[ObservedGroup]:
        # Logged with resource group "*": one call covers all of them.
        async with self._call("list_subscription", "*", None, None):
            return [_without_instance_view(g) for _, g in sorted(self.groups.items())]

    async def get_group(self, resource_group: str, name: str) -> ObservedGroup | None:
        async with self._call("get", resource_group, name, None):
            return self.groups.get((resource_group.lower(), name.lower()))

    async def create_or_update(
        self,
        resource_group: str,
        name: str,
        body: dict[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the Gateway contract; the fake never waits on time
    ) -> ObservedGroup:
        del timeout
        async with self._call("put", resource_group, name, copy.deepcopy(body)) as effect:
            existing = self.groups.get((resource_group.lower(), name.lower()))
            group = self._observed(
                resource_group, existing.name if existing else name, strip_secrets(copy.deepcopy(body))
            )
            self.groups[(resource_group.lower(), name.lower())] = group
            effect.done = True
            return group

    async def patch_tags(self, resource_group: str, name: str, tags: dict[str, str]) -> ObservedGroup:
        async with self._call("patch", resource_group, name, dict(tags)) as effect:
            key = (resource_group.lower(), name.lower())
            existing = self.groups.get(key)
            if existing is None:
                raise NotFoundError(f"PATCH {resource_group}/{name}: not found", status=404)
            body = dict(existing.body)
            body["tags"] = dict(tags)
            group = existing.model_copy(update={"tags": dict(tags), "body": body})
            self.groups[key] = group
            effect.done = True
            return group

    async def delete(
        self,
        resource_group: str,
        name: str,
        *,
        timeout: float,  # noqa: ASYNC109 - the Gateway contract; the fake never waits on time
    ) -> ObservedGroup | None:
        del timeout
        async with self._call("delete", resource_group, name, None) as effect:
            key = (resource_group.lower(), name.lower())
            self.groups.pop(key, None)
            effect.done = True
            other = self.recreated_by_other.pop(key, None)
            if other is not None:
                self.groups[key] = other
            return other

    async def logs(
        self,
        resource_group: str,
        name: str,
        container: str,
        *,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> str:
        del timestamps  # the fake's logs carry no times
        async with self._call("logs", resource_group, name, None):
            if not self.exists(resource_group, name):
                raise NotFoundError(f"logs {resource_group}/{name}: not found", status=404)
            text = self.logs_by_container.get((resource_group.lower(), name.lower(), container), "")
            if tail is not None:
                text = "\n".join(text.splitlines()[-tail:])
            return text

    async def start(
        self,
        resource_group: str,
        name: str,
        *,
        timeout: float,  # noqa: ASYNC109 - the Gateway contract; the fake never waits on time
    ) -> None:
        del timeout
        async with self._call("start", resource_group, name, None) as effect:
            key = (resource_group.lower(), name.lower())
            existing = self.groups.get(key)
            if existing is None:
                raise NotFoundError(f"start {resource_group}/{name}: not found", status=404)
            self.groups[key] = self._observed(resource_group, name, existing.body, instance_state="Running")
            effect.done = True

    async def stop(self, resource_group: str, name: str) -> None:
        async with self._call("stop", resource_group, name, None) as effect:
            key = (resource_group.lower(), name.lower())
            existing = self.groups.get(key)
            if existing is None:
                raise NotFoundError(f"stop {resource_group}/{name}: not found", status=404)
            self.groups[key] = self._observed(resource_group, name, existing.body, instance_state="Stopped")
            effect.done = True

    async def close(self) -> None:
        self.closed = True

    # --- machinery -------------------------------------------------------------------------------

    def _observed(
        self,
        resource_group: str,
        name: str,
        data: dict[str, Any],
        provisioning_state: str = "Succeeded",
        instance_state: str | None = None,
    ) -> ObservedGroup:
        data = dict(data)
        props = dict(data.get("properties") or {})
        props["provisioningState"] = provisioning_state
        state = instance_state or self.instance_state
        props["instanceView"] = {"state": state, "events": []}
        data["properties"] = props
        data["name"] = name
        data.setdefault(
            "id",
            f"/subscriptions/fake/resourceGroups/{resource_group}/providers/"
            f"Microsoft.ContainerInstance/containerGroups/{name}",
        )
        return ObservedGroup(
            resource_group=resource_group,
            name=name,
            id=data["id"],
            location=str(data.get("location", "")),
            tags=dict(data.get("tags") or {}),
            body=data,
            provisioning_state=provisioning_state,
            instance_state=state,
        )

    def _call(self, op: str, resource_group: str, name: str | None, body: Any) -> _CallContext:
        self.calls.append(Call(op, resource_group, name, body))
        return _CallContext(self, op, resource_group, name)


class _Effect:
    done = False


class _CallContext:
    """Counts the call in flight, honours holds, raises scripted faults before or after the effect."""

    def __init__(self, fake: FakeGateway, op: str, resource_group: str, name: str | None) -> None:
        self.fake = fake
        self.op = op
        self.rg = resource_group
        self.name = name
        self.effect = _Effect()
        self.fault: Fault | None = None

    async def __aenter__(self) -> _Effect:
        fake = self.fake
        fake.in_flight += 1
        fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            for hold in [h for h in fake._holds if h.matches(self.op, self.rg, self.name)]:
                fake.entered.set()
                await hold.release.wait()
            for fault in fake.faults:
                if fault.matches(self.op, self.rg, self.name):
                    if fault.times > 0:
                        fault.times -= 1
                    if not fault.after:
                        raise fault.error
                    self.fault = fault
                    break
        except BaseException:
            fake.in_flight -= 1
            raise
        return self.effect

    async def __aexit__(self, exc_type: type[BaseException] | None, *args: Any) -> None:
        self.fake.in_flight -= 1
        if exc_type is None and self.fault is not None:
            raise self.fault.error


def seed(fake: FakeGateway, groups: Iterable[tuple[str, str]]) -> None:
    """Add plain running groups `(resource_group, name)`."""
    for rg, name in groups:
        fake.add(rg, name)
