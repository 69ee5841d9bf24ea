"""`POST .../restart|stop|start` on a container group. Called by `pipeline.py`."""

from __future__ import annotations

from aiohttp import web

from reconciler.emulator.arm.call import Call
from reconciler.emulator.errors import ArmError


async def act(call: Call) -> web.StreamResponse:
    core, now = call.core, call.now
    rec = call.require()
    if rec.transition is not None:
        raise ArmError(
            409,
            "ContainerGroupTransitioning",
            f"The container group '{rec.name}' is still transitioning, please retry later.",
        )
    if call.route.action == "stop":
        core.store.stop(rec, now)
        return web.Response(status=204)
    kind = "start" if call.route.action == "start" or rec.group_state == "Stopped" else "restart"
    op = core.store.begin(rec, kind, now, core.config.provisioning_delay)
    response = web.Response(status=202 if call.route.action == "start" else 204)
    response.headers["Azure-AsyncOperation"] = call.async_url(op)
    return response
