"""ARM's Tags API at resource-group scope (`Microsoft.Resources/tags/default`), as the daemon's duplicate
detection uses it: GET, PUT (replace), PATCH with `operation` Merge, Replace or Delete, and DELETE.

Dispatched by `arm/pipeline.py`. Shapes follow the Resources spec (`TagsResource`, `TagsPatchResource`):
the answer is always `{id, name: "default", type: "Microsoft.Resources/tags", properties: {tags}}`. The
emulator has no resource-group entities, so every resource group exists and starts with no tags; the tags
live in memory for the emulator's life.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from reconciler.emulator.arm.body import read_object
from reconciler.emulator.arm.call import Call
from reconciler.emulator.errors import bad_request

# api-versions of Microsoft.Resources that serve the tags operations at scope.
VERSIONS = frozenset({"2019-10-01", "2020-06-01", "2020-10-01", "2021-01-01", "2021-04-01", "2022-09-01"})
OPERATIONS = ("Merge", "Replace", "Delete")
MAX_TAGS = 50


def _key(call: Call) -> tuple[str, str]:
    return (call.route.subscription.lower(), call.route.resource_group.lower())


def _answer(call: Call, tags: dict[str, str]) -> web.Response:
    route = call.route
    return web.json_response(
        {
            "id": f"/subscriptions/{route.subscription}/resourceGroups/{route.resource_group}"
            "/providers/Microsoft.Resources/tags/default",
            "name": "default",
            "type": "Microsoft.Resources/tags",
            "properties": {"tags": dict(tags)},
        }
    )


def _tags_of(body: dict[str, Any]) -> dict[str, str]:
    properties = body.get("properties")
    tags = properties.get("tags") if isinstance(properties, dict) else None
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        raise bad_request("The request content was invalid: 'properties.tags' must be an object of strings.")
    return {str(k): v for k, v in tags.items()}


def _stored(call: Call) -> dict[str, str]:
    return call.core.resource_group_tags.setdefault(_key(call), {})


def _check(tags: dict[str, str]) -> dict[str, str]:
    if len(tags) > MAX_TAGS:
        raise bad_request(f"The number of tags exceeds the limit of {MAX_TAGS}.", "InvalidTagCount")
    for name, value in tags.items():
        if len(name) > 512 or any(c in name for c in "<>%&\\?/"):
            raise bad_request(
                f"The tag name '{name[:64]}' has characters that are not allowed.", "InvalidTagNameCharacters"
            )
        if len(value) > 256:
            raise bad_request(
                f"The value of tag '{name[:64]}' is longer than 256 characters.", "InvalidTagValueLength"
            )
    return tags


async def get(call: Call) -> web.StreamResponse:
    return _answer(call, _stored(call))


async def put(call: Call) -> web.StreamResponse:
    tags = _check(_tags_of(await read_object(call.request)))
    call.core.resource_group_tags[_key(call)] = tags
    return _answer(call, tags)


async def patch(call: Call) -> web.StreamResponse:
    body = await read_object(call.request)
    operation = body.get("operation")
    if operation not in OPERATIONS:
        raise bad_request(
            f"The value '{operation}' of 'operation' is not valid; use one of {', '.join(OPERATIONS)}."
        )
    given = _tags_of(body)
    current = dict(_stored(call))
    if operation == "Merge":
        current.update(given)
    elif operation == "Replace":
        current = given
    else:
        # Delete: a name alone removes the tag; a name with a value removes it only when the value matches.
        for name, value in given.items():
            if name in current and (value == "" or current[name] == value):
                del current[name]
    call.core.resource_group_tags[_key(call)] = _check(current)
    return _answer(call, current)


async def delete(call: Call) -> web.StreamResponse:
    call.core.resource_group_tags.pop(_key(call), None)
    return web.Response(status=200)
