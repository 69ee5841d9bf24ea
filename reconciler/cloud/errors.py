"""Errors of the gateway, classified where they enter: retryable or stalled.

Raised by the Azure adapter (`reconciler.cloud.azure`) and by fakes in tests; execution and the daemon act on
`retryable` and `retry_after` only. Messages never carry secret values (request bodies are not echoed).
"""

from __future__ import annotations


class GatewayError(Exception):
    """A failed call to Azure.

    `retryable`: throttling (429), 5xx, timeouts, connection errors: the same call may succeed later.
    Otherwise the group is stalled (validation, authorisation, quota, a rejected update) until its manifest
    changes. `retry_after` is the server's Retry-After in seconds, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status = status
        self.code = code
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = [self.message]
        if self.code:
            parts.insert(0, f"{self.code}:")
        if self.status is not None:
            parts.append(f"(HTTP {self.status})")
        return " ".join(parts)


class RetryableError(GatewayError):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, retryable=True, status=status, code=code, retry_after=retry_after)


class OperationTimeoutError(RetryableError):
    """A long-running operation did not finish within its timeout.

    Retryable by a later pass, but the executor does not retry it within the same pass: the write was
    accepted and is probably still running, and another PUT would restart the group once more.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message, code="OperationTimedOut")


class StalledError(GatewayError):
    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message, retryable=False, status=status, code=code)


class NotFoundError(StalledError):
    """The group (or resource group) does not exist. Callers that expect absence treat it as a value."""


class UpdateRefusedError(StalledError):
    """Azure refused an in-place update as needing a delete first (`InvalidContainerGroupUpdate`).

    Stalled for the update itself; the executor turns it into a replace in the same pass when the group's
    policy allows (`recreate: auto`, DESIGN section 5). `azure_message` is Azure's own text, shortened.
    """

    def __init__(
        self, message: str, *, azure_message: str, status: int | None = None, code: str | None = None
    ):
        super().__init__(message, status=status, code=code)
        self.azure_message = azure_message


NOT_LEADER = "NotLeader"


class FencedError(StalledError):
    """A write refused before it was sent: this replica does not hold (or may soon lose) the lease of the
    resource group's shard (`reconciler.daemon.coordination`). Never the group's fault: the daemon records
    it as interrupted, and the lease's holder converges the group."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=NOT_LEADER)
