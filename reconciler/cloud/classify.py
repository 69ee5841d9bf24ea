"""The one table that decides whether a failed Azure call is retryable or stalled.

Called by the Azure adapter (`reconciler.cloud.azure`) for every HTTP error response and every transport
exception, so that errors are classified once, where they enter. Nothing else in the reconciler looks at
HTTP statuses or ARM error codes.

Sources for the codes below:

- recorded real ARM traffic in `../shared/azure/recordings/` (see its SOURCE.md):
  `SecurityContextNotSupported` (400, `test_container_group_profile_create_with_confidential_sku.yaml`),
  `NoRegisteredProviderFound` (400, `azure-sdk-for-python/test_cli_mgmt_containerinstance...yaml`),
  `LinkedAuthorizationFailed` (403, `test_container_reuse_from_standbypool.yaml`),
  `ResourceNotFound` (404, `test_container_create_with_vnet.yaml`);
- ARM's documented throttling (429 + Retry-After) and common error codes (`AuthorizationFailed`,
  `InvalidAuthenticationToken`, `RequestDisallowedByPolicy`, `MissingSubscriptionRegistration`,
  `AnotherOperationInProgress`, `ResourceGroupNotFound`);
- ACI's own codes: quota (`ContainerGroupQuotaReached`, any `...QuotaExceeded`),
  a rejected update (`InvalidContainerGroupUpdate`, `ContainerGroupUpdateNotAllowed`: its own kind,
  `UpdateRefusedError`, because the executor answers it with a replace), a group still busy
  (`ContainerGroupTransitioning`), and the "ServiceUnavailable ... container group quota exceeded" answer that
  Microsoft's support article documents: a 503 that is a quota, not an outage, so it stalls.
"""

from __future__ import annotations

import email.utils
import math
import re
import ssl
import time
from collections.abc import Mapping
from typing import Any

from reconciler.cloud.errors import (
    GatewayError,
    NotFoundError,
    RetryableError,
    StalledError,
    UpdateRefusedError,
)

# Azure's error messages can be long (the NoRegisteredProviderFound message lists every region); keep the
# useful start only. Messages come from Azure, never from our request body.
MAX_MESSAGE = 400

# Statuses that say "the same request may succeed later".
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

# 409s that clear up by themselves: another operation on the same group is still running, or the region has
# no capacity for the group right now (ACI's 409 `ServiceUnavailable` "...is not available in the location
# ... at this moment. Please retry ..."; a 409 that speaks of a quota is caught before this and stalls).
RETRYABLE_CONFLICT_CODES = frozenset(
    {
        "anotheroperationinprogress",
        "containergrouptransitioning",
        "operationnotallowed_transitioning",
        "serviceunavailable",
    }
)

# Codes that stall whatever the status says (a 503 quota answer, a 409 quota, ...).
QUOTA_CODE = re.compile(r"quota(reached|exceeded)$", re.IGNORECASE)
QUOTA_MESSAGE = re.compile(r"quota\b.*\bexceeded|exceeded.*\bquota", re.IGNORECASE)

# An update ACI will not do in place: the manifest must change (or the group be replaced).
REJECTED_UPDATE_CODES = frozenset(
    {"invalidcontainergroupupdate", "containergroupupdatenotallowed", "containergroupupdateforbidden"}
)

# Codes whose 4xx would otherwise look ambiguous, listed to say on purpose that they stall.
AUTHORISATION_CODES = frozenset(
    {
        "authorizationfailed",
        "linkedauthorizationfailed",
        "invalidauthenticationtoken",
        "expiredauthenticationtoken",
        "invalidauthenticationtokentenant",
        "requestdisallowedbypolicy",
        "missingsubscriptionregistration",
        "subscriptionnotfound",
    }
)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None when absent/bad."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        current = time.time() if now is None else now
        return max(0.0, when.timestamp() - current)
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        return None
    return seconds


