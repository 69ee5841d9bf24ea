"""ACI's own checks of a container-group body, beyond what the spec says: the rules a PUT breaks with one
of ACI's error codes rather than ARM's `InvalidRequestContent`.

Called by the PUT handler (`arm/groups.py`) after the body fits the spec and before anything is stored;
pure functions of the body (and the quota settings), so each rule is tested on its own. Every rule names
its evidence; `tests/emulator/evidence/errors.md` quotes the public records of each code and message.

- names: `InvalidContainerGroupName`, `InvalidContainerName`, `DuplicateContainerName`,
  `InvalidDnsNameLabel` (`resource.name_problems`);
- `InvalidContainerEnvironmentVariable`: an environment variable name ACI does not accept;
- `ResourceLimitsLessThanRequests`: a container's limit below its request;
- `ContainerLimitGreaterThanContainerGroupTotalRequest`: a container's limit above the sum of the group's
  requests;
- `ContainerGroupQuotaReached`: GPUs or cores beyond the subscription's quota in the region (only when the
  emulator is given a quota: `EmulatorConfig.gpu_quota` / `core_quota`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from reconciler.emulator.resource import JSON, name_problems


@dataclass(frozen=True)
class Problem:
    """One broken rule: ACI's code, the JSON pointer of the offending value, the message, the status."""

    code: str
    path: str
    message: str
    status: int = 400


# Environment variable names: a letter or underscore first, then letters, digits and underscores (the
# POSIX portable name; a `.` is refused by Azure: see errors.md, InvalidContainerEnvironmentVariable).
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RESOURCES = ("cpu", "memoryInGB")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _gpu_count(section: Any) -> int | None:
    gpu = section.get("gpu") if isinstance(section, dict) else None
    count = gpu.get("count") if isinstance(gpu, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def _containers(props: JSON) -> list[tuple[str, int, JSON]]:
    out: list[tuple[str, int, JSON]] = []
    for section in ("containers", "initContainers"):
        for i, c in enumerate(props.get(section) or []):
            if isinstance(c, dict):
                out.append((section, i, c))
    return out


def env_problems(group: str, props: JSON) -> list[Problem]:
    out: list[Problem] = []
    for section, i, container in _containers(props):
        cname = str(container.get("name", ""))
        for j, var in enumerate((container.get("properties") or {}).get("environmentVariables") or []):
            name = str((var or {}).get("name", "")) if isinstance(var, dict) else ""
            if not ENV_NAME.match(name):
                out.append(
                    Problem(
                        "InvalidContainerEnvironmentVariable",
                        f"/properties/{section}/{i}/properties/environmentVariables/{j}/name",
                        f"The environment variable name '{name}' of container '{cname}' in container group "
                        f"'{group}' is invalid. A valid environment variable name must start with an "
                        "alphabetic character or '_', followed by a string of alphanumeric characters or '_' "
                        "(e.g. 'my_name', or 'MY_NAME', or 'MyName').",
                    )
                )
    return out


def resource_problems(group: str, props: JSON) -> list[Problem]:
    out: list[Problem] = []
    regular = [(i, c) for section, i, c in _containers(props) if section == "containers"]
    totals: dict[str, float] = dict.fromkeys(_RESOURCES, 0.0)
    total_gpu = 0
    for _, container in regular:
        requests = ((container.get("properties") or {}).get("resources") or {}).get("requests") or {}
        for name in _RESOURCES:
            totals[name] += _number(requests.get(name)) or 0.0
        total_gpu += _gpu_count(requests) or 0
    for section, i, container in _containers(props):
        cname = str(container.get("name", ""))
        resources = (container.get("properties") or {}).get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits")
        if not isinstance(limits, dict):
            continue
        base = f"/properties/{section}/{i}/properties/resources/limits"
        for name in _RESOURCES:
            limit, request = _number(limits.get(name)), _number(requests.get(name))
            if limit is None:
                continue
            if request is not None and limit < request:
                out.append(
                    Problem(
                        "ResourceLimitsLessThanRequests",
                        f"{base}/{name}",
                        f"The '{_label(name)}' limit value '{limit:g}' of container '{cname}' in container "
                        f"group '{group}' must be greater than or equal to the request value '{request:g}'.",
                    )
                )
            elif section == "containers" and limit > totals[name]:
                out.append(
                    Problem(
                        "ContainerLimitGreaterThanContainerGroupTotalRequest",
                        f"{base}/{name}",
                        f"The '{_label(name)}' limit value '{limit:g}' of container '{cname}' in container "
                        f"group '{group}' cannot be greater than the container group's total "
                        f"'{_label(name)}' request value '{totals[name]:g}'.",
                    )
                )
        limit_gpu, request_gpu = _gpu_count(limits), _gpu_count(requests)
        if limit_gpu is not None:
            if request_gpu is not None and limit_gpu < request_gpu:
                out.append(
                    Problem(
                        "ResourceLimitsLessThanRequests",
                        f"{base}/gpu/count",
                        f"The 'Gpu' limit value '{limit_gpu}' of container '{cname}' in container group "
                        f"'{group}' must be greater than or equal to the request value '{request_gpu}'.",
                    )
                )
            elif section == "containers" and limit_gpu > total_gpu:
                out.append(
                    Problem(
                        "ContainerLimitGreaterThanContainerGroupTotalRequest",
                        f"{base}/gpu/count",
                        f"The 'Gpu' limit value '{limit_gpu}' of container '{cname}' in container group "
                        f"'{group}' cannot be greater than the container group's total 'Gpu' request value "
                        f"'{total_gpu}'.",
                    )
                )
    return out


def _label(name: str) -> str:
    return {"cpu": "Cpu", "memoryInGB": "MemoryInGB"}[name]


def group_requests(props: JSON) -> tuple[float, int]:
    """The group's total CPU cores and GPUs requested (what ACI counts against quotas)."""
    cores, gpus = 0.0, 0
    for _, _, container in _containers(props):
        requests = ((container.get("properties") or {}).get("resources") or {}).get("requests") or {}
        cores += _number(requests.get("cpu")) or 0.0
        gpus += _gpu_count(requests) or 0
    return cores, gpus


def body_problems(group: str, body: JSON) -> list[Problem]:
    """Every rule `body` (a PUT body that fits the spec) breaks, in the order ACI reports them."""
    props = body.get("properties") or {}
    out = [Problem(code, path, message) for code, path, message in name_problems(group, body)]
    out += env_problems(group, props)
    out += resource_problems(group, props)
    return out
