"""The HTTP endpoints: probes, Prometheus metrics, the status page, and the signed webhook."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import pytest
import structlog
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


async def _raw_post_hook(client: Client, signature: bytes, body: bytes = b'{"ref": 1}') -> int:
    """POST /hook with the signature header as raw bytes (no client library would send non-UTF-8)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.port)
    try:
        writer.write(
            b"POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Hub-Signature-256: "
            + signature
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
    finally:
        writer.close()
    return int(status_line.split()[1])


MALFORMED_SIGNATURES = [
    b"sha256=\xff\xfe" + b"0" * 62,  # not UTF-8
    b"sha256=\xc3\xa9" + b"0" * 62,  # UTF-8 but not ASCII
    b"sha256=" + b"g" * 64,  # not hex
    b"sha256=" + b"0" * 63,  # too short
    b"sha256=" + b"0" * 4096,  # far too long
    b"SHA256=" + b"0" * 64,  # wrong prefix
    b"sha256 " + b"0" * 64,
]


@pytest.mark.parametrize("signature", MALFORMED_SIGNATURES)
async def test_webhook_with_a_malformed_signature_header_is_a_401_never_a_500(
    harness: tuple[Harness, Client], signature: bytes
) -> None:
    h, client = harness
    assert await _raw_post_hook(client, signature) == 401
    assert h.hooks == 0


async def test_a_flood_of_bad_signatures_logs_one_bounded_line_per_window(
    harness: tuple[Harness, Client],
) -> None:
    h, client = harness
    with structlog.testing.capture_logs() as logs:
        for signature in MALFORMED_SIGNATURES * 3:
            assert await _raw_post_hook(client, signature) == 401
        first = [e for e in logs if "webhook" in str(e.get("event", ""))]
        await h.clock.advance(61)
        assert await _raw_post_hook(client, MALFORMED_SIGNATURES[0]) == 401
    rejected = [e for e in logs if "webhook" in str(e.get("event", ""))]
    assert len(first) == 1, first
    assert len(rejected) == 2, rejected
    assert rejected[1]["suppressed"] == len(MALFORMED_SIGNATURES) * 3 - 1
    for entry in rejected:
        assert len(repr(entry)) < 400
        assert "0000" not in repr(entry)
        assert "\\xff" not in repr(entry)
