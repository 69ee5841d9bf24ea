"""Adapts the engine (`reconciler.engine.reconcile`) to the worker's `PassEngine` protocol.

Each pass loads the manifests from where they are now (with git, the checkout the `current` link points at,
resolved once so a flip during the pass cannot mix two commits), records the git commit as the revision,
plans, and applies only the changes the worker admits; the job templates among the loaded manifests go to
the job scheduler with the plan. Composed by `reconciler.daemon.cli`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.cloud.gateway import Gateway
from reconciler.cloud.retry import Sleep
from reconciler.daemon.drain import DrainingGateway
from reconciler.daemon.jobs import JobTemplate
from reconciler.daemon.state import Key
from reconciler.daemon.worker import ApplyView, LiveSummary, OnEvent, PlanView
from reconciler.engine.reconcile import EngineSettings, PlannedPass, apply_pass, load, plan_pass
from reconciler.execution import QuotaBudget
from reconciler.model.manifest import GroupManifest
from reconciler.model.plan import Action, Change, Plan
from reconciler.planning import REVISION_TAG, PlanMemo, desired_canonical
from reconciler.planning.ownership import spec_fingerprint
from reconciler.source import LoadCache, LoadResult
from reconciler.source.walk import file_kind


def _failed_keys(loaded: LoadResult) -> dict[Key, str]:
    """Groups whose manifest failed to load: they are held (never pruned) with this reason."""
    errors = loaded.errors
    detail = str(errors[0]) if len(errors) == 1 else f"{len(errors)} errors in the manifests"
    return {
        (rg.lower(), name.lower()): f"its manifest failed to load ({detail})"
        for rg, name in loaded.failed_keys
    }


def _live_summaries(planned: PlannedPass) -> dict[Key, LiveSummary]:
    """Of each listed group, what the status page shows; one shared instance for the common states keeps a
    large fleet's summaries small."""
    shared: dict[tuple[str | None, str | None, str | None], LiveSummary] = {}
    out: dict[Key, LiveSummary] = {}
    for group in planned.observation.groups:
        fields = (group.provisioning_state, group.instance_state, group.tags.get(REVISION_TAG))
        summary = shared.get(fields)
        if summary is None:
            summary = shared[fields] = LiveSummary(*fields)
        out[(group.resource_group.lower(), group.name.lower())] = summary
    return out


FileStat = tuple[int, int]  # size, mtime in ns


def _stat(path: str) -> FileStat | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns)


@dataclass(frozen=True, slots=True)
class _FileSeen:
    documents: int
    stat: FileStat | None
    # A tuple, not a set: one is kept per manifest file for the daemon's life (a set of one key takes 216
    # bytes, a tuple 48), and it is only looked at when its file changed.
    keys: tuple[Key, ...]


