"""Delivery to local receivers (one server on loopback, a path per receiver): each kind's payload, the
webhook's signature, filters, deduplication, rate limits, retries, and that a receiver that is down never
slows a pass."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from reconciler.daemon.notify import Event, EventKind, Notifier, load_notifications
from reconciler.daemon.notify.config import NotificationsConfig, Receiver
from reconciler.daemon.notify.payloads import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.daemon.fakes import FakeClock, settle
from tests.daemon.notify.receivers import Receivers, receivers

SHA = "0123456789abcdef0123456789abcdef01234567"
SECRET_VALUE = "hunter2-very-secret"


def mask(text: str) -> str:
    return text.replace(SECRET_VALUE, "***")


def event(kind: EventKind = EventKind.STALLED, **fields: Any) -> Event:
    base: dict[str, Any] = {
        "instance": "default",
        "at": 1_700_000_000.0,
        "summary": "rg-prod/<script>alert(1)</script> is stalled: ApplyRejected",
        "severity": "error",
        "resource_group": "rg-prod",
        "name": "<script>alert(1)</script>",
        "revision": SHA,
        "detail": {"message": f"the image needs a password {SECRET_VALUE}"},
    }
    base.update(fields)
    return Event(kind=kind, **base)


def config(rx: Receivers, *extra: str) -> NotificationsConfig:
    env = {"K": "webhook-key", "SLACK": f"{rx.url}/slack", "TEAMS": f"{rx.url}/teams", "GH": "ghs_token"}
    flags = [
        f"webhook={rx.url}/hook,secret=env:K",
        "slack=env:SLACK",
        "teams=env:TEAMS",
        *extra,
    ]
    loaded = load_notifications(None, flags, env)
    github = Receiver(
        name="github",
        type="github",
        url=f"{rx.url}/repos/o/r/statuses/",
        secret=b"ghs_token",
        kinds=frozenset({EventKind.REVISION}),
        context="aci-reconciler",
    )
    return NotificationsConfig(receivers=(*loaded.receivers, github), secrets=loaded.secrets)


def slack_notifier(clock: FakeClock, send: Any, on_result: Any = None, **receiver: Any) -> Notifier:
    """One Slack receiver on the fake clock, sending through `send`; `receiver` overrides its settings."""
    base = load_notifications(None, ["slack=env:S"], {"S": "https://hooks.slack.com/x"}).receivers[0]
    return Notifier(
        NotificationsConfig(receivers=(Receiver(**{**base.__dict__, **receiver}),)),
        redact=mask,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        send=send,
        on_result=on_result,
    )


async def test_every_kind_of_receiver_gets_its_payload_and_the_webhook_is_signed() -> None:
    async with receivers() as rx:
        notifier = Notifier(config(rx), redact=mask)
        notifier.start()
        try:
            notifier.emit(event())
            notifier.emit(
                event(EventKind.REVISION, summary="in sync", severity="info", detail={"state": "success"})
            )
            await rx.wait_for(1, "/hook")
            await rx.wait_for(1, "/slack")
            await rx.wait_for(1, "/teams")
            [status] = await rx.wait_for(1, "/repos")
        finally:
            await notifier.aclose()

        [hook] = rx.at("/hook")
        assert verify(
            b"webhook-key", hook.headers[TIMESTAMP_HEADER], hook.body, hook.headers[SIGNATURE_HEADER]
        )
        assert not verify(
            b"other-key", hook.headers[TIMESTAMP_HEADER], hook.body, hook.headers[SIGNATURE_HEADER]
        )
        assert not verify(b"webhook-key", "1", hook.body, hook.headers[SIGNATURE_HEADER]), (
            "the time is signed"
        )
        body = hook.json
        assert (body["type"], body["kind"], body["name"]) == ("aci-reconciler.event", "stalled", event().name)
        assert body["delivery"] == hook.headers["X-Reconciler-Delivery"]

        slack = rx.at("/slack")[0].json
        assert "&lt;script&gt;" in slack["blocks"][0]["text"]["text"]
        assert "<script>" not in str(slack)
        teams = rx.at("/teams")[0].json
        card = teams["attachments"][0]["content"]
        assert card["type"] == "AdaptiveCard"
        assert "\\<script\\>" in card["body"][0]["text"]

        assert status.path == f"/repos/o/r/statuses/{SHA}"
        assert status.headers["Authorization"] == "Bearer ghs_token"
        assert status.json == {
            "state": "success",
            "context": "aci-reconciler/default",
            "description": "in sync",
        }

        for got in rx.got:
            assert SECRET_VALUE not in got.body.decode(), got.path
        assert notifier.sent == 4


async def test_filters_pick_events_by_kind_severity_and_resource_group() -> None:
    async with receivers() as rx:
        flags = [f"webhook={rx.url}/hook,secret=env:K,events=stalled+prune,minSeverity=warning"]
        loaded = load_notifications(None, flags, {"K": "k"})
        hook = loaded.receivers[0]
        only_prod = Receiver(
            **{**hook.__dict__, "name": "prod", "url": f"{rx.url}/prod", "resource_groups": ("rg-prod*",)}
        )
        notifier = Notifier(NotificationsConfig(receivers=(hook, only_prod)), redact=mask)
        notifier.start()
        try:
            notifier.emit(event(EventKind.RECOVERED, severity="info"))  # kind not wanted
            notifier.emit(event(EventKind.PRUNE, severity="info"))  # below warning
            notifier.emit(event(EventKind.PRUNE, severity="warning", resource_group="rg-dev"))
            notifier.emit(event(EventKind.STALLED, resource_group="RG-PROD-EU"))
            await rx.wait_for(2, "/hook")
            await rx.wait_for(1, "/prod")
        finally:
            await notifier.aclose()
        assert [r.json["kind"] for r in rx.at("/hook")] == ["prune", "stalled"]
        assert [r.json["resource_group"] for r in rx.at("/prod")] == ["RG-PROD-EU"]


async def test_the_same_event_is_sent_once_per_dedup_window() -> None:
    clock = FakeClock()
    results: list[tuple[str, str]] = []
    sent: list[str] = []

    async def send(request: Any, limit: float) -> None:
        sent.append(request.url)

    notifier = slack_notifier(clock, send, on_result=lambda r, what: results.append((r, what)))
    notifier.start()
    notifier.emit(event())
    notifier.emit(event(summary="same thing, other words"))
    await settle()
    assert len(sent) == 1
    assert ("slack-flag", "deduplicated") in results
    await clock.advance(3601)
    notifier.emit(event())
    await settle()
    assert len(sent) == 2, "after the window it is news again"
    await notifier.aclose()


async def test_failures_are_retried_with_backoff_and_refusals_are_not() -> None:
    clock = FakeClock()
    async with receivers() as rx:
        rx.script["/hook"] = [503, 429, 200]
        rx.script["/slack"] = [400]
        env = {"K": "k", "S": f"{rx.url}/slack"}
        loaded = load_notifications(None, [f"webhook={rx.url}/hook,secret=env:K", "slack=env:S"], env)
        notifier = Notifier(loaded, redact=mask, sleep=clock.sleep, monotonic=clock.monotonic)
        notifier.start()
        notifier.emit(event())
        await rx.wait_for(1, "/slack")
        await rx.wait_for(1, "/hook")
        while len(rx.at("/hook")) < 3:
            await clock.advance(1)
            await asyncio.sleep(0.01)  # the local server answers on the real loop
        await notifier.aclose()
        stamps = [r.headers[TIMESTAMP_HEADER] for r in rx.at("/hook")]
        assert len(stamps) == 3, "two retries, then delivered"
        assert len(rx.at("/slack")) == 1, "a 400 is not retried"
        assert (notifier.sent, notifier.failed) == (1, 1)
        backoffs = [d for d in clock.slept if d >= 0.5]
        assert backoffs[0] == pytest.approx(1.0, rel=0.25)
        assert backoffs[1] == pytest.approx(2.0, rel=0.25)


async def test_a_burst_is_paced_by_the_rate_limit() -> None:
    clock = FakeClock()
    sent: list[float] = []

    async def send(request: Any, limit: float) -> None:
        sent.append(clock.monotonic())

    notifier = slack_notifier(clock, send, rate_limit_per_minute=2)
    notifier.start()
    for n in range(4):
        notifier.emit(event(name=f"g{n}"))
    await settle()
    assert len(sent) == 2, "the bucket holds a minute's worth"
    await clock.advance(30)
    await settle()
    assert len(sent) == 3
    await clock.advance(30)
    await settle()
    assert len(sent) == 4
    await notifier.aclose()


async def test_a_receiver_that_never_answers_does_not_slow_emit_and_its_queue_is_bounded() -> None:
    async with receivers() as rx:
        rx.hang.add("/hook")
        loaded = load_notifications(None, [f"webhook={rx.url}/hook,secret=env:K"], {"K": "k"})
        dropped: list[str] = []
        notifier = Notifier(loaded, redact=mask, on_result=lambda r, what: dropped.append(what))
        notifier.start()
        notifier.emit(event(name="first"))
        await rx.wait_for(1, "/hook")  # the sender is now stuck on a receiver that does not answer
        assert not asyncio.iscoroutinefunction(notifier.emit), "emit cannot wait: it is not a coroutine"
        for n in range(600):
            notifier.emit(event(name=f"g{n}"))
        assert dropped.count("dropped") == 100, "500 queued, the oldest dropped"
        await notifier.aclose(grace=0)
