"""One reconcile pass: load the manifests, observe Azure, plan, and (when asked) apply and verify.

The CLI's plan/apply/status commands and the daemon's worker all run these functions, so the three ways
of using the reconciler share one engine. Loading is CPU and file work and runs in a thread; everything that
talks to Azure goes through the `Gateway` given in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypedDict

from reconciler.cloud.errors import GatewayError
from reconciler.cloud.gateway import Gateway
from reconciler.cloud.retry import RetryPolicy, Sleep, call_with_retry
from reconciler.engine.observe import Observation, OnPage, Scope, observe_keys, observe_scope
from reconciler.execution import ApplyOptions, ProgressEvent, QuotaBudget, apply_plan
from reconciler.model.observed import ObservedGroup
from reconciler.model.outcome import ApplyResult, Result
from reconciler.model.plan import Action, Plan, PlanIssue
from reconciler.model.text import plain
from reconciler.planning import DesiredGroup, PlanMemo, build_plan
from reconciler.source import (
    Defaults,
    LoadCache,
    LoadedGroup,
    LoadResult,
    SourceError,
    SourceLocation,
    load_manifests,
)

# Changes whose group may have run to completion: ACI rejects updates to a terminated group, so for these the
# instance view (a GET: list does not return it) decides between update and replace.
_NEEDS_INSTANCE_VIEW = frozenset({Action.UPDATE, Action.TAGS})


@dataclass(frozen=True)
class EngineSettings:
    # A directory or file of manifests, or several loaded as one set (`-f` repeated).
    manifests: Path | tuple[Path, ...]
    secret_key: bytes
    instance: str = "default"
    # The subscription the ownership proofs are bound to (DESIGN.md section 4).
    subscription: str = ""
    # False for a key derived from public values: its proofs could be forged, so nothing is pruned.
    key_is_private: bool = True
    # Re-tag groups whose ownership proof was written under another key (`reconcile apply --rekey`).
    rekey: bool = False
    default_resource_group: str | None = None
    default_location: str | None = None
    prune: bool = True
    allow_empty: bool = False
    # What each pass observes (DESIGN.md section 4): by default the whole subscription in one paged list.
    scope: Scope = field(default_factory=Scope)
    apply: ApplyOptions = field(default_factory=ApplyOptions)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Patterns of the variables ${VAR} may read (`--env-allow`); None: the default allowlist.
    env_allow: tuple[str, ...] | None = None
    # False for read-only passes (`status`): secret references stay unresolved, so no secret value is needed.
    resolve_secrets: bool = True
    # The resource groups this process reconciles, when replicas share the work by shard (DESIGN section 13):
    # manifests and observed groups of other resource groups are left out of the plan, so they are neither
    # written nor pruned here. None: every resource group.
    owned: Callable[[str], bool] | None = None


@dataclass(frozen=True)
class PlannedPass:
    load: LoadResult
    observation: Observation
    plan: Plan

    def observed(self) -> dict[tuple[str, str], ObservedGroup]:
        return {(g.resource_group.lower(), g.name.lower()): g for g in self.observation.groups}


@dataclass(frozen=True)
class PassOutcome:
    planned: PlannedPass
    applied: ApplyResult | None = None
    # The plan made again after applying: what still differs (empty when Azure converged).
    verified: Plan | None = None

    @property
    def plan(self) -> Plan:
        return self.planned.plan

    @property
    def conflicts(self) -> int:
        return sum(1 for c in self.plan.changes if c.action is Action.CONFLICT)

    @property
    def failed(self) -> bool:
        """Whether the pass must exit 1: invalid input, unobservable state, conflicts or failed groups."""
        if self.plan.errors or self.conflicts:
            return True
        return self.applied is not None and not self.applied.ok

    @property
    def unconverged_keys(self) -> frozenset[tuple[str, str]]:
        """Groups written successfully this pass that the verifying re-plan still finds different."""
        if self.verified is None or self.applied is None:
            return frozenset()
        succeeded = {
            (o.resource_group.lower(), o.name.lower())
            for o in self.applied.outcomes
            if o.result is Result.SUCCEEDED
        }
        # A conflict right after our own successful write: another instance wrote the same group at the same
        # time (ARM has no create-only PUT for container groups) and its write is the one that stands.
        return frozenset(
            c.key
            for c in self.verified.changes
            if (c.changes_something or c.action is Action.CONFLICT) and c.key in succeeded
        )

    @property
    def unconverged(self) -> tuple[str, ...]:
        keys = self.unconverged_keys
        if not keys or self.verified is None:
            return ()
        return tuple(f"{c.resource_group}/{c.name}" for c in self.verified.changes if c.key in keys)


def _source_issue(err: SourceError, severity: Literal["error", "warning"]) -> PlanIssue:
    # SourceLocation renders the path escaped and bounded (a file name may hold a newline).
    where = str(SourceLocation(err.path, err.line, err.column)) if err.line else plain(err.path)
    return PlanIssue(severity=severity, message=err.message, source=where)


def load(settings: EngineSettings, environ: Mapping[str, str], cache: LoadCache | None = None) -> LoadResult:
    """The manifests of `settings`; `cache` (the daemon's) skips re-parsing files that did not change."""
    return load_manifests(
        settings.manifests,
        defaults=Defaults(
            resource_group=settings.default_resource_group,
            location=settings.default_location,
            env_allow=settings.env_allow,
        ),
        environ=environ,
        resolve_secrets=settings.resolve_secrets,
        cache=cache,
    )


def _owned_only(loaded: LoadResult, scope: Scope, owned: Callable[[str], bool]) -> tuple[LoadResult, Scope]:
    """The manifests and the named scope of the resource groups this process owns. Load errors stay: a file
    that does not parse names no resource group, so every replica holds its prunes back."""
    kept = dataclasses.replace(
        loaded,
        groups=tuple(g for g in loaded.groups if owned(g.declared.resource_group)),
        failed_keys=tuple(k for k in loaded.failed_keys if owned(k[0])),
    )
    named = tuple(rg for rg in scope.resource_groups if owned(rg))
    return kept, dataclasses.replace(scope, resource_groups=named)


def _observed_owned(observation: Observation, owned: Callable[[str], bool]) -> Observation:
    return dataclasses.replace(
        observation,
        groups=tuple(g for g in observation.groups if owned(g.resource_group)),
        failed={rg: why for rg, why in observation.failed.items() if owned(rg)},
        listed_resource_groups=tuple(rg for rg in observation.listed_resource_groups if owned(rg)),
    )


def _manifest_resource_groups(settings: EngineSettings, loaded: LoadResult) -> set[str]:
    named = {g.declared.resource_group for g in loaded.groups}
    if settings.default_resource_group:
        named.add(settings.default_resource_group)
    return named


def _scope_issues(observation: Observation) -> list[PlanIssue]:
    if observation.failed_all is not None:
        return [
            PlanIssue(
                severity="error",
                message=f"cannot list the container groups of the subscription: {observation.failed_all}; "
                "nothing is planned this pass",
            )
        ]
    if observation.inferred is None:
        return []
    listed = ", ".join(observation.listed_resource_groups) or "none"
    return [
        PlanIssue(
            severity="warning",
            message=(
                f"the scope is only inferred from the manifests ({observation.inferred}): resource groups "
                f"observed: {listed}. A group this instance manages in any other resource group is neither "
                "shown nor pruned; name the resource groups to watch with --scope RG[,RG] "
                "(env RECONCILER_SCOPE)"
            ),
        )
    ]


def _build(
    settings: EngineSettings,
    loaded: LoadResult,
    observation: Observation,
    groups: Sequence[ObservedGroup],
    extra_issues: Sequence[PlanIssue] = (),
    *,
    memo: PlanMemo | None = None,
) -> Plan:
    unobservable = {rg.lower() for rg in observation.failed}
    issues = [_source_issue(e, "error") for e in loaded.errors]
    issues += [_source_issue(w, "warning") for w in loaded.warnings]
    issues += [
        PlanIssue(
            severity="error",
            message=f"cannot list container groups of resource group {rg!r}: {why}; "
            "its groups are not planned this pass",
            resource_group=rg,
        )
        for rg, why in sorted(observation.failed.items())
    ]
    issues += _scope_issues(observation)
    issues += extra_issues
    desired = [
        _desired(g)
        for g in loaded.groups
        if g.declared.resource_group.lower() not in unobservable and observation.failed_all is None
    ]
    return build_plan(
        desired,
        groups,
        **_entry_arguments(settings, loaded),
        prune=settings.prune,
        allow_empty=settings.allow_empty,
        load_complete=loaded.complete,
        issues=issues,
        key_is_private=settings.key_is_private,
        memo=memo,
    ).model_copy(update={"reads": observation.reads})


class _EntryArguments(TypedDict):
    instance: str
    revision: str
    secret_key: bytes
    subscription: str
    rekey: bool


def _entry_arguments(settings: EngineSettings, loaded: LoadResult) -> _EntryArguments:
    """What a group's plan entry depends on besides its two sides: the same for `build_plan` and for
    `PlanMemo.plan_ahead`, whose entries `build_plan` takes only if they were made alike."""
    return _EntryArguments(
        instance=settings.instance,
        revision=loaded.revision,
        secret_key=settings.secret_key,
        subscription=settings.subscription,
        rekey=settings.rekey,
    )


def _desired(group: LoadedGroup) -> DesiredGroup:
    # A group the load cache kept has its values read but not put in (its manifest without them, then, and
    # `pending`): `build_plan` puts them into a copy only if it plans it.
    return DesiredGroup(
        manifest=group.declared,
        source=group.where,
        folded=group.folded_key,
        unresolved=group.unresolved,
        pending=group if group.values is not None else None,
    )


class _PlanAhead:
    """Plans the groups of each list page while the next page is read: a cold pass's plan is then mostly
    done when the list ends, inside the round trips it waits for anyway. It plans into a memo of its own,
    which `build_plan` takes entries from (`PlanMemo.plan_ahead`: the same entries it would make itself);
    what is not planned ahead when the list ends (the last pages, a group with secrets), `build_plan`
    plans. Not for the daemon's passes with its memo: that memo spares their groups the work already."""

    # Groups planned between two turns of the event loop (~0.15 ms each): a page's answer waits no longer.
    BATCH = 16

    def __init__(self, settings: EngineSettings) -> None:
        self.memo = PlanMemo(across_passes=False)
        self._settings = settings
        self._listed: list[ObservedGroup] = []
        self._more = asyncio.Event()

    def listed(self, groups: Sequence[ObservedGroup]) -> None:
        self._listed.extend(groups)
        self._more.set()

    async def run(self, loading: asyncio.Future[LoadResult]) -> None:
        """Until cancelled (when the list has ended): plan what was listed, once the manifests are loaded."""
        try:
            loaded = await asyncio.shield(loading)  # a cancelled plan-ahead leaves the load to the pass
        except Exception:  # the pass itself reports why the load failed
            return
        settings = self._settings
        owned = settings.owned
        desired: dict[tuple[str, str], DesiredGroup] = {}
        for found in loaded.groups:
            if owned is None or owned(found.declared.resource_group):
                # The first of a name declared twice, as `build_plan` keeps it.
                desired.setdefault(found.folded_key, _desired(found))
        arguments = _entry_arguments(settings, loaded)
        done = 0
        while True:
            await self._more.wait()
            self._more.clear()
            while done < len(self._listed):
                for live in self._listed[done : done + self.BATCH]:
                    group = desired.get((live.resource_group.lower(), live.name.lower()))
                    if group is not None:
                        self.memo.plan_ahead(group, live, **arguments)
                done = min(done + self.BATCH, len(self._listed))
                await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def _planning_ahead(
    ahead: _PlanAhead | None, loading: asyncio.Future[LoadResult]
) -> AsyncIterator[OnPage | None]:
    """While the body lists: `ahead` plans each page it is told of (the `on_page` this yields)."""
    if ahead is None:
        yield None
        return
    task = asyncio.create_task(ahead.run(loading), name="plan-pass:plan-ahead")
    try:
        yield ahead.listed
    finally:
        task.cancel()
        await asyncio.wait([task])
    error = None if task.cancelled() else task.exception()
    if error is not None:
        raise error


def _ready(result: LoadResult) -> asyncio.Future[LoadResult]:
    """`result`, as what `_PlanAhead.run` awaits (a future: nothing is left unawaited if it never runs)."""
    ready: asyncio.Future[LoadResult] = asyncio.get_running_loop().create_future()
    ready.set_result(result)
    return ready


async def _load_while_listing(
    settings: EngineSettings,
    gateway: Gateway,
    *,
    environ: Mapping[str, str],
    sleep: Sleep,
    ahead: _PlanAhead | None,
) -> tuple[LoadResult, Observation]:
    """Load the manifests while the subscription is listed: the list needs nothing of them (their resource
    groups only if Azure refuses it), and its pages' round trips are most of a cold pass's wait."""
    loading = asyncio.create_task(asyncio.to_thread(load, settings, environ), name="plan-pass:load")

    async def named() -> set[str]:
        return _manifest_resource_groups(settings, await asyncio.shield(loading))

    try:
        async with _planning_ahead(ahead, loading) as on_page:
            observation = await observe_scope(
                gateway, settings.scope, named, policy=settings.retry, sleep=sleep, on_page=on_page
            )
    except BaseException:
        loading.cancel()  # the thread finishes on its own; nobody waits for what it loads
        loading.add_done_callback(_forget)
        raise
    return await loading, observation


def _forget(task: asyncio.Task[LoadResult]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a load that failed while the pass was failing is not reported twice


async def plan_pass(
    settings: EngineSettings,
    gateway: Gateway,
    *,
    environ: Mapping[str, str],
    sleep: Sleep = asyncio.sleep,
    loaded: LoadResult | None = None,
    memo: PlanMemo | None = None,
    focus: Collection[tuple[str, str]] | None = None,
) -> PlannedPass:
    """Load (unless given), observe and plan. No write is made. `memo` (the daemon's) skips the diff of
    groups unchanged since the last pass. A pass that loads and lists the whole subscription does both at
    once (`_load_while_listing`).

    `focus` (lower-case keys) plans only those groups, each observed by a GET (`observe_keys`): a group of
    them that is live and no longer declared is pruned as a full pass would, and no other group is looked at
    or touched. The emptiness guard counts every loaded manifest, not just the focused ones."""
    listed: Observation | None = None
    ahead = _PlanAhead(settings) if memo is None and focus is None else None
    if loaded is None and focus is None and settings.scope.mode == "subscription":
        loaded, listed = await _load_while_listing(
            settings, gateway, environ=environ, sleep=sleep, ahead=ahead
        )
    elif loaded is None:
        loaded = await asyncio.to_thread(load, settings, environ)
    scope = settings.scope
    if settings.owned is not None:
        loaded, scope = _owned_only(loaded, scope, settings.owned)
    if focus is not None:
        keys = {key for key in focus if settings.owned is None or settings.owned(key[0])}
        if loaded.groups and not settings.allow_empty:
            settings = dataclasses.replace(settings, allow_empty=True)
        loaded = dataclasses.replace(
            loaded,
            groups=tuple(g for g in loaded.groups if g.folded_key in keys),
            failed_keys=tuple(k for k in loaded.failed_keys if (k[0].lower(), k[1].lower()) in keys),
        )
        observation = await observe_keys(gateway, keys, policy=settings.retry, sleep=sleep)
    elif listed is not None:
        observation = listed
    else:
        async with _planning_ahead(ahead, _ready(loaded)) as on_page:
            observation = await observe_scope(
                gateway,
                scope,
                _manifest_resource_groups(settings, loaded),
                policy=settings.retry,
                sleep=sleep,
                on_page=on_page,
            )
    if ahead is not None:
        memo = ahead.memo
    if settings.owned is not None:
        observation = _observed_owned(observation, settings.owned)
    groups = list(observation.groups)
    plan = _build(settings, loaded, observation, groups, memo=memo)

    # A list omits the instance view that some actions depend on; a focused pass read each group by a GET,
    # which has it already.
    candidates = [c for c in plan.changes if c.action in _NEEDS_INSTANCE_VIEW] if focus is None else []
    by_key = (
        {(g.resource_group.lower(), g.name.lower()): i for i, g in enumerate(groups)} if candidates else {}
    )
    jobs = [c for c in candidates if c.key in by_key and groups[by_key[c.key]].restart_policy != "Always"]
    if jobs:
        extra: list[PlanIssue] = []
        for change in jobs:
            try:
                fresh = await call_with_retry(
                    functools.partial(gateway.get_group, change.resource_group, change.name),
                    policy=settings.retry,
                    sleep=sleep,
                )
            except GatewayError as err:  # the list view stays; the apply reports what Azure says
                extra.append(
                    PlanIssue(
                        severity="warning",
                        message=f"could not read the instance view: {err}",
                        resource_group=change.resource_group,
                        name=change.name,
                    )
                )
                continue
            if fresh is not None:
                groups[by_key[change.key]] = fresh
        plan = _build(settings, loaded, observation, groups, extra, memo=memo)
    return PlannedPass(
        load=loaded, observation=dataclasses.replace(observation, groups=tuple(groups)), plan=plan
    )


async def apply_pass(
    planned: PlannedPass,
    settings: EngineSettings,
    gateway: Gateway,
    *,
    environ: Mapping[str, str],
    sleep: Sleep = asyncio.sleep,
    on_event: Callable[[ProgressEvent], None] | None = None,
    verify: bool = True,
    budget: QuotaBudget | None = None,
) -> PassOutcome:
    """Apply a plan made by `plan_pass`, then re-observe and re-plan what was written to verify it.

    `budget` keeps ACI's create/delete quotas across passes (the daemon holds one for its lifetime).
    """
    applied = await apply_plan(
        planned.plan, gateway, options=settings.apply, sleep=sleep, on_event=on_event, budget=budget
    )
    wrote = any(o.result is Result.SUCCEEDED and o.action is not Action.NOOP for o in applied.outcomes)
    verified: Plan | None = None
    if verify and wrote:
        again = await plan_pass(settings, gateway, environ=environ, sleep=sleep, loaded=planned.load)
        verified = again.plan
    return PassOutcome(planned=planned, applied=applied, verified=verified)
