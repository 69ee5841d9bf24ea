"""What the daemon tells people about: one `Event` per thing that needs them, built where it happens.

Emitted by the worker (replace, prune, stalled, recovered, conflict, drift corrected, the result of a
revision), the job scheduler (job succeeded or failed) and the coordination (leadership); consumed by
`reconciler.daemon.notify.dispatch`. Events carry names, states and messages that were already redacted,
never a manifest or a secret value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

Severity = Literal["info", "warning", "error"]
SEVERITY_ORDER: dict[str, int] = {"info": 0, "warning": 1, "error": 2}
Detail = dict[str, str | int | float | bool | None]


class EventKind(StrEnum):
    REPLACE = "replace"  # a group was deleted and created again (or that failed)
    PRUNE = "prune"  # a group whose manifest is gone was deleted
    STALLED = "stalled"  # a group needs a person: invalid manifest, rejected update, authorisation
    RECOVERED = "recovered"  # a stalled or failing group is Ready again
    CONFLICT = "conflict"  # a manifest names a group that exists and is not ours (failIfExists)
    DRIFT_CORRECTED = "drift_corrected"  # Azure moved away from what was applied; it was put back
    JOB_SUCCEEDED = "job_succeeded"
    JOB_FAILED = "job_failed"  # failed, timed out, cancelled, or could not run
    LEADERSHIP = "leadership"  # this replica gained or lost the lease of a shard
    REVISION = "revision"  # a revision is being applied, or was (GitHub commit statuses)


# Every kind but `revision`, which only commit statuses want: the default of a receiver without `events`.
DEFAULT_KINDS = frozenset(EventKind) - {EventKind.REVISION}


@dataclass(frozen=True)
class Event:
    kind: EventKind
    instance: str
    at: float  # epoch seconds
    summary: str  # one sentence for people
    severity: Severity = "info"
    resource_group: str | None = None
    name: str | None = None
    revision: str | None = None
    detail: Detail = field(default_factory=dict)

    @property
    def address(self) -> str | None:
        if self.resource_group is None or self.name is None:
            return None
        return f"{self.resource_group}/{self.name}"

    @property
    def dedup_key(self) -> str:
        """Two events with this key say the same thing: the kind, the group, the revision and the detail
        (not the time, not the wording)."""
        material = json.dumps(
            [
                self.kind.value,
                (self.resource_group or "").lower(),
                (self.name or "").lower(),
                self.revision,
                sorted(self.detail.items()),
            ],
            default=str,
        )
        return hashlib.sha256(material.encode()).hexdigest()[:24]

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "instance": self.instance,
            "at": self.at,
            "severity": self.severity,
            "summary": self.summary,
            "resource_group": self.resource_group,
            "name": self.name,
            "revision": self.revision,
            "detail": dict(self.detail),
        }
