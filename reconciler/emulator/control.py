"""The emulator's control and inspection surface under `/_emulator/` (see README.md next to this file).

Called by the server (`server.py`) for paths under `/_emulator/`; it acts on the `EmulatorCore` and never
the reverse. Tests and benchmarks in other processes use
it to read counters and the request log, set faults and run-time knobs, and make jobs finish; in-process
tests use the same features through the `Emulator` object. It needs no bearer token: it is served on
loopback only, and it never shows a secret (groups are rendered as a GET renders them; secret volume files
only as SHA-256 digests).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from reconciler.emulator.core import EmulatorCore
from reconciler.emulator.errors import ArmError, bad_request
from reconciler.emulator.limits import FaultSettings

# Run-time knobs that `PATCH /_emulator/config` may change, with their types.
RUNTIME_KNOBS: dict[str, type] = {
    "latency": float,
    "provisioning_delay": float,
    "delete_delay": float,
    "retry_after": int,
    "page_size": int,
    "core_quota": float,  # or null: no limit
    "gpu_quota": int,  # or null: no limit
    "inaccessible_images": tuple,  # a list of shell-style image patterns
    "job_run_time": float,
    "restart_backoff": float,
}
_NULLABLE = frozenset({"core_quota", "gpu_quota"})


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise bad_request(f"The body is not valid JSON: {exc}.") from exc
    if not isinstance(body, dict):
        raise bad_request("The body must be a JSON object.")
    return body


def _config_json(emu: EmulatorCore) -> dict[str, Any]:
    out = {name: getattr(emu.config, name) for name in RUNTIME_KNOBS}
    out["inaccessible_images"] = list(emu.config.inaccessible_images)
    return out


def _set_knob(emu: EmulatorCore, name: str, value: object) -> None:
    kind = RUNTIME_KNOBS[name]
    if value is None and name in _NULLABLE:
        setattr(emu.config, name, None)
    elif kind is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad_request(f"{name} must be a list of strings, got {value!r}.")
        setattr(emu.config, name, tuple(value))
    elif isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise bad_request(f"{name} must be a number >= 0, got {value!r}.")
    else:
        setattr(emu.config, name, kind(value))


async def handle_control(emu: EmulatorCore, request: web.Request) -> web.Response:
    path = request.path.rstrip("/").lower()
    method = request.method.upper()
    if path == "/_emulator/health" and method == "GET":
        return web.json_response({"status": "ok", "groups": len(emu.store)})
    if path == "/_emulator/counters":
        if method == "GET":
            return web.json_response({"counters": dict(emu.counters), "faultsInjected": emu.faults.injected})
        if method == "DELETE":
            emu.reset_counters()
            return web.Response(status=204)
    if path == "/_emulator/requests" and method == "GET":
        try:
            offset = int(request.query.get("offset", "0"))
        except ValueError as exc:
            raise bad_request("offset must be an integer.") from exc
        entries = list(emu.request_log)[max(0, offset) :]
        return web.json_response({"requests": [e.to_json() for e in entries], "next": offset + len(entries)})
    if path == "/_emulator/faults":
        if method == "GET":
            return web.json_response(emu.faults.settings.to_json())
        if method == "PUT":
            try:
                settings = FaultSettings.from_json(await _json_body(request))
            except (TypeError, ValueError) as exc:
                raise bad_request(f"Invalid fault settings: {exc}.") from exc
            emu.faults.set(settings)
            return web.json_response(settings.to_json())
        if method == "DELETE":
            emu.faults.clear()
            return web.Response(status=204)
    if path == "/_emulator/config":
        if method == "GET":
            return web.json_response(_config_json(emu))
        if method == "PATCH":
            body = await _json_body(request)
            unknown = set(body) - set(RUNTIME_KNOBS)
            if unknown:
                raise bad_request(f"Unknown knobs {sorted(unknown)}; known: {sorted(RUNTIME_KNOBS)}.")
            for name, value in body.items():
                _set_knob(emu, name, value)
            return web.json_response(_config_json(emu))
    if path == "/_emulator/groups" and method == "GET":
        now = emu.now()
        items = []
        for rec in emu.store.records():
            live = emu.store.advance(rec, now)
            if live is not None:
                items.append(
                    {
                        "id": live.resource_id,
                        "provisioningState": live.provisioning_state_at(now),
                        "state": live.group_state,
                    }
                )
        return web.json_response({"value": items})
    if path == "/_emulator/secret-volumes" and method == "GET":
        # SHA-256 digests of each stored secret volume file, so that a test can tell that a volume kept its
        # content across an update without any secret being shown (a GET strips them, as Azure does).
        now = emu.now()
        out = []
        for rec in emu.store.records():
            live = emu.store.advance(rec, now)
            if live is None:
                continue
            volumes = {
                str(v.get("name")): {
                    str(f): hashlib.sha256(str(content).encode()).hexdigest()
                    for f, content in (v.get("secret") or {}).items()
                }
                for v in (live.spec.get("properties") or {}).get("volumes") or []
                if isinstance(v, dict) and isinstance(v.get("secret"), dict)
            }
            out.append({"id": live.resource_id, "volumes": volumes})
        return web.json_response({"value": out})
    if path == "/_emulator/terminate" and method == "POST":
        body = await _json_body(request)
        try:
            state = emu.terminate(
                str(body["resourceGroup"]),
                str(body["name"]),
                int(body.get("exitCode", 0)),
                subscription=body.get("subscription"),
                container=body.get("container"),
            )
        except KeyError as exc:
            raise ArmError(404, "ResourceNotFound", f"Not found: {exc}.") from exc
        except ValueError as exc:
            raise ArmError(409, "ContainerGroupTransitioning", str(exc)) from exc
        return web.json_response({"state": state})
    if path == "/_emulator/logs" and method == "PUT":
        body = await _json_body(request)
        try:
            emu.set_logs(
                str(body["resourceGroup"]),
                str(body["name"]),
                str(body["container"]),
                str(body.get("content", "")),
                subscription=body.get("subscription"),
            )
        except KeyError as exc:
            raise ArmError(404, "ResourceNotFound", f"Not found: {exc}.") from exc
        return web.Response(status=204)
    raise ArmError(404, "NotFound", f"No control endpoint {method} {request.path}.")
