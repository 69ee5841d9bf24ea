"""The observed side: a container group as Azure reports it (GET or list), secrets already absent.

Built by `reconciler.cloud` from SDK responses; read by planning, execution and the engine.
"""

from __future__ import annotations

import json
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# ACI cannot update a group whose containers have run to completion; planning replaces such a group.
TERMINATED_STATES = frozenset({"Succeeded", "Failed"})


class PackedBody(Mapping[str, Any]):
    """A live group's ARM JSON kept as its compact JSON text and decoded when read.

    A fleet's live bodies are what a daemon holds most of between passes (a decoded body is about four
    times its text), and after the first pass they are read only for a group whose manifest changed. The
    last body read stays decoded (one at a time, for the whole process), so the several reads that planning
    one group makes decode it once. Read-only, like every live body."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> PackedBody:
        return cls(json.dumps(body, separators=(",", ":"), ensure_ascii=False, check_circular=False))

    def decoded(self) -> dict[str, Any]:
        global _last_decoded  # noqa: PLW0603 - the one-entry cache described above
        last = _last_decoded
        if last[0] is self:
            return last[1]
        value: dict[str, Any] = json.loads(self.text)
        _last_decoded = (self, value)
        return value

    def __getitem__(self, key: str) -> Any:
        return self.decoded()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.decoded().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.decoded()

    def __iter__(self) -> Iterator[str]:
        return iter(self.decoded())

    def __len__(self) -> int:
        return len(self.decoded())

    def keys(self) -> KeysView[str]:
        return self.decoded().keys()

    def items(self) -> ItemsView[str, Any]:
        return self.decoded().items()

    def values(self) -> ValuesView[Any]:
        return self.decoded().values()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PackedBody):
            return self.text == other.text or self.decoded() == other.decoded()
        if isinstance(other, Mapping):
            return self.decoded() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # a mapping, compared by content: unhashable like a dict

    def __repr__(self) -> str:
        return repr(self.decoded())


_last_decoded: tuple[PackedBody | None, dict[str, Any]] = (None, {})


class ObservedGroup(BaseModel):
    """One live container group.

    `body` is the ARM JSON of the resource exactly as the service returned it (camelCase keys,
    `properties`, server defaults, read-only fields); planning normalises it before comparing. The adapter
    gives a `PackedBody`; anything else may give a dict. Never changed in place.
    `instance_state` is `properties.instanceView.state`, known only after a GET (list omits it).
    """

    model_config = ConfigDict(frozen=True)

    resource_group: str
    name: str
    id: str = ""
    location: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    body: Mapping[str, Any] = Field(default_factory=dict)
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
