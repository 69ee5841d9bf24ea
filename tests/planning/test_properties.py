"""Properties of planning that must always hold, over generated manifests (hypothesis)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from reconciler.model.manifest import GroupManifest
from reconciler.model.observed import ObservedGroup
from reconciler.model.plan import Action, Plan
from reconciler.planning.diff import diff
from reconciler.planning.normalise import canonical
from reconciler.planning.plan import DesiredGroup, build_plan, desired_canonical, observed_canonical
from tests.planning.support import INSTANCE, KEY, applied, desired, manifest

NAMES = st.sampled_from(["web", "api", "worker", "sidecar", "proxy", "log"])
ENV_NAMES = st.sampled_from(["MODE", "LEVEL", "URL", "TOKEN", "PASSWORD", "REGION"])
IMAGES = st.sampled_from(["nginx:1.25", "nginx:1.26", "alpine:3", "envoy:1.30", "busybox"])
CPUS = st.sampled_from([0.5, 1, 1.0, 1.5, 2, 4])
MEMS = st.sampled_from([0.5, 1, 1.5, 2, 3.5, 8])
TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_=./ ", min_size=1, max_size=12)
# A secret value that is easy to spot anywhere it leaks (and not a substring of anything else here).
SECRETS = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=8, max_size=16).map(
    lambda s: f"Zq#{s}"
)


@st.composite
def env_vars(draw: st.DrawFn, *, secrets: bool) -> list[dict[str, Any]]:
    names = draw(st.lists(ENV_NAMES, unique=True, max_size=4))
    out = []
    for name in names:
        if secrets and draw(st.booleans()):
            out.append({"name": name, "secureValue": draw(SECRETS)})
        else:
            out.append({"name": name, "value": draw(TEXT)})
    return out


@st.composite
def containers(draw: st.DrawFn, *, secrets: bool = True) -> list[dict[str, Any]]:
    names = draw(st.lists(NAMES, unique=True, min_size=1, max_size=3))
    out = []
    for name in names:
        props: dict[str, Any] = {
            "image": draw(IMAGES),
            "resources": {"requests": {"cpu": draw(CPUS), "memoryInGB": draw(MEMS)}},
        }
        if draw(st.booleans()):
            props["command"] = draw(st.lists(TEXT, min_size=1, max_size=3))
        envs = draw(env_vars(secrets=secrets))
        if envs:
            props["environmentVariables"] = envs
        if draw(st.booleans()):
            props["ports"] = [
                {"port": p} for p in draw(st.lists(st.sampled_from([80, 443, 8080]), unique=True))
            ]
        out.append({"name": name, "properties": props})
    return out


@st.composite
def manifests(draw: st.DrawFn, *, name: str | None = None, secrets: bool = True) -> GroupManifest:
    cs = draw(containers(secrets=secrets))
    props: dict[str, Any] = {
        "osType": "Linux",
        "containers": cs,
        "restartPolicy": draw(st.sampled_from(["Always", "OnFailure", "Never", "always"])),
    }
    if draw(st.booleans()):
        ports = draw(st.lists(st.sampled_from([80, 443]), unique=True, min_size=1))
        props["ipAddress"] = {
            "type": draw(st.sampled_from(["Public", "public"])),
            "ports": [{"port": p} for p in ports],
        }
        if draw(st.booleans()):
            props["ipAddress"]["dnsNameLabel"] = draw(st.sampled_from(["web-prod", "api-x"]))
        # Every port of the group's address is a container's port (Azure: UnreferencedIpAddressPorts).
        first = cs[0]["properties"].setdefault("ports", [])
        first.extend({"port": p} for p in ports if all(q["port"] != p for q in first))
    extra: dict[str, Any] = {}
    if draw(st.booleans()):
        extra["zones"] = [draw(st.sampled_from(["1", "2", "3"]))]
    tags = draw(st.dictionaries(st.sampled_from(["team", "env", "cost-center"]), TEXT, max_size=3))
    return manifest(
        name=name or draw(st.sampled_from(["g-one", "g-two", "g-three"])),
        location=draw(st.sampled_from(["westeurope", "West Europe", "eastus"])),
        tags=tags,
        properties=props,
        extra=extra,
    )


def plan_of(ms: list[GroupManifest], observed: list[ObservedGroup], **kw: Any) -> Plan:
    args: dict[str, Any] = {"instance": INSTANCE, "revision": "new-rev", "secret_key": KEY}
    args.update(kw)
    return build_plan([desired(m) for m in ms], observed, **args)


def edited(m: GroupManifest, edit: Any) -> GroupManifest:
    """`m` with its manifest document edited (through the model's public contract)."""
    body = copy.deepcopy(m.to_arm_body(reveal_secrets=True))
    edit(body)
    return manifest(
        name=m.name,
        resource_group=m.resource_group,
        location=body["location"],
        tags=body.get("tags") or {},
        properties=body["properties"],
        extra={"zones": body["zones"]} if body.get("zones") else None,
    )


@given(manifests())
def test_group_diffed_against_its_own_normalised_live_form_is_noop(m: GroupManifest) -> None:
    live = applied(m)
    assert diff(desired_canonical(m), observed_canonical(live)) == []


@given(manifests(), st.sampled_from(["an-older-commit", "new-rev"]))
def test_plan_against_its_own_applied_state_is_noop(m: GroupManifest, applied_revision: str) -> None:
    # An unchanged manifest never produces a write, whichever commit applied it last.
    p = plan_of([m], [applied(m, revision=applied_revision)])
    assert [c.action for c in p.changes] == [Action.NOOP]
    assert not p.has_changes


@given(manifests())
def test_canonical_form_is_idempotent(m: GroupManifest) -> None:
    once = desired_canonical(m)
    assert canonical(once) == once
    live = observed_canonical(applied(m))
    assert canonical(live) == live


# Under these keys, keys are data (map entries), not field names: their case is theirs.
DATA_KEYS = {"tags", "metadata", "settings", "protectedSettings", "secret", "userAssignedIdentities"}


def respelled(value: Any, data: st.DataObject) -> Any:
    """`value` with every field name in a case hypothesis picks (ARM's JSON names are case-insensitive)."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            spelled = data.draw(st.sampled_from([k, k.lower(), k.upper(), k.swapcase()]))
            out[spelled] = v if k in DATA_KEYS else respelled(v, data)
        return out
    if isinstance(value, list):
        return [respelled(v, data) for v in value]
    return value


@given(manifests(), st.data())
def test_the_case_of_field_names_never_changes_the_canonical_form(
    m: GroupManifest, data: st.DataObject
) -> None:
    body = m.to_arm_body(reveal_secrets=False)
    assert canonical(respelled(body, data)) == canonical(body)
    live = applied(m).body
    assert canonical(respelled(dict(live), data)) == canonical(live)


@given(manifests(), st.data())
def test_changing_only_cpu_memory_or_gpu_of_any_container_replaces(
    m: GroupManifest, data: st.DataObject
) -> None:
    n = len(m.properties.containers)
    index = data.draw(st.integers(0, n - 1))
    what = data.draw(st.sampled_from(["cpu", "memoryInGB", "gpu", "limits"]))

    def edit(body: dict[str, Any]) -> None:
        resources = body["properties"]["containers"][index]["properties"]["resources"]
        requests = resources["requests"]
        if what == "gpu":
            requests["gpu"] = {"count": 1, "sku": "V100"}
        elif what == "limits":
            resources["limits"] = {"cpu": requests["cpu"]}
        else:
            requests[what] = float(requests[what]) + 0.5

    changed = edited(m, edit)
    (change,) = plan_of([changed], [applied(m)]).changes
    assert change.action is Action.REPLACE
    assert change.replace_paths
    assert all("/resources" in p for p in change.replace_paths)


@given(manifests(secrets=False), st.data())
def test_changing_only_image_env_or_command_updates(m: GroupManifest, data: st.DataObject) -> None:
    n = len(m.properties.containers)
    index = data.draw(st.integers(0, n - 1))
    what = data.draw(st.sampled_from(["image", "env", "command"]))
    new_text = data.draw(TEXT)

    def edit(body: dict[str, Any]) -> None:
        props = body["properties"]["containers"][index]["properties"]
        if what == "image":
            props["image"] = props["image"] + "-next"
        elif what == "env":
            props.setdefault("environmentVariables", []).append({"name": "ADDED_VAR", "value": new_text})
        else:
            props["command"] = [*props.get("command", []), new_text]

    changed = edited(m, edit)
    (change,) = plan_of([changed], [applied(m)]).changes
    assert change.action is Action.UPDATE
    assert change.replace_paths == ()
    assert change.changed_paths


def _secret_values(m: GroupManifest) -> list[str]:
    return list(m.secret_values().values())


@given(manifests(), manifests(), st.booleans())
def test_no_secret_value_ever_appears_in_any_change(
    a: GroupManifest, b: GroupManifest, same_key: bool
) -> None:
    secrets = _secret_values(a) + _secret_values(b)
    assume(secrets)
    observed = [applied(b, key=KEY if same_key else b"other-key")]
    p = plan_of([a], observed)
    p_create = plan_of([a], [])
    p_prune = plan_of([], observed, allow_empty=True)
    for plan in (p, p_create, p_prune):
        texts = [plan.model_dump_json(), repr(plan)]
        for change in plan.changes:
            texts += [change.model_dump_json(), repr(change), str(change.write_tags)]
            texts += [f.model_dump_json() for f in change.fields]
        for text in texts:
            for secret in secrets:
                assert secret not in text


@given(
    st.lists(st.sampled_from(["g-one", "g-two", "g-three", "g-four"]), unique=True, max_size=4),
    st.lists(st.sampled_from(["g-one", "g-two", "g-three", "g-four"]), unique=True, max_size=4),
    st.lists(st.sampled_from(["g-one", "g-two", "g-three", "g-four"]), unique=True, max_size=4),
    st.booleans(),
)
def test_two_instances_on_one_resource_group_never_touch_each_others_groups(
    ours: list[str], theirs: list[str], wanted: list[str], adopt: bool
) -> None:
    theirs = [n for n in theirs if n not in ours]
    policy = {"failIfExists": not adopt}
    live = [applied(manifest(name=n), instance="blue") for n in ours]
    live += [applied(manifest(name=n), instance="green") for n in theirs]
    ms = [manifest(name=n, reconcile=policy) for n in wanted]
    p = build_plan(
        [DesiredGroup(manifest=m) for m in ms],
        live,
        instance="blue",
        revision="r",
        secret_key=KEY,
        allow_empty=True,
    )
    for change in p.changes:
        if change.name in theirs:
            assert change.action is Action.CONFLICT
            assert "'green'" in change.reason
    assert {c.name for c in p.changes if c.action is Action.DELETE} == {n for n in ours if n not in wanted}


@given(manifests())
def test_secrets_changed_only_in_the_environment_are_applied(m: GroupManifest) -> None:
    assume(_secret_values(m))

    def rotate(body: dict[str, Any]) -> None:
        for c in body["properties"]["containers"]:
            for env in c["properties"].get("environmentVariables", []):
                if "secureValue" in env:
                    env["secureValue"] = env["secureValue"] + "-rotated"

    (change,) = plan_of([edited(m, rotate)], [applied(m)]).changes
    assert change.action is Action.UPDATE
    assert change.fields
    assert all(f.sensitive and f.before is None and f.after is None for f in change.fields)
