"""`GET .../containers/{name}/logs`: what the container printed, optionally only the last `tail` lines and
with `timestamps=true` each line prefixed with its time.
Called by `pipeline.py`."""

from __future__ import annotations

from datetime import UTC, datetime

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
    if call.request.query.get("timestamps", "").lower() == "true":
        # Azure prefixes each line with when it was written (recorded .NET traffic, 2021-03-01:
        # "2021-04-24T00:41:52.8193092Z helloworld"); the emulator knows when the container started.
        started = runtime.start_time if runtime.start_time is not None else call.now
        stamp = datetime.fromtimestamp(started, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
        content = "".join(f"{stamp} {line}" for line in content.splitlines(keepends=True))
    return web.json_response({"content": content})
