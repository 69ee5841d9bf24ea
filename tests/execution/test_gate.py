"""`replace_problems`: the body a replace would PUT is checked before the delete (issue 9, finding 2)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.execution.gate import MAX_CPU, replace_problems
from tests.execution.conftest import SECRET, manifest

CPU = "/properties/containers/app/properties/resources/requests/cpu"


def body() -> dict[str, Any]:
    out = manifest().to_arm_body(reveal_secrets=True)
    out["tags"] = {"managed-by": "aci-reconciler"}
    return out


def app(b: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = b["properties"]["containers"][0]["properties"]
    return props


def test_the_body_of_a_valid_manifest_passes() -> None:
    assert replace_problems(body()) == []


def _set(path: tuple[Any, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(b: dict[str, Any]) -> None:
        node: Any = b
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return edit


REQUESTS = ("properties", "containers", 0, "properties", "resources", "requests")

# Each edit breaks one rule Azure applies to a new group; the problem names the pointer (never the value).
BROKEN: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "cpu infinite": (_set((*REQUESTS, "cpu"), math.inf), CPU),
    "cpu NaN": (_set((*REQUESTS, "cpu"), math.nan), CPU),
    "cpu 'inf'": (_set((*REQUESTS, "cpu"), "inf"), CPU),
    "cpu 'Infinity'": (_set((*REQUESTS, "cpu"), "Infinity"), CPU),
    "cpu '1e309'": (_set((*REQUESTS, "cpu"), "1e309"), CPU),
    "cpu zero": (_set((*REQUESTS, "cpu"), 0), CPU),
    "cpu negative": (_set((*REQUESTS, "cpu"), -1), CPU),
    "cpu huge": (_set((*REQUESTS, "cpu"), 1e6), CPU),
    "cpu a word": (_set((*REQUESTS, "cpu"), "two"), CPU),
    "cpu a bool": (_set((*REQUESTS, "cpu"), True), CPU),
    "memory step": (_set((*REQUESTS, "memoryInGB"), 1.25), "/requests/memoryInGB"),
    "memory missing": (lambda b: app(b)["resources"]["requests"].pop("memoryInGB"), "/requests/memoryInGB"),
    "gpu count": (_set((*REQUESTS, "gpu"), {"count": 3, "sku": "K80"}), "/gpu/count"),
    "limit below request": (
        lambda b: app(b)["resources"].update(limits={"cpu": 0.5}),
        "/limits/cpu",
    ),
    "port zero": (lambda b: app(b).update(ports=[{"port": 0}]), "/ports/0/port"),
    "port too big": (lambda b: app(b).update(ports=[{"port": 70000}]), "/ports/0/port"),
    "port fractional": (lambda b: app(b).update(ports=[{"port": 80.5}]), "/ports/0/port"),
    "probe period zero": (
        lambda b: app(b).update(livenessProbe={"periodSeconds": 0, "exec": {"command": ["true"]}}),
        "/livenessProbe/periodSeconds",
    ),
    "nan anywhere": (lambda b: b["properties"].update(somethingNew=math.nan), "/properties/somethingNew"),
    "no image": (lambda b: app(b).pop("image"), "/image"),
    "no containers": (_set(("properties", "containers"), []), "/properties/containers"),
    "no osType": (lambda b: b["properties"].pop("osType"), "/properties/osType"),
    "no location": (lambda b: b.pop("location"), "/location"),
    "empty secure value": (
        lambda b: app(b)["environmentVariables"][1].update(secureValue=""),
        "/environmentVariables/DB_PASSWORD/secureValue",
    ),
    "empty registry password": (
        _set(
            ("properties", "imageRegistryCredentials"), [{"server": "r.io", "username": "u", "password": ""}]
        ),
        "/imageRegistryCredentials/r.io/password",
    ),
    "empty storage key": (
        _set(
            ("properties", "volumes"),
            [
                {
                    "name": "v",
                    "azureFile": {"shareName": "s", "storageAccountName": "a", "storageAccountKey": ""},
                }
            ],
        ),
        "/volumes/v/azureFile/storageAccountKey",
    ),
    "secret volume without files": (
        _set(("properties", "volumes"), [{"name": "v", "secret": {}}]),
        "/volumes/v/secret",
    ),
    "missing workspace key": (
        _set(("properties", "diagnostics"), {"logAnalytics": {"workspaceId": "w"}}),
        "/diagnostics/logAnalytics/workspaceKey",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_rule_azure_applies_stops_the_replace(case: str) -> None:
    edit, where = BROKEN[case]
    b = body()
    edit(b)
    problems = replace_problems(b)
    assert any(where in p for p in problems), problems
    assert all(SECRET not in p for p in problems)


def test_a_registry_reached_by_identity_needs_no_password() -> None:
    b = body()
    b["properties"]["imageRegistryCredentials"] = [{"server": "r.io", "identity": "/subscriptions/x/id"}]
    assert replace_problems(b) == []


@given(cpu=st.floats(min_value=0.01, max_value=MAX_CPU))
def test_any_finite_cpu_in_range_passes(cpu: float) -> None:
    b = body()
    app(b)["resources"]["requests"]["cpu"] = cpu
    assert replace_problems(b) == []


@given(
    cpu=st.one_of(
        st.sampled_from([math.inf, -math.inf, math.nan]),
        st.floats(max_value=0.0),
        st.floats(min_value=MAX_CPU, exclude_min=True),
        st.sampled_from(["inf", "-inf", "Infinity", "NaN", "nan", "1e309", "-1e309", "", "x"]),
    )
)
def test_any_non_finite_or_out_of_range_cpu_fails(cpu: Any) -> None:
    b = copy.deepcopy(body())
    app(b)["resources"]["requests"]["cpu"] = cpu
    assert any(CPU in p for p in replace_problems(b))
