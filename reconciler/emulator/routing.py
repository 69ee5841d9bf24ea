"""Which ARM operation a request path names, and how ARM writes paths and page tokens.

Used by the ARM routes (`arm/`) to dispatch and to word errors, and by the core's groups view to read a
resource id. ARM matches the fixed segments of a path without regard to case.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from reconciler.emulator.errors import bad_request


@dataclass(frozen=True)
class Route:
    name: str
    subscription: str = ""
    resource_group: str = ""
    group: str = ""
    container: str = ""
    location: str = ""
    operation: str = ""
    action: str = ""


def match_route(path: str) -> Route | None:
    """The ARM operation `path` names, or None when the emulator serves no such path."""
    segs = [s for s in path.split("/") if s]
    low = [s.lower() for s in segs]
    if len(segs) < 5 or low[0] != "subscriptions":
        return None
    sub = segs[1]
    provider = ["providers", "microsoft.containerinstance"]
    if low[2:4] == provider:
        if len(segs) == 5 and low[4] == "containergroups":
            return Route("containerGroups.listBySubscription", subscription=sub)
        if len(segs) == 8 and low[4] == "locations" and low[6] == "operations":
            return Route("operation", subscription=sub, location=segs[5], operation=segs[7])
        return None
    if (
        len(segs) == 8
        and low[2] == "resourcegroups"
        and low[4:8] == ["providers", "microsoft.resources", "tags", "default"]
    ):
        return Route("tags.resourceGroup", subscription=sub, resource_group=segs[3])
    if low[2] != "resourcegroups" or len(segs) < 7 or low[4:6] != provider or low[6] != "containergroups":
        return None
    rg = segs[3]
    if len(segs) == 7:
        return Route("containerGroups.listByResourceGroup", subscription=sub, resource_group=rg)
    name = segs[7]
    if len(segs) == 8:
        return Route("containerGroup", subscription=sub, resource_group=rg, group=name)
    if len(segs) == 9 and low[8] in ("restart", "stop", "start"):
        return Route(
            f"containerGroup.{low[8]}", subscription=sub, resource_group=rg, group=name, action=low[8]
        )
    if len(segs) == 11 and low[8] == "containers" and low[10] == "logs":
        return Route("containers.logs", subscription=sub, resource_group=rg, group=name, container=segs[9])
    return None


def arm_path(pointer: str) -> str:
    """`/properties/containers/0/name` -> `properties.containers[0].name`, as ARM writes paths."""
    out = ""
    for part in (p for p in pointer.split("/") if p):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def encode_token(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def decode_token(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request("The $skipToken is not valid.", "InvalidSkipToken") from exc
