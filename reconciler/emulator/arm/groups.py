"""One container group: GET, PUT (create or update), PATCH (tags) and DELETE. Called by `pipeline.py`.

The status codes, headers and refusals follow the recorded Azure traffic; see the emulator's README.
"""

from __future__ import annotations

import fnmatch

from aiohttp import web

from reconciler.emulator.arm.body import read_object, validate
from reconciler.emulator.arm.call import Call
from reconciler.emulator.errors import (
    ArmError,
    bad_request,
    inaccessible_image,
    invalid_update,
    no_capacity,
    quota_reached,
)
from reconciler.emulator.resource import (
    JSON,
    apply_defaults,
    keep_immutable,
    normalize_location,
    refused_fields,
    strip_secrets,
)
from reconciler.emulator.rules import body_problems, gpu_sku, group_requests
from reconciler.emulator.store import GroupRecord


async def get(call: Call) -> web.StreamResponse:
    return call.respond(call.require().render(call.now))


async def put(call: Call) -> web.StreamResponse:
    core, route, now = call.core, call.route, call.now
    body = await read_object(call.request)
    if not body.get("location"):
        raise bad_request("The location property is required for this definition.", "LocationRequired")
    body = validate("ContainerGroup", body)
    existing = core.store.get(route.subscription, route.resource_group, route.group, now)
    name = existing.name if existing else route.group
    problems = body_problems(name, body)
    if problems:
        # Only the first problem, without `details` or `target`: no ACI answer in errors.md has them.
        first = problems[0]
        raise ArmError(first.status, first.code, first.message)
    _check_images(call, name, body)
    _check_quota(call, existing, body)
    if call.fault == "no_capacity":
        raise no_capacity(normalize_location(str(body["location"])), body)
    key = f"{route.subscription}/{route.resource_group}/{route.group}".lower()
    delay = core.config.provisioning_delay
    fails = call.fault == "provision_fail"
    if existing is not None:
        _check_update(call, existing, body, key)
        spec = apply_defaults(body, key=key, location=existing.location, previous=existing.spec)
        existing.set_spec(keep_immutable(existing.spec, spec))
        op = core.store.begin(existing, "update", now, delay, fails=fails)
        rec, status = existing, 200
    else:
        spec = apply_defaults(body, key=key, location=str(body["location"]), previous=None)
        rec = GroupRecord(route.subscription, route.resource_group, route.group, spec, created=now)
        core.store.insert(rec)
        op = core.store.begin(rec, "create", now, delay, fails=fails)
        status = 201
    response = call.respond(rec.render(now), status)
    response.headers["Azure-AsyncOperation"] = call.async_url(op)
    return response


def _check_images(call: Call, group: str, body: JSON) -> None:
    patterns = call.core.config.inaccessible_images
    if not patterns:
        return
    props = body.get("properties") or {}
    for section in ("initContainers", "containers"):
        for container in props.get(section) or []:
            image = str(((container or {}).get("properties") or {}).get("image", ""))
            if any(fnmatch.fnmatchcase(image, pattern) for pattern in patterns):
                raise inaccessible_image(group, image)


def _check_quota(call: Call, existing: GroupRecord | None, body: JSON) -> None:
    cfg = call.core.config
    if cfg.core_quota is None and cfg.gpu_quota is None:
        return
    location = normalize_location(str(body.get("location", "")))
    cores, gpus = group_requests(body.get("properties") or {})
    used_cores, used_gpus = 0.0, 0
    for rec in call.core.store.records():
        if rec is existing or rec.subscription.lower() != call.route.subscription.lower():
            continue
        if rec.location == location:
            c, g = group_requests(rec.spec.get("properties") or {})
            used_cores, used_gpus = used_cores + c, used_gpus + g
    if cfg.gpu_quota is not None and gpus and used_gpus + gpus > cfg.gpu_quota:
        raise quota_reached(
            f"{gpu_sku(body.get('properties') or {})}Cores", location, cfg.gpu_quota, used_gpus, gpus
        )
    if cfg.core_quota is not None and used_cores + cores > cfg.core_quota:
        raise quota_reached("StandardCores", location, cfg.core_quota, used_cores, cores)


def _first_changed_property(old: JSON, new: JSON) -> str:
    """The first top-level property an update changes (secrets aside), for a per-property refusal."""
    before, after = strip_secrets(old).get("properties") or {}, strip_secrets(new).get("properties") or {}
    for name in sorted(set(before) | set(after)):
        if name not in ("provisioningState", "instanceView") and before.get(name) != after.get(name):
            return str(name)
    return "properties"


def _check_update(call: Call, rec: GroupRecord, body: JSON, key: str) -> None:
    if rec.transition is not None:
        raise ArmError(
            409,
            "ContainerGroupTransitioning",
            f"The container group '{rec.name}' is still transitioning, please retry later.",
        )
    new_location = normalize_location(str(body.get("location", "")))
    if new_location != rec.location:
        raise ArmError(
            409,
            "InvalidResourceLocation",
            f"The resource '{rec.name}' already exists in location '{rec.location}' in resource group "
            f"'{rec.resource_group}'. A resource with the same name cannot be created in location "
            f"'{new_location}'. Please select a new resource name.",
        )
    if rec.terminated:
        raise ArmError(
            409,
            "ContainerGroupTerminated",
            f"The container group '{rec.name}' is in the terminal state '{rec.group_state}' and "
            "cannot be updated. Delete it first and then create a new one.",
        )
    candidate = apply_defaults(body, key=key, location=rec.location, previous=rec.spec)
    refused = refused_fields(rec.spec, candidate)
    wording = call.core.config.update_refusal_wording
    if call.fault in ("refuse_update", "refuse_update_property"):
        # Azure deciding what no evidence decides (DESIGN section 5): refuse this update whatever changed.
        wording = "per-property" if call.fault == "refuse_update_property" else "generic"
        changed = _first_changed_property(rec.spec, candidate)
        raise invalid_update(rec.name, wording=wording, prop=refused[0].label if refused else changed)
    if refused:
        raise invalid_update(rec.name, wording=wording, prop=refused[0].label)


async def patch(call: Call) -> web.StreamResponse:
    body = await read_object(call.request)
    rec = call.require()
    body = validate("Resource", body)
    if "tags" in body:
        rec.set_tags(dict(body.get("tags") or {}))
        call.core.store.touch()
    return call.respond(rec.render(call.now))


async def delete(call: Call) -> web.StreamResponse:
    core, route, now = call.core, call.route, call.now
    rec = core.store.get(route.subscription, route.resource_group, route.group, now)
    if rec is None:
        return web.Response(status=204)
    delay = core.config.delete_delay
    if delay <= 0:
        body = rec.render(now)
        core.store.remove(rec)
        return call.respond(body)
    t = rec.transition
    op = core.store.operation(t.op_id, now) if t is not None and t.kind == "delete" else None
    if op is None:
        op = core.store.begin(rec, "delete", now, delay)
    response = web.Response(status=202)
    response.headers["Azure-AsyncOperation"] = call.async_url(op)
    response.headers["Location"] = call.async_url(op)
    return response
