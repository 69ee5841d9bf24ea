"""The observed side: a container group as Azure reports it (GET or list), secrets already absent.

Built by `reconciler.cloud` from SDK responses; read by planning, execution and the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# ACI cannot update a group whose containers have run to completion; planning replaces such a group.
TERMINATED_STATES = frozenset({"Succeeded", "Failed"})


class ObservedGroup(BaseModel):
    """One live container group.

    `body` is the ARM JSON of the resource exactly as the service returned it (camelCase keys,
    `properties`, server defaults, read-only fields); planning normalises it before comparing.
    `instance_state` is `properties.instanceView.state`, known only after a GET (list omits it).
    """

    model_config = ConfigDict(frozen=True)

    resource_group: str
    name: str
    id: str = ""
    location: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] = Field(default_factory=dict)
    provisioning_state: str | None = None
    instance_state: str | None = None

    @property
    def restart_policy(self) -> str:
        props = self.body.get("properties") or {}
        return str(props.get("restartPolicy") or "Always")

    @property
    def terminated(self) -> bool:
        """True when the group ran to completion (a job), so ACI rejects updates to it."""
        return self.instance_state in TERMINATED_STATES and self.restart_policy != "Always"

    def container_views(self) -> dict[str, Mapping[str, Any]]:
        """Each container's `instanceView` (init containers first), by name; a container without one is
        left out (a list result, or a group not placed yet)."""
        props = self.body.get("properties") or {}
        views: dict[str, Mapping[str, Any]] = {}
        for section in ("initContainers", "containers"):
            for item in props.get(section) or ():
                if not isinstance(item, Mapping):
                    continue
                view = (item.get("properties") or {}).get("instanceView")
                if isinstance(view, Mapping):
                    views[str(item.get("name"))] = view
        return views
