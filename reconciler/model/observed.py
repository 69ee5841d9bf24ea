"""The observed side: a container group as Azure reports it (GET or list), secrets already absent.

Built by `reconciler.cloud` from SDK responses; read by planning, execution and the engine.
"""

from __future__ import annotations

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
