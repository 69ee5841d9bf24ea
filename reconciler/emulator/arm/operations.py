"""`GET .../locations/{loc}/operations/{id}`: the status of an async operation, the URL every PUT, slow
DELETE, restart and start hand out in `Azure-AsyncOperation`. Called by `pipeline.py`."""

from __future__ import annotations

from aiohttp import web

from reconciler.emulator.arm.call import Call
from reconciler.emulator.errors import ArmError
from reconciler.emulator.resource import JSON
from reconciler.emulator.store import iso


async def status(call: Call) -> web.StreamResponse:
    core, route, now = call.core, call.route, call.now
    op = core.store.operation(route.operation, now)
    if op is None or op.subscription.lower() != route.subscription.lower():
        raise ArmError(404, "OperationNotFound", f"The operation '{route.operation}' was not found.")
    state = op.status_at(now)
    rec = core.store.get(op.subscription, op.key[1], op.key[2], now)
    body: JSON = {
        "id": op.resource_id,
        "status": state,
        "startTime": iso(op.started, millis=True),
        "properties": {"events": rec.events_for_operation() if rec is not None else []},
    }
    if state == "Failed":
        body["error"] = {
            "code": "ContainerGroupProvisioningFailed",
            "message": f"The container group provisioning failed (fault injected by the emulator) for "
            f"'{op.resource_id}'.",
        }
    response = web.json_response(body)
    response.headers["Retry-After"] = str(core.config.retry_after)
    return response