class SettledFiles:
    """Tells a manifest file caught half-written from one whose documents were really removed.

    An editor or `git checkout` writing a multi-document file can be read between its first document and
    the rest: the missing documents would look deleted and their groups would be pruned, then created again
    a moment later. So a prune is held for one more settle delay when the file it came from still exists
    and either changed while it was being read (size or mtime moved across the load) or now holds fewer
    documents than at the last pass and changed since. A file that keeps its smaller count across one
    settle delay (unchanged since) is taken as it is, and its groups are pruned then.

    Only the files that can matter are stat'ed after a load: those parsed afresh by it (`LoadResult.fresh`,
    with their stat from before the read) and those whose document count changed. A file the load cache
    answered for holds what a complete earlier read of it held, so it is as settled as it was then."""

    def __init__(self) -> None:
        # By the path as walked, as text: a large tree is looked at every pass, and `Path` objects (or
        # `abspath`) per file cost more than the rest of the work.
        self._seen: dict[str, _FileSeen] = {}

    def unsettled(self, loaded: LoadResult) -> dict[Key, str]:
        """The groups whose prune must wait (key -> why), and remember this load."""
        docs: dict[str, int] = {}
        keys: dict[str, set[Key]] = {}
        for group in loaded.groups:
            path = str(group.source.path)
            docs[path] = docs.get(path, 0) + 1
            keys.setdefault(path, set()).add(group.folded_key)
        before = loaded.fresh
        held: dict[Key, str] = {}
        seen: dict[str, _FileSeen] = {}
        for path in {*docs, *self._seen}:
            previous = self._seen.get(path)
            count = docs.get(path, 0)
            if previous is not None and path not in before and count == previous.documents:
                seen[path] = previous
                continue
            now = _stat(path)
            moving = path in before and before[path] != now
            shrunk = (
                previous is not None
                and now is not None
                and count < previous.documents
                and now != previous.stat
            )
            if now is not None and (moving or shrunk) and previous is not None:
                why = (
                    f"its file {path} is still being written ({count} of {previous.documents} documents "
                    "read); held until it settles"
                )
                held.update(dict.fromkeys(set(previous.keys) - keys.get(path, set()), why))
                # Keep the larger picture until the file holds still for one settle delay.
                seen[path] = _FileSeen(previous.documents, now, tuple({*previous.keys, *keys.get(path, ())}))
            elif now is not None:
                seen[path] = _FileSeen(count, now, tuple(keys.get(path, ())))
        self._seen = seen
        return held

    def keys_last_seen_in(self, path: Path) -> frozenset[Key]:
        """The groups that `path` held when it was last read whole."""
        seen = self._seen.get(str(path))
        return frozenset(seen.keys) if seen is not None else frozenset()

    def keys_by_file(self, files: Collection[str]) -> dict[str, frozenset[Key]]:
        """Of these absolute paths, those read at the last pass, with the groups each held then."""
        return _by_file(files, ((path, seen.keys) for path, seen in self._seen.items()))


def _by_file(files: Collection[str], held: Iterable[tuple[str, Iterable[Key]]]) -> dict[str, frozenset[Key]]:
    """Of `files` (absolute paths), the keys `held` lists for each, where paths are as walked (perhaps
    relative): compared by name first, so only the few that may match are made absolute."""
    names = {os.path.basename(f) for f in files}
    out: dict[str, set[Key]] = {}
    for path, keys in held:
        if os.path.basename(path) in names:
            absolute = os.path.abspath(path)
            if absolute in files:
                out.setdefault(absolute, set()).update(keys)
    return {path: frozenset(keys) for path, keys in out.items()}


def focus_keys(loaded: LoadResult, settled: SettledFiles, files: frozenset[str]) -> frozenset[Key] | None:
    """The groups a pass set off by saving `files` must plan: those the files declare now and those they
    declared at the last pass (a document removed is a prune). None when the files' effect reaches further
    or cannot be told, so that the pass plans everything: a defaults file (it shapes a directory), anything
    not a manifest, and a file neither loaded now nor at the last pass (a secret file, an ignored one)."""
    if any(file_kind(os.path.basename(path)) != "manifest" for path in files):
        return None
    now = _by_file(files, ((str(g.source.path), (g.folded_key,)) for g in loaded.groups))
    before = settled.keys_by_file(files)
    broken = _by_file(files, ((str(e.path), ()) for e in loaded.errors))
    if any(f not in now and f not in before and f not in broken for f in files):
        return None
    return frozenset().union(*now.values(), *before.values())


def _hold_prunes(plan: Plan, held: Mapping[Key, str]) -> Plan:
    changes = tuple(
        c.model_copy(update={"held": held[(c.resource_group.lower(), c.name.lower())]})
        if c.action is Action.DELETE and (c.resource_group.lower(), c.name.lower()) in held and c.held is None
        else c
        for c in plan.changes
    )
    return plan.model_copy(update={"changes": changes})


def job_templates(loaded: LoadResult) -> tuple[JobTemplate, ...]:
    """The loaded manifests with a `reconcile.job` block, with the spec fingerprint the planner writes in the
    `aci-reconciler.spec` tag (runOnChange runs once per fingerprint)."""
    templates: list[JobTemplate] = []
    for group in loaded.groups:
        manifest = group.declared  # the fingerprint is of the body without secrets: no values needed
        if manifest.policy.job is not None:
            fingerprint = spec_fingerprint(desired_canonical(manifest))
            templates.append(
                JobTemplate(manifest.resource_group, manifest.name, manifest.policy.job, fingerprint)
            )
    return tuple(templates)


