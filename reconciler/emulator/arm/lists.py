"""`GET .../containerGroups` per resource group and per subscription, paged with `nextLink` and
`$skipToken`. Lists carry no `instanceView`, as on Azure. Called by `pipeline.py`."""

from __future__ import annotations

from aiohttp import web

from reconciler.emulator.arm.call import Call
from reconciler.emulator.config import API_VERSION
from reconciler.emulator.errors import ArmError, bad_request
from reconciler.emulator.resource import JSON
from reconciler.emulator.routing import decode_token, encode_token


def _page_link(call: Call, token: object) -> str:
    request = call.request
    version = request.query.get("api-version", API_VERSION)
    return f"https://{request.host}{request.path}?api-version={version}&$skipToken={encode_token(token)}"


async def by_resource_group(call: Call) -> web.StreamResponse:
    core, route, now = call.core, call.route, call.now
    token = call.request.query.get("$skipToken")
    after = str(decode_token(token)) if token else None
    records, last = core.store.page_resource_group(
        route.subscription, route.resource_group, after, max(1, core.config.page_size), now
    )
    body: JSON = {"value": [call.group(r.render(now, instance_view=False)) for r in records]}
    if last is not None:
        body["nextLink"] = _page_link(call, last)
    return web.json_response(body)


async def by_subscription(call: Call) -> web.StreamResponse:
    core, route, now = call.core, call.route, call.now
    if core.config.deny_subscription_list:
        # ARM's answer to a principal whose role assignments are on resource groups only.
        raise ArmError(
            403,
            "AuthorizationFailed",
            "The client 'emulator-principal' with object id '00000000-0000-0000-0000-0000000000aa' does "
            "not have authorization to perform action 'Microsoft.ContainerInstance/containerGroups/read' "
            f"over scope '/subscriptions/{route.subscription}' or the scope is invalid. If access was "
            "recently granted, please refresh your credentials.",
        )
    token = call.request.query.get("$skipToken")
    after: tuple[str, str] | None = None
    if token:
        decoded = decode_token(token)
        if not (isinstance(decoded, list) and len(decoded) == 2):
            raise bad_request("The $skipToken is not valid.", "InvalidSkipToken")
        after = (str(decoded[0]), str(decoded[1]))
    records, last = core.store.page_subscription(
        route.subscription, after, max(1, core.config.page_size), now
    )
    body: JSON = {"value": [call.group(r.render(now, instance_view=False)) for r in records]}
    if last is not None:
        body["nextLink"] = _page_link(call, list(last))
    return web.json_response(body)
