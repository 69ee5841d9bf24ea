"""The way into the ARM API: every request under `/subscriptions/` passes here, called by `server.py`.

In order: the bearer token (401), the route (404) and api-version (400), ARM's token buckets per
subscription (429 + `Retry-After` when dry; `x-ms-ratelimit-remaining-subscription-*` otherwise), ACI's
resource-request quotas for group writes and deletes, the fault injector, the configured latency, and then
the handler of the route. Request ids and the rate-limit headers are added to every answer.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from reconciler.emulator import versions
from reconciler.emulator.arm import actions, groups, lists, logs, operations, tags
from reconciler.emulator.arm.call import Call
from reconciler.emulator.core import EmulatorCore
from reconciler.emulator.errors import ArmError, bad_request
from reconciler.emulator.limits import TokenBucket, WindowQuota
from reconciler.emulator.routing import Route

# Which fault (if any) was injected into a request; the server reads it back when it logs the request.
FAULT_KEY = web.RequestKey("emulator_fault", str)

Handler = Callable[[Call], Awaitable[web.StreamResponse]]
_HANDLERS: dict[tuple[str, str], Handler] = {
    ("containerGroup", "GET"): groups.get,
    ("containerGroup", "PUT"): groups.put,
    ("containerGroup", "PATCH"): groups.patch,
    ("containerGroup", "DELETE"): groups.delete,
    ("containerGroups.listByResourceGroup", "GET"): lists.by_resource_group,
    ("containerGroups.listBySubscription", "GET"): lists.by_subscription,
    ("containerGroup.restart", "POST"): actions.act,
    ("containerGroup.stop", "POST"): actions.act,
    ("containerGroup.start", "POST"): actions.act,
    ("containers.logs", "GET"): logs.logs,
    ("operation", "GET"): operations.status,
    ("tags.resourceGroup", "GET"): tags.get,
    ("tags.resourceGroup", "PUT"): tags.put,
    ("tags.resourceGroup", "PATCH"): tags.patch,
    ("tags.resourceGroup", "DELETE"): tags.delete,
}


async def handle_arm(core: EmulatorCore, request: web.Request, route: Route | None) -> web.StreamResponse:
    _check_auth(request)
    if route is None:
        raise ArmError(
            404,
            "InvalidResourceType",
            f"The resource type could not be found in the namespace 'Microsoft.ContainerInstance' for "
            f"api version '{request.query.get('api-version', '')}'.",
        )
    version = request.query.get("api-version")
    if not version:
        raise bad_request(
            "The api-version query parameter (?api-version=) is required for all requests.",
            "MissingApiVersionParameter",
        )
    if route.name.startswith("tags."):
        if version not in tags.VERSIONS:
            raise bad_request(
                f"No registered resource provider found for location '' and API version '{version}' for type "
                f"'tags'. The supported api-versions are '{', '.join(sorted(tags.VERSIONS))}'.",
                "NoRegisteredProviderFound",
            )
    elif route.name != "operation" and not versions.is_served(version):
        raise bad_request(
            f"No registered resource provider found for location '{request.query.get('location', '')}' "
            f"and API version '{version}' for type 'containerGroups'. The supported api-versions are "
            f"'{', '.join(reversed(versions.SERVED))}'.",
            "NoRegisteredProviderFound",
        )
    method = request.method.upper()
    now = core.now()
    kind = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}.get(method, "writes")
    headers = _throttle(core, route.subscription, kind, now)
    quotas: list[WindowQuota] = []
    if route.name == "containerGroup" and method in ("PUT", "DELETE"):
        quota_headers, quotas = _aci_quota(core, route.subscription, now)
        headers.update(quota_headers)
    fault = core.faults.pick(method, request.path, request.query_string)
    if fault is not None:
        request[FAULT_KEY] = fault
    if fault in ("500", "503", "429"):
        raise _fault_error(core, fault, headers)
    if fault == "reset":
        if request.transport is not None:
            request.transport.abort()
        raise ArmError(500, "ConnectionReset", "The emulator dropped the connection (fault injected).")
    delay = core.config.latency + (core.faults.settings.slow_seconds if fault == "slow" else 0.0)
    if delay > 0:
        await asyncio.sleep(delay)
        now = core.now()
    handler = _HANDLERS.get((route.name, method))
    if handler is None:
        raise ArmError(
            405, "HttpMethodNotAllowed", f"The HTTP method '{method}' is not supported at '{request.path}'."
        )
    response = await handler(Call(core, request, route, now, fault))
    if 200 <= response.status < 300:
        for quota in quotas:
            quota.record(now)
    for name, value in headers.items():
        response.headers[name] = value
    response.headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
    response.headers.setdefault("x-ms-correlation-request-id", str(uuid.uuid4()))
    return response


def _check_auth(request: web.Request) -> None:
    header = request.headers.get("Authorization")
    if header is None:
        raise ArmError(
            401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
        )
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ArmError(
            401,
            "AuthenticationFailed",
            "Authentication failed. The 'Authorization' header is not in a valid format.",
        )


def _throttle(core: EmulatorCore, subscription: str, kind: str, now: float) -> dict[str, str]:
    cfg = core.config
    size, rate = {
        "reads": (cfg.read_bucket_size, cfg.read_refill_rate),
        "writes": (cfg.write_bucket_size, cfg.write_refill_rate),
        "deletes": (cfg.delete_bucket_size, cfg.delete_refill_rate),
    }[kind]
    if size is None:
        return {}
    bucket = core.buckets.get((subscription.lower(), kind))
    if bucket is None or bucket.size != size or bucket.rate != rate:
        bucket = core.buckets[(subscription.lower(), kind)] = TokenBucket(size, rate, now)
    allowed, remaining, wait = bucket.take(now)
    header = f"x-ms-ratelimit-remaining-subscription-{kind}"
    if not allowed:
        core.counters["throttled"] += 1
        raise ArmError(
            429,
            "SubscriptionRequestsThrottled",
            f"Number of '{kind[:-1]}' requests for subscription '{subscription}' exceeded. Please try "
            f"again after '{wait}' seconds after additional tokens are available. Refer to "
            "https://aka.ms/arm-throttling",
            headers={"Retry-After": str(wait), header: "0"},
        )
    return {header: str(remaining)}


def _aci_quota(core: EmulatorCore, subscription: str, now: float) -> tuple[dict[str, str], list[WindowQuota]]:
    headers: dict[str, str] = {}
    taken: list[WindowQuota] = []
    for label, limit, window in (
        ("pt5m", core.config.aci_requests_per_5m, 300.0),
        ("pt1h", core.config.aci_requests_per_1h, 3600.0),
    ):
        if limit is None:
            continue
        quota = core.quotas.get((subscription.lower(), label))
        if quota is None or quota.limit != limit:
            quota = core.quotas[(subscription.lower(), label)] = WindowQuota(limit, window)
        allowed, remaining, wait = quota.check(now)
        if not allowed:
            core.counters["quota_exceeded"] += 1
            raise ArmError(
                429,
                "ResourceRequestsThrottled",
                f"The number of write requests for resource type 'containerGroups' in subscription "
                f"'{subscription}' exceeded the limit of '{limit}' in '{label.upper()}'. Please try "
                f"again after '{wait}' seconds.",
                headers={
                    "Retry-After": str(wait),
                    f"x-ms-ratelimit-remaining-subscription-resource-requests-{label}": "0",
                },
            )
        headers[f"x-ms-ratelimit-remaining-subscription-resource-requests-{label}"] = str(remaining)
        taken.append(quota)
    return headers, taken


def _fault_error(core: EmulatorCore, fault: str, headers: dict[str, str]) -> ArmError:
    retry = {"Retry-After": str(core.faults.settings.retry_after)}
    if fault == "500":
        # ACI's own answer to an internal error (errors.md, section 9), with the header ARM adds to it.
        return ArmError(
            500,
            "InternalServerError",
            f"Encountered an internal server error. The tracking activity id is '{uuid.uuid4()}', "
            f"correlation id is '{uuid.uuid4()}'.",
            headers={**headers, "x-ms-failure-cause": "service"},
        )
    if fault == "503":
        return ArmError(
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable (fault injected by the emulator).",
            headers={**headers, **retry},
        )
    return ArmError(
        429,
        "TooManyRequests",
        "The request is being throttled (fault injected by the emulator).",
        headers={**headers, **retry},
    )