def retry_after_from_headers(headers: Mapping[str, str]) -> float | None:
    """Retry-After (or the ms variants ARM sometimes sends) from response headers, in seconds."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for key in ("retry-after-ms", "x-ms-retry-after-ms"):
        if key in lowered:
            ms = parse_retry_after(lowered[key])
            if ms is not None:
                return ms / 1000.0
    return parse_retry_after(lowered.get("retry-after"))


def arm_error(body: Any) -> tuple[str | None, str]:
    """(code, message) of an ARM error body `{"error": {"code", "message"}}`; tolerant of odd shapes."""
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping):
            code = err.get("code")
            message = err.get("message")
            return (str(code) if code else None, str(message) if message else "")
    return (None, "")


def _shorten(message: str) -> str:
    message = " ".join(message.split())
    if len(message) > MAX_MESSAGE:
        return message[: MAX_MESSAGE - 1] + "…"
    return message


def classify_http(
    status: int,
    *,
    code: str | None,
    message: str,
    headers: Mapping[str, str] | None = None,
    operation: str = "",
) -> GatewayError:
    """The GatewayError for an HTTP error response (status >= 400) of one Azure call.

    `operation` names the call in the message (`PUT rg/name`); `message` is Azure's error message.
    """
    retry_after = retry_after_from_headers(headers or {})
    lowered = (code or "").lower()
    text = _shorten(message) or f"HTTP {status}"
    if operation:
        text = f"{operation}: {text}"

    if status == 404 and lowered != "subscriptionnotfound":
        # A missing subscription is a configuration error, not an empty resource group.
        return NotFoundError(text, status=status, code=code)
    # Quota and rejected updates stall whatever status carries them (ACI answers quota with 503 or 409).
    if QUOTA_CODE.search(lowered) or (status in (403, 409, 503) and QUOTA_MESSAGE.search(message)):
        return StalledError(f"quota: {text}", status=status, code=code)
    if lowered in REJECTED_UPDATE_CODES:
        # Classified by the code, never by the wording: Azure has answered it with one generic sentence
        # ("The updates on container group 'x' are invalid. If you are going to update the os type, restart
        # policy, network profile, CPU, memory or GPU resources ..., you must delete it first") and with
        # sentences that name the property; the message is only carried to the outcome.
        return UpdateRefusedError(
            f"update rejected: {text}",
            azure_message=_shorten(message) or code or "",
            status=status,
            code=code,
        )
    if lowered in AUTHORISATION_CODES or status in (401, 403):
        return StalledError(f"not authorised: {text}", status=status, code=code)
    if status == 409 and lowered in RETRYABLE_CONFLICT_CODES:
        return RetryableError(text, status=status, code=code, retry_after=retry_after)
    if status in RETRYABLE_STATUSES:
        return RetryableError(text, status=status, code=code, retry_after=retry_after)
    # 400 validation, other 409 conflicts, 412, 422...: the request itself is wrong; retrying cannot help.
    return StalledError(text, status=status, code=code)


def _tls_untrusted(exc: BaseException) -> bool:
    """True when a certificate verification failure is anywhere in the exception's chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        inner = getattr(current, "inner_exception", None)
        nxt = inner if isinstance(inner, BaseException) else None
        current = nxt or current.__cause__ or current.__context__
    return False


def classify_exception(exc: BaseException, *, operation: str = "") -> GatewayError:
    """The GatewayError for an exception raised while sending a request (no HTTP response to classify).

    Connection errors, resets and timeouts are retryable; authentication failures (no credential found,
    a token refused) are stalled: they need an operator. Anything unknown is retryable once more rather
    than stalling a group forever on a transient library hiccup; the attempt budget bounds it.
    """
    # Imported here so that this module's table can be read and tested without the SDK's import cost.
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    prefix = f"{operation}: " if operation else ""
    if isinstance(exc, GatewayError):
        return exc
    if isinstance(exc, ClientAuthenticationError):
        # The credential's message names the credential chain, never the token.
        return StalledError(f"{prefix}authentication failed: {_shorten(str(exc.message))}", status=401)
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        code = getattr(exc.error, "code", None) if exc.error is not None else None
        headers = dict(getattr(exc.response, "headers", None) or {})
        return classify_http(
            exc.status_code, code=code, message=str(exc.message), headers=headers, operation=operation
        )
    if _tls_untrusted(exc):
        # A certificate we do not trust will not become trusted by retrying.
        return StalledError(
            f"{prefix}the endpoint's TLS certificate is not trusted: give the CA that signed it "
            "(--ca-cert for an emulator)"
        )
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return RetryableError(f"{prefix}connection error: {type(exc).__name__}: {_shorten(str(exc.message))}")
    if isinstance(exc, TimeoutError):
        return RetryableError(f"{prefix}timed out")
    if isinstance(exc, ConnectionError | OSError):
        return RetryableError(f"{prefix}connection error: {type(exc).__name__}")
    return RetryableError(f"{prefix}unexpected error: {type(exc).__name__}")


# Codes of a failed long-running operation (`{"status": "Failed", "error": {...}}`) that a later attempt
# may get past: the platform's transient failures. Everything else (InaccessibleImage, validation...) stalls.
RETRYABLE_OPERATION_CODES = frozenset(
    {
        "internalservererror",
        "serviceunavailable",
        "gatewaytimeout",
        "toomanyrequests",
        "operationtimedout",
        "containergrouptransitioning",
        "anotheroperationinprogress",
        "resourcerequestsnotavailable",
    }
)


def classify_operation_failure(code: str | None, message: str, *, operation: str = "") -> GatewayError:
    """The GatewayError for a long-running operation that ended `Failed` or `Canceled`."""
    lowered = (code or "").lower()
    text = _shorten(message) or "operation failed"
    if operation:
        text = f"{operation}: {text}"
    if QUOTA_CODE.search(lowered) or QUOTA_MESSAGE.search(message):
        return StalledError(f"quota: {text}", code=code)
    if lowered in REJECTED_UPDATE_CODES:
        return UpdateRefusedError(
            f"update rejected: {text}", azure_message=_shorten(message) or code or "", code=code
        )
    if lowered in RETRYABLE_OPERATION_CODES:
        return RetryableError(text, code=code)
    return StalledError(text, code=code)
