"""The table of `reconciler.cloud.classify`: each row, and the codes in recorded Azure traffic."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from azure.core.exceptions import (
    ClientAuthenticationError,
    ServiceRequestError,
    ServiceResponseError,
)
from hypothesis import given
from hypothesis import strategies as st

from reconciler.cloud.classify import (
    arm_error,
    classify_exception,
    classify_http,
    classify_operation_failure,
    parse_retry_after,
    retry_after_from_headers,
)
from reconciler.cloud.errors import NotFoundError, RetryableError, StalledError, UpdateRefusedError

RECORDINGS = Path(__file__).resolve().parents[2] / ".." / "shared" / "azure" / "recordings"


@pytest.mark.parametrize(
    ("status", "code", "message", "retryable"),
    [
        (429, "TooManyRequests", "throttled", True),
        (408, None, "request timeout", True),
        (500, "InternalServerError", "boom", True),
        (502, None, "bad gateway", True),
        (503, "ServiceUnavailable", "try later", True),
        (504, "GatewayTimeout", "slow", True),
        (409, "AnotherOperationInProgress", "busy", True),
        (409, "ContainerGroupTransitioning", "still transitioning", True),
        (409, "ServiceUnavailable", "The requested resource is not available in the location 'x'", True),
        (409, "ServiceUnavailable", "container group quota 'StandardCores' exceeded in region 'x'", False),
        (400, "InaccessibleImage", "The image 'x' in container group 'y' is not accessible", False),
        (400, "InvalidRequestContent", "bad body", False),
        (401, "InvalidAuthenticationToken", "no", False),
        (403, "AuthorizationFailed", "no", False),
        (409, "ContainerGroupQuotaReached", "too many groups", False),
        (400, "StandardCoresQuotaExceeded", "cores", False),
        (409, "Conflict", "a permanent conflict", False),
        (400, "InvalidContainerGroupUpdate", "cannot change cpu", False),
        (422, "UnprocessableEntity", "no", False),
    ],
)
def test_each_row_of_the_table_classifies_as_documented(
    status: int, code: str | None, message: str, retryable: bool
) -> None:
    error = classify_http(status, code=code, message=message)
    assert error.retryable is retryable
    assert error.status == status
    assert error.code == code


def test_not_found_maps_to_not_found_error() -> None:
    error = classify_http(404, code="ResourceNotFound", message="gone")
    assert isinstance(error, NotFoundError)
    assert not error.retryable


def test_service_unavailable_quota_message_stalls_instead_of_retrying() -> None:
    # Microsoft's support article "ServiceUnavailable - container group quota exceeded in region".
    message = (
        "Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota "
        "'ContainerGroups' exceeded in region 'westeurope'. Limit: '0', Usage: '0' Requested: '1'."
    )
    error = classify_http(503, code="ServiceUnavailable", message=message)
    assert isinstance(error, StalledError)
    assert "quota" in error.message


def test_throttling_carries_retry_after_seconds() -> None:
    error = classify_http(429, code="TooManyRequests", message="slow down", headers={"Retry-After": "17"})
    assert isinstance(error, RetryableError)
    assert error.retry_after == 17.0


def test_retry_after_ms_header_wins_over_seconds() -> None:
    assert retry_after_from_headers({"retry-after-ms": "1500", "Retry-After": "9"}) == 1.5


def test_retry_after_http_date_is_seconds_from_now() -> None:
    assert parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", now=40.0) == 60.0


@pytest.mark.parametrize("value", [None, "", "soon", "-3", "nan", "inf"])
def test_unusable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value) is None


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False))
def test_any_non_negative_delta_seconds_parses_back(seconds: float) -> None:
    assert parse_retry_after(repr(seconds)) == pytest.approx(seconds)


def test_long_azure_messages_are_shortened() -> None:
    error = classify_http(400, code="X", message="word " * 500)
    assert len(error.message) <= 401


def test_operation_label_prefixes_the_message() -> None:
    error = classify_http(400, code="X", message="bad", operation="PUT rg/web")
    assert error.message == "PUT rg/web: bad"


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (ServiceRequestError("connection refused"), True),
        (ServiceResponseError("connection reset by peer"), True),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (ClientAuthenticationError("DefaultAzureCredential failed to retrieve a token"), False),
    ],
)
def test_transport_exceptions_are_classified(exc: BaseException, retryable: bool) -> None:
    assert classify_exception(exc, operation="GET rg/web").retryable is retryable


def test_failed_operation_with_platform_error_is_retryable_and_bad_image_stalls() -> None:
    assert classify_operation_failure("InternalServerError", "oops").retryable
    assert not classify_operation_failure("InaccessibleImage", "cannot pull").retryable
    assert not classify_operation_failure("ServiceUnavailable", "container group quota exceeded").retryable


def _recorded_errors() -> list[tuple[str, int, str | None]]:
    found: list[tuple[str, int, str | None]] = []
    for path in sorted(RECORDINGS.rglob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        for interaction in data.get("interactions", []):
            response = interaction["response"]
            status = int(response["status"]["code"])
            if status < 400:
                continue
            raw = response["body"]["string"]
            body = yaml.safe_load(raw) if raw else None
            code, _ = arm_error(body)
            found.append((path.name, status, code))
    return found


@pytest.mark.skipif(not RECORDINGS.is_dir(), reason="the shared recordings are not checked out")
def test_every_error_in_recorded_azure_traffic_is_classified_stalled() -> None:
    # The recordings hold 400 SecurityContextNotSupported, 400 NoRegisteredProviderFound, 403
    # LinkedAuthorizationFailed and 404 ResourceNotFound: none of them is worth retrying.
    errors = _recorded_errors()
    codes = {code for _, _, code in errors}
    assert {"SecurityContextNotSupported", "NoRegisteredProviderFound", "LinkedAuthorizationFailed"} <= codes
    for name, status, code in errors:
        error = classify_http(status, code=code, message="recorded")
        assert not error.retryable, (name, status, code)
        if status == 404:
            assert isinstance(error, NotFoundError)


def test_untrusted_tls_certificate_stalls_with_the_fix() -> None:
    import ssl

    cause = ssl.SSLCertVerificationError("certificate verify failed: self-signed certificate")
    wrapped = ServiceRequestError("Cannot connect to host 127.0.0.1:8443", error=cause)
    error = classify_exception(wrapped, operation="GET rg/web")
    assert not error.retryable
    assert "--ca-cert" in error.message


def test_missing_subscription_is_not_mistaken_for_an_empty_resource_group() -> None:
    error = classify_http(404, code="SubscriptionNotFound", message="no such subscription")
    assert not isinstance(error, NotFoundError)
    assert not error.retryable


GENERIC_REFUSAL = (
    "The updates on container group 'web' are invalid. If you are going to update the os type, restart "
    "policy, network profile, CPU, memory or GPU resources for a container group, you must delete it first "
    "and then create a new one."
)
PER_PROPERTY_REFUSAL = (
    "The updates on container group 'web' are invalid. Updating property 'zones' is not supported; you must "
    "delete the container group first and then create a new one."
)


@pytest.mark.parametrize("message", [GENERIC_REFUSAL, PER_PROPERTY_REFUSAL])
@pytest.mark.parametrize("code", ["InvalidContainerGroupUpdate", "invalidcontainergroupupdate"])
def test_refused_update_is_its_own_kind_carrying_azures_message(code: str, message: str) -> None:
    error = classify_http(400, code=code, message=message, operation="PUT rg/web")
    assert isinstance(error, UpdateRefusedError)
    assert error.retryable is False
    assert error.azure_message == message
    assert "PUT rg/web" in str(error)


def test_refused_update_reported_by_a_failed_operation_is_the_same_kind() -> None:
    error = classify_operation_failure("InvalidContainerGroupUpdate", GENERIC_REFUSAL, operation="PUT rg/web")
    assert isinstance(error, UpdateRefusedError)
    assert error.azure_message == GENERIC_REFUSAL


def test_other_stalled_answers_are_not_refused_updates() -> None:
    assert not isinstance(classify_http(400, code="InvalidRequestContent", message="x"), UpdateRefusedError)
