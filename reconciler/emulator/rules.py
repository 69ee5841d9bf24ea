"""ACI's own checks of a container-group body, beyond what the spec says: the rules a PUT breaks with one
of ACI's error codes rather than ARM's `InvalidRequestContent`.

Called by the PUT handler (`arm/groups.py`) after the body fits the spec and before anything is stored;
pure functions of the body (and the quota settings), so each rule is tested on its own. Every rule names
its evidence; `tests/emulator/evidence/errors.md` quotes the public records of each code and message.

- names: `InvalidContainerGroupName`, `InvalidContainerName`, `DuplicateContainerName`,
  `InvalidDnsNameLabel` (`resource.name_problems`; the DNS label's sentence is public, these codes are the
  emulator's own: errors.md found no record of them);
- `InvalidContainerEnvironmentVariable`: an environment variable name ACI does not accept;
- `ResourceSomeRequestsNotSpecified` / `ResourceRequestsNotSpecified`: cpu or memory (or both) not requested;
- `ResourceLimitsLessThanRequests`: a container's limit below its request;
- `ContainerLimitGreaterThanContainerGroupTotalRequest`: a container's limit above the sum of the group's
  requests;
- `MissingIpAddressPorts`, `UnreferencedIpAddressPorts`: an IP address without ports, or with a port no
  container lists;
- `DuplicateVolumes`: two volumes of one name;
- `ContainerGroupQuotaReached`: GPUs or cores beyond the subscription's quota in the region (only when the
  emulator is given a quota: `EmulatorConfig.gpu_quota` / `core_quota`); `arm/groups.py` checks it against
  the store, with this module's `group_requests` and `gpu_sku`.
"""

from __future__ import annotations

import json
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


# Environment variable names, as Azure's refusal states the rule: "must start with alphabetic character or
# '_', followed by a string of alphanumeric characters or '_'" (a `.` and a `-` are refused: errors.md, 1).
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # used with fullmatch: a final newline is refused too
_RESOURCES = ("cpu", "memoryInGB")
# Spec violations these rules answer in ACI's words instead (the spec only says "required").
RULE_CODES = frozenset(
    {"ResourceRequestsNotSpecified", "ResourceSomeRequestsNotSpecified", "MissingIpAddressPorts"}
)


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
            if not ENV_NAME.fullmatch(name):
                # Azure's sentence, double spaces included; it names the container, not the variable.
                out.append(
                    Problem(
                        "InvalidContainerEnvironmentVariable",
                        f"/properties/{section}/{i}/properties/environmentVariables/{j}/name",
                        f"The environment variable name in container '{cname}' of container group "
                        f"'{group}' is invalid. A valid environment variable name must start with alphabetic "
                        "character or '_', followed by a string of alphanumeric characters or '_' (e.g. "
                        "'my_name',  or 'MY_NAME',  or 'MyName').",
                    )
                )
                break
    return out


def _shown(value: float | None) -> str:
    """A number as ACI prints it in messages: without a trailing `.0`."""
    return "" if value is None else f"{value:g}"


def request_problems(group: str, props: JSON) -> list[Problem]:
    """Requests without cpu or memory: `ResourceSomeRequestsNotSpecified` (one missing) or
    `ResourceRequestsNotSpecified` (both). ("contain group" is Azure's own typo.)"""
    out: list[Problem] = []
    since = "since API version '2017-07-01-preview'"
    for section, i, container in _containers(props):
        if section != "containers":
            continue  # init containers take no resources
        cname = str(container.get("name", ""))
        resources = (container.get("properties") or {}).get("resources")
        requests = resources.get("requests") if isinstance(resources, dict) else None
        requests = requests if isinstance(requests, dict) else {}
        memory, cpu = _number(requests.get("memoryInGB")), _number(requests.get("cpu"))
        base = f"/properties/{section}/{i}/properties/resources"
        if memory is None and cpu is None:
            out.append(
                Problem(
                    "ResourceRequestsNotSpecified",
                    f"{base}/requests",
                    f"The resource requests are not specified in container '{cname}' of contain group "
                    f"'{group}'. Both memory and CPU requests are required {since}.",
                )
            )
        elif memory is None or cpu is None:
            missing = "Cpu" if cpu is None else "MemoryInGB"
            out.append(
                Problem(
                    "ResourceSomeRequestsNotSpecified",
                    f"{base}/requests/{'cpu' if cpu is None else 'memoryInGB'}",
                    f"The '{missing}' request is not specified in 'MemoryInGB '{_shown(memory)}' Cpu "
                    f"'{_shown(cpu)}'' in container '{cname}' of contain group '{group}'. It is required "
                    f"{since}.",
                )
            )
    return out


def _requirement_json(requests: JSON, limits: JSON) -> str:
    # Compact, requests before limits, memory before cpu, numbers as doubles: as Azure quotes them.
    def part(values: JSON) -> JSON:
        out: JSON = {}
        for name in ("memoryInGB", "cpu"):
            number = _number(values.get(name))
            if number is not None:
                out[name] = number
        if isinstance(values.get("gpu"), dict):
            out["gpu"] = values["gpu"]
        return out

    return json.dumps({"requests": part(requests), "limits": part(limits)}, separators=(",", ":"))