class _SecretValues:
    """The resolved secret values of a pass's desired manifests (for the log redactor), remembering which
    manifest objects hold none (the load cache hands the same ones back pass after pass). Only that verdict
    is kept: no value outlives its pass."""

    def __init__(self) -> None:
        self._none: dict[int, GroupManifest] = {}

    def of(self, planned: PlannedPass) -> tuple[str, ...]:
        values: list[str] = []
        # The groups the load cache kept have their values read for this pass; the plan entry of one that is
        # in sync carries no manifest with them in (`build_plan` made none).
        for group in planned.load.groups:
            if group.values is not None:
                values.extend(group.secret_values().values())
        none: dict[int, GroupManifest] = {}
        for change in planned.plan.changes:
            manifest = change.desired
            if manifest is None:
                continue
            if self._none.get(id(manifest)) is manifest:
                none[id(manifest)] = manifest
                continue
            found = manifest.secret_values()
            if found:
                values.extend(found.values())
            else:
                none[id(manifest)] = manifest
        self._none = none
        return tuple(values)

    def holds_none(self, manifest: GroupManifest) -> bool:
        """Whether the last `of` found no secret value in this very manifest object."""
        return self._none.get(id(manifest)) is manifest


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
        settle_delay: float = 1.0,
        owned: Callable[[], Callable[[str], bool] | None] | None = None,
        loaded_hook: Callable[[LoadResult], Awaitable[None]] | None = None,
    ) -> None:
        """`owned()`: the resource groups this replica reconciles now (its shards, with `--coordination`),
        asked once per pass; None, or a None answer: all of them. `loaded_hook(loaded)` is awaited after
        each load, before Azure is asked anything: raising there ends the pass with nothing planned (the
        duplicate-daemon check does, `reconciler.daemon.duplicate`)."""
        self._loaded_hook = loaded_hook
        self.settings = settings
        self._owned = owned
        self.settle_delay = settle_delay
        self.settled = SettledFiles()
        # Unchanged manifest files are not parsed and validated again pass after pass.
        self.load_cache = LoadCache()
        # ... nor are groups unchanged on both sides canonicalised and diffed again.
        self.plan_memo = PlanMemo()
        self._secrets = _SecretValues()
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

    async def plan(self, focus: frozenset[str] | None = None) -> PlanView:
        self.gateway.new_pass()
        settings = self.settings
        if self._manifests is not None:
            settings = dataclasses.replace(settings, manifests=self._manifests())
        owned = self._owned() if self._owned is not None else None
        if owned is not None:
            settings = dataclasses.replace(settings, owned=owned)
        loaded = await asyncio.to_thread(load, settings, self.environ, self.load_cache)
        if self._loaded_hook is not None:
            await self._loaded_hook(loaded)
        revision = self._revision() if self._revision is not None else None
        if revision:
            loaded = dataclasses.replace(loaded, revision=revision)
        keys = focus_keys(loaded, self.settled, focus) if focus else None
        planned = await plan_pass(
            settings,
            self.gateway,
            environ=self.environ,
            sleep=self.sleep,
            loaded=loaded,
            memo=None if keys is not None else self.plan_memo,
            focus=keys,
        )
        unsettled = self.settled.unsettled(loaded)
        if unsettled:
            planned = dataclasses.replace(planned, plan=_hold_prunes(planned.plan, unsettled))
        failed = _failed_keys(loaded)
        # A file that no longer parses at all names none of its groups: those it held when it last loaded
        # are the ones whose manifest failed, so /status shows them Stalled with the error, not Ready.
        loaded_keys = {g.folded_key for g in loaded.groups} if loaded.errors else set()
        for error in loaded.errors:
            for key in self.settled.keys_last_seen_in(error.path) - loaded_keys:
                failed.setdefault(key, f"its manifest failed to load ({error})")
        return PlanView(
            plan=planned.plan,
            complete=loaded.complete,
            failed=failed,
            handle=(planned, settings),
            secrets=self._secrets.of(planned),
            recheck_after=self.settle_delay if unsettled else None,
            jobs=job_templates(loaded),
            owned=owned,
            observed=_live_summaries(planned),
            focus=keys,
            secret_free=self._secrets.holds_none,
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
