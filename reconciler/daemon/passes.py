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
from typing import Any

from reconciler.cloud.gateway import Gateway
from reconciler.cloud.retry import Sleep
from reconciler.daemon.drain import DrainingGateway
from reconciler.daemon.state import Key
from reconciler.daemon.worker import ApplyView, OnEvent, PlanView
from reconciler.engine.reconcile import EngineSettings, PlannedPass, apply_pass, load, plan_pass
from reconciler.execution import QuotaBudget
from reconciler.model.plan import Change


def _with_revision(loaded: Any, revision: str) -> Any:
    if dataclasses.is_dataclass(loaded) and not isinstance(loaded, type):
        return dataclasses.replace(loaded, revision=revision)
    model_copy = getattr(loaded, "model_copy", None)
    if model_copy is not None:
        return model_copy(update={"revision": revision})
    raise TypeError(f"cannot set the revision of {type(loaded).__name__}")


def _failed_keys(loaded: Any) -> dict[Key, str]:
    failed = getattr(loaded, "failed_keys", None) or ()
    reasons = failed if isinstance(failed, Mapping) else dict.fromkeys(failed, "")
    errors = list(getattr(loaded, "errors", ()) or ())
    detail = str(errors[0]) if len(errors) == 1 else f"{len(errors)} errors in the manifests"
    out: dict[Key, str] = {}
    for key, why in reasons.items():
        rg, name = key
        out[(str(rg).lower(), str(name).lower())] = str(why) or f"its manifest failed to load ({detail})"
    return out


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
            loaded = _with_revision(loaded, revision)
        planned = await plan_pass(
            settings, self.gateway, environ=self.environ, sleep=self.sleep, loaded=loaded
        )
        return PlanView(
            plan=planned.plan,
            complete=bool(getattr(loaded, "complete", not getattr(loaded, "errors", ()))),
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
