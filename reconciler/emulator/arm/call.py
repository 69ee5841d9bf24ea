"""One ARM request as the route handlers see it: the core, the request, the matched route, the time and
the fault injected into it (if any). Built by `pipeline.py`, passed to every handler in `arm/`."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from reconciler.emulator import versions
from reconciler.emulator.config import OPERATIONS_API_VERSION
from reconciler.emulator.core import EmulatorCore
from reconciler.emulator.errors import not_found
from reconciler.emulator.resource import JSON
from reconciler.emulator.routing import Route
from reconciler.emulator.store import GroupRecord, Operation


@dataclass(frozen=True)
class Call:
    core: EmulatorCore
    request: web.Request
    route: Route
    now: float
    fault: str | None

    def require(self) -> GroupRecord:
        """The group the route names, or ARM's 404."""
        route = self.route
        rec = self.core.store.get(route.subscription, route.resource_group, route.group, self.now)
        if rec is None:
            raise not_found(route.resource_group, route.group)
        return rec

    @property
    def version(self) -> str:
        return self.request.query.get("api-version", versions.BASE)

    def group(self, body: JSON) -> JSON:
        """A rendered group (2023-05-01) as the request's api-version shows it. A render is only serialised,
        so at the base version it goes out as it is: no copy per group on GETs and list pages."""
        if self.version == versions.BASE:
            return body
        return versions.shape_for_version(body, self.version)

    def respond(self, body: JSON, status: int = 200) -> web.Response:
        """A group document answered at the request's api-version."""
        return web.json_response(self.group(body), status=status)

    def async_url(self, op: Operation) -> str:
        return (
            f"https://{self.request.host}/subscriptions/{op.subscription}/providers/Microsoft.ContainerInstance"
            f"/locations/{op.location}/operations/{op.id}?api-version={OPERATIONS_API_VERSION}"
        )
