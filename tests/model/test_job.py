"""The `reconcile.job` block: cron schedules, time zones, durations, keep and concurrency, and the rule
that a job runs to completion; and the log mask that hides a job's secrets."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from reconciler.model.job import JobPolicy, parse_duration
from reconciler.model.manifest import parse_manifest
from reconciler.model.mask import MASK, SecretMask


def job_manifest(job: dict[str, Any], *, policy: str | None = "Never") -> dict[str, Any]:
    props: dict[str, Any] = {
        "osType": "Linux",
        "containers": [
            {
                "name": "a",
                "properties": {"image": "x", "resources": {"requests": {"cpu": 1, "memoryInGB": 1}}},
            }
        ],
    }
    if policy is not None:
        props["restartPolicy"] = policy
    return {
        "name": "j",
        "resourceGroup": "rg",
        "location": "westeurope",
        "properties": props,
        "reconcile": {"job": job},
    }


def error_of(job: dict[str, Any], **kw: Any) -> str:
    with pytest.raises(ValidationError) as info:
        parse_manifest(job_manifest(job, **kw))
    return str(info.value)


def test_a_full_job_block_is_read_with_its_defaults_folded_in() -> None:
    m = parse_manifest(
        job_manifest(
            {
                "schedule": "*/15  * * * 1-5",
                "timeZone": "Europe/Berlin",
                "runOnChange": True,
                "concurrency": "replace",
                "startingDeadline": "5m",
                "timeout": "1h30m",
                "keep": "onFailure",
                "history": 3,
            }
        )
    )
    job = m.policy.job
    assert job == JobPolicy(
        schedule="*/15 * * * 1-5",
        time_zone="Europe/Berlin",
        run_on_change=True,
        concurrency="Replace",
        starting_deadline=300.0,
        timeout=5400.0,
        keep="on-failure",
        history=3,
    )
    assert job.triggered


def test_an_empty_job_block_is_a_job_run_on_demand_only() -> None:
    job = parse_manifest(job_manifest({})).policy.job
    assert job is not None
    assert (job.schedule, job.concurrency, job.keep, job.triggered) == (None, "Forbid", "never", False)


@pytest.mark.parametrize(
    ("job", "where", "says"),
    [
        ({"schedule": "* * *"}, "reconcile.job.schedule", "five fields"),
        ({"schedule": "61 * * * *"}, "reconcile.job.schedule", "not a valid cron expression"),
        ({"schedule": "@daily"}, "reconcile.job.schedule", "'0 0 * * *'"),
        ({"timeZone": "Mars/Olympus"}, "reconcile.job.timeZone", "IANA"),
        ({"timeout": "5 minutes"}, "reconcile.job.timeout", "1h30m"),
        ({"timeout": 0}, "reconcile.job.timeout", "more than 0"),
        ({"startingDeadline": "400d"}, "reconcile.job.startingDeadline", "366 days"),
        ({"keep": "sometimes"}, "reconcile.job.keep", "on-failure"),
        ({"concurrency": "Queue"}, "reconcile.job.concurrency", "Forbid"),
        ({"history": 0}, "reconcile.job.history", "greater than or equal to 1"),
        ({"scheduel": "* * * * *"}, "reconcile.job", "scheduel"),
    ],
)
def test_a_bad_job_field_is_a_located_error_that_says_what_to_write(
    job: dict[str, Any], where: str, says: str
) -> None:
    text = error_of(job)
    assert where in text
    assert says in text


@pytest.mark.parametrize("policy", ["Always", None])
def test_a_job_must_run_to_completion(policy: str | None) -> None:
    text = error_of({}, policy=policy)
    assert "reconcile.job" in text
    assert "restartPolicy to Never" in text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (90, 90.0),
        ("90", 90.0),
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("2d", 172800.0),
        ("1.5h", 5400.0),
    ],
)
def test_durations_are_seconds_or_units(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@given(st.text(max_size=30))
def test_any_duration_text_parses_or_raises_a_value_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert 0 < seconds <= 366 * 86400


def test_the_mask_hides_a_secret_as_given_line_by_line_and_base64_decoded() -> None:
    pem = "-----BEGIN KEY-----\nQUJDREVGR0g=\n-----END KEY-----"
    volume_file = base64.b64encode(b"db-password-42\n").decode()
    settings = json.dumps({"token": "tok-123456"})
    mask = SecretMask(["hunter2-long", pem, volume_file, settings])
    assert mask("pw=hunter2-long!") == f"pw={MASK}!"
    assert mask("line QUJDREVGR0g= seen") == f"line {MASK} seen"
    assert mask("read db-password-42 from file") == f"read {MASK} from file"
    assert mask("token tok-123456") == f"token {MASK}"
    assert mask("nothing secret here") == "nothing secret here"


def test_the_mask_leaves_values_too_short_to_be_secrets_alone() -> None:
    mask = SecretMask(["1", "on", ""])
    assert not mask
    assert mask("1 on 1") == "1 on 1"


@given(st.lists(st.text(min_size=4, max_size=12), min_size=1, max_size=4), st.text(max_size=40))
def test_a_masked_text_never_contains_a_secret(secrets: list[str], noise: str) -> None:
    mask = SecretMask(secrets)
    text = noise.join(secrets) + noise
    out = mask(text)
    for secret in secrets:
        if secret.strip() == secret and "\n" not in secret and "\r" not in secret:
            assert secret not in out