def resource_problems(group: str, props: JSON) -> list[Problem]:
    """Limits below their requests (`ResourceLimitsLessThanRequests`, Cpu checked first) and limits above the
    group's total request (`ContainerLimitGreaterThanContainerGroupTotalRequest`)."""
    out: list[Problem] = []
    totals: dict[str, float] = dict.fromkeys(_RESOURCES, 0.0)
    total_gpu = 0
    for section, _, container in _containers(props):
        if section != "containers":
            continue
        requests = ((container.get("properties") or {}).get("resources") or {}).get("requests") or {}
        for name in _RESOURCES:
            totals[name] += _number(requests.get(name)) or 0.0
        total_gpu += _gpu_count(requests) or 0
    for section, i, container in _containers(props):
        cname = str(container.get("name", ""))
        resources = (container.get("properties") or {}).get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits")
        if not isinstance(limits, dict) or not isinstance(requests, dict):
            continue
        base = f"/properties/{section}/{i}/properties/resources/limits"
        checks: list[tuple[str, str, float | None, float | None, float]] = [
            (name, _label(name), _number(limits.get(name)), _number(requests.get(name)), totals[name])
            for name in ("cpu", "memoryInGB")
        ]
        limit_gpu, request_gpu = _gpu_count(limits), _gpu_count(requests)
        checks.append(
            (
                "gpu/count",
                "Gpu",
                None if limit_gpu is None else float(limit_gpu),
                None if request_gpu is None else float(request_gpu),
                float(total_gpu),
            )
        )
        for path, label, limit, request, total in checks:
            if limit is None:
                continue
            if request is not None and limit < request:
                out.append(
                    Problem(
                        "ResourceLimitsLessThanRequests",
                        f"{base}/{path}",
                        f"The resource requirement '{_requirement_json(requests, limits)}' in container "
                        f"'{cname}' of contain group '{group}' is invalid. The '{label}' limit value must be "
                        "greater than or equal to the request value.",
                    )
                )
                break
            if section == "containers" and limit > total:
                out.append(
                    Problem(
                        "ContainerLimitGreaterThanContainerGroupTotalRequest",
                        f"{base}/{path}",
                        f"The '{label}' limit '{_shown(limit)}' in container '{cname}' is greater than the "
                        f"total request '{_shown(total)}' of container group '{group}'.",
                    )
                )
                break
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


def network_problems(group: str, props: JSON) -> list[Problem]:
    """The group's IP address: it needs ports (`MissingIpAddressPorts`, hashicorp/terraform-provider-azurerm
    #1697, #11102), and each must be a port some container lists, by number (`UnreferencedIpAddressPorts`,
    terraform-provider-azurerm#5091, whose message lists numbers only)."""
    ip = props.get("ipAddress")
    if not isinstance(ip, dict):
        return []
    ports = [p for p in ip.get("ports") or [] if isinstance(p, dict)]
    if not ports:
        return [
            Problem(
                "MissingIpAddressPorts",
                "/properties/ipAddress/ports",
                f"The ports in the 'ipAddress' of container group '{group}' cannot be empty.",
            )
        ]
    used = {
        port.get("port")
        for section, _, container in _containers(props)
        if section == "containers"
        for port in (container.get("properties") or {}).get("ports") or []
        if isinstance(port, dict)
    }
    unused = [str(p.get("port")) for p in ports if p.get("port") not in used]
    if not unused:
        return []
    return [
        Problem(
            "UnreferencedIpAddressPorts",
            "/properties/ipAddress/ports",
            f"Following ports '{','.join(unused)}' in the 'ipAddress' are not used by any container in "
            f"container group '{group}'.",
        )
    ]


def volume_problems(props: JSON) -> list[Problem]:
    """Two volumes of one name: `DuplicateVolumes` (virtual-kubelet/azure-aci#303, kubeflow/pipelines
    #8318)."""
    seen: set[str] = set()
    for i, volume in enumerate(props.get("volumes") or []):
        name = str((volume or {}).get("name", "")) if isinstance(volume, dict) else ""
        if name in seen:
            return [
                Problem(
                    "DuplicateVolumes",
                    f"/properties/volumes/{i}/name",
                    f"Duplicate volumes '{name}' are found.",
                )
            ]
        seen.add(name)
    return []


def gpu_sku(props: JSON) -> str:
    """The SKU of the first GPU the group requests (ACI names its GPU quotas after it: `V100Cores`)."""
    for _, _, container in _containers(props):
        requests = ((container.get("properties") or {}).get("resources") or {}).get("requests") or {}
        gpu = requests.get("gpu") if isinstance(requests, dict) else None
        if isinstance(gpu, dict) and gpu.get("sku"):
            return str(gpu["sku"])
    return "Gpu"


def body_problems(group: str, body: JSON) -> list[Problem]:
    """Every rule `body` (a PUT body that fits the spec) breaks, in the order ACI reports them."""
    props = body.get("properties") or {}
    out = [Problem(code, path, message) for code, path, message in name_problems(group, body)]
    out += env_problems(group, props)
    out += request_problems(group, props)
    out += resource_problems(group, props)
    out += network_problems(group, props)
    out += volume_problems(props)
    return out
