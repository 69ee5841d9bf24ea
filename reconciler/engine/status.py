"""`reconcile status`: every managed group with its sync state, provisioning and instance state.

Called by the CLI (and the daemon's status page). It costs the list calls of a plan plus one GET per managed
group, because only a GET carries the instance view.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.cloud.errors import GatewayError
from reconciler.cloud.gateway import Gateway
from reconciler.cloud.retry import Sleep, call_with_retry
from reconciler.engine.reconcile import EngineSettings, PlannedPass, plan_pass
from reconciler.model.observed import ObservedGroup
from reconciler.model.plan import Action
from reconciler.planning import REVISION_TAG, SyncState, sync_state


@dataclass(frozen=True)
class GroupStatus:
    resource_group: str
    name: str
    sync: SyncState
    action: Action
    provisioning_state: str | None
    instance_state: str | None
    applied_revision: str | None
    changed_paths: tuple[str, ...] = ()
    held: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "resource_group": self.resource_group,
            "name": self.name,
            "sync": self.sync.value,
            "action": self.action.value,
            "provisioning_state": self.provisioning_state,
            "instance_state": self.instance_state,
            "applied_revision": self.applied_revision,
            "changed_paths": list(self.changed_paths),
            "held": self.held,
        }


async def status_pass(
    settings: EngineSettings,
    gateway: Gateway,
    *,
    environ: Mapping[str, str],
    sleep: Sleep = asyncio.sleep,
    concurrency: int = 8,
) -> tuple[PlannedPass, list[GroupStatus]]:
    planned = await plan_pass(settings, gateway, environ=environ, sleep=sleep)
    observed = planned.observed()
    bound = asyncio.Semaphore(concurrency)
    fresh: dict[tuple[str, str], ObservedGroup] = {}

    async def read(group: ObservedGroup) -> None:
        async with bound:
            try:
                got = await call_with_retry(
                    lambda: gateway.get_group(group.resource_group, group.name),
                    policy=settings.retry,
                    sleep=sleep,
                )
            except GatewayError:
                return  # the list view is still a status; the instance state shows as unknown
        if got is not None:
            fresh[(group.resource_group.lower(), group.name.lower())] = got

    wanted = [
        observed[c.key] for c in planned.plan.changes if c.key in observed and c.action is not Action.CONFLICT
    ]
    async with asyncio.TaskGroup() as tasks:
        for group in wanted:
            tasks.create_task(read(group), name=f"status:{group.resource_group}/{group.name}")

    statuses: list[GroupStatus] = []
    for change in planned.plan.changes:
        live = fresh.get(change.key) or observed.get(change.key)
        statuses.append(
            GroupStatus(
                resource_group=change.resource_group,
                name=change.name,
                sync=sync_state(change),
                action=change.action,
                provisioning_state=live.provisioning_state if live else None,
                instance_state=live.instance_state if live else None,
                applied_revision=live.tags.get(REVISION_TAG) if live else None,
                changed_paths=change.changed_paths,
                held=change.held,
            )
        )
    return planned, statuses
