"""`GET .../containers/{name}/logs`: what the container printed, optionally only the last `tail` lines.
Called by `pipeline.py`."""

from __future__ import annotations

from aiohttp import web

from reconciler.emulator.arm.call import Call
from reconciler.emulator.errors import ArmError, bad_request


async def logs(call: Call) -> web.StreamResponse:
    rec = call.require()
    runtime = rec.containers.get(call.route.container)
    init_names = {
        str((c or {}).get("name")) for c in (rec.spec.get("properties") or {}).get("initContainers") or []
    }
    if runtime is None and call.route.container in init_names:
        # Init containers have logs too (recorded .NET traffic, 2021-03-01); the emulator's say nothing.
        return web.json_response({"content": ""})
    if runtime is None:
        raise ArmError(
            404,
            "ContainerNotFound",
            f"The container '{call.route.container}' could not be found in container group '{rec.name}'.",
        )
    content = runtime.logs
    tail = call.request.query.get("tail")
    if tail:
        try:
            count = int(tail)
        except ValueError as exc:
            raise bad_request(f"The value '{tail}' of 'tail' is not a valid integer.") from exc
        lines = content.splitlines(keepends=True)
        content = "".join(lines[-count:]) if count > 0 else ""
    return web.json_response({"content": content})
