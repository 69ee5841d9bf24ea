"""Logs: JSON lines off a terminal, group fields kept, and no secret value ever written."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import assume, given
from hypothesis import strategies as st

from reconciler.daemon.logging import REDACTED, Redactor, configure, reset


@pytest.fixture
def stream() -> Iterator[io.StringIO]:
    out = io.StringIO()
    configure(stream=out)
    yield out
    reset()


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_lines_when_not_a_terminal_with_group_fields(stream: io.StringIO) -> None:
    structlog.get_logger("t").info(
        "group done", resource_group="rg", name="web", action="update", revision="abc"
    )
    (event,) = lines(stream)
    assert event["event"] == "group done"
    assert (event["resource_group"], event["name"], event["action"], event["revision"]) == (
        "rg",
        "web",
        "update",
        "abc",
    )
    assert event["level"] == "info"
    assert "timestamp" in event


def test_fields_named_like_secrets_are_dropped(stream: io.StringIO) -> None:
    structlog.get_logger("t").info("x", password="p4ss-w0rd", token="abc.def", client_secret="s3cr3t-v4lue")
    (event,) = lines(stream)
    assert event["password"] == event["token"] == event["client_secret"] == REDACTED


def test_token_like_strings_are_masked_anywhere(stream: io.StringIO) -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlc2lnbmF0dXJl"
    structlog.get_logger("t").error(
        "failed",
        error=f"Authorization: Bearer {jwt}",
        detail="DefaultEndpointsProtocol=https;AccountKey=abcd1234==",
    )
    text = stream.getvalue()
    assert "eyJhbGci" not in text
    assert "abcd1234" not in text


def test_registered_secret_values_never_appear(stream: io.StringIO) -> None:
    from reconciler.daemon.logging import REDACTOR

    REDACTOR.add(["correct-horse-battery"])
    structlog.get_logger("t").error(
        "group failed",
        error="env MODE=correct-horse-battery rejected",
        nested={"a": ["correct-horse-battery"]},
    )
    assert "correct-horse-battery" not in stream.getvalue()


@given(
    secret=st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=6, max_size=40)
)
def test_a_registered_secret_is_scrubbed_from_any_message(secret: str) -> None:
    # A secret that is part of the words around it (or of the marker) cannot be told from them.
    assume(secret not in '{"event": "x", "error": "before (redacted) after", "items": ["(redacted)"]}')
    redactor = Redactor()
    redactor.add([secret])
    event = redactor(None, "info", {"event": "x", "error": f"before {secret} after", "items": [secret]})
    assert secret not in json.dumps(event, ensure_ascii=False)


def test_console_rendering_on_a_terminal() -> None:
    out = io.StringIO()
    configure(stream=out, json_lines=False)
    try:
        structlog.get_logger("t").info("pass finished", revision="abc")
    finally:
        reset()
    text = out.getvalue()
    assert "pass finished" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_stdlib_logging_becomes_json_lines_and_is_redacted(stream: io.StringIO) -> None:
    import logging

    from reconciler.daemon.logging import REDACTOR

    REDACTOR.add(["stdlib-secret-value"])
    logging.getLogger("reconciler.execution.executor").warning("retrying web: stdlib-secret-value rejected")
    logging.getLogger("azure.core.pipeline").info("Request URL: https://management.azure.com/...")
    (event,) = lines(stream)
    assert event["logger"] == "reconciler.execution.executor"
    assert event["level"] == "warning"
    assert "stdlib-secret-value" not in json.dumps(event)
