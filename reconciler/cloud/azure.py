"""The Azure adapter: `Gateway` on azure-mgmt-containerinstance's async client (api-version 2023-05-01).

Built by `connect(Target)`, which the CLI calls (the only place that wires concrete classes together); the
engine, the executor and `reconciler.cloud.observe` use it through the `Gateway` protocol.

Design choices, so the integrator knows what to expect:

- Requests go through the SDK client's own pipeline (`ContainerInstanceManagementClient._send_request`, the
  SDK's documented raw-request entry point): authentication, ARM challenge handling, the user agent, TLS
  and header redaction are the SDK's. Bodies are ours: the PUT sends the exact desired JSON as bytes with
  `Content-Type: application/json`, so no field is dropped or renamed by SDK models, and responses are kept as
  the raw ARM JSON (`ObservedGroup.body`), unknown fields included.
- One retry layer: the SDK's retry policy is off (`retry_total=0`). Retries live in `reconciler.cloud.retry`,
  used by the executor and by `observe`, so Retry-After is honoured once and attempts are counted. The one
  exception is polling of a long-running operation: a transient failure of a poll (a read) is tolerated
  until the operation's deadline, because failing the write instead would make the executor PUT again, and
  every PUT restarts the group's containers.
- Long-running operations are polled here (`Azure-AsyncOperation`, else `Location`, else the resource's
  `provisioningState`), honouring each poll's Retry-After, within `asyncio.timeout(timeout)`; on timeout we
  raise `OperationTimeoutError` (retryable, by a later pass). Poll URLs must point at the ARM endpoint we
  were configured with, so a bearer token is never sent elsewhere.
- Every error is classified in `reconciler.cloud.classify`; messages carry Azure's error text (shortened),
  never our request body.
- `on_request(operation, status, duration_s)` is called once per HTTP request (operations `list`, `get`,
  `put`, `patch`, `delete`, `poll`, `logs`; status the HTTP status or `error`), for the daemon's metrics.
- `write_guard` (the daemon's lease fence, DESIGN section 13) is asked right before every request that
  writes, retries included, and again when its connection is ready, right before it is written (after the
  SDK's pipeline fetched a token and a connection was opened): a replica that may have lost its lease sends
  nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import json
import logging
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, unquote, urlencode, urlsplit

import aiohttp.helpers
import yarl
from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.pipeline.transport import AsyncHttpTransport
from azure.core.pipeline.transport._aiohttp import AioHttpTransport  # the package exports it lazily (untyped)
from azure.core.rest import AsyncHttpResponse, HttpRequest
from azure.mgmt.containerinstance.aio import ContainerInstanceManagementClient

from reconciler.cloud.classify import (
    arm_error,
    classify_exception,
    classify_http,
    classify_operation_failure,
    retry_after_from_headers,
)
from reconciler.cloud.errors import (
    GatewayError,
    NotFoundError,
    OperationTimeoutError,
    RetryableError,
    StalledError,
)
from reconciler.cloud.gateway import ListCursor, WriteGuard
from reconciler.cloud.listpage import next_link_at_end, page_items
from reconciler.model.compact import share_keys, shared_fields_set, shared_text
from reconciler.model.observed import ObservedGroup, PackedBody

API_VERSION = "2023-05-01"
# Microsoft.Resources' Tags API (resource-group scope), for the daemon's heartbeat tag.
TAGS_API_VERSION = "2021-04-01"
DEFAULT_ENDPOINT = "https://management.azure.com"
PROVIDER = "Microsoft.ContainerInstance/containerGroups"

# provisioningState values after which a group is no longer changing.
TERMINAL_PROVISIONING = frozenset({"succeeded", "failed", "canceled", "cancelled"})
# A runaway nextLink chain (a server bug) must not loop forever.
MAX_PAGES = 10_000

RequestHook = Callable[[str, str, float], None]
Sleep = Callable[[float], Awaitable[None]]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """Where and as whom to talk to ARM.

    `endpoint`: a custom ARM endpoint (the local emulator `https://127.0.0.1:PORT`, a sovereign cloud);
    None is public Azure. `ca_cert`: a PEM bundle that signs the endpoint's certificate (the emulator's
    self-signed one). `credential`: `default` is `DefaultAzureCredential` (environment, workload identity,
    managed identity, Azure CLI...); `static` sends a fixed bearer token and is for the embedded emulator
    only. `poll_interval`: seconds between polls of a long-running operation when Azure sends no Retry-After.
    """

    subscription_id: str
    endpoint: str | None = None
    ca_cert: Path | None = None
    credential: Literal["default", "static"] = "default"
    poll_interval: float = 5.0
    static_token: str = "aci-reconciler-emulator"
    # Per-request socket timeouts; an LRO's overall wait is the caller's `timeout`.
    connect_timeout: float = 30.0
    read_timeout: float = 120.0

    def validate(self) -> None:
        """Raise ValueError naming the setting and the fix when the target cannot work."""
        if not self.subscription_id.strip():
            raise ValueError("subscription id is empty: set --subscription or AZURE_SUBSCRIPTION_ID")
        if self.endpoint is not None:
            parts = urlsplit(self.endpoint)
            if parts.scheme != "https" or not parts.netloc:
                raise ValueError(
                    f"ARM endpoint {self.endpoint!r} must be an https:// URL "
                    "(the SDK sends bearer tokens only over TLS)"
                )
        if self.credential == "static" and self.endpoint is None:
            raise ValueError(
                "the static credential is for a local emulator only: give its endpoint, "
                "or use the default credential for Azure"
            )
        if self.ca_cert is not None and not self.ca_cert.is_file():
            raise ValueError(f"CA certificate {self.ca_cert} does not exist: give the emulator's CA file")
        if self.poll_interval < 0:
            raise ValueError(f"poll interval must not be negative, got {self.poll_interval}")


class StaticTokenCredential(AsyncTokenCredential):
    """A fixed bearer token, for the embedded emulator (which checks that a token is present)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        del scopes, claims, tenant_id, enable_cae, kwargs
        return AccessToken(self._token, int(time.time()) + 24 * 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> StaticTokenCredential:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        return None


def connect(
    target: Target,
    *,
    on_request: RequestHook | None = None,
    transport: AsyncHttpTransport[Any, Any] | None = None,
    credential: AsyncTokenCredential | None = None,
    sleep: Sleep = asyncio.sleep,
    write_guard: WriteGuard | None = None,
) -> AzureGateway:
    """Build the gateway for `target`. No I/O happens until the first call.

    `transport` and `credential` replace the real ones (tests use azure-core fake transports); `sleep` is
    what LRO polling waits with (tests inject a fake clock).
    """
    target.validate()
    if credential is None:
        if target.credential == "static":
            credential = StaticTokenCredential(target.static_token)
        else:
            from azure.identity.aio import DefaultAzureCredential

            credential = DefaultAzureCredential()
    endpoint = (target.endpoint or DEFAULT_ENDPOINT).rstrip("/")
    kwargs: dict[str, Any] = {
        "retry_total": 0,  # one retry layer: ours (see the module docstring)
        "polling_interval": target.poll_interval,
        "credential_scopes": [f"{endpoint}/.default"],
    }
    if target.ca_cert is not None:
        kwargs["connection_verify"] = str(target.ca_cert)
    kwargs["transport"] = transport or _ArmTransport(
        connection_timeout=target.connect_timeout,
        read_timeout=target.read_timeout,
        connection_verify=str(target.ca_cert) if target.ca_cert is not None else True,
    )
    client = ContainerInstanceManagementClient(
        credential, target.subscription_id, base_url=endpoint, **kwargs
    )
    return AzureGateway(
        client,
        credential,
        subscription_id=target.subscription_id,
        endpoint=endpoint,
        poll_interval=target.poll_interval,
        on_request=on_request,
        sleep=sleep,
        write_guard=write_guard,
    )


# The write fence of the request this task is sending (None for a read): asked by `_FencedConnector` once the
# connection is ready, right before the request is written to it.
_FENCE: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("fence", default=None)


class _FencedConnector(aiohttp.TCPConnector):
    """aiohttp's connector, asking the write fence of the request being sent (`_FENCE`) once its connection
    is ready: opening one (TCP, TLS, a proxy's CONNECT) can take longer than the fence's margin, and the
    request is written right after. A refused write gives its connection back unused."""

    # aiohttp's own signature (it passes `traces=` and `timeout=` by name), hence the parameter's name.
    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:  # noqa: ASYNC109
        connection = await super().connect(req, traces, timeout)
        fence = _FENCE.get()
        if fence is not None:
            try:
                fence()
            except BaseException:
                connection.release()
                raise
        return connection


class _ArmTransport(AioHttpTransport):
    """azure-core's aiohttp transport, with what it does per request done once:

    - One TLS context per CA file. Given `connection_verify=<CA file>`, azure-core builds a new `SSLContext`
      for every request, and aiohttp pools connections by context object: no connection was ever reused (a
      TLS handshake per request, ~20 ms of CPU) and each one stayed open until its keep-alive ran out
      (~130 KB apiece; 2,000 GETs held 1.2 GB).
    - The proxy from the environment (`HTTPS_PROXY`, `NO_PROXY`, ...), once per host. azure-core opens its
      aiohttp session with `trust_env`, under which aiohttp looks up `~/.netrc` and the proxy variables on a
      worker thread for every request: two thread hops, about 1 ms of CPU a request (two thirds of a list
      page's). The proxy is worked out here by aiohttp's own rule, as it was (the proxy variables, `NO_PROXY`,
      the proxy's credentials from its URL or `.netrc`), and sent as aiohttp's `proxy`/`proxy_headers`.
      `.netrc` credentials for ARM itself are no longer looked up: aiohttp refuses a request that has both
      them and a bearer token, so they only ever broke every call.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(use_env_settings=False, **kwargs)
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._proxies: dict[tuple[str, str], tuple[yarl.URL | None, dict[str, str]]] = {}

    def _build_ssl_config(self, cert: Any, verify: Any) -> Any:
        if cert:
            # `connect` never sets a client certificate; say so rather than silently drop one.
            raise ValueError("client certificates are not supported by the adapter's transport")
        if verify in (True, False):
            return verify  # as azure-core: aiohttp's default context, or no verification
        context = self._contexts.get(str(verify))
        if context is None:
            context = self._contexts[str(verify)] = ssl.create_default_context(cafile=str(verify))
        return context

    async def open(self) -> None:
        if self.session is None and not self._has_been_opened:
            # As azure-core opens it (no cookies, no decompression), without `trust_env` (see above), with the
            # connector that asks the write fence once a connection is ready.
            self.session = aiohttp.ClientSession(
                connector=_FencedConnector(),
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        await super().open()  # type: ignore[no-untyped-call]  # azure-core's transport is untyped

    async def send(self, request: Any, **config: Any) -> Any:
        if "proxy" not in config and not config.get("proxies"):
            proxy, proxy_headers = self._env_proxy(request.url)
            if proxy is not None:
                config["proxy"] = proxy
                if proxy_headers:
                    config["proxy_headers"] = proxy_headers
        return await super().send(request, **config)

    def _env_proxy(self, url: str) -> tuple[yarl.URL | None, dict[str, str]]:
        parts = urlsplit(url)
        key = (parts.scheme, parts.hostname or "")
        found = self._proxies.get(key)
        if found is None:
            try:
                proxy, auth = aiohttp.helpers.get_env_proxy_for_url(yarl.URL(url))
            except LookupError:  # no proxy for this scheme, or NO_PROXY names the host
                found = (None, {})
            else:
                found = (proxy, {"Proxy-Authorization": auth.encode()} if auth is not None else {})
            self._proxies[key] = found
        return found


class _Response:
    """One answer: its status, headers (lower-case names) and raw bytes; `body`, the parsed JSON (None when
    empty or not JSON), is decoded on first use, so a list page known by its bytes is never decoded."""

    __slots__ = ("_body", "_parsed", "headers", "raw", "status")

    def __init__(self, status: int, headers: dict[str, str], raw: bytes) -> None:
        self.status = status
        self.headers = headers
        self.raw = raw
        self._body: Any = None
        self._parsed = False

    @property
    def body(self) -> Any:
        if not self._parsed:
            self._body, self._parsed = _json_or_none(self.raw), True
        return self._body


def _json_or_none(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class _Page:
    groups: tuple[ObservedGroup, ...]
    next_link: str | None


# Every listed group is given every field: they all share this one fields set.
_OBSERVED_FIELDS = shared_fields_set(ObservedGroup, frozenset(ObservedGroup.model_fields))


def _text_tags(tags: Mapping[Any, Any]) -> dict[str, str]:
    """The tags as text, their names and short values shared by every group that has them (each group's
    JSON is decoded on its own, and our dozen tags, `true`, `auto` and the like, on every group are memory a
    large fleet keeps)."""
    return {
        _shared(str(k)): _shared(v if type(v) is str else "" if v is None else str(v))
        for k, v in tags.items()
    }


def _shared(text: str) -> str:
    return shared_text(text, _MAX_SHARED_LENGTH)


# A longer tag value (a hash, a revision) is one group's own, or not worth the lookup.
_MAX_SHARED_LENGTH = 40


def _observed(resource_group: str, data: Mapping[str, Any], text: str | None = None) -> ObservedGroup:
    """`text`: `data` as JSON text, when the caller has it (a list page's item), kept as the body."""
    props = data.get("properties") or {}
    if not isinstance(props, Mapping):
        props = {}
    instance_view = props.get("instanceView") or {}
    tags = data.get("tags") or {}
    if not isinstance(tags, Mapping):
        tags = {}
    provisioning = props.get("provisioningState")
    state = instance_view.get("state") if isinstance(instance_view, Mapping) else None
    # Built without validation (every field is made the right type here): validating would copy the body
    # and cost a cold pass's CPU for nothing. The body is kept as its JSON text (`PackedBody`): the decoded
    # page is let go, but for the tags.
    group = ObservedGroup.model_construct(
        _fields_set=_OBSERVED_FIELDS,
        resource_group=resource_group,
        name=str(data.get("name", "")),
        id=str(data.get("id", "")),
        location=_shared(str(data.get("location", ""))),
        tags=_text_tags(tags),
        body=PackedBody(text) if text is not None else PackedBody.of(data),
        provisioning_state=None if provisioning is None else _shared(str(provisioning)),
        instance_state=None if state is None else _shared(str(state)),
    )
    share_keys(group)
    return group


def _parse_page(
    raw: bytes, label: str, resource_group_of: Callable[[Mapping[str, Any]], str | None]
) -> _Page:
    """A list page's groups and next link (a page that is not a JSON object lists nothing)."""
    items, next_link = page_items(raw) or ([], None)
    found: list[ObservedGroup] = []
    for item, text in items:
        if not isinstance(item, Mapping):
            continue
        rg = resource_group_of(item)
        if rg is None:
            raise StalledError(f"{label}: a listed group has no resource id ({item.get('name')!r})")
        found.append(_observed(rg, item, text))
    return _Page(tuple(found), str(next_link) if next_link else None)


async def _dropped(task: asyncio.Task[_Response]) -> None:
    """Cancel a request sent ahead that will not be used, and wait until it is gone (its error, if it
    failed first, is nobody's: the chain asks again for whatever it needs)."""
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()


class _MissingFirstPageError(Exception):
    """The first page of a list was 404: the resource group (or subscription) does not exist."""


_RESOURCE_GROUP_IN_ID = re.compile(r"/resourceGroups/([^/]+)/", re.IGNORECASE)


def _tags_in(body: Any) -> dict[str, str]:
    properties = body.get("properties") if isinstance(body, Mapping) else None
    tags = properties.get("tags") if isinstance(properties, Mapping) else None
    return {str(k): str(v) for k, v in tags.items()} if isinstance(tags, Mapping) else {}


_RESOURCE_GROUP_IN_PATH = re.compile(r"/resourceGroups/([^/?]+)", re.IGNORECASE)


def _resource_group_in(url: str) -> str | None:
    found = _RESOURCE_GROUP_IN_PATH.search(urlsplit(url).path)
    return unquote(found.group(1)) if found else None


def _resource_group_of(item: Mapping[str, Any]) -> str | None:
    """The resource group named in a listed group's id, in the case Azure returned it (ARM may upper-case
    it in subscription-wide lists; names are compared case-insensitively everywhere)."""
    found = _RESOURCE_GROUP_IN_ID.search(str(item.get("id") or ""))
    return unquote(found.group(1)) if found else None


# ARM's token bucket for reads (per subscription and region): the header each answer carries, the reserve
# below which reads are paced, and the longest wait of one paced read (an empty bucket refills ~25 in 1 s).
READS_REMAINING_HEADER = "x-ms-ratelimit-remaining-subscription-reads"
READ_RESERVE = 25
READ_PACE_S = 1.0


class AzureGateway:
    """The `Gateway` protocol on the ACI management SDK. Build it with `connect`; close it when done."""

    def __init__(
        self,
        client: ContainerInstanceManagementClient,
        credential: AsyncTokenCredential,
        *,
        subscription_id: str,
        endpoint: str,
        poll_interval: float,
        on_request: RequestHook | None = None,
        sleep: Sleep = asyncio.sleep,
        write_guard: WriteGuard | None = None,
    ) -> None:
        self._client = client
        self._credential = credential
        self._subscription = subscription_id
        self._endpoint = endpoint
        self._netloc = urlsplit(endpoint).netloc.lower()
        self._poll_interval = poll_interval
        self._on_request = on_request
        self._sleep = sleep
        self._write_guard = write_guard
        # ARM's answer to the last read: how many reads the subscription's bucket still holds (None: unsaid).
        self._reads_remaining: int | None = None
        self.reads_paced = 0
        # The pages of each list (by its label) at its last complete read, and of the read under way, by a
        # hash of their bytes: a page Azure answers with the same bytes again is not decoded again, and
        # hands back the very same `ObservedGroup` objects, which the planner's memo then recognises
        # without hashing them. At most two reads of each list are kept.
        self._pages: dict[str, dict[bytes, _Page]] = {}
        self._pages_reading: dict[str, dict[bytes, _Page]] = {}
        self.pages_reused = 0

    # --- URLs -----------------------------------------------------------------------------------

    def _groups_url(self, resource_group: str) -> str:
        return (
            f"/subscriptions/{quote(self._subscription, safe='')}"
            f"/resourceGroups/{quote(resource_group, safe='')}/providers/{PROVIDER}"
        )

    def _group_url(self, resource_group: str, name: str, suffix: str = "", **query: Any) -> str:
        params = {"api-version": API_VERSION, **{k: v for k, v in query.items() if v is not None}}
        return f"{self._groups_url(resource_group)}/{quote(name, safe='')}{suffix}?{urlencode(params)}"

    # --- ARM's read budget ---------------------------------------------------------------------

    def _note_reads_remaining(self, value: str | None) -> None:
        if value is not None and value.strip().isdigit():
            self._reads_remaining = int(value.strip())

    async def _pace_reads(self) -> None:
        """Below `READ_RESERVE` remaining reads, wait before a read, longer the emptier the bucket: the
        lists of a large pass then spread over the bucket's refill instead of running it dry and waiting out
        429s (ARM refills reads at about 25 a second; the header, not a guess, says how full it is)."""
        remaining = self._reads_remaining
        if remaining is None or remaining >= READ_RESERVE:
            return
        self.reads_paced += 1
        await self._sleep(READ_PACE_S * (READ_RESERVE - remaining) / READ_RESERVE)

    # --- one HTTP request ------------------------------------------------------------------------

    def _record(self, operation: str, status: str, started: float) -> None:
        if self._on_request is None:
            return
        try:
            self._on_request(operation, status, time.perf_counter() - started)
        except Exception:
            # Metrics must never break a reconcile.
            log.exception("on_request hook failed")

    async def _send(
        self,
        method: str,
        url: str,
        operation: str,
        label: str,
        *,
        body: Mapping[str, Any] | None = None,
    ) -> _Response:
        """Send one request; return the response when it is < 400, raise a classified GatewayError else."""
        headers = {"Accept": "application/json"}
        content: bytes | None = None
        if body is not None:
            content = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        request = HttpRequest(method, url, headers=headers, content=content)
        if method == "GET":
            await self._pace_reads()
        guarded: contextlib.AbstractContextManager[str] = contextlib.nullcontext("")
        check: Callable[[], None] | None = None
        if method != "GET" and self._write_guard is not None:
            resource_group = _resource_group_in(url)
            guarded = self._write_guard.writing(resource_group)
            # Asked again by the transport's connector once the connection is ready, right before the
            # request is written: the pipeline may have waited for a token, and opening a connection takes
            # time too (`_FencedConnector`).
            check = functools.partial(self._write_guard.check, resource_group)
        fence = _FENCE.set(check)
        started = time.perf_counter()
        try:
            with guarded as writer:
                options = {"user_agent": writer} if writer else {}
                # A read's body is read here, once: not streamed, the SDK's content-decode policy would
                # parse every list page's JSON before we parse it again (half a warm pass's decoding). Writes
                # stay unstreamed: the pipeline reads their (often empty) bodies itself.
                streamed = method == "GET"
                response: AsyncHttpResponse = await self._client._send_request(
                    request, stream=streamed, **options
                )
                if streamed:
                    await response.read()
        except asyncio.CancelledError:
            self._record(operation, "cancelled", started)
            raise
        except GatewayError:
            raise  # the write guard's refusal: nothing was sent
        except Exception as exc:
            self._record(operation, "error", started)
            error = classify_exception(exc, operation=label)
            if "unexpected error" in error.message:
                log.warning("unexpected error from the Azure SDK during %s", label, exc_info=exc)
            raise error from exc
        finally:
            _FENCE.reset(fence)
        self._record(operation, str(response.status_code), started)
        resp_headers = {k.lower(): v for k, v in response.headers.items()}
        if method == "GET":
            self._note_reads_remaining(resp_headers.get(READS_REMAINING_HEADER))
        answer = _Response(response.status_code, resp_headers, response.content or b"")
        if response.status_code >= 400:
            code, message = arm_error(answer.body)
            raise classify_http(
                response.status_code, code=code, message=message, headers=resp_headers, operation=label
            )
        return answer

    # --- reads -----------------------------------------------------------------------------------

    async def list_groups(
        self, resource_group: str, *, cursor: ListCursor | None = None
    ) -> list[ObservedGroup]:
        url = f"{self._groups_url(resource_group)}?{urlencode({'api-version': API_VERSION})}"
        try:
            return await self._list_pages(
                url, f"list {resource_group}", lambda _item: resource_group, cursor or ListCursor()
            )
        except _MissingFirstPageError:
            # A missing resource group has no groups; the plan will create them (and ARM the RG error).
            return []

    async def list_subscription_groups(self, *, cursor: ListCursor | None = None) -> list[ObservedGroup]:
        url = (
            f"/subscriptions/{quote(self._subscription, safe='')}/providers/{PROVIDER}"
            f"?{urlencode({'api-version': API_VERSION})}"
        )
        try:
            return await self._list_pages(
                url, "list subscription", _resource_group_of, cursor or ListCursor()
            )
        except _MissingFirstPageError as err:
            raise NotFoundError(
                f"list subscription: subscription {self._subscription!r} was not found", status=404
            ) from err

    async def _list_pages(
        self,
        first: str,
        label: str,
        resource_group_of: Callable[[Mapping[str, Any]], str | None],
        cursor: ListCursor,
    ) -> list[ObservedGroup]:
        """Follow `nextLink` from where `cursor` is (`first` on a new cursor), recording each page read in
        it, so that a call again after a failure resumes at the failed page; a 404 of the first page raises
        `_MissingFirstPageError`. The next page is asked for while this one is decoded when the link can be
        read off the end of its bytes (`_read_ahead`); a failure of that request is the next page's."""
        url: str | None = cursor.next_link if cursor.pages else first
        if not cursor.pages:
            self._pages_reading[label] = {}
        known = self._pages.get(label, {})
        reading = self._pages_reading.setdefault(label, {})
        # The next page's request, sent before this page is decoded (its link read from the end of the
        # bytes): the chain's round trips no longer wait for our decoding. Only for the link the page says.
        ahead: tuple[str, asyncio.Task[_Response]] | None = None
        try:
            while url:
                if url in cursor.links or len(cursor.links) >= MAX_PAGES:
                    raise StalledError(f"{label}: the service returned a nextLink loop")
                if url.startswith("http"):
                    self._check_same_endpoint(url, label)
                try:
                    if ahead is not None and ahead[0] == url:
                        sent, ahead = ahead[1], None
                        response = await sent
                    else:
                        response = await self._send("GET", url, "list", label)
                except NotFoundError as err:
                    if cursor.pages:
                        raise
                    raise _MissingFirstPageError(str(err)) from err
                digest = hashlib.blake2b(response.raw, digest_size=16).digest()
                page = known.get(digest) or reading.get(digest)
                if page is None:
                    ahead = await self._read_ahead(response.raw, cursor, url, label)
                    page = _parse_page(response.raw, label, resource_group_of)
                else:
                    self.pages_reused += 1
                reading[digest] = page
                # The page is taken whole or not at all: a retry never sees half of one.
                cursor.links.add(url)
                cursor.groups.extend(page.groups)
                cursor.pages += 1
                url = cursor.next_link = page.next_link
                if ahead is not None and ahead[0] != url:
                    await _dropped(ahead[1])  # the link read ahead is not the page's: never taken
                    ahead = None
                if cursor.on_page is not None:
                    cursor.on_page(page.groups)
        finally:
            if ahead is not None:
                await _dropped(ahead[1])
        self._pages[label] = self._pages_reading.pop(label, reading)
        return cursor.groups

    async def _read_ahead(
        self, raw: bytes, cursor: ListCursor, url: str, label: str
    ) -> tuple[str, asyncio.Task[_Response]] | None:
        """The request of the page after this one's (`raw`), sent now if its link can be read off the end of
        the bytes and may be followed; None else (the chain then asks for it after decoding, as before)."""
        link = next_link_at_end(raw)
        if link is None or link == url or link in cursor.links or len(cursor.links) + 1 >= MAX_PAGES:
            return None
        if link.startswith("http") and not self._at_endpoint(link):
            return None  # the chain refuses it with its reason when it gets there
        sent = asyncio.create_task(self._send("GET", link, "list", label), name=f"list-ahead:{label}")
        # One turn of the loop: the request goes out (a pooled connection, written at once) before the
        # decoding below holds the loop.
        try:
            await asyncio.sleep(0)
        except BaseException:  # cancelled here: the request is not left behind
            await _dropped(sent)
            raise
        return link, sent

    async def get_group(self, resource_group: str, name: str) -> ObservedGroup | None:
        try:
            response = await self._send(
                "GET", self._group_url(resource_group, name), "get", f"GET {resource_group}/{name}"
            )
        except NotFoundError:
            return None
        if not isinstance(response.body, Mapping):
            raise RetryableError(f"GET {resource_group}/{name}: the response had no JSON body")
        return _observed(resource_group, response.body)

    async def logs(
        self,
        resource_group: str,
        name: str,
        container: str,
        *,
        tail: int | None = None,
        timestamps: bool = False,
    ) -> str:
        url = self._group_url(
            resource_group,
            name,
            f"/containers/{quote(container, safe='')}/logs",
            tail=tail,
            timestamps="true" if timestamps else None,
        )
        response = await self._send("GET", url, "logs", f"logs {resource_group}/{name}/{container}")
        body = response.body if isinstance(response.body, Mapping) else {}
        return str(body.get("content") or "")

    # --- resource-group tags (the daemon's duplicate detection, `TagStore`) -------------------------

    def _tags_url(self, resource_group: str) -> str:
        return (
            f"/subscriptions/{quote(self._subscription, safe='')}"
            f"/resourceGroups/{quote(resource_group, safe='')}"
            f"/providers/Microsoft.Resources/tags/default?api-version={TAGS_API_VERSION}"
        )

    async def get_resource_group_tags(self, resource_group: str) -> dict[str, str]:
        response = await self._send(
            "GET", self._tags_url(resource_group), "tags", f"GET tags of resource group {resource_group}"
        )
        return _tags_in(response.body)

    async def update_resource_group_tags(
        self, resource_group: str, tags: Mapping[str, str], operation: str
    ) -> dict[str, str]:
        response = await self._send(
            "PATCH",
            self._tags_url(resource_group),
            "tags",
            f"{operation} tags of resource group {resource_group}",
            body={"operation": operation, "properties": {"tags": dict(tags)}},
        )
        return _tags_in(response.body)

    # --- writes ----------------------------------------------------------------------------------

    async def create_or_update(
        self,
        resource_group: str,
        name: str,
        body: dict[str, Any],
        *,
        timeout: float,  # noqa: ASYNC109 - the contract passes the LRO deadline; applied inside
    ) -> ObservedGroup:
        label = f"PUT {resource_group}/{name}"
        url = self._group_url(resource_group, name)
        try:
            async with asyncio.timeout(timeout):
                response = await self._send("PUT", url, "put", label, body=body)
                await self._wait_for_operation(response, url, label)
                final = await self._read_final(url, f"GET {resource_group}/{name}")
        except TimeoutError:
            raise OperationTimeoutError(f"{label}: not finished after {timeout:.0f}s") from None
        if not isinstance(final.body, Mapping):
            raise RetryableError(f"{label}: the final GET had no JSON body")
        group = _observed(resource_group, final.body)
        if (group.provisioning_state or "").lower() == "failed":
            raise StalledError(f"{label}: provisioning failed", code="ProvisioningFailed")
        return group

    async def patch_tags(self, resource_group: str, name: str, tags: dict[str, str]) -> ObservedGroup:
        label = f"PATCH {resource_group}/{name}"
        response = await self._send(
            "PATCH", self._group_url(resource_group, name), "patch", label, body={"tags": dict(tags)}
        )
        if not isinstance(response.body, Mapping):
            raise RetryableError(f"{label}: the response had no JSON body")
        return _observed(resource_group, response.body)

    async def delete(
        self,
        resource_group: str,
        name: str,
        *,
        timeout: float,  # noqa: ASYNC109 - the contract passes the deadline; applied inside
    ) -> ObservedGroup | None:
        label = f"DELETE {resource_group}/{name}"
        url = self._group_url(resource_group, name)
        try:
            async with asyncio.timeout(timeout):
                try:
                    response = await self._send("DELETE", url, "delete", label)
                except NotFoundError:
                    return None
                if response.status == 204:
                    return None
                if response.status == 202:
                    await self._wait_for_operation(response, None, label)
                return await self._wait_until_gone(resource_group, url, label)
        except TimeoutError:
            raise OperationTimeoutError(f"{label}: the group still exists after {timeout:.0f}s") from None

    async def start(
        self,
        resource_group: str,
        name: str,
        *,
        timeout: float,  # noqa: ASYNC109 - the contract passes the LRO deadline; applied inside
    ) -> None:
        label = f"start {resource_group}/{name}"
        url = self._group_url(resource_group, name, "/start")
        try:
            async with asyncio.timeout(timeout):
                response = await self._send("POST", url, "start", label)
                # Azure answers 204, with an operation only when there was something to start.
                await self._wait_for_operation(response, None, label)
        except TimeoutError:
            raise OperationTimeoutError(f"{label}: not started after {timeout:.0f}s") from None

    async def stop(self, resource_group: str, name: str) -> None:
        await self._send(
            "POST", self._group_url(resource_group, name, "/stop"), "stop", f"stop {resource_group}/{name}"
        )

    async def close(self) -> None:
        await self._client.close()
        await self._credential.close()

    # --- long-running operations -----------------------------------------------------------------

    def _at_endpoint(self, url: str) -> bool:
        """Whether `url` (absolute) is on the configured endpoint, the only host credentials go to."""
        return urlsplit(url).netloc.lower() == self._netloc

    def _check_same_endpoint(self, url: str, label: str) -> None:
        if not self._at_endpoint(url):
            raise StalledError(
                f"{label}: Azure pointed to {urlsplit(url).netloc!r}, not the configured endpoint; "
                "refusing to send credentials there"
            )

    async def _poll_sleep(self, headers: Mapping[str, str]) -> None:
        wait = retry_after_from_headers(headers)
        # As the SDK's own pollers do, a Retry-After of 0 means "no advice": a zero wait would spin.
        await self._sleep(wait if wait else self._poll_interval)

    async def _wait_for_operation(self, response: _Response, resource_url: str | None, label: str) -> None:
        """Wait for the operation a write started, by the means ARM gave (caller bounds the time)."""
        async_url = response.headers.get("azure-asyncoperation")
        location = response.headers.get("location")
        if async_url:
            self._check_same_endpoint(async_url, label)
            await self._poll_async_operation(async_url, response.headers, label)
        elif location and response.status == 202:
            self._check_same_endpoint(location, label)
            await self._poll_location(location, response.headers, label)
        elif resource_url is not None:
            state = ""
            if isinstance(response.body, Mapping):
                state = str((response.body.get("properties") or {}).get("provisioningState") or "")
            if state and state.lower() not in TERMINAL_PROVISIONING:
                await self._poll_provisioning(resource_url, response.headers, label)

    async def _poll(self, url: str, label: str) -> _Response | None:
        """One poll; None when it failed transiently (the caller sleeps and polls again)."""
        try:
            return await self._send("GET", url, "poll", f"{label} (poll)")
        except GatewayError as exc:
            if not exc.retryable:
                raise
            log.info("transient failure while polling %s: %s", label, exc)
            return None

    async def _poll_until(
        self, url: str, headers: Mapping[str, str], label: str, finished: Callable[[_Response], bool]
    ) -> None:
        """Poll `url`, waiting as each answer's Retry-After says, until `finished` says it is over."""
        while True:
            await self._poll_sleep(headers)
            polled = await self._poll(url, label)
            if polled is None:
                continue
            headers = polled.headers
            if finished(polled):
                return

    async def _poll_async_operation(self, url: str, headers: Mapping[str, str], label: str) -> None:
        def finished(polled: _Response) -> bool:
            body = polled.body if isinstance(polled.body, Mapping) else {}
            status = str(body.get("status") or "").lower()
            if status in ("failed", "canceled", "cancelled"):
                code, message = arm_error(body)
                raise classify_operation_failure(
                    code, message or f"the operation ended {status}", operation=label
                )
            return status == "succeeded"

        await self._poll_until(url, headers, label, finished)

    async def _poll_location(self, url: str, headers: Mapping[str, str], label: str) -> None:
        await self._poll_until(url, headers, label, lambda polled: polled.status != 202)

    async def _poll_provisioning(self, url: str, headers: Mapping[str, str], label: str) -> None:
        def finished(polled: _Response) -> bool:
            body = polled.body if isinstance(polled.body, Mapping) else {}
            state = str((body.get("properties") or {}).get("provisioningState") or "")
            return not state or state.lower() in TERMINAL_PROVISIONING

        await self._poll_until(url, headers, label, finished)

    async def _read_final(self, url: str, label: str) -> _Response:
        """GET the resource after its write finished; transient failures are retried until the deadline
        (failing here would make the executor PUT again, restarting the group for nothing)."""
        while True:
            try:
                return await self._send("GET", url, "get", label)
            except GatewayError as exc:
                if not exc.retryable:
                    raise
                log.info("transient failure reading %s after its write: %s", label, exc)
                wait = exc.retry_after
            await self._sleep(wait if wait else self._poll_interval)

    async def _wait_until_gone(self, resource_group: str, url: str, label: str) -> ObservedGroup | None:
        """Poll until the group is gone (None), or until what stands at its name is no longer being deleted:
        the delete has finished by then (its operation was waited for), so that is a group someone
        created again meanwhile. Waiting for it to go away would poll until the deadline (issue 9,
        finding 10: two applies replacing one group) and report a failure although Azure converged."""
        while True:
            try:
                response = await self._send("GET", url, "get", f"{label} (wait until gone)")
            except NotFoundError:
                return None
            except GatewayError as exc:
                if not exc.retryable:
                    raise
            else:
                body = response.body if isinstance(response.body, Mapping) else {}
                state = str((body.get("properties") or {}).get("provisioningState") or "")
                if body and state.lower() != "deleting":
                    log.info("%s: the group was created again while its delete finished", label)
                    return _observed(resource_group, body)
            await self._sleep(self._poll_interval)
