"""Adapts the engine (`reconciler.engine.reconcile`) to the worker's `PassEngine` protocol.

Each pass loads the manifests from where they are now (with git, the checkout the `current` link points at,
resolved once so a flip during the pass cannot mix two commits), records the git commit as the revision,
plans, and applies only the changes the worker admits. Composed by `reconciler.daemon.cli`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from reconciler.cloud.gateway import Gateway
from reconciler.cloud.retry import Sleep
from reconciler.daemon.drain import DrainingGateway
from reconciler.daemon.state import Key
from reconciler.daemon.worker import ApplyView, OnEvent, PlanView
from reconciler.engine.reconcile import EngineSettings, PlannedPass, apply_pass, load, plan_pass
from reconciler.execution import QuotaBudget
from reconciler.model.plan import Change
from reconciler.source import LoadResult


def _failed_keys(loaded: LoadResult) -> dict[Key, str]:
    """Groups whose manifest failed to load: they are held (never pruned) with this reason."""
    errors = loaded.errors
    detail = str(errors[0]) if len(errors) == 1 else f"{len(errors)} errors in the manifests"
    return {
        (rg.lower(), name.lower()): f"its manifest failed to load ({detail})"
        for rg, name in loaded.failed_keys
    }


def _secret_values(planned: PlannedPass) -> tuple[str, ...]:
    values: list[str] = []
    for change in planned.plan.changes:
        if change.desired is not None:
            values.extend(change.desired.secret_values().values())
    return tuple(values)


class EnginePasses:
    def __init__(
        self,
        settings: EngineSettings,
        gateway: Gateway,
        *,
        environ: Mapping[str, str],
        sleep: Sleep = asyncio.sleep,
        manifests: Callable[[], Path] | None = None,
        revision: Callable[[], str | None] | None = None,
    ) -> None:
        self.settings = settings
        self.gateway = DrainingGateway(gateway)
        self.environ = environ
        self.sleep = sleep
        self._manifests = manifests
        self._revision = revision
        # ACI's create/delete quotas are per subscription and window, so one budget spans every pass.
        self.budget = QuotaBudget(
            creates=settings.apply.create_limits,
            deletes=settings.apply.delete_limits,
            clock=time.monotonic,
            sleep=sleep,
        )

    def drain(self) -> None:
        """From now on, start no group that has not started writing (shutdown)."""
        self.gateway.drain()

    async def plan(self) -> PlanView:
        self.gateway.new_pass()
        settings = self.settings
        if self._manifests is not None:
            settings = dataclasses.replace(settings, manifests=self._manifests())
        loaded = await asyncio.to_thread(load, settings, self.environ)
        revision = self._revision() if self._revision is not None else None
        if revision:
            loaded = dataclasses.replace(loaded, revision=revision)
        planned = await plan_pass(
            settings, self.gateway, environ=self.environ, sleep=self.sleep, loaded=loaded
        )
        return PlanView(
            plan=planned.plan,
            complete=loaded.complete,
            failed=_failed_keys(loaded),
            handle=(planned, settings),
            secrets=_secret_values(planned),
        )

    async def apply(self, planned: PlanView, changes: Sequence[Change], on_event: OnEvent) -> ApplyView:
        whole, settings = planned.handle
        subset = dataclasses.replace(whole, plan=whole.plan.model_copy(update={"changes": tuple(changes)}))
        outcome = await apply_pass(
            subset,
            settings,
            self.gateway,
            environ=self.environ,
            sleep=self.sleep,
            on_event=on_event,
            verify=True,
            budget=self.budget,
        )
        assert outcome.applied is not None  # apply_pass always applies
        # `subset` holds only `changes`, so every group the engine finds unconverged is one of them.
        return ApplyView(result=outcome.applied, unconverged=outcome.unconverged_keys)
