"""Builders for planning tests: manifests (through the model's contract), and a simulated ARM server that
turns an applied body into what a GET returns (server defaults, 1 -> 1.0, secrets stripped, read-only
fields, ownership tags), modelled on the recorded responses under ../shared/azure/recordings/.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from reconciler.model.manifest import GroupManifest, parse_manifest
from reconciler.model.observed import ObservedGroup
from reconciler.planning.plan import DesiredGroup, write_tags_for

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "azure"
KEY = b"test-secret-key"
INSTANCE = "prod"
REVISION = "abc123"


def base_properties(**overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "osType": "Linux",
        "containers": [
            {
                "name": "web",
                "properties": {
                    "image": "nginx:1.25",
                    "command": ["/bin/sh", "-c", "nginx -g 'daemon off;'"],
                    "environmentVariables": [{"name": "MODE", "value": "prod"}],
                    "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                    "ports": [{"port": 80}],
                },
            }
        ],
        "ipAddress": {"type": "Public", "dnsNameLabel": "web-prod", "ports": [{"port": 80}]},
    }
    props.update(overrides)
    return props


def manifest(
    *,
    name: str = "web",
    resource_group: str = "rg-prod",
    location: str = "westeurope",
    tags: dict[str, str] | None = None,
    properties: dict[str, Any] | None = None,
    reconcile: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> GroupManifest:
    data: dict[str, Any] = {
        "name": name,
        "resourceGroup": resource_group,
        "location": location,
        "tags": tags or {},
        "properties": properties if properties is not None else base_properties(),
    }
    if reconcile is not None:
        data["reconcile"] = reconcile
    data.update(extra or {})
    return parse_manifest(data)


def desired(m: GroupManifest, source: str | None = "manifests/web.yaml:1:1") -> DesiredGroup:
    return DesiredGroup(manifest=m, source=source)


def _server_defaults(body: dict[str, Any]) -> dict[str, Any]:
    """What ACI adds and strips on GET, per the recordings (see reconciler.planning.normalise)."""
    props = body.setdefault("properties", {})
    props.setdefault("sku", "Standard")
    props.setdefault("initContainers", [])
    props["provisioningState"] = "Succeeded"
    props["instanceView"] = {"events": [], "state": "Running"}
    for container in props.get("containers", []):
        cp = container.setdefault("properties", {})
        cp.setdefault("ports", [])
        cp.setdefault("environmentVariables", [])
        for env in cp["environmentVariables"]:
            env.pop("secureValue", None)
        for res in cp.get("resources", {}).values():
            for k in ("cpu", "memoryInGB"):
                if k in res:
                    res[k] = float(res[k])
        cp["instanceView"] = {"restartCount": 0, "currentState": {"state": "Running"}, "events": []}
    for cred in props.get("imageRegistryCredentials", []):
        cred.pop("password", None)
        cred.setdefault("isDelegatedIdentity", False)
    for vol in props.get("volumes", []):
        if "secret" in vol:
            vol["secret"] = {}
        if "azureFile" in vol:
            vol["azureFile"].pop("storageAccountKey", None)
    ip = props.get("ipAddress")
    if ip:
        ip["ip"] = "20.1.2.3"
        for port in ip.get("ports", []):
            port.setdefault("protocol", "TCP")
        if ip.get("dnsNameLabel"):
            ip["fqdn"] = f"{ip['dnsNameLabel']}.westeurope.azurecontainer.io"
    la = props.get("diagnostics", {}).get("logAnalytics")
    if la:
        la.pop("workspaceKey", None)
    # The service reports locations in display-ish form ("WestUs" in the spec examples).
    if isinstance(body.get("location"), str):
        body["location"] = body["location"].title().replace(" ", "")
    return body


def applied(
    m: GroupManifest,
    *,
    instance: str = INSTANCE,
    revision: str = REVISION,
    key: bytes = KEY,
    tags: dict[str, str] | None = None,
    instance_state: str | None = "Running",
) -> ObservedGroup:
    """The live group after this reconciler applied `m` (tags as it writes them, unless `tags` is given)."""
    body = copy.deepcopy(m.to_arm_body(reveal_secrets=True))
    body = _server_defaults(body)
    if tags is None:
        tags = write_tags_for(desired(m), instance=instance, revision=revision, secret_key=key)
    body["tags"] = dict(tags)
    body["id"] = (
        f"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/{m.resource_group}"
        f"/providers/Microsoft.ContainerInstance/containerGroups/{m.name}"
    )
    body["name"] = m.name
    body["type"] = "Microsoft.ContainerInstance/containerGroups"
    return ObservedGroup(
        resource_group=m.resource_group,
        name=m.name,
        id=body["id"],
        location=body.get("location", ""),
        tags=dict(tags),
        body=body,
        provisioning_state="Succeeded",
        instance_state=instance_state,
    )


def unmanaged(m: GroupManifest, tags: dict[str, str] | None = None) -> ObservedGroup:
    return applied(m, tags=dict(tags or {}))
