"""The pre-delete gate of a replace: would Azure accept, as a new group, the exact body about to be PUT?

Called by the executor (`reconciler.execution.executor`) before the DELETE of every replace, whether the plan
asked for it or Azure refused an in-place update. A replace is the one destructive step of an update (DESIGN
section 8): if the create that follows the delete is refused, the group is gone. So the body that will be
PUT, built from the manifest with its secrets resolved, is checked against the rules Azure applies to a new
group, and any problem stops the replace before anything is sent; the live group stays untouched.

The manifest model (`reconciler.model`) checks the same rules when a manifest is loaded. This is the second
line, on the wire form, so that a value that slipped past the model (`cpu: 1e309`, `"Infinity"`, a secret
that resolved to nothing) can never turn into a delete. Pure: no I/O; messages name JSON pointers and rules,
never a value (a value may be a secret).

Rules, and where they come from:

- every number finite: JSON has no infinity or NaN; `json.dumps` would send `Infinity`, which ARM refuses;
- numeric fields hold numbers (a string only when it spells a finite number: ARM's deserialiser converts
  `"80"`), integers are integral and fit in int32 (the spec's `format: int32`);
- `cpu` and `memoryInGB` above 0 and at most `MAX_CPU` / `MAX_MEMORY_GB` (ACI's largest sizes are far below;
  a larger number is a typo that Azure refuses); memory in steps of 0.1 GB ("The memory requirement should
  be times of 0.1 GB", ACI's message); limits not below requests; GPU count 1, 2 or 4;
- ports 1..65535; probe timings and security-context ids within the spec's bounds;
- the required parts of a new group: location, osType, at least one container, each with a name, an image
  and resource requests;
- every write-only value present and not empty: secure environment values, registry passwords (unless the
  registry is reached by identity), Azure File storage keys, secret-volume files, the Log Analytics
  workspace key. GET never returns them, so an empty one would be written over the live value for good.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Any

MAX_CPU = 64.0
MAX_MEMORY_GB = 1024.0
INT32_MAX = 2**31 - 1

# Integer fields of a container and their lower bounds (the manifest model and the spec agree).
_PROBE_INTS = {
    "initialDelaySeconds": 0,
    "periodSeconds": 1,
    "failureThreshold": 1,
    "successThreshold": 1,
    "timeoutSeconds": 1,
}
_SECURITY_INTS = {"runAsUser": 0, "runAsGroup": 0}


def _ptr(*parts: object) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def _walk_numbers(value: Any, path: str) -> Iterator[str]:
    """Pointers of every non-finite float anywhere in `value`."""
    if isinstance(value, float) and not math.isfinite(value):
        yield path
    elif isinstance(value, Mapping):
        for key, child in value.items():
            yield from _walk_numbers(child, f"{path}/{key}")
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _walk_numbers(child, f"{path}/{index}")


def _number(value: Any) -> float | None:
    """The finite number `value` stands for (a string spelling one counts), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            parsed = float(value.strip())
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


class _Check:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def bad(self, path: str, rule: str) -> None:
        message = f"{path}: {rule}"
        if message not in self.problems:
            self.problems.append(message)

    def number(
        self, obj: Mapping[str, Any], key: str, path: str, *, low: float, high: float, low_open: bool = False
    ) -> float | None:
        if key not in obj or obj[key] is None:
            return None
        where = f"{path}/{key}"
        value = _number(obj[key])
        if value is None:
            self.bad(where, "is not a finite number")
            return None
        if value < low or (low_open and value == low) or value > high:
            lower = f"above {low:g}" if low_open else f"at least {low:g}"
            self.bad(where, f"must be {lower} and at most {high:g}")
            return None
        return value

    def integer(
        self, obj: Mapping[str, Any], key: str, path: str, *, low: int, high: int = INT32_MAX
    ) -> None:
        value = self.number(obj, key, path, low=low, high=high)
        if value is not None and not value.is_integer():
            self.bad(f"{path}/{key}", "must be a whole number")

    def secret(self, obj: Mapping[str, Any], key: str, path: str, what: str) -> None:
        value = obj.get(key)
        if not isinstance(value, str) or not value.strip():
            self.bad(f"{path}/{key}", f"{what} is empty: Azure keeps no copy, so the group would lose it")


