"""An azure-core fake transport: the real SDK pipeline, with answers scripted per request.

Used by `tests/cloud/` to drive `reconciler.cloud.azure.AzureGateway` without a network or an emulator.
Give it a handler `(FakeRequest) -> Reply | BaseException`: it sees every request the pipeline sends (after
authentication, so headers include `Authorization`) and its reply is returned as an azure-core
`AsyncHttpResponse`; an exception is raised from the transport, as aiohttp would (use azure-core's
`ServiceRequestError` etc.). `requests` keeps every request for assertions.

    def handler(req):
        if req.method == "GET" and req.path.endswith("/containerGroups"):
            return Reply(200, {"value": []})
        return Reply(404, {"error": {"code": "ResourceNotFound", "message": "gone"}})
    transport = FakeArmTransport(handler)
    gateway = connect(Target(subscription_id="sub", credential="static",
                             endpoint="https://management.azure.com"), transport=transport)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azure.core.pipeline.transport import AsyncHttpTransport
from azure.core.rest import HttpRequest
from azure.core.rest._http_response_impl_async import AsyncHttpResponseImpl
from azure.core.utils import CaseInsensitiveDict


@dataclass(frozen=True)
class Reply:
    """A scripted response. `body` is JSON-encoded unless it is bytes (or None: no body)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FakeRequest:
    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.url).query)

    def json(self) -> Any:
        return json.loads(self.content or b"null")


Handler = Callable[[FakeRequest], "Reply | BaseException"]


class _Internal:
    async def close(self) -> None:
        return None


def _no_stream(*_args: Any, **_kwargs: Any) -> Iterator[bytes]:
    raise AssertionError("the fake transport does not stream")


class FakeArmTransport(AsyncHttpTransport):  # type: ignore[type-arg]  # azure-core's generics are untyped here
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[FakeRequest] = []

    async def __aenter__(self) -> FakeArmTransport:
        return self

    async def __aexit__(self, *args: Any) -> None:
        return None

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, request: HttpRequest, **kwargs: Any) -> AsyncHttpResponseImpl:
        raw = request.content
        content: bytes | None
        if raw is None:
            content = None
        elif isinstance(raw, bytes):
            content = raw
        elif isinstance(raw, str):
            content = raw.encode()
        else:
            content = bytes(raw)
        seen = FakeRequest(request.method, request.url, dict(request.headers), content)
        self.requests.append(seen)
        reply = self.handler(seen)
        if isinstance(reply, BaseException):
            raise reply
        if reply.body is None:
            body = b""
        elif isinstance(reply.body, bytes):
            body = reply.body
        else:
            body = json.dumps(reply.body).encode()
        headers = CaseInsensitiveDict({"content-type": "application/json; charset=utf-8", **reply.headers})
        response = AsyncHttpResponseImpl(
            request=request,
            internal_response=_Internal(),
            status_code=reply.status,
            reason="fake",
            content_type=headers.get("content-type"),
            headers=headers,
            stream_download_generator=_no_stream,
        )
        response._content = body
        return response

    def calls(self, method: str | None = None) -> list[FakeRequest]:
        return [r for r in self.requests if method is None or r.method == method]
