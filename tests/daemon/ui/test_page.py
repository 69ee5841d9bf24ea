"""The status page served in-process: what it shows, that data is always text, the security headers, and who
may read it (sign-in, loopback only without it)."""

from __future__ import annotations

import base64
import dataclasses
import html
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reconciler.daemon.http import build_app
from reconciler.daemon.ui.auth import UiAuthError, UiSettings, load_ui_settings
from reconciler.daemon.ui.routes import CSP
from reconciler.daemon.worker import LiveSummary
from reconciler.model.plan import Action, FieldChange
from tests.daemon.fakes import change, fail, plan
from tests.daemon.test_http import Harness

Client = TestClient[web.Request, web.Application]
HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
SECRET_VALUE = "p4ssw0rd-never-shown"


class Inspector:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def inspect(self, resource_group: str, name: str) -> dict[str, Any]:
        self.calls.append((resource_group, name))
        return {
            "ok": True,
            "containers": [
                {
                    "name": "web",
                    "state": "Running",
                    "detail": "",
                    "exit_code": None,
                    "started": "2026-01-01T00:00:00Z",
                    "restart_count": 0,
                    "events": [
                        {"type": "Normal", "name": "Pulled", "count": 1, "last": "", "message": HOSTILE}
                    ],
                    "log": ["listening on :80", f"token {HOSTILE}"],
                }
            ],
            "events": [],
        }


async def fleet_harness(ui: UiSettings | None = None) -> tuple[Harness, Inspector]:
    h = Harness()
    inspector = Inspector()
    h.view.ui = ui or UiSettings()
    h.view.inspector = inspector
    secret_field = FieldChange(
        path="/properties/containers/web/properties/environmentVariables/DB/secureValue",
        kind="change",
        sensitive=True,
    )
    image = FieldChange(
        path="/properties/containers/web/properties/image", kind="change", before="nginx:1", after="nginx:2"
    )
    web_change = change("web").model_copy(update={"fields": (secret_field, image)})
    h.engine.set_plan(
        plan(
            "r1",
            web_change,
            change("db", Action.NOOP),
            change(HOSTILE, Action.NOOP, rg="rg-x"),
            change("broken"),
        ),
        observed={("rg", "db"): LiveSummary("Succeeded", "Running", "r0")},
    )
    h.engine.outcomes["broken"] = fail(retryable=False, message=f"InvalidImage: {HOSTILE}")
    h.engine.gate = None
    await h.worker.run_pass([])
    return h, inspector


@pytest.fixture
async def page() -> AsyncIterator[tuple[Harness, Inspector, Client]]:
    h, inspector = await fleet_harness()
    async with TestClient(TestServer(build_app(h.view), host="127.0.0.1")) as client:
        yield h, inspector, client


async def test_the_fleet_lists_every_group_with_phase_sync_and_live_state(
    page: tuple[Harness, Inspector, Client],
) -> None:
    _, _, client = page
    response = await client.get("/")
    text = await response.text()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/html")
    for name in ("rg/web", "rg/db", "rg/broken"):
        assert f">{name}</a>" in text
    assert 'data-group="rg/db" data-phase="Ready"' in text
    assert 'data-group="rg/broken" data-phase="Stalled"' in text
    assert "Succeeded" in text
    assert "Running" in text
    assert "4 managed groups" in text


async def test_search_and_phase_filter_narrow_the_rows(page: tuple[Harness, Inspector, Client]) -> None:
    _, _, client = page
    text = await (await client.get("/", params={"phase": "Stalled"})).text()
    assert 'data-group="rg/broken"' in text
    assert 'data-group="rg/db"' not in text
    text = await (await client.get("/", params={"q": "DB"})).text()
    assert 'data-group="rg/db"' in text
    assert 'data-group="rg/web"' not in text
    assert "1 of 4 match" in text


