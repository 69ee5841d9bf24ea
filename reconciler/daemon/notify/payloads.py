"""The body of each kind of receiver for one event: pure functions of the event (and the receiver's fixed
settings), called by `reconciler.daemon.notify.dispatch`.

Group names, tags and messages are user input: Slack's `&`, `<`, `>` are escaped (so `<!channel>` or a link
cannot be smuggled in), Teams' card text has its markdown punctuation escaped, and GitHub's description is
cut to its 140 characters. Every string passes through the log redactor first (defence in depth: events are
built from already-masked text).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from reconciler.daemon.notify.events import Event, EventKind

Redact = Callable[[str], str]

PAYLOAD_VERSION = "1"
SIGNATURE_HEADER = "X-Reconciler-Signature-256"
TIMESTAMP_HEADER = "X-Reconciler-Timestamp"
GITHUB_DESCRIPTION_MAX = 140

_TITLES: dict[EventKind, str] = {
    EventKind.REPLACE: "Replaced",
    EventKind.PRUNE: "Pruned",
    EventKind.STALLED: "Stalled",
    EventKind.RECOVERED: "Recovered",
    EventKind.CONFLICT: "Conflict",
    EventKind.DRIFT_CORRECTED: "Drift corrected",
    EventKind.JOB_SUCCEEDED: "Job succeeded",
    EventKind.JOB_FAILED: "Job failed",
    EventKind.LEADERSHIP: "Leadership",
    EventKind.REVISION: "Revision",
}
_ICONS = {"info": "\u2139\ufe0f", "warning": "\u26a0\ufe0f", "error": "\u274c"}


def title(event: Event) -> str:
    return _TITLES[event.kind]


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def redacted(event: Event, redact: Redact) -> dict[str, Any]:
    """The event as JSON with every string masked by `redact`."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return redact(value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    data = clean(event.to_json())
    assert isinstance(data, dict)  # to_json is an object
    return data


def webhook_body(event: Event, delivery: str, redact: Redact) -> dict[str, Any]:
    """The generic webhook's JSON: the event, a delivery id (the receiver's idempotency key) and the time
    as ISO 8601 beside the epoch seconds."""
    return {
        "type": "aci-reconciler.event",
        "version": PAYLOAD_VERSION,
        "delivery": delivery,
        "time": iso(event.at),
        **redacted(event, redact),
    }


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """`sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>`: the timestamp is signed too, so a receiver
    that refuses old timestamps cannot be fed a recorded delivery again."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    """What a receiver does (and the tests): constant-time comparison of the signature header."""
    if not timestamp.isdigit():
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_code(text: str) -> str:
    return _slack_escape(text).replace("`", "'")


def _facts(event: Event, redact: Redact) -> list[tuple[str, str]]:
    facts: list[tuple[str, str]] = []
    if event.address:
        facts.append(("Group", redact(event.address)))
    facts.append(("Instance", redact(event.instance)))
    if event.revision:
        facts.append(("Revision", redact(event.revision[:12])))
    for key, value in sorted(event.detail.items()):
        if value is not None and value != "":
            facts.append((key.replace("_", " ").capitalize(), redact(str(value))))
    return facts


def slack_body(event: Event, redact: Redact) -> dict[str, Any]:
    """Slack incoming webhook: a fallback `text` and Block Kit sections, every value escaped."""
    head = f"{_ICONS[event.severity]} *{title(event)}*: {_slack_escape(redact(event.summary))}"
    facts = [f"*{name}:* `{_slack_code(value)}`" for name, value in _facts(event, redact)]
    return {
        "text": f"{title(event)}: {_slack_escape(redact(event.summary))}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": head[:3000]}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " \u00b7 ".join(facts)[:3000]}]},
        ],
        "unfurl_links": False,
        "unfurl_media": False,
    }


_TEAMS_MARKDOWN = re.compile(r"([\\`*_\[\]()#>~|<])")


def _teams_escape(text: str) -> str:
    return _TEAMS_MARKDOWN.sub(r"\\\1", text)


def teams_body(event: Event, redact: Redact) -> dict[str, Any]:
    """Microsoft Teams (a Workflows or connector incoming webhook): one Adaptive Card message."""
    color = {"info": "Default", "warning": "Warning", "error": "Attention"}[event.severity]
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": _teams_escape(f"{title(event)}: {redact(event.summary)}"),
                "weight": "Bolder",
                "color": color,
                "wrap": True,
            },
            {
                "type": "FactSet",
                "facts": [
                    {"title": name, "value": _teams_escape(value)} for name, value in _facts(event, redact)
                ],
            },
        ],
    }
    return {
        "type": "message",
        "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
    }


def github_status(event: Event, context: str, target_url: str | None, redact: Redact) -> dict[str, Any]:
    """A commit status for a `revision` event: its `state` detail is success, failure, error or pending."""
    state = str(event.detail.get("state") or "error")
    body: dict[str, Any] = {
        "state": state,
        "context": context,
        "description": redact(event.summary)[:GITHUB_DESCRIPTION_MAX],
    }
    if target_url:
        body["target_url"] = target_url
    return body
