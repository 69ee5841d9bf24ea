"""`POST .../restart|stop|start` on a container group. Called by `pipeline.py`.

What Azure answers (the recordings in `tests/emulator/evidence/` and `../shared/azure/recordings/`):

- stop: 204 with no body and no operation, at any time the group exists, even right after a restart;
  the containers are Terminated ("Container stopped per client request") and the public address is
  released.
- restart: 204 with `Azure-AsyncOperation`; the group shows `provisioningState: Updating` until the
  containers run again. Accepted while the group is `Updating` (a restart or an update under way), which
  starts the restart again.
- start: 204 with `Azure-AsyncOperation` for a stopped or finished group; 204 with no operation for a
  group that is already running (nothing happens). The spec also allows 202; no recording shows it.
- the operation of a restart reports `Updating` until it is done; that of a start, `Pending`.

A group that is being created or deleted answers 409 `ContainerGroupTransitioning` (no recording shows
an action then; this is the emulator's choice).
"""

from __future__ import annotations

from aiohttp import web

from reconciler.emulator.arm.call import Call
from reconciler.emulator.errors import ArmError


async def act(call: Call) -> web.StreamResponse:
    core, now, action = call.core, call.now, call.route.action
    rec = call.require()
    t = rec.transition
    if t is not None and (t.kind in ("create", "delete") or (action == "start" and t.kind != "start")):
        raise ArmError(
            409,
            "ContainerGroupTransitioning",
            f"The container group '{rec.name}' is still transitioning, please retry later.",
        )
    if action == "stop":
        core.store.stop(rec, now)
        return web.Response(status=204)
    # A job still running its init containers is `Pending` but running as far as start is concerned.
    running = rec.group_state == "Running" or (
        rec.group_state == "Pending" and rec.provisioning_state == "Succeeded"
    )
    if action == "start" and (t is not None or running):
        return web.Response(status=204)
    kind = "start" if action == "start" or rec.group_state == "Stopped" else "restart"
    op = core.store.begin(rec, kind, now, core.config.provisioning_delay)
    # The spec allows 202 for a start, but every recorded start Azure answered is 204.
    response = web.Response(status=204)
    response.headers["Azure-AsyncOperation"] = call.async_url(op)
    return response