async def test_hostile_names_messages_and_logs_render_as_text(
    page: tuple[Harness, Inspector, Client],
) -> None:
    _, _, client = page
    fleet = await (await client.get("/")).text()
    assert "<script>alert" not in fleet
    assert "onerror=alert(2)>" not in fleet
    assert html.escape(HOSTILE, quote=False).replace('"', "&#34;") in fleet
    assert "/groups/rg-x/%3Cscript%3Ealert%281%29%3C%2Fscript%3E%22%3E%3Cimg%20src%3Dx" in fleet
    broken = await (await client.get("/groups/rg/broken")).text()
    assert "Why it is stalled" in broken
    assert "<script>" not in broken
    assert "InvalidImage: &lt;script&gt;" in broken
    group = await (await client.get("/groups/rg/web")).text()
    assert "<script>" not in group
    assert "token &lt;script&gt;" in group


async def test_a_groups_page_shows_the_plans_diff_with_secrets_as_sensitive_and_its_history(
    page: tuple[Harness, Inspector, Client],
) -> None:
    _, inspector, client = page
    text = await (await client.get("/groups/rg/web")).text()
    assert "rg/web will be updated in place" in text
    assert "/properties/containers/web/properties/image" in text
    assert "&#34;nginx:1&#34; -&gt; &#34;nginx:2&#34;" in text
    assert "(sensitive)" in text
    assert SECRET_VALUE not in text
    assert (
        '<td data-label="Action">update</td><td data-label="Result" class="result-succeeded">succeeded'
        in text
    )
    assert "listening on :80" in text
    assert inspector.calls == [("rg", "web")]


async def test_unknown_groups_are_404_and_are_never_read_from_azure(
    page: tuple[Harness, Inspector, Client],
) -> None:
    _, inspector, client = page
    response = await client.get("/groups/rg/nope")
    assert response.status == 404
    assert "No such group" in await response.text()
    assert inspector.calls == []


async def test_the_fragment_is_the_main_content_only(page: tuple[Harness, Inspector, Client]) -> None:
    _, _, client = page
    text = await (await client.get("/", params={"fragment": "1"})).text()
    assert "<html" not in text
    assert "<h1>Fleet</h1>" in text
    assert '<template id="fresh-data">' in text


async def test_every_page_forbids_inline_code_frames_and_other_origins(
    page: tuple[Harness, Inspector, Client],
) -> None:
    _, _, client = page
    for path in ("/", "/groups/rg/web", "/groups/rg/nope", "/ui/static/app.js", "/ui/static/app.css"):
        response = await client.get(path)
        assert response.headers["Content-Security-Policy"] == CSP, path
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
    assert "'unsafe-inline'" not in CSP
    assert (await client.get("/ui/static/other.js")).status == 404
    text = await (await client.get("/")).text()
    assert "<script>" not in text.replace('<script src="/ui/static/app.js" defer></script>', "")
    assert "://" not in text, "no remote asset"


def settings(**kwargs: Any) -> UiSettings:
    return dataclasses.replace(UiSettings(), **kwargs)


@pytest.mark.parametrize(
    ("ui", "headers", "status"),
    [
        (settings(token=b"t" * 20), {}, 401),
        (settings(token=b"t" * 20), {"Authorization": "Bearer " + "t" * 20}, 200),
        (settings(token=b"t" * 20), {"Authorization": "Bearer wrong"}, 401),
        (
            settings(users={"ana": b"correct horse"}),
            {"Authorization": "Basic " + base64.b64encode(b"ana:correct horse").decode()},
            200,
        ),
        (
            settings(users={"ana": b"correct horse"}),
            {"Authorization": "Basic " + base64.b64encode(b"ana:nope").decode()},
            401,
        ),
        (settings(users={"ana": b"correct horse"}), {"Authorization": "Basic !!!"}, 401),
        (settings(loopback=False), {}, 403),
        (settings(loopback=False, mode="public"), {}, 200),
        (settings(loopback=False, token=b"t" * 20), {"Authorization": "Bearer " + "t" * 20}, 200),
    ],
)
async def test_who_may_read_the_page(ui: UiSettings, headers: dict[str, str], status: int) -> None:
    h, _ = await fleet_harness(ui)
    async with TestClient(TestServer(build_app(h.view), host="127.0.0.1")) as client:
        response = await client.get("/", headers=headers)
        assert response.status == status
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith(("Basic", "Bearer"))
        if status == 403:
            assert "--ui-token-file" in await response.text()
        assert (await client.get("/healthz")).status == 200, "probes never need sign-in"


