"""The HTTP endpoints: probes, Prometheus metrics, the status page, and the signed webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reconciler.daemon.http import DaemonView, build_app, verify_signature
from reconciler.daemon.metrics import DaemonMetrics
from reconciler.daemon.state import StateBook
from reconciler.daemon.triggers import Coalescer, RetryTimer
from reconciler.daemon.worker import Worker
from reconciler.model.plan import FieldChange
from tests.daemon.fakes import FakeClock, FakeEngine, change, plan

SECRET = b"webhook-secret-value"


def sign(body: bytes, secret: bytes = SECRET) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class Harness:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.engine = FakeEngine()
        self.hooks = 0
        self.alive = True
        coalescer = Coalescer()
        self.book = StateBook()
        self.metrics = DaemonMetrics()
        self.worker = Worker(
            self.engine,
            coalescer,
            self.book,
            metrics=self.metrics,
            retry_timer=RetryTimer(coalescer, sleep=self.clock.sleep, clock=self.clock.time),
            clock=self.clock.time,
            monotonic=self.clock.monotonic,
        )
        self.view = DaemonView(
            worker=self.worker,
            book=self.book,
            metrics=self.metrics,
            instance="prod",
            clock=self.clock.time,
            monotonic=self.clock.monotonic,
            heartbeat=self.clock.monotonic(),
            worker_alive=lambda: self.alive,
            on_hook=self.on_hook,
            hook_secret=SECRET,
        )

    def on_hook(self) -> None:
        self.hooks += 1


Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def harness() -> AsyncIterator[tuple[Harness, Client]]:
    h = Harness()
    async with TestClient(TestServer(build_app(h.view), host="127.0.0.1")) as client:
        yield h, client


async def test_healthz_fails_when_the_loop_stops_ticking(harness: tuple[Harness, Client]) -> None:
    h, client = harness
    assert (await client.get("/healthz")).status == 200
    await h.clock.advance(31)
    assert (await client.get("/healthz")).status == 503
    h.view.heartbeat = h.clock.monotonic()
    assert (await client.get("/healthz")).status == 200
    h.alive = False
    assert (await client.get("/healthz")).status == 503


async def test_readyz_turns_ready_after_the_first_pass(harness: tuple[Harness, Client]) -> None:
    h, client = harness
    assert (await client.get("/readyz")).status == 503
    h.engine.set_plan(plan("r1", change("web")))
    await h.worker.run_pass([])
    assert (await client.get("/readyz")).status == 200
    h.view.shutting_down = True
    assert (await client.get("/readyz")).status == 503


async def test_metrics_are_prometheus_text_with_the_daemon_names(harness: tuple[Harness, Client]) -> None:
    h, client = harness
    h.engine.set_plan(plan("r1", change("web")))
    await h.worker.run_pass([])
    h.metrics.on_request("create_or_update", "429", 0.2)
    h.metrics.on_request("list", "200", 0.05)
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    for name in (
        "aci_reconciler_pass_duration_seconds_bucket",
        'aci_reconciler_actions_total{action="update",result="succeeded"} 1.0',
        'aci_reconciler_groups{state="Ready"} 1.0',
        "aci_reconciler_drift_detected_total",
        'aci_reconciler_azure_requests_total{operation="list",status="200"} 1.0',
        'aci_reconciler_azure_throttled_total{operation="create_or_update"} 1.0',
    ):
        assert name in text, name


async def test_status_lists_groups_and_the_last_plan_without_secrets(harness: tuple[Harness, Client]) -> None:
    h, client = harness
    web = change("web").model_copy(
        update={
            "fields": (
                FieldChange(
                    path="/properties/containers/web/properties/environmentVariables/DB_PASSWORD/secureValue",
                    kind="change",
                    before="hunter2-old-secret",
                    after="hunter2-new-secret",
                    sensitive=True,
                ),
            )
        }
    )
    h.engine.set_plan(plan("abc123", web))
    await h.worker.run_pass([])
    response = await client.get("/status")
    assert response.status == 200
    text = await response.text()
    assert "hunter2" not in text
    data = json.loads(text)
    assert data["instance"] == "prod"
    assert data["ready"] is True
    assert data["revision"] == "abc123"
    assert data["groups"][0]["name"] == "web"
    assert data["groups"][0]["state"] == "Ready"
    assert data["groups"][0]["history"][0]["result"] == "succeeded"
    assert data["last_plan"]["revision"] == "abc123"
    assert data["last_pass"]["result"] == "ok"


async def test_webhook_with_a_valid_signature_triggers(harness: tuple[Harness, Client]) -> None:
    h, client = harness
    body = b'{"ref": "refs/heads/main"}'
    response = await client.post(
        "/hook", data=body, headers={"X-Hub-Signature-256": sign(body), "X-GitHub-Event": "push"}
    )
    assert response.status == 202
    assert h.hooks == 1


@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256=", "sha1=abcd", sign(b"other body"), sign(b'{"ref": 1}', b"wrong-secret")],
)
async def test_webhook_with_a_bad_signature_is_rejected(
    harness: tuple[Harness, Client], signature: str | None
) -> None:
    h, client = harness
    headers = {"X-Hub-Signature-256": signature} if signature is not None else {}
    response = await client.post("/hook", data=b'{"ref": 1}', headers=headers)
    assert response.status == 401
    assert h.hooks == 0


async def test_webhook_ping_answers_without_a_pass(harness: tuple[Harness, Client]) -> None:
    h, client = harness
    body = b"{}"
    response = await client.post(
        "/hook", data=body, headers={"X-Hub-Signature-256": sign(body), "X-GitHub-Event": "ping"}
    )
    assert response.status == 200
    assert h.hooks == 0


async def test_webhook_is_disabled_without_a_secret(harness: tuple[Harness, Client]) -> None:
    h, client = harness
    h.view.hook_secret = None
    body = b"{}"
    response = await client.post("/hook", data=body, headers={"X-Hub-Signature-256": sign(body)})
    assert response.status == 404
    assert h.hooks == 0


def test_signature_check_is_githubs_hmac_sha256() -> None:
    # The example of GitHub's "Validating webhook deliveries" documentation.
    secret = b"It's a Secret to Everybody"
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert verify_signature(secret, b"Hello, World!", header)
    assert not verify_signature(secret, b"Hello, World?", header)
