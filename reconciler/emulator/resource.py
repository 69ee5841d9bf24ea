"""Pure rules about container-group bodies: the defaults Azure fills, secret stripping, immutable fields.

Called by `server.py` and `store.py` when a PUT is accepted (defaults, immutability: `IMMUTABLE`) and
when anything is rendered for a client or written to the state file (secret stripping). No I/O, no clock:
every function here is a pure function of its arguments, so the rules can be tested on their own.

What Azure fills in (from the recorded 2023-05-01 traffic): `sku: Standard`, `provisioningTimeoutInSeconds:
1800`, `isCustomProvisioningTimeout: false`, `initContainers: []`, per container `ports: []` and
`environmentVariables: []`, numbers as floats for cpu/memory, a lowercase location without spaces,
`ipAddress.ip` and `ipAddress.fqdn` (`<label>.<location>.azurecontainer.io`), `protocol: TCP` on group
ports, and principal ids for managed identities. A group sent without `restartPolicy` is returned without
one (it runs as `Always`): only the oldest recordings (2018-10-01) show Azure filling it in.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

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


def _props(body: JSON) -> JSON:
    props = body.get("properties")
    return props if isinstance(props, dict) else {}


def _lower(value: Any, default: str = "") -> str:
    return str(value if value is not None else default).replace(" ", "").lower()


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str).lower()


def _containers(body: JSON) -> list[JSON]:
    return [c for c in _props(body).get("containers") or [] if isinstance(c, dict)]


def _container_set(old: JSON, new: JSON) -> list[str]:
    if {c.get("name") for c in _containers(old)} != {c.get("name") for c in _containers(new)}:
        return ["/properties/containers"]
    return []


def _resources(old: JSON, new: JSON) -> list[str]:
    if _container_set(old, new):
        return []  # the set of containers changed: that row speaks
    before = {c.get("name"): c for c in _containers(old)}
    changed: list[str] = []
    for index, container in enumerate(_containers(new)):
        was = _requests_and_limits(before[container.get("name")])
        for field, value in _requests_and_limits(container).items():
            if was.get(field) != value:
                section, name = field.split(".")
                changed.append(f"/properties/containers/{index}/properties/resources/{section}/{name}")
    return changed


def _subnets(props: JSON) -> list[str]:
    return sorted(str((s or {}).get("id", "")).lower() for s in props.get("subnetIds") or [])


def _ip(body: JSON) -> JSON | None:
    ip = _props(body).get("ipAddress")
    return ip if isinstance(ip, dict) else None


def _label_scope(body: JSON) -> str | None:
    ip = _ip(body)
    if ip is None or not ip.get("dnsNameLabel"):
        return None  # without a label Azure keeps no scope
    return _lower(ip.get("autoGeneratedDomainNameLabelScope"), "Unsecure")


def _differs(path: str, get: Callable[[JSON], Any]) -> Callable[[JSON, JSON], list[str]]:
    return lambda old, new: [path] if get(old) != get(new) else []


@dataclass(frozen=True)
class ImmutableField:
    """One field ACI does not change on an existing group.

    `pattern` is the path as the reconciler's planner writes it in its classification table (`*`: any one
    segment), so a test can compare the two lists row by row (the emulator imports nothing from the
    reconciler). `answer` is what Azure does with a PUT that changes it: `refuse` (400
    `InvalidContainerGroupUpdate`), or `keep` (the PUT succeeds and the group keeps the value it was created
    with). `label` is how Azure's per-property wording names it. `changes(old, new)` gives the concrete
    paths of `new` that differ from the stored `old` (both with the defaults filled).
    """

    pattern: str
    answer: Literal["refuse", "keep"]
    label: str
    changes: Callable[[JSON, JSON], list[str]]


# Every field ACI will not update in place: the delete-first list of Microsoft's "Update containers" page
# (OS type; CPU, memory or GPU; restart policy; network profile; availability zone), the fields a group is
# placed or billed by (location, SKU, priority, encryption, confidential settings, IP address type and its
# presence, the set of containers), and the DNS name label reuse scope, which Azure silently keeps
# (hashicorp/terraform-provider-azurerm#29020). One list; `immutable_changes` and `keep_immutable` read it.
IMMUTABLE: tuple[ImmutableField, ...] = (
    ImmutableField("/properties/containers/*/properties/resources", "refuse", "resources", _resources),
    ImmutableField("/properties/containers/*", "refuse", "containers", _container_set),
    ImmutableField(
        "/properties/osType",
        "refuse",
        "osType",
        _differs("/properties/osType", lambda b: _lower(_props(b).get("osType"))),
    ),
    ImmutableField(
        "/properties/restartPolicy",
        "refuse",
        "restartPolicy",
        _differs("/properties/restartPolicy", lambda b: _lower(_props(b).get("restartPolicy"), "Always")),
    ),
    ImmutableField(
        "/properties/subnetIds",
        "refuse",
        "subnetIds",
        _differs("/properties/subnetIds", lambda b: _subnets(_props(b))),
    ),
    ImmutableField(
        "/location", "refuse", "location", _differs("/location", lambda b: _lower(b.get("location")))
    ),
    ImmutableField(
        "/zones",
        "refuse",
        "zones",
        _differs("/zones", lambda b: sorted(str(z) for z in b.get("zones") or [])),
    ),
    ImmutableField(
        "/properties/sku",
        "refuse",
        "sku",
        _differs("/properties/sku", lambda b: _lower(_props(b).get("sku"), "Standard")),
    ),
    ImmutableField(
        "/properties/priority",
        "refuse",
        "priority",
        _differs("/properties/priority", lambda b: _lower(_props(b).get("priority"), "Regular")),
    ),
    ImmutableField(
        "/properties/encryptionProperties",
        "refuse",
        "encryptionProperties",
        _differs("/properties/encryptionProperties", lambda b: _canon(_props(b).get("encryptionProperties"))),
    ),
    ImmutableField(
        "/properties/confidentialComputeProperties",
        "refuse",
        "confidentialComputeProperties",
        _differs(
            "/properties/confidentialComputeProperties",
            lambda b: _canon(_props(b).get("confidentialComputeProperties")),
        ),
    ),
    ImmutableField(
        "/properties/ipAddress/type",
        "refuse",
        "ipAddress.type",
        lambda old, new: (
            ["/properties/ipAddress/type"]
            if _ip(old) is not None
            and _ip(new) is not None
            and _lower((_ip(old) or {}).get("type")) != _lower((_ip(new) or {}).get("type"))
            else []
        ),
    ),
    ImmutableField(
        "/properties/ipAddress",
        "refuse",
        "ipAddress",
        lambda old, new: ["/properties/ipAddress"] if (_ip(old) is None) != (_ip(new) is None) else [],
    ),
    ImmutableField(
        "/properties/ipAddress/autoGeneratedDomainNameLabelScope",
        "keep",
        "ipAddress.autoGeneratedDomainNameLabelScope",
        lambda old, new: (
            ["/properties/ipAddress/autoGeneratedDomainNameLabelScope"]
            if _label_scope(old) is not None
            and _label_scope(new) is not None
            and _label_scope(old) != _label_scope(new)
            else []
        ),
    ),
)


def refused_fields(old: JSON, new: JSON) -> list[ImmutableField]:
    """The rows of `IMMUTABLE` that Azure refuses to change from `old` to `new` (both defaults-filled)."""
    return [row for row in IMMUTABLE if row.answer == "refuse" and row.changes(old, new)]


def immutable_changes(old: JSON, new: JSON) -> list[str]:
    """The paths of `new` that ACI refuses to change in place on a group stored as `old` (empty: allowed).

    ACI answers all of these with one error, `InvalidContainerGroupUpdate` (see `errors.invalid_update`).
    """
    return [path for row in refused_fields(old, new) for path in row.changes(old, new)]


def keep_immutable(old: JSON, new: JSON) -> JSON:
    """`new` (an accepted update, defaults filled) with the fields Azure keeps as created put back."""
    out = new
    for row in IMMUTABLE:
        if row.answer != "keep" or not row.changes(old, new):
            continue
        if row.pattern == "/properties/ipAddress/autoGeneratedDomainNameLabelScope":
            old_ip, new_ip = _ip(old) or {}, _ip(out) or {}
            if "autoGeneratedDomainNameLabelScope" in old_ip:
                new_ip["autoGeneratedDomainNameLabelScope"] = old_ip["autoGeneratedDomainNameLabelScope"]
            else:
                new_ip.pop("autoGeneratedDomainNameLabelScope", None)
    return out
