"""The status page's routes on the daemon's aiohttp app: `/` (the fleet), `/groups/{rg}/{name}` (one group),
`/ui/static/...` (one stylesheet, one script) and the sign-in check that also guards `/status`.

Added by `reconciler.daemon.http.build_app`. Pages are rendered by Jinja2 with autoescaping on every template,
so group names, tags and messages (user input) are always text; the response headers forbid everything the
page does not need (a strict Content-Security-Policy: scripts and styles from this origin only, no inline
code, no frames, no other origins), and nothing on the page comes from the internet. `?fragment=1` returns
only the content of `<main>`: the script fetches it to refresh the page in place.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from importlib import resources
from typing import Any, Protocol
from urllib.parse import quote

import jinja2
from aiohttp import web

from reconciler.daemon.ui import views
from reconciler.daemon.ui.auth import UiSettings
from reconciler.model.plan import Action, Change
from reconciler.render.blocks import build_block

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
_STATIC_TYPES = {"app.css": "text/css", "app.js": "text/javascript"}
MAX_QUERY = 200

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Inspector(Protocol):
    async def inspect(self, resource_group: str, name: str) -> dict[str, Any]: ...


class PageSource(Protocol):
    """What the pages read of the daemon (`reconciler.daemon.http.DaemonView`)."""

    def page_status(self) -> dict[str, Any]:
        """`/status` without its per-group parts (the pages read those below)."""
        ...

    def groups(self) -> Iterable[views.GroupLike]: ...

    def group_state(self, resource_group: str, name: str) -> views.GroupLike | None: ...

    def changes(self) -> Mapping[tuple[str, str], Change]:
        """The last plan's entries by (resource group, name) in lower case."""
        ...

    def observed(self) -> Mapping[tuple[str, str], Any]: ...

    @property
    def inspector(self) -> Inspector | None: ...


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reconciler.daemon.ui", "templates"),
        autoescape=True,  # every template, whatever its name: names and tags are user input
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # One path segment: a `/`, `?` or `#` in a name must not change where the link goes.
    env.filters["segment"] = lambda text: quote(str(text), safe="")
    return env


def _static(name: str) -> bytes:
    return resources.files("reconciler.daemon.ui").joinpath("static", name).read_bytes()


def guard(settings: UiSettings, *, page: bool = True) -> Callable[[Handler], Handler]:
    """Wraps a handler with the sign-in check and the security headers; `page=False` (for `/status`) skips
    the refusal to publish the page on a non-loopback listener without sign-in."""

    def wrap(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            refusal = settings.refusal if page else None
            if refusal is not None:
                response: web.StreamResponse = web.Response(text=refusal + "\n", status=403)
            elif not settings.allows(request.headers.get("Authorization")):
                response = web.Response(text="sign in to see the status page\n", status=401)
                response.headers["WWW-Authenticate"] = settings.challenge
            else:
                response = await handler(request)
            response.headers.update(SECURITY_HEADERS)
            response.headers.setdefault("Cache-Control", "no-store")
            return response

        return guarded

    return wrap


def add_routes(
    app: web.Application,
    source: PageSource,
    settings: UiSettings,
    *,
    clock: Callable[[], float] = time.time,
) -> None:
    if not settings.enabled:
        return
    env = environment()
    protect = guard(settings)
    refresh_ms = settings.refresh_ms

    def render(template: str, **context: Any) -> web.Response:
        text = env.get_template(template).render(refresh_ms=refresh_ms, **context)
        return web.Response(text=text, content_type="text/html", charset="utf-8")

    async def fleet(request: web.Request) -> web.StreamResponse:
        query = request.query.get("q", "")[:MAX_QUERY]
        phase = request.query.get("phase", "")
        phase = phase if phase in views.PHASES else ""
        model = views.fleet(
            source.page_status(),
            source.groups(),
            source.changes(),
            source.observed(),
            now=clock(),
            query=query,
            phase=phase,
        )
        return render("fleet_main.html" if request.query.get("fragment") == "1" else "fleet.html", m=model)

    async def group(request: web.Request) -> web.StreamResponse:
        rg, name = request.match_info["rg"], request.match_info["name"]
        state = source.group_state(rg, name)
        if state is None:
            response = render(
                "missing.html", rg=rg, name=name, daemon_instance=source.page_status()["instance"]
            )
            response.set_status(404)
            return response
        live = await source.inspector.inspect(rg, name) if source.inspector is not None else None
        key = (rg.lower(), name.lower())
        change = source.changes().get(key)
        diff = build_block(change) if change is not None and change.action is not Action.NOOP else None
        model = views.group(
            source.page_status(),
            state,
            change,
            source.observed().get(key),
            now=clock(),
            live=live,
            diff=diff,
        )
        return render("group_main.html" if request.query.get("fragment") == "1" else "group.html", g=model)

    async def static(request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        kind = _STATIC_TYPES.get(name)
        if kind is None:
            raise web.HTTPNotFound()
        response = web.Response(body=_static(name), content_type=kind)
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    app.router.add_get("/", protect(fleet))
    app.router.add_get("/groups/{rg}/{name}", protect(group))
    app.router.add_get("/ui/static/{file}", protect(static))