def _resources(check: _Check, resources: Any, path: str) -> None:
    if not isinstance(resources, Mapping) or not isinstance(resources.get("requests"), Mapping):
        check.bad(f"{path}/requests", "resource requests (cpu, memoryInGB) are required")
        return
    sizes: dict[str, dict[str, float | None]] = {}
    for section in ("requests", "limits"):
        values = resources.get(section)
        if not isinstance(values, Mapping):
            continue
        where = f"{path}/{section}"
        if section == "requests":
            for key in ("cpu", "memoryInGB"):
                if values.get(key) is None:
                    check.bad(f"{where}/{key}", "is required")
        cpu = check.number(values, "cpu", where, low=0, high=MAX_CPU, low_open=True)
        memory = check.number(values, "memoryInGB", where, low=0, high=MAX_MEMORY_GB, low_open=True)
        if memory is not None and abs(memory * 10 - round(memory * 10)) > 1e-6:
            check.bad(f"{where}/memoryInGB", "must be a multiple of 0.1 GB")
        gpu = values.get("gpu")
        if isinstance(gpu, Mapping):
            count = _number(gpu.get("count"))
            if count not in (1.0, 2.0, 4.0):
                check.bad(f"{where}/gpu/count", "must be 1, 2 or 4")
        sizes[section] = {"cpu": cpu, "memoryInGB": memory}
    requests, limits = sizes.get("requests", {}), sizes.get("limits", {})
    for key in ("cpu", "memoryInGB"):
        low, high = requests.get(key), limits.get(key)
        if low is not None and high is not None and high < low:
            check.bad(f"{path}/limits/{key}", "must not be below the request")


def _ports(check: _Check, ports: Any, path: str) -> None:
    for index, port in enumerate(ports if isinstance(ports, list) else []):
        if isinstance(port, Mapping):
            check.integer(port, "port", f"{path}/{index}", low=1, high=65535)


def _container(check: _Check, container: Any, path: str, *, init: bool) -> None:
    if not isinstance(container, Mapping) or not container.get("name"):
        check.bad(f"{path}/name", "a container needs a name")
        return
    props = container.get("properties")
    if not isinstance(props, Mapping):
        check.bad(f"{path}/properties", "is required")
        return
    where = f"{path}/properties"
    if not props.get("image"):
        check.bad(f"{where}/image", "is required")
    if not init:
        _resources(check, props.get("resources"), f"{where}/resources")
        _ports(check, props.get("ports"), f"{where}/ports")
        for probe in ("livenessProbe", "readinessProbe"):
            value = props.get(probe)
            if isinstance(value, Mapping):
                for key, low in _PROBE_INTS.items():
                    check.integer(value, key, f"{where}/{probe}", low=low)
                http = value.get("httpGet")
                if isinstance(http, Mapping):
                    check.integer(http, "port", f"{where}/{probe}/httpGet", low=1, high=65535)
    security = props.get("securityContext")
    if isinstance(security, Mapping):
        for key, low in _SECURITY_INTS.items():
            check.integer(security, key, f"{where}/securityContext", low=low)
    for index, env in enumerate(props.get("environmentVariables") or []):
        if isinstance(env, Mapping) and "secureValue" in env:
            name = env.get("name", index)
            check.secret(env, "secureValue", f"{where}/environmentVariables/{name}", "the secure value")


def replace_problems(body: Mapping[str, Any]) -> list[str]:
    """Why Azure would refuse `body` (the exact JSON of the PUT) as a new container group; empty when it
    passes every local rule. Each problem is `pointer: rule`, never a value."""
    check = _Check()
    for path in _walk_numbers(body, ""):
        check.bad(path, "is not a finite number (infinity or NaN cannot be sent as JSON)")
    if not body.get("location"):
        check.bad("/location", "is required")
    props = body.get("properties")
    if not isinstance(props, Mapping):
        check.bad("/properties", "is required")
        return check.problems
    if not props.get("osType"):
        check.bad("/properties/osType", "is required")
    containers = props.get("containers")
    if not isinstance(containers, list) or not containers:
        check.bad("/properties/containers", "at least one container is required")
    for section, init in (("containers", False), ("initContainers", True)):
        for index, container in enumerate(props.get(section) or []):
            name = container.get("name") if isinstance(container, Mapping) else None
            _container(check, container, _ptr("properties", section, name or index), init=init)
    ip = props.get("ipAddress")
    if isinstance(ip, Mapping):
        _ports(check, ip.get("ports"), "/properties/ipAddress/ports")
    for cred in props.get("imageRegistryCredentials") or []:
        if isinstance(cred, Mapping) and not cred.get("identity"):
            where = _ptr("properties", "imageRegistryCredentials", cred.get("server", "?"))
            check.secret(cred, "password", where, "the registry password")
    for volume in props.get("volumes") or []:
        if not isinstance(volume, Mapping):
            continue
        where = _ptr("properties", "volumes", volume.get("name", "?"))
        azure_file = volume.get("azureFile")
        if isinstance(azure_file, Mapping):
            check.secret(azure_file, "storageAccountKey", f"{where}/azureFile", "the storage account key")
        if "secret" in volume:
            files = volume.get("secret")
            if not isinstance(files, Mapping) or not files:
                check.bad(f"{where}/secret", "a secret volume without files would be emptied")
            else:
                for file_name in files:
                    check.secret(files, file_name, f"{where}/secret", "the secret file")
    log_analytics = (props.get("diagnostics") or {}).get("logAnalytics")
    if isinstance(log_analytics, Mapping):
        check.secret(
            log_analytics, "workspaceKey", "/properties/diagnostics/logAnalytics", "the workspace key"
        )
    return check.problems


__all__ = ["MAX_CPU", "MAX_MEMORY_GB", "replace_problems"]
