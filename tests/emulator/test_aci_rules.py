"""ACI's own refusals (`reconciler/emulator/rules.py`), rule by rule: what each refuses, with which code and
where, and the edge cases Azure accepts (a limit equal to its request or to the group's total, an
environment variable name with `_` and digits)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.emulator.rules import body_problems


def group(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"location": "westus", "properties": {"osType": "Linux", "containers": list(containers)}}


def container(
    name: str = "app",
    *,
    cpu: float | None = 1,
    memory: float | None = 1.5,
    limits: dict[str, Any] | None = None,
    env: list[str] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    requests = {k: v for k, v in (("cpu", cpu), ("memoryInGB", memory)) if v is not None}
    resources: dict[str, Any] = {"requests": requests}
    if limits is not None:
        resources["limits"] = limits
    props: dict[str, Any] = {"image": "nginx", "resources": resources}
    if env:
        props["environmentVariables"] = [{"name": n, "value": "x"} for n in env]
    return {"name": name, "properties": props}


ENV = "InvalidContainerEnvironmentVariable"
SOME = "ResourceSomeRequestsNotSpecified"
NONE = "ResourceRequestsNotSpecified"
BELOW = "ResourceLimitsLessThanRequests"
ABOVE = "ContainerLimitGreaterThanContainerGroupTotalRequest"
GPUS = {
    "requests": {"cpu": 1, "memoryInGB": 1, "gpu": {"count": 2, "sku": "V100"}},
    "limits": {"gpu": {"count": 1, "sku": "V100"}},
}

REFUSED = {
    "a dot in an env name": (group(container(env=["a.b"])), ENV, "/environmentVariables/0/name"),
    "a dash in an env name": (group(container(env=["OK", "some-var"])), ENV, "/environmentVariables/1/name"),
    "an env name starting with a digit": (group(container(env=["1A"])), ENV, "/name"),
    "no memory request": (group(container(memory=None)), SOME, "/requests/memoryInGB"),
    "no cpu request": (group(container(cpu=None)), SOME, "/requests/cpu"),
    "no requests": (group(container(cpu=None, memory=None)), NONE, "/resources/requests"),
    "cpu limit below request": (group(container(limits={"cpu": 0.5})), BELOW, "/limits/cpu"),
    "memory limit below request": (group(container(limits={"memoryInGB": 1})), BELOW, "/limits/memoryInGB"),
    "gpu limit below request": (
        group({"name": "app", "properties": {"image": "x", "resources": GPUS}}),
        BELOW,
        "/limits/gpu/count",
    ),
    "an env name ending in a newline": (group(container(env=["MODE\n"])), ENV, "/name"),
    "an IP address without ports": (
        {
            **group(container()),
            "properties": {**group(container())["properties"], "ipAddress": {"type": "Public", "ports": []}},
        },
        "MissingIpAddressPorts",
        "/ipAddress/ports",
    ),
    "an IP address port no container lists": (
        {
            **group(container()),
            "properties": {
                **group(container())["properties"],
                "ipAddress": {"type": "Public", "ports": [{"port": 443}]},
            },
        },
        "UnreferencedIpAddressPorts",
        "/ipAddress/ports",
    ),
    "two volumes of one name": (
        {
            **group(container()),
            "properties": {
                **group(container())["properties"],
                "volumes": [{"name": "v", "emptyDir": {}}] * 2,
            },
        },
        "DuplicateVolumes",
        "/volumes/1/name",
    ),
    "cpu limit above the group's total": (
        group(container(limits={"cpu": 2.5}), container("b")),
        ABOVE,
        "/limits/cpu",
    ),
}


@pytest.mark.parametrize(("body", "code", "where"), REFUSED.values(), ids=REFUSED.keys())
def test_each_rule_refuses_with_acis_code_at_the_offending_value(
    body: dict[str, Any], code: str, where: str
) -> None:
    problems = body_problems("web", body)
    assert problems, "refused by Azure, accepted here"
    assert problems[0].code == code
    assert problems[0].path.endswith(where)
    assert problems[0].status == 400
    assert "'web'" in problems[0].message or code == "DuplicateVolumes"


ACCEPTED = {
    "env names with _ and digits": group(container(env=["_A", "my_name2", "MyName"])),
    "limits equal to the requests": group(container(limits={"cpu": 1, "memoryInGB": 1.5})),
    "a limit equal to the group's total": group(container(limits={"cpu": 2}), container("b")),
    "no limits": group(container()),
    "an init container without resources": {
        "location": "westus",
        "properties": {
            "osType": "Linux",
            "containers": [container()],
            "initContainers": [{"name": "init", "properties": {"image": "busybox"}}],
        },
    },
}


@pytest.mark.parametrize("body", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_what_azure_accepts_is_not_refused(body: dict[str, Any]) -> None:
    assert body_problems("web", body) == []
