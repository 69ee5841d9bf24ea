"""`GET .../containers/{name}/logs`: what the container printed so far, optionally only the last `tail`
lines and with `timestamps=true` each line prefixed with the time it was written.
Called by `pipeline.py`.

A job container's log is its simulated program's output up to now (`runtime.py`); under `OnFailure` it is
the current run's only, as ACI's log API returns the log of the container instance that runs now (while a
failed container waits to restart, the failed run's). Scripted logs (`set_logs`) win; other containers'
logs are empty unless scripted.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from reconciler.emulator.arm.call import Call
from reconciler.emulator.errors import ArmError, bad_request


def stamp(ts: float) -> str:
    # Azure's stamps have seven fractional digits (recorded .NET traffic, 2021-03-01:
    # "2021-04-24T00:41:52.8193092Z helloworld").
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


async def logs(call: Call) -> web.StreamResponse:
    rec = call.require()
    lines = rec.log(call.route.container, call.now)
    init_names = {
        str((c or {}).get("name")) for c in (rec.spec.get("properties") or {}).get("initContainers") or []
    }
    if lines is None and call.route.container in init_names:
        # Init containers have logs too (recorded .NET traffic, 2021-03-01); those of a group that is not a
        # job say nothing.
        return web.json_response({"content": ""})
    if lines is None:
        raise ArmError(
            404,
            "ContainerNotFound",
            f"The container '{call.route.container}' could not be found in container group '{rec.name}'.",
        )
    tail = call.request.query.get("tail")
    if tail:
        try:
            count = int(tail)
        except ValueError as exc:
            raise bad_request(f"The value '{tail}' of 'tail' is not a valid integer.") from exc
        lines = lines[-count:] if count > 0 else []
    if call.request.query.get("timestamps", "").lower() == "true":
        content = "".join(f"{stamp(line.at)} {line.text}" for line in lines)
    else:
        content = "".join(line.text for line in lines)
    return web.json_response({"content": content})
