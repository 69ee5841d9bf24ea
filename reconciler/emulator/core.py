"""The emulator's state and its in-process API, without any HTTP.

`EmulatorCore` holds the store of container groups, the fault injector, the counters and request log, the
clock and the rate-limit buckets. The ARM routes (`arm/`) and the control surface (`control.py`) act on it;
`server.py` wraps it in the HTTPS server (`Emulator` is an `EmulatorCore` that can start and stop). Tests
call its methods directly (`emu.terminate`, `emu.get_group`, ...). It imports neither the routes nor the
control surface.
"""

from __future__ import annotations

import asyncio
import collections
import secrets
import time
from collections.abc import Callable, Iterator, Mapping

from reconciler.emulator.config import EmulatorConfig, RequestLogEntry
from reconciler.emulator.limits import FaultInjector, TokenBucket, WindowQuota
from reconciler.emulator.resource import JSON, json_copy
from reconciler.emulator.routing import match_route
from reconciler.emulator.store import GroupRecord, Store


class GroupsView(Mapping[str, JSON]):
    """Read-only view of the groups by resource id (case-insensitive), rendered as a GET would."""

    def __init__(self, core: EmulatorCore) -> None:
        self._core = core

    def __getitem__(self, resource_id: str) -> JSON:
        route = match_route(resource_id)
        if route is None or route.name != "containerGroup":
            raise KeyError(resource_id)
        now = self._core.now()
        rec = self._core.store.get(route.subscription, route.resource_group, route.group, now)
        if rec is None:
            raise KeyError(resource_id)
        return json_copy(rec.render(now))

    def __iter__(self) -> Iterator[str]:
        return (rec.resource_id for rec in self._core.store.records())

    def __len__(self) -> int:
        return len(self._core.store)


class EmulatorCore:
    """The groups, faults, counters, limits and clock, and the run-time control API for tests."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.store = Store(settings=self.config)
        self.faults = FaultInjector()
        # ARM tags of resource groups (the Tags API), by (subscription, resource group) in lower case.
        self.resource_group_tags: dict[tuple[str, str], dict[str, str]] = {}
        self.faults.set(self.config.faults)
        self.counters: collections.Counter[str] = collections.Counter()
        self.request_log: collections.deque[RequestLogEntry] = collections.deque(
            maxlen=self.config.request_log_size
        )
        self.identity_header = self.config.identity_header or secrets.token_urlsafe(24)
        self.buckets: dict[tuple[str, str], TokenBucket] = {}
        self.quotas: dict[tuple[str, str], WindowQuota] = {}
        # Set whenever the store may have changed, so that the server writes the state file.
        self.changed = asyncio.Event()
        self._clock = self.config.clock or time.time

    def now(self) -> float:
        return self._clock()

    def set_clock(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    @property
    def groups(self) -> Mapping[str, JSON]:
        return GroupsView(self)

    def reset_counters(self) -> None:
        self.counters.clear()
        self.request_log.clear()

    def get_group(self, resource_group: str, name: str, subscription: str | None = None) -> JSON | None:
        rec = self._find(resource_group, name, subscription)
        return None if rec is None else json_copy(rec.render(self.now()))

    def submitted_body(self, resource_group: str, name: str, subscription: str | None = None) -> JSON | None:
        """The stored body including its secrets (in memory only), for tests that check delivery."""
        rec = self._find(resource_group, name, subscription)
        return None if rec is None else json_copy(rec.spec)

    def terminate(
        self,
        resource_group: str,
        name: str,
        exit_code: int = 0,
        *,
        subscription: str | None = None,
        container: str | None = None,
    ) -> str:
        """Make a group's containers exit with `exit_code` (following its restart policy).

        Returns the group's instance-view state afterwards: `Succeeded`/`Failed` when a `Never` or
        `OnFailure` group has finished, `Running` when the policy restarted the containers.
        """
        now = self.now()
        rec = self._find(resource_group, name, subscription)
        if rec is None:
            raise KeyError(f"no container group {resource_group}/{name}")
        if rec.transition is not None:
            raise ValueError(f"container group {resource_group}/{name} is still provisioning")
        state = self.store.terminate(rec, exit_code, now, container)
        self.changed.set()
        return state

    def set_logs(
        self, resource_group: str, name: str, container: str, content: str, subscription: str | None = None
    ) -> None:
        """Script what the logs API returns for a container (or a job's init container) from now on; it wins
        over the output of a job container's simulated program."""
        rec = self._find(resource_group, name, subscription)
        runtime = None if rec is None else rec.containers.get(container) or rec.init_containers.get(container)
        if runtime is None:
            raise KeyError(f"no container {container} in {resource_group}/{name}")
        runtime.logs = content
        runtime.scripted_logs = True
        self.store.touch()
        self.changed.set()

    def _find(self, resource_group: str, name: str, subscription: str | None) -> GroupRecord | None:
        now = self.now()
        if subscription is not None:
            return self.store.get(subscription, resource_group, name, now)
        return self.store.find(resource_group, name, now)