async def test_sign_in_guards_status_json_too_and_off_removes_the_page() -> None:
    h, _ = await fleet_harness(settings(token=b"t" * 20))
    async with TestClient(TestServer(build_app(h.view), host="127.0.0.1")) as client:
        assert (await client.get("/status")).status == 401
        ok = await client.get("/status", headers={"Authorization": "Bearer " + "t" * 20})
        assert ok.status == 200
    h, _ = await fleet_harness(settings(mode="off"))
    async with TestClient(TestServer(build_app(h.view), host="127.0.0.1")) as client:
        assert (await client.get("/")).status == 404
        assert (await client.get("/status")).status == 200


def test_sign_in_files_are_checked_with_the_fix(tmp_path: Path) -> None:
    short = tmp_path / "token"
    short.write_text("abc\n")
    with pytest.raises(UiAuthError, match="shorter than 16 characters"):
        load_ui_settings(mode="on", token_file=short, basic_auth_file=None, listen_host="0.0.0.0")
    users = tmp_path / "users"
    users.write_text("# people\nana:correct horse\nbob\n")
    with pytest.raises(UiAuthError, match=r"users:3: write USER:PASSWORD"):
        load_ui_settings(mode="on", token_file=None, basic_auth_file=users, listen_host="0.0.0.0")
    with pytest.raises(UiAuthError, match="cannot read"):
        load_ui_settings(mode="on", token_file=tmp_path / "none", basic_auth_file=None, listen_host=None)
    users.write_text("ana:correct horse\n")
    loaded = load_ui_settings(mode="on", token_file=None, basic_auth_file=users, listen_host="::1")
    assert loaded.loopback
    assert loaded.secrets == ("correct horse",)
    assert "correct" not in repr(loaded)
    assert load_ui_settings(mode="on", token_file=None, basic_auth_file=None, listen_host="0.0.0.0").refusal


def test_the_daemon_panel_shows_passes_triggers_git_and_who_holds_which_shard() -> None:
    from reconciler.daemon.ui import views
    from reconciler.daemon.ui.routes import environment

    status = {
        "instance": "prod",
        "ready": True,
        "revision": "abc123",
        "current_pass": {"number": 8, "started_at": 100.0, "triggers": [{"kind": "file"}]},
        "recent_passes": [
            {"number": 7, "result": "failed", "revision": "abc123", "started_at": 90.0, "finished_at": 95.0,
             "duration_s": 5.0, "applied": 1, "deferred": 2, "error": "rg/x: bad",
             "triggers": [{"kind": "git"}]},
        ],
        "pending_triggers": [{"kind": "interval", "reason": "resync"}],
        "git": {"url": "https://git.example/r.git", "ref": "main", "revision": "abc123", "last_error": None},
        "coordination": {"replica": "pod-a", "leader": True, "reachable": True, "owned": [0],
                         "owners": [{"shard": 0, "owner": "pod-a"}, {"shard": 1, "owner": "pod-b"}],
                         "replicas": ["pod-a", "pod-b"]},
        "jobs": [],
    }  # fmt: skip
    model = views.fleet(status, [], {}, {}, now=200.0)
    text = environment().get_template("fleet_main.html").render(m=model, refresh_ms=1000)
    assert "#8 since" in text
    assert "interval: resync" in text
    assert "rg/x: bad" in text
    assert "https://git.example/r.git" in text
    assert "pod-a</code>: leader" in text
    assert "0: pod-a" in text
    assert "1: pod-b" in text
