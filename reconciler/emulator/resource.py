"""Pure rules about container-group bodies: the defaults Azure fills, secret stripping, immutable fields.

Called by `store.py` when a PUT is accepted (defaults, immutability) and when anything is rendered for a
client or written to the state file (secret stripping). No I/O, no clock: every function here is a pure
function of its arguments, so the rules can be tested on their own.

What Azure fills in (from the recorded 2023-05-01 traffic): `sku: Standard`, `provisioningTimeoutInSeconds:
1800`, `isCustomProvisioningTimeout: false`, `initContainers: []`, per container `ports: []` and
`environmentVariables: []`, numbers as floats for cpu/memory, a lowercase location without spaces,
`ipAddress.ip` and `ipAddress.fqdn` (`<label>.<location>.azurecontainer.io`), `protocol: TCP` on group
ports, `restartPolicy: Always`, and principal ids for managed identities.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import uuid
from typing import Any

JSON = dict[str, Any]

EMULATOR_TENANT_ID = "00000000-0000-0000-0000-00000000e4d1"
# An allow-all confidential-computing enforcement policy (Rego), base64 as Azure returns it.
DEFAULT_CCE_POLICY = base64.b64encode(
    b'package policy\n\napi_svn := "0.10.0"\n\n'
    b'mount_device := {"allowed": true}\nmount_overlay := {"allowed": true}\n'
    b'create_container := {"allowed": true, "env_list": null, "allow_stdio_access": true}\n'
    b'unmount_device := {"allowed": true}\nunmount_overlay := {"allowed": true}\n'
    b'exec_in_container := {"allowed": true, "env_list": null}\n'
    b'exec_external := {"allowed": true, "env_list": null, "allow_stdio_access": true}\n'
    b'shutdown_container := {"allowed": true}\nsignal_container_process := {"allowed": true}\n'
    b'plan9_mount := {"allowed": true}\nplan9_unmount := {"allowed": true}\n'
    b'get_properties := {"allowed": true}\ndump_stacks := {"allowed": true}\n'
    b'runtime_logging := {"allowed": true}\nload_fragment := {"allowed": true}\n'
    b'scratch_mount := {"allowed": true}\nscratch_unmount := {"allowed": true}\n'
).decode()


_NAME = re.compile(r"^(?!-)(?!.*--)[a-z0-9-]{1,63}(?<!-)$")
# Group names may be upper case: ARM names are case-insensitive and case-preserving, and Microsoft's ARM and
# YAML tutorials deploy `myContainerGroup`.
_GROUP_NAME = re.compile(r"^(?!-)(?!.*--)[A-Za-z0-9-]{1,63}(?<!-)$")
_DNS_LABEL = re.compile(r"^[a-z][a-z0-9-]{3,61}[a-z0-9]$")


def name_problems(name: str, body: JSON) -> list[tuple[str, str, str]]:
    """ACI's naming rules for a new group: (code, path, message) for each broken one.

    Group and container names: 1-63 letters (containers: lowercase), digits and hyphens, no hyphen first,
    last or twice in a row; container names unique; a DNS name label starts with a letter, ends with a letter
    or digit, 5-63 characters.
    """
    out: list[tuple[str, str, str]] = []
    rule = (
        "can contain only lowercase letters, numbers and hyphens, cannot start or end with a hyphen or "
        "have two hyphens in a row, and must be between 1 and 63 characters long"
    )
    if not _GROUP_NAME.match(name):
        message = f"The container group name '{name}' is invalid. It {rule}."
        out.append(("InvalidContainerGroupName", "", message))
    props = body.get("properties") or {}
    seen: set[str] = set()
    for section in ("containers", "initContainers"):
        for i, container in enumerate(props.get(section) or []):
            cname = str((container or {}).get("name", ""))
            if not _NAME.match(cname):
                out.append(
                    (
                        "InvalidContainerName",
                        f"/properties/{section}/{i}/name",
                        f"The container name '{cname}' in container group '{name}' is invalid. It {rule}.",
                    )
                )
            elif cname in seen:
                out.append(
                    (
                        "DuplicateContainerName",
                        f"/properties/{section}/{i}/name",
                        f"The container name '{cname}' is used more than once in container group '{name}'.",
                    )
                )
            seen.add(cname)
    label = (props.get("ipAddress") or {}).get("dnsNameLabel")
    if label is not None and not _DNS_LABEL.match(str(label)):
        out.append(
            (
                "InvalidDnsNameLabel",
                "/properties/ipAddress/dnsNameLabel",
                f"The DNS name label '{label}' in container group '{name}' is invalid. It can contain only "
                "lowercase letters, numbers and hyphens. The first character must be a letter. The last "
                "character must be a letter or number. The value must be between 5 and 63 characters long.",
            )
        )
    return out


def normalize_location(location: str) -> str:
    return location.replace(" ", "").lower()


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


def assigned_ip(key: str, ip_type: str) -> str:
    """A stable, plausible address for a group: public in 20.0.0.0/8, private in 10.0.0.0/16."""
    d = _digest(key)
    if ip_type.lower() == "private":
        return f"10.0.{d[0]}.{max(4, d[1] % 255)}"
    return f"20.{d[0]}.{d[1]}.{max(1, d[2] % 255)}"


def _stable_uuid(*parts: str) -> str:
    return str(uuid.UUID(bytes=_digest(*parts)[:16], version=4))


def _as_float(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    return value


def _fill_container(container: JSON, *, init: bool) -> None:
    props = container.setdefault("properties", {})
    if not init:
        props.setdefault("ports", [])
    props.setdefault("environmentVariables", [])
    resources = props.get("resources")
    if isinstance(resources, dict):
        for section in ("requests", "limits"):
            values = resources.get(section)
            if isinstance(values, dict):
                for field in ("cpu", "memoryInGB"):
                    if field in values:
                        values[field] = _as_float(values[field])


def apply_defaults(body: JSON, *, key: str, location: str, previous: JSON | None) -> JSON:
    """The stored form of an accepted PUT body: a deep copy with Azure's defaults filled in.

    `previous` is the stored body of the group being updated (None on create); Azure keeps the IP address
    and the identity principal ids across updates, so they are carried over from it.
    """
    out = copy.deepcopy(body)
    out["location"] = normalize_location(str(out.get("location", "")))
    props: JSON = out.setdefault("properties", {})
    props.setdefault("sku", "Standard")
    props.setdefault("provisioningTimeoutInSeconds", 1800)
    props.setdefault("isCustomProvisioningTimeout", False)
    props.setdefault("restartPolicy", "Always")
    for container in props.get("containers") or []:
        if isinstance(container, dict):
            _fill_container(container, init=False)
    props.setdefault("initContainers", [])
    for container in props.get("initContainers") or []:
        if isinstance(container, dict):
            _fill_container(container, init=True)

    ip = props.get("ipAddress")
    if isinstance(ip, dict):
        ip_type = str(ip.get("type", "Public"))
        prev_ip = ((previous or {}).get("properties") or {}).get("ipAddress") or {}
        same_type = str(prev_ip.get("type", "")).lower() == ip_type.lower()
        ip["ip"] = prev_ip.get("ip") if same_type and prev_ip.get("ip") else assigned_ip(key, ip_type)
        for port in ip.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
        label = ip.get("dnsNameLabel")
        if label:
            ip["fqdn"] = f"{label}.{out['location']}.azurecontainer.io"
        else:
            # Recorded 2023-05-01 traffic: without a label Azure drops the scope it was sent.
            ip.pop("fqdn", None)
            ip.pop("autoGeneratedDomainNameLabelScope", None)

    if str(props.get("sku", "")).lower() == "confidential":
        # Azure generates an allow-all enforcement policy when a confidential group brings none.
        confidential = props.setdefault("confidentialComputeProperties", {})
        if isinstance(confidential, dict) and not confidential.get("ccePolicy"):
            confidential["ccePolicy"] = DEFAULT_CCE_POLICY

    identity = out.get("identity")
    if isinstance(identity, dict):
        kind = str(identity.get("type", "")).lower()
        if kind and kind != "none":
            identity["tenantId"] = EMULATOR_TENANT_ID
        if "systemassigned" in kind:
            identity["principalId"] = _stable_uuid(key, "system")
        users = identity.get("userAssignedIdentities")
        if isinstance(users, dict):
            for rid in list(users):
                users[rid] = {
                    "principalId": _stable_uuid(rid.lower(), "principal"),
                    "clientId": _stable_uuid(rid.lower(), "client"),
                }
    return out


def json_copy(body: JSON) -> JSON:
    """A deep copy of a JSON body; several times faster than `copy.deepcopy` for plain JSON."""
    copied: JSON = json.loads(json.dumps(body))
    return copied


def strip_secrets(body: JSON) -> JSON:
    """A deep copy of a stored body without any secret: what GET, list, logs and the state file get.

    Azure drops `secureValue` (keeping the variable's name), registry passwords, storage account keys,
    the contents of secret volumes (leaving `{}`), the Log Analytics workspace key and resource id, and
    the protected settings of extensions.
    """
    out = json_copy(body)
    props = out.get("properties")
    if not isinstance(props, dict):
        return out
    for section in ("containers", "initContainers"):
        for container in props.get(section) or []:
            cprops = container.get("properties") if isinstance(container, dict) else None
            if not isinstance(cprops, dict):
                continue
            for env in cprops.get("environmentVariables") or []:
                if isinstance(env, dict):
                    env.pop("secureValue", None)
    for cred in props.get("imageRegistryCredentials") or []:
        if isinstance(cred, dict):
            cred.pop("password", None)
    for volume in props.get("volumes") or []:
        if not isinstance(volume, dict):
            continue
        if isinstance(volume.get("secret"), dict):
            volume["secret"] = {}
        if isinstance(volume.get("azureFile"), dict):
            volume["azureFile"].pop("storageAccountKey", None)
    log_analytics = (props.get("diagnostics") or {}).get("logAnalytics")
    if isinstance(log_analytics, dict):
        log_analytics.pop("workspaceKey", None)
        log_analytics.pop("workspaceResourceId", None)  # x-ms-secret in the spec
    for extension in props.get("extensions") or []:
        eprops = extension.get("properties") if isinstance(extension, dict) else None
        if isinstance(eprops, dict):
            eprops.pop("protectedSettings", None)
    return out


def _requests_and_limits(container: JSON) -> dict[str, Any]:
    resources = ((container.get("properties") or {}).get("resources")) or {}
    out: dict[str, Any] = {}
    for section in ("requests", "limits"):
        values = resources.get(section) or {}
        for field in ("cpu", "memoryInGB", "gpu"):
            value = values.get(field)
            out[f"{section}.{field}"] = _as_float(value) if field != "gpu" else value
    return out


def _subnets(props: JSON) -> list[str]:
    return sorted(str((s or {}).get("id", "")).lower() for s in props.get("subnetIds") or [])


def immutable_changes(old: JSON, new: JSON) -> list[str]:
    """The paths of `new` that ACI cannot change in place on a group stored as `old` (empty: allowed).

    ACI answers all of these with one error, `InvalidContainerGroupUpdate`: os type, restart policy,
    network profile (subnets), and the CPU, memory or GPU of any container; also the set of containers.
    """
    old_props: JSON = old.get("properties") or {}
    new_props: JSON = new.get("properties") or {}
    changed: list[str] = []
    if str(old_props.get("osType", "")).lower() != str(new_props.get("osType", "")).lower():
        changed.append("/properties/osType")
    if (
        str(old_props.get("restartPolicy", "Always")).lower()
        != str(new_props.get("restartPolicy", "Always")).lower()
    ):
        changed.append("/properties/restartPolicy")
    if _subnets(old_props) != _subnets(new_props):
        changed.append("/properties/subnetIds")
    old_containers = {c.get("name"): c for c in old_props.get("containers") or [] if isinstance(c, dict)}
    new_containers = [c for c in new_props.get("containers") or [] if isinstance(c, dict)]
    if set(old_containers) != {c.get("name") for c in new_containers}:
        changed.append("/properties/containers")
        return changed
    for index, container in enumerate(new_containers):
        before = _requests_and_limits(old_containers[container.get("name")])
        after = _requests_and_limits(container)
        for field, value in after.items():
            if before.get(field) != value:
                section, name = field.split(".")
                changed.append(f"/properties/containers/{index}/properties/resources/{section}/{name}")
    return changed
