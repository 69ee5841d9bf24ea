"""The engine's pass logic on the in-memory FakeGateway: observation, job instance views, verification."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler.cloud.errors import RetryableError, StalledError
from reconciler.cloud.retry import RetryPolicy
from reconciler.engine import reconcile
from reconciler.engine.keys import SecretKeyError, derive_default_key, resolve_secret_key
from reconciler.engine.observe import Scope, ScopeError, observe
from reconciler.engine.reconcile import EngineSettings, apply_pass, plan_pass
from reconciler.execution import ApplyOptions
from reconciler.model.plan import Action
from reconciler.planning import PlanMemo
from tests.fakes.gateway import FakeGateway

JOB = """\
name: {name}
resourceGroup: {rg}
location: westeurope
properties:
  osType: Linux
  restartPolicy: {policy}
  containers:
  - name: main
    properties:
      image: {image}
      resources: {{requests: {{cpu: 1, memoryInGB: 1}}}}
"""


def manifest(
    root: Path, name: str, *, rg: str = "rg-a", image: str = "busybox:1", policy: str = "Always"
) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.yaml").write_text(JOB.format(name=name, rg=rg, image=image, policy=policy))


class Sleeps:
    def __init__(self) -> None:
        self.requested: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.requested.append(seconds)


def settings(root: Path) -> EngineSettings:
    return EngineSettings(
        manifests=root,
        secret_key=b"k",
        apply=ApplyOptions(backoff_base=0.0, backoff_cap=0.0),
        retry=RetryPolicy(max_attempts=3, backoff_base=0.0, backoff_cap=0.0),
    )


async def test_observation_by_default_is_one_subscription_wide_list_and_never_a_get_per_group(
    tmp_path: Path,
) -> None:
    for i in range(5):
        manifest(tmp_path, f"g{i}", rg="rg-a" if i % 2 else "rg-b")
    fake = FakeGateway()
    s = settings(tmp_path)
    planned = await plan_pass(s, fake, environ={}, sleep=Sleeps())
    await apply_pass(planned, s, fake, environ={}, sleep=Sleeps(), verify=False)
    fake.calls.clear()
    again = await plan_pass(s, fake, environ={}, sleep=Sleeps())
    assert {c.action for c in again.plan.changes} == {Action.NOOP}
    assert fake.ops() == ["list_subscription"]
    assert again.plan.warnings == ()


async def test_an_explicit_scope_is_one_list_per_resource_group_named_or_in_a_manifest(
    tmp_path: Path,
) -> None:
    for i in range(5):
        manifest(tmp_path, f"g{i}", rg="rg-a" if i % 2 else "rg-b")
    fake = FakeGateway()
    s = dataclasses.replace(settings(tmp_path), scope=Scope.parse(["rg-extra,RG-A"]))
    planned = await plan_pass(s, fake, environ={}, sleep=Sleeps())
    assert sorted(c.resource_group.lower() for c in fake.calls) == ["rg-a", "rg-b", "rg-extra"]
    assert fake.ops() == ["list", "list", "list"]
    assert planned.plan.warnings == ()  # named explicitly: nothing is inferred


async def test_a_managed_group_whose_resource_group_no_manifest_names_any_more_is_pruned(
    tmp_path: Path,
) -> None:
    manifest(tmp_path / "solo", "lonely", rg="rg-solo")
    manifest(tmp_path / "other", "web", rg="rg-main")
    fake = FakeGateway()
    s = settings(tmp_path)
    await apply_pass(await plan_pass(s, fake, environ={}, sleep=Sleeps()), s, fake, environ={}, verify=False)
    (tmp_path / "solo" / "lonely.yaml").unlink()
    planned = await plan_pass(s, fake, environ={}, sleep=Sleeps())
    assert [(c.resource_group, c.name, c.action, c.held) for c in planned.plan.changes] == [
        ("rg-main", "web", Action.NOOP, None),
        ("rg-solo", "lonely", Action.DELETE, None),
    ]
    await apply_pass(planned, s, fake, environ={}, verify=False)
    assert not fake.exists("rg-solo", "lonely")


async def test_a_refused_subscription_list_falls_back_to_the_manifests_resource_groups_with_a_warning(
    tmp_path: Path,
) -> None:
    manifest(tmp_path, "web", rg="rg-a")
    fake = FakeGateway()
    fake.add("rg-elsewhere", "unseen")
    denied = StalledError("no read permission", status=403, code="AuthorizationFailed")
    fake.fail("list_subscription", denied, times=-1)
    planned = await plan_pass(settings(tmp_path), fake, environ={}, sleep=Sleeps())
    assert fake.ops() == ["list_subscription", "list"]
    assert [c.name for c in planned.plan.changes] == ["web"]
    [warning] = planned.plan.warnings
    assert "inferred from the manifests" in warning.message
    assert "AuthorizationFailed" in warning.message
    assert "rg-a" in warning.message
    assert "--scope" in warning.message
    assert planned.plan.errors == ()


async def test_a_cold_pass_lists_the_subscription_while_its_manifests_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest(tmp_path, "web", rg="rg-a")
    fake = FakeGateway()
    fake.add("rg-a", "web")
    listed = threading.Event()
    seen_while_loading: list[bool] = []
    real_load = reconcile.load

    def slow_load(*args: Any) -> Any:
        # Fails the test (after a bounded wait) unless the list is asked for while this load runs.
        seen_while_loading.append(listed.wait(timeout=10))
        return real_load(*args)

    real_list = fake.list_subscription_groups

    async def list_subscription_groups(*, cursor: Any = None) -> Any:
        listed.set()
        return await real_list(cursor=cursor)

    monkeypatch.setattr(reconcile, "load", slow_load)
    monkeypatch.setattr(fake, "list_subscription_groups", list_subscription_groups)
    planned = await plan_pass(settings(tmp_path), fake, environ={}, sleep=Sleeps())
    assert seen_while_loading == [True]
    assert [(c.name, c.action) for c in planned.plan.changes] == [("web", Action.CONFLICT)]


async def test_a_failed_list_does_not_wait_for_the_load_it_overlapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest(tmp_path, "web", rg="rg-a")
    fake = FakeGateway()
    release = threading.Event()
    finished: list[bool] = []
    real_load = reconcile.load

    def stuck_load(*args: Any) -> Any:
        release.wait(timeout=10)
        finished.append(True)
        return real_load(*args)

    async def broken(*, cursor: Any = None) -> Any:
        raise RuntimeError("a bug in a gateway")

    monkeypatch.setattr(reconcile, "load", stuck_load)
    monkeypatch.setattr(fake, "list_subscription_groups", broken)
    try:
        with pytest.raises(RuntimeError, match="a bug in a gateway"):
            await plan_pass(settings(tmp_path), fake, environ={}, sleep=Sleeps())
        assert finished == [], "the pass waited for the load"
    finally:
        release.set()


async def test_a_scope_inferred_by_choice_is_warned_about_in_the_plan(tmp_path: Path) -> None:
    manifest(tmp_path, "web", rg="rg-a")
    fake = FakeGateway()
    s = dataclasses.replace(settings(tmp_path), scope=Scope.parse(["manifests"]))
    planned = await plan_pass(s, fake, environ={}, sleep=Sleeps())
    assert fake.ops() == ["list"]
    [warning] = planned.plan.warnings
    assert "inferred from the manifests (--scope manifests was chosen)" in warning.message


async def test_a_subscription_list_that_fails_otherwise_is_an_error_and_nothing_is_planned(
    tmp_path: Path,
) -> None:
    manifest(tmp_path, "web", rg="rg-a")
    fake = FakeGateway()
    fake.fail("list_subscription", RetryableError("unavailable", status=503), times=-1)
    planned = await plan_pass(settings(tmp_path), fake, environ={}, sleep=Sleeps())
    assert planned.plan.changes == ()
    [error] = planned.plan.errors
    assert "subscription" in error.message
    assert "unavailable" in error.message


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], Scope()),
        ([""], Scope()),
        (["subscription"], Scope()),
        (["manifests"], Scope(mode="manifests")),
        (["rg-b,rg-a"], Scope(mode="resource-groups", resource_groups=("rg-a", "rg-b"))),
        (["rg-a", " RG-A , rg_(x).1"], Scope(mode="resource-groups", resource_groups=("RG-A", "rg_(x).1"))),
    ],
)
def test_scope_values_parse_to_one_mode(values: list[str], expected: Scope) -> None:
    assert Scope.parse(values) == expected


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        (["subscription,rg-a"], "cannot be combined"),
        (["manifests", "rg-a"], "cannot be combined"),
        (["rg/a"], "not a resource group name"),
        (["rg-a."], "not a resource group name"),
        (["x" * 91], "not a resource group name"),
    ],
)
def test_bad_scope_values_are_refused_with_the_fix(values: list[str], fragment: str) -> None:
    with pytest.raises(ScopeError, match=fragment):
        Scope.parse(values)


async def test_a_throttled_list_is_retried_honouring_retry_after(tmp_path: Path) -> None:
    fake = FakeGateway()
    fake.fail("list", RetryableError("throttled", status=429, retry_after=7.0), times=2)
    sleeps = Sleeps()
    result = await observe(fake, ["rg-a"], policy=RetryPolicy(max_attempts=3, backoff_base=0.0), sleep=sleeps)
    assert result.failed == {}
    assert sleeps.requested == [7.0, 7.0]


async def test_an_unobservable_resource_group_is_an_error_and_none_of_its_groups_are_planned(
    tmp_path: Path,
) -> None:
    manifest(tmp_path, "ok", rg="rg-ok")
    manifest(tmp_path, "blind", rg="rg-denied")
    fake = FakeGateway()
    fake.fail(
        "list", StalledError("no read permission", status=403, code="AuthorizationFailed"), rg="rg-denied"
    )
    s = dataclasses.replace(settings(tmp_path), scope=Scope.parse(["rg-ok,rg-denied"]))
    planned = await plan_pass(s, fake, environ={}, sleep=Sleeps())
    assert [c.name for c in planned.plan.changes] == ["ok"]
    assert any("rg-denied" in e.message and "AuthorizationFailed" in e.message for e in planned.plan.errors)


async def test_a_finished_job_is_read_with_a_get_and_replaced_rather_than_updated(tmp_path: Path) -> None:
    manifest(tmp_path, "job", policy="Never")
    fake = FakeGateway()
    s = settings(tmp_path)
    await apply_pass(await plan_pass(s, fake, environ={}, sleep=Sleeps()), s, fake, environ={}, verify=False)
    fake.instance_state = "Succeeded"
    fake.add(
        "rg-a",
        "job",
        body=fake.groups[("rg-a", "job")].body,
        tags=fake.groups[("rg-a", "job")].tags,
        instance_state="Succeeded",
    )
    fake.calls.clear()

    unchanged = await plan_pass(s, fake, environ={}, sleep=Sleeps())
    assert [c.action for c in unchanged.plan.changes] == [Action.NOOP]
    assert fake.count("get") == 0  # a finished job that nobody changed costs no GET

    manifest(tmp_path, "job", policy="Never", image="busybox:2")
    changed = await plan_pass(s, fake, environ={}, sleep=Sleeps())
    assert [c.action for c in changed.plan.changes] == [Action.REPLACE]
    assert fake.count("get") == 1


async def test_apply_verifies_by_planning_again_and_reports_groups_that_still_differ(tmp_path: Path) -> None:
    manifest(tmp_path, "web")
    fake = FakeGateway()
    s = settings(tmp_path)
    outcome = await apply_pass(
        await plan_pass(s, fake, environ={}, sleep=Sleeps()), s, fake, environ={}, sleep=Sleeps()
    )
    assert outcome.applied is not None
    assert outcome.applied.ok
    assert outcome.verified is not None
    assert outcome.unconverged == ()
    assert not outcome.failed


async def test_nothing_to_apply_makes_no_write_and_skips_verification(tmp_path: Path) -> None:
    manifest(tmp_path, "web")
    fake = FakeGateway()
    s = settings(tmp_path)
    await apply_pass(await plan_pass(s, fake, environ={}, sleep=Sleeps()), s, fake, environ={})
    fake.calls.clear()
    outcome = await apply_pass(await plan_pass(s, fake, environ={}, sleep=Sleeps()), s, fake, environ={})
    assert fake.writes() == []
    assert outcome.verified is None
    assert fake.ops() == ["list_subscription"]


def test_a_configured_secret_key_wins_and_a_derived_one_is_stable_and_warned_about(tmp_path: Path) -> None:
    good = "a3f9c2e1b7d4" * 3
    configured = resolve_secret_key(environ_value=good, key_file=None, subscription="s", instance="i")
    assert configured.key == good.encode()
    assert configured.warning is None
    assert configured.private
    derived = resolve_secret_key(environ_value=None, key_file=None, subscription="SUB", instance="i")
    assert derived.key == derive_default_key("sub", "i")
    assert derived.warning is not None
    assert "RECONCILER_SECRET_KEY" in derived.warning
    assert not derived.private  # anyone can derive it: its ownership proofs prove nothing
    other_instance = resolve_secret_key(environ_value=None, key_file=None, subscription="sub", instance="j")
    assert other_instance.key != derived.key


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("abc", "too short"),
        ("0123456789abcde", "too short"),
        ("changeme-changeme-changeme", "placeholder"),
        ("CHANGEME0123456789", "placeholder"),
        ("replace-with-64-hex-characters", "placeholder"),
        ("<64-hex-characters>", "placeholder"),
        ("my-placeholder-key-value", "placeholder"),
        ("aaaaaaaaaaaaaaaaaaaaaaaa", "distinct characters"),
        ("abababababababababab", "distinct characters"),
    ],
)
def test_a_short_or_placeholder_key_is_refused_with_the_fix_and_never_echoed(
    value: str, fragment: str
) -> None:
    with pytest.raises(SecretKeyError, match=fragment) as info:
        resolve_secret_key(environ_value=value, key_file=None, subscription="s", instance="i")
    assert value not in str(info.value)
    assert "openssl rand -hex 32" in str(info.value)


def test_the_local_key_file_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "secret.key"
    first = resolve_secret_key(environ_value=None, key_file=path, subscription="s", instance="i")
    second = resolve_secret_key(environ_value=None, key_file=path, subscription="s", instance="i")
    assert first.key == second.key
    assert len(first.key) == 64
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("count", [0, 3])
async def test_observing_nothing_costs_nothing(count: int) -> None:
    fake = FakeGateway()
    result = await observe(fake, [f"rg-{i}" for i in range(count)], sleep=Sleeps())
    assert len(fake.calls) == count
    assert result.groups == ()


class PagedGateway(FakeGateway):
    """Lists two groups a page, telling the cursor of each page as Azure's adapter does, and lets the event
    loop turn between pages until something was planned (a bounded number of turns, never a clock)."""

    def __init__(self, planned: list[str]) -> None:
        super().__init__()
        self.planned = planned
        self.served: list[list[str]] = []
        self.planned_when_served: list[int] = []

    async def list_subscription_groups(self, *, cursor: Any = None) -> list[Any]:
        groups = await super().list_subscription_groups()
        for start in range(0, len(groups), 2):
            page = groups[start : start + 2]
            self.planned_when_served.append(len(self.planned))
            self.served.append([g.name for g in page])
            if cursor is not None:
                cursor.groups.extend(page)
                cursor.pages += 1
                if cursor.on_page is not None:
                    cursor.on_page(page)
            # The next page's round trip: the loop turns until something more was planned (the manifests
            # may still be loading on their thread), a bounded number of times.
            for _ in range(20_000):
                if len(self.planned) > self.planned_when_served[-1]:
                    break
                await asyncio.sleep(0)
        return groups


@pytest.mark.parametrize("loaded_first", [False, True])
async def test_a_cold_pass_plans_each_list_page_while_the_next_is_read_and_plans_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loaded_first: bool
) -> None:
    from reconciler.planning import plan as planning_plan

    for i in range(6):
        manifest(tmp_path, f"g{i}", image="busybox:1" if i % 3 else "busybox:2")
    s = settings(tmp_path)
    planned: list[str] = []
    real = planning_plan.diff_group

    def counting(group: Any, *args: Any, **kwargs: Any) -> Any:
        planned.append(group.manifest.name)
        return real(group, *args, **kwargs)

    fake = PagedGateway(planned)
    await apply_pass(await plan_pass(s, fake, environ={}, sleep=Sleeps()), s, fake, environ={}, verify=False)
    for i in range(0, 6, 2):  # drift: every other group has another image now
        manifest(tmp_path, f"g{i}", image="busybox:3")
    # A memo of its own turns planning ahead off (the daemon's passes), and plans the same (test_memo).
    without = await plan_pass(s, fake, environ={}, sleep=Sleeps(), memo=PlanMemo())

    monkeypatch.setattr(planning_plan, "diff_group", counting)
    fake.served.clear()
    fake.planned_when_served.clear()
    loaded = reconcile.load(s, {}) if loaded_first else None
    result = await plan_pass(s, fake, environ={}, sleep=Sleeps(), loaded=loaded)

    assert fake.served == [["g0", "g1"], ["g2", "g3"], ["g4", "g5"]]
    assert fake.planned_when_served[1] == 2, "the first page was planned while the second was read"
    assert fake.planned_when_served[2] == 4, "the second page was planned while the third was read"
    assert sorted(planned) == [f"g{i}" for i in range(6)], "each group was planned once"
    assert result.plan.model_dump() == without.plan.model_dump()
    assert {c.name for c in result.plan.changes if c.action is Action.UPDATE} == {"g0", "g2", "g4"}
