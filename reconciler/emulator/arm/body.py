"""Reading and validating request bodies the way ARM does, for the PUT and PATCH handlers in `groups.py`.

A body that does not parse or does not fit the packaged 2023-05-01 spec (`spec.py`) is refused with ARM's
400 and the path of the first problem (missing resource requests are left to `rules.py`, which answers them
in ACI's words); one that fits is returned as the resource provider keeps it
(`spec.normalize`).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from reconciler.emulator import spec
from reconciler.emulator.errors import ArmError, bad_request
from reconciler.emulator.resource import JSON
from reconciler.emulator.routing import arm_path
from reconciler.emulator.rules import RULE_CODES

NOT_AN_OBJECT = "The request content was invalid and cannot be deserialized: 'expected an object'."


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"The request content was invalid and cannot be deserialized: '{exc}'.") from exc


async def read_object(request: web.Request) -> JSON:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise bad_request(NOT_AN_OBJECT)
    return body


def validate(definition: str, body: JSON) -> JSON:
    """Reject a body the way ARM does, else return it as the resource provider reads it."""
    found = [(v.path, v.message, v.code) for v in spec.validate(definition, body) if v.code not in RULE_CODES]
    if found:
        path, message, code = found[0]
        where = f" Path '{arm_path(path)}'." if path else ""
        text = (
            f"The request content was invalid and cannot be deserialized: '{message}{where}'."
            if code == "InvalidRequestContent"
            else message
        )
        raise ArmError(
            400, code, text, details=[{"code": c, "target": arm_path(p), "message": m} for p, m, c in found]
        )
    normalized = spec.normalize(definition, body)
    return normalized if isinstance(normalized, dict) else body
