"""The emulator's HTTPS server: ARM's REST API for Microsoft.ContainerInstance/containerGroups (2023-05-01).

Used by tests (in process: `async with Emulator(EmulatorConfig()) as emu`), by benchmarks, and by
`reconcile emulator` / `python -m reconciler.emulator` (see `cli.py`). It imports nothing else from
`reconciler` so that it cannot share the reconciler's bugs.

What it serves (paths are case-insensitive, as ARM's are):

- `PUT|GET|PATCH|DELETE /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/
  containerGroups/{name}`; `GET .../containerGroups` per resource group and per subscription, paged with
  `nextLink`; `POST .../{name}/restart|stop|start`; `GET .../{name}/containers/{c}/logs`;
  `GET /subscriptions/{sub}/providers/Microsoft.ContainerInstance/locations/{loc}/operations/{id}`, the
  `Azure-AsyncOperation` URL every PUT, DELETE (when it takes time), restart and start return.
- `GET /msi/token` (also on a plain-http loopback port, `emu.identity_endpoint`): a managed-identity
  token endpoint compatible with azure-identity's App Service variables `IDENTITY_ENDPOINT` and
  `IDENTITY_HEADER`, so `DefaultAzureCredential` works end to end.
- `/_emulator/...`: the control and inspection surface for tests and benchmarks in other processes,
  documented in `reconciler/emulator/README.md`.

Every ARM request needs `Authorization: Bearer <anything>` (401 otherwise), passes ARM's token buckets
(429 + `Retry-After` when dry; `x-ms-ratelimit-remaining-subscription-*` headers otherwise) and, for
writes and deletes of groups, ACI's resource-request quotas; then the fault injector may step in.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import importlib
import json
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from aiohttp import web

from reconciler.emulator.certs import CertPaths, ensure_certificates, server_ssl_context
from reconciler.emulator.errors import ArmError, bad_request, invalid_update, not_found
from reconciler.emulator.limits import FaultInjector, FaultSettings, TokenBucket, WindowQuota
from reconciler.emulator.resource import (
    JSON,
    apply_defaults,
    json_copy,
    keep_immutable,
    name_problems,
    normalize_location,
    refused_fields,
    strip_secrets,
)
from reconciler.emulator.store import GroupRecord, Operation, StateSaveError, Store, iso, write_atomic

API_VERSION = "2023-05-01"
OPERATIONS_API_VERSION = "2018-06-01"
# The container-group api-versions ARM knows; the emulator answers all of them the 2023-05-01 way.
SUPPORTED_API_VERSIONS = (
    "2017-08-01-preview, 2017-10-01-preview, 2017-12-01-preview, 2018-02-01-preview, 2018-04-01, "
    "2018-06-01, 2018-07-01, 2018-09-01, 2018-10-01, 2019-12-01, 2020-11-01, 2021-03-01, 2021-07-01, "
    "2021-09-01, 2021-10-01, 2022-09-01, 2022-10-01-preview, 2023-02-01-preview, 2023-05-01"
)
_SUPPORTED = frozenset(v.strip() for v in SUPPORTED_API_VERSIONS.split(","))
IDENTITY_PATH = "/msi/token"
# Which fault (if any) was injected into a request; read back when the request is logged.
_FAULT_KEY = web.RequestKey("emulator_fault", str)
_NOT_AN_OBJECT = "The request content was invalid and cannot be deserialized: 'expected an object'."
MAX_BODY = 4 * 1024 * 1024  # ARM's request size limit


@dataclass
class EmulatorConfig:
    """Start-up settings. `latency`, `provisioning_delay`, `retry_after` and `page_size` may also be
    changed at run time (`emu.config.latency = 0.05`, or `PATCH /_emulator/config`).

    Bucket sizes of None switch a limit off. The defaults are ARM's and ACI's published ones.
    """

    host: str = "127.0.0.1"
    port: int = 0
    state_file: Path | None = None
    cert_dir: Path | None = None
    provisioning_delay: float = 0.0
    delete_delay: float | None = None  # None: the same as provisioning_delay
    retry_after: int = 0
    page_size: int = 100
    latency: float = 0.0
    read_bucket_size: int | None = 250
    read_refill_rate: float = 25.0
    write_bucket_size: int | None = 200
    write_refill_rate: float = 10.0
    delete_bucket_size: int | None = 200
    delete_refill_rate: float = 10.0
    aci_requests_per_5m: int | None = 900
    aci_requests_per_1h: int | None = 1800
    faults: FaultSettings = field(default_factory=FaultSettings)
    identity_port: int = 0
    identity_header: str | None = None
    request_log_size: int = 100_000
    persist_interval: float = 0.2
    clock: Callable[[], float] | None = None
    # A principal with roles on some resource groups only: the subscription-wide list is refused (403).
    deny_subscription_list: bool = False
    # How ACI words its refusal of an update that needs a delete: `generic` (one sentence for every
    # property) or `per-property` (names the property). Tests cover both; see `errors.invalid_update`.
    update_refusal_wording: Literal["generic", "per-property"] = "generic"


@dataclass(frozen=True)
class RequestLogEntry:
    """One request as the emulator saw it. Bodies and query strings are never kept."""

    time: float
    method: str
    path: str
    route: str
    status: int
    duration: float
    fault: str | None = None

    def to_json(self) -> JSON:
        return asdict(self)


class _SpecModule:
    """The spec-driven validator of `spec.py` (`validate` and, when present, `normalize`)."""

    def __init__(self, module: Any) -> None:
        self.validate: Callable[[str, object], list[Any]] = module.validate
        self.normalize: Callable[[str, object], object] | None = getattr(module, "normalize", None)


def _load_spec() -> _SpecModule | None:
    try:
        module = importlib.import_module("reconciler.emulator.spec")
    except ModuleNotFoundError as exc:
        if exc.name != "reconciler.emulator.spec":
            raise
        return None
    return _SpecModule(module) if callable(getattr(module, "validate", None)) else None


def _basic_violations(definition: str, body: object) -> list[tuple[str, str]]:
    """The required fields ARM insists on, used only while the spec-driven validator is absent."""
    if definition != "ContainerGroup":
        return [] if isinstance(body, dict) else [("", "Expected an object.")]
    if not isinstance(body, dict):
        return [("", "Expected an object.")]
    props = body.get("properties")
    if not isinstance(props, dict):
        return [("/properties", "Required property 'properties' not found in JSON.")]
    out: list[tuple[str, str]] = []
    if props.get("osType") not in ("Linux", "Windows"):
        out.append(("/properties/osType", "Required property 'osType' must be 'Linux' or 'Windows'."))
    containers = props.get("containers")
    if not isinstance(containers, list) or not containers:
        out.append(("/properties/containers", "Required property 'containers' not found in JSON."))
        return out
    for i, container in enumerate(containers):
        base = f"/properties/containers/{i}"
        if not isinstance(container, dict) or not container.get("name"):
            out.append((f"{base}/name", "Required property 'name' not found in JSON."))
            continue
        cprops = container.get("properties")
        if not isinstance(cprops, dict) or not cprops.get("image"):
            out.append((f"{base}/properties/image", "Required property 'image' not found in JSON."))
            continue
        requests = (cprops.get("resources") or {}).get("requests")
        if not isinstance(requests, dict):
            out.append((f"{base}/properties/resources", "Required property 'resources' not found in JSON."))
            continue
        for name in ("cpu", "memoryInGB"):
            if not isinstance(requests.get(name), int | float) or isinstance(requests.get(name), bool):
                out.append((f"{base}/properties/resources/requests/{name}", f"Required number '{name}'."))
    return out


def _first_changed_property(old: JSON, new: JSON) -> str:
    """The first top-level property an update changes (secrets aside), for a per-property refusal."""
    before, after = strip_secrets(old).get("properties") or {}, strip_secrets(new).get("properties") or {}
    for name in sorted(set(before) | set(after)):
        if name not in ("provisioningState", "instanceView") and before.get(name) != after.get(name):
            return str(name)
    return "properties"


def arm_path(pointer: str) -> str:
    """`/properties/containers/0/name` -> `properties.containers[0].name`, as ARM writes paths."""
    out = ""
    for part in (p for p in pointer.split("/") if p):
        out += f"[{part}]" if part.isdigit() else (f".{part}" if out else part)
    return out


def _encode_token(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def _decode_token(token: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request("The $skipToken is not valid.", "InvalidSkipToken") from exc


@dataclass(frozen=True)
class _Route:
    name: str
    subscription: str = ""
    resource_group: str = ""
    group: str = ""
    container: str = ""
    location: str = ""
    operation: str = ""
    action: str = ""


def match_route(path: str) -> _Route | None:
    """Which ARM operation a path names; ARM matches the fixed segments without regard to case."""
    segs = [s for s in path.split("/") if s]
    low = [s.lower() for s in segs]
    if len(segs) < 5 or low[0] != "subscriptions":
        return None
    sub = segs[1]
    provider = ["providers", "microsoft.containerinstance"]
    if low[2:4] == provider:
        if len(segs) == 5 and low[4] == "containergroups":
            return _Route("containerGroups.listBySubscription", subscription=sub)
        if len(segs) == 8 and low[4] == "locations" and low[6] == "operations":
            return _Route("operation", subscription=sub, location=segs[5], operation=segs[7])
        return None
    if low[2] != "resourcegroups" or len(segs) < 7 or low[4:6] != provider or low[6] != "containergroups":
        return None
    rg = segs[3]
    if len(segs) == 7:
        return _Route("containerGroups.listByResourceGroup", subscription=sub, resource_group=rg)
    name = segs[7]
    if len(segs) == 8:
        return _Route("containerGroup", subscription=sub, resource_group=rg, group=name)
    if len(segs) == 9 and low[8] in ("restart", "stop", "start"):
        return _Route(
            f"containerGroup.{low[8]}", subscription=sub, resource_group=rg, group=name, action=low[8]
        )
    if len(segs) == 11 and low[8] == "containers" and low[10] == "logs":
        return _Route("containers.logs", subscription=sub, resource_group=rg, group=name, container=segs[9])
    return None


class GroupsView(Mapping[str, JSON]):
    """Read-only view of the groups by resource id (case-insensitive), rendered as a GET would."""

    def __init__(self, emulator: Emulator) -> None:
        self._emu = emulator

    def __getitem__(self, resource_id: str) -> JSON:
        route = match_route(resource_id)
        if route is None or route.name != "containerGroup":
            raise KeyError(resource_id)
        now = self._emu.now()
        rec = self._emu.store.get(route.subscription, route.resource_group, route.group, now)
        if rec is None:
            raise KeyError(resource_id)
        return json_copy(rec.render(now))

    def __iter__(self) -> Iterator[str]:
        return (rec.resource_id for rec in self._emu.store.records())

    def __len__(self) -> int:
        return len(self._emu.store)


class Emulator:
    """The emulator: start/stop, the endpoint and CA file, and the run-time control API for tests."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.store = Store()
        self.faults = FaultInjector()
        self.faults.set(self.config.faults)
        self.counters: collections.Counter[str] = collections.Counter()
        self.request_log: collections.deque[RequestLogEntry] = collections.deque(
            maxlen=self.config.request_log_size
        )
        self.identity_header = self.config.identity_header or secrets.token_urlsafe(24)
        self._clock = self.config.clock or time.time
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._quotas: dict[tuple[str, str], WindowQuota] = {}
        self._spec = _load_spec()
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._identity_port = 0
        self._certs: CertPaths | None = None
        self._temp_cert_dir: Path | None = None
        self._persist_task: asyncio.Task[None] | None = None
        self._persist_wakeup = asyncio.Event()
        self._saved_version = -1
        self._stopping = False
        self._stop_event = asyncio.Event()

    # -- life cycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        cfg = self.config
        if cfg.state_file is not None and cfg.state_file.exists():
            self.store.load(cfg.state_file)
        self._saved_version = self.store.version
        cert_dir = cfg.cert_dir
        if cert_dir is None and cfg.state_file is not None:
            cert_dir = cfg.state_file.with_name(cfg.state_file.name + ".tls")
        if cert_dir is None:
            self._temp_cert_dir = cert_dir = Path(tempfile.mkdtemp(prefix="aci-emulator-"))
        self._certs = await asyncio.to_thread(ensure_certificates, cert_dir)
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # In-flight requests (a slow fault, a latency sleep) get a short grace period at stop, not 60 s.
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        try:
            site = web.TCPSite(self._runner, cfg.host, cfg.port, ssl_context=server_ssl_context(self._certs))
            await site.start()
            identity = web.TCPSite(self._runner, cfg.host, cfg.identity_port)
            await identity.start()
        except BaseException:
            await self.stop()  # a port in use must not leave a half-started server behind
            raise
        self._port = _bound_port(site)
        self._identity_port = _bound_port(identity)
        if cfg.state_file is not None:
            self._persist_task = asyncio.create_task(
                self._persist_loop(cfg.state_file), name="emulator-persist"
            )

    async def stop(self) -> None:
        self._stopping = True
        self._stop_event.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        try:
            if self._persist_task is not None:
                self._persist_wakeup.set()
                task, self._persist_task = self._persist_task, None
                await task  # raises StateSaveError when the last state could not be written
        finally:
            if self._temp_cert_dir is not None:
                shutil.rmtree(self._temp_cert_dir, ignore_errors=True)
                self._temp_cert_dir = None

    async def _persist_loop(self, path: Path) -> None:
        # Debounced: at most one snapshot per interval, and a last one at stop. The snapshot is taken
        # on the loop (requests cannot change the store half-way); only the file write runs in a
        # thread. The pause grows with the cost of a snapshot, so a large store does not starve requests.
        pause = self.config.persist_interval
        while True:
            await self._persist_wakeup.wait()
            self._persist_wakeup.clear()
            if self.store.version != self._saved_version:
                version = self.store.version
                started = time.perf_counter()
                payload = self.store.snapshot()
                pause = max(self.config.persist_interval, 10 * (time.perf_counter() - started))
                try:
                    await asyncio.to_thread(write_atomic, path, payload)
                    self._saved_version = version
                except StateSaveError:
                    # The file still holds the previous state and the store is unchanged in memory: the next
                    # change or the stop writes it again (below, even when this write failed while the stop
                    # was already under way), and the stop raises if that last write fails too.
                    pass
            if self._stopping:
                if self.store.version != self._saved_version:
                    await asyncio.to_thread(write_atomic, path, self.store.snapshot())
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), pause)

    async def flush(self) -> None:
        """Write the state file now (when there is one), e.g. before another process reads it."""
        path = self.config.state_file
        if path is not None and self.store.version != self._saved_version:
            version = self.store.version
            await asyncio.to_thread(write_atomic, path, self.store.snapshot())
            self._saved_version = version

    # -- properties and control --------------------------------------------------------------------

    def now(self) -> float:
        return self._clock()

    def set_clock(self, clock: Callable[[], float]) -> None:
        self._clock = clock

    @property
    def port(self) -> int:
        return self._port

    @property
    def endpoint(self) -> str:
        return f"https://{self.config.host}:{self._port}"

    @property
    def identity_endpoint(self) -> str:
        return f"http://{self.config.host}:{self._identity_port}{IDENTITY_PATH}"

    @property
    def ca_cert_path(self) -> Path:
        if self._certs is None:
            raise RuntimeError("the emulator has not been started")
        return self._certs.ca

    @property
    def groups(self) -> Mapping[str, JSON]:
        return GroupsView(self)

    def reset_counters(self) -> None:
        self.counters.clear()
        self.request_log.clear()

    def get_group(self, resource_group: str, name: str, subscription: str | None = None) -> JSON | None:
        rec = self._find(resource_group, name, subscription)
        return None if rec is None else json_copy(rec.render(self.now()))

    def submitted_body(self, resource_group: str, name: str, subscription: str | None = None) -> JSON | None:
        """The stored body including its secrets (in memory only), for tests that check delivery."""
        rec = self._find(resource_group, name, subscription)
        return None if rec is None else json_copy(rec.spec)

    def terminate(
        self,
        resource_group: str,
        name: str,
        exit_code: int = 0,
        *,
        subscription: str | None = None,
        container: str | None = None,
    ) -> str:
        """Make a group's containers exit with `exit_code` (following its restart policy).

        Returns the group's instance-view state afterwards: `Succeeded`/`Failed` when a `Never` or
        `OnFailure` group has finished, `Running` when the policy restarted the containers.
        """
        now = self.now()
        rec = self._find(resource_group, name, subscription)
        if rec is None:
            raise KeyError(f"no container group {resource_group}/{name}")
        if rec.transition is not None:
            raise ValueError(f"container group {resource_group}/{name} is still provisioning")
        state = self.store.terminate(rec, exit_code, now, container)
        self._persist_wakeup.set()
        return state

    def set_logs(
        self, resource_group: str, name: str, container: str, content: str, subscription: str | None = None
    ) -> None:
        rec = self._find(resource_group, name, subscription)
        if rec is None or container not in rec.containers:
            raise KeyError(f"no container {container} in {resource_group}/{name}")
        rec.containers[container].logs = content

    def _find(self, resource_group: str, name: str, subscription: str | None) -> GroupRecord | None:
        now = self.now()
        if subscription is not None:
            return self.store.get(subscription, resource_group, name, now)
        return self.store.find(resource_group, name, now)

    # -- request pipeline --------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        path = request.path
        route_name = "unknown"
        response: web.StreamResponse
        try:
            if path.startswith("/_emulator/") or path == "/_emulator":
                route_name = "control"
                response = await self._control(request)
            elif path == IDENTITY_PATH:
                route_name = "identity.token"
                response = self._identity(request)
            elif not request.secure:
                raise ArmError(400, "HttpsRequired", "The ARM API is served over https only.")
            else:
                route = match_route(path)
                route_name = route.name if route else "unknown"
                response = await self._arm(request, route)
        except ArmError as err:
            response = self._error(err)
        fault = request.get(_FAULT_KEY)
        if route_name == "control":
            return response  # the control surface is not traffic: it stays out of counters and log
        self.counters[f"{request.method} {route_name}"] += 1
        self.counters[f"status {response.status}"] += 1
        self.request_log.append(
            RequestLogEntry(
                self.now(),
                request.method,
                path,
                route_name,
                response.status,
                time.perf_counter() - started,
                fault,
            )
        )
        if self.store.version != self._saved_version:
            self._persist_wakeup.set()
        if fault == "reset_after" and request.transport is not None:
            request.transport.abort()
        return response

    def _error(self, err: ArmError) -> web.Response:
        headers = {"x-ms-request-id": str(uuid.uuid4()), **err.headers}
        if err.status == 401:
            headers["WWW-Authenticate"] = (
                'Bearer authorization_uri="https://login.microsoftonline.com/common", '
                'error="invalid_token", error_description="The authentication failed because of missing '
                "'Authorization' header.\""
            )
        return web.json_response(err.body(), status=err.status, headers=headers)

    def _check_auth(self, request: web.Request) -> None:
        header = request.headers.get("Authorization")
        if header is None:
            raise ArmError(
                401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
            )
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ArmError(
                401,
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is not in a valid format.",
            )

    def _throttle(self, subscription: str, kind: str, now: float) -> dict[str, str]:
        size, rate = {
            "reads": (self.config.read_bucket_size, self.config.read_refill_rate),
            "writes": (self.config.write_bucket_size, self.config.write_refill_rate),
            "deletes": (self.config.delete_bucket_size, self.config.delete_refill_rate),
        }[kind]
        if size is None:
            return {}
        bucket = self._buckets.get((subscription.lower(), kind))
        if bucket is None or bucket.size != size or bucket.rate != rate:
            bucket = self._buckets[(subscription.lower(), kind)] = TokenBucket(size, rate, now)
        allowed, remaining, wait = bucket.take(now)
        header = f"x-ms-ratelimit-remaining-subscription-{kind}"
        if not allowed:
            self.counters["throttled"] += 1
            raise ArmError(
                429,
                "SubscriptionRequestsThrottled",
                f"Number of '{kind[:-1]}' requests for subscription '{subscription}' exceeded. Please try "
                f"again after '{wait}' seconds after additional tokens are available. Refer to "
                "https://aka.ms/arm-throttling",
                headers={"Retry-After": str(wait), header: "0"},
            )
        return {header: str(remaining)}

    def _aci_quota(self, subscription: str, now: float) -> tuple[dict[str, str], list[WindowQuota]]:
        headers: dict[str, str] = {}
        taken: list[WindowQuota] = []
        for label, limit, window in (
            ("pt5m", self.config.aci_requests_per_5m, 300.0),
            ("pt1h", self.config.aci_requests_per_1h, 3600.0),
        ):
            if limit is None:
                continue
            quota = self._quotas.get((subscription.lower(), label))
            if quota is None or quota.limit != limit:
                quota = self._quotas[(subscription.lower(), label)] = WindowQuota(limit, window)
            allowed, remaining, wait = quota.check(now)
            if not allowed:
                self.counters["quota_exceeded"] += 1
                raise ArmError(
                    429,
                    "ResourceRequestsThrottled",
                    f"The number of write requests for resource type 'containerGroups' in subscription "
                    f"'{subscription}' exceeded the limit of '{limit}' in '{label.upper()}'. Please try "
                    f"again after '{wait}' seconds.",
                    headers={
                        "Retry-After": str(wait),
                        f"x-ms-ratelimit-remaining-subscription-resource-requests-{label}": "0",
                    },
                )
            headers[f"x-ms-ratelimit-remaining-subscription-resource-requests-{label}"] = str(remaining)
            taken.append(quota)
        return headers, taken

    async def _arm(self, request: web.Request, route: _Route | None) -> web.StreamResponse:
        self._check_auth(request)
        if route is None:
            raise ArmError(
                404,
                "InvalidResourceType",
                f"The resource type could not be found in the namespace 'Microsoft.ContainerInstance' for "
                f"api version '{request.query.get('api-version', '')}'.",
            )
        version = request.query.get("api-version")
        if not version:
            raise bad_request(
                "The api-version query parameter (?api-version=) is required for all requests.",
                "MissingApiVersionParameter",
            )
        if route.name != "operation" and version not in _SUPPORTED:
            raise bad_request(
                f"No registered resource provider found for location '{request.query.get('location', '')}' "
                f"and API version '{version}' for type 'containerGroups'. The supported api-versions are "
                f"'{SUPPORTED_API_VERSIONS}'.",
                "NoRegisteredProviderFound",
            )
        method = request.method.upper()
        now = self.now()
        kind = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}.get(method, "writes")
        headers = self._throttle(route.subscription, kind, now)
        quotas: list[WindowQuota] = []
        if route.name == "containerGroup" and method in ("PUT", "DELETE"):
            quota_headers, quotas = self._aci_quota(route.subscription, now)
            headers.update(quota_headers)
        fault = self.faults.pick(method, request.path)
        if fault is not None:
            request[_FAULT_KEY] = fault
        if fault in ("500", "503", "429"):
            raise self._fault_error(fault, headers)
        if fault == "reset":
            if request.transport is not None:
                request.transport.abort()
            raise ArmError(500, "ConnectionReset", "The emulator dropped the connection (fault injected).")
        delay = self.config.latency + (self.faults.settings.slow_seconds if fault == "slow" else 0.0)
        if delay > 0:
            await asyncio.sleep(delay)
            now = self.now()
        response = await self._dispatch(request, route, method, now, fault)
        if 200 <= response.status < 300:
            for quota in quotas:
                quota.record(now)
        for name, value in headers.items():
            response.headers[name] = value
        response.headers.setdefault("x-ms-request-id", str(uuid.uuid4()))
        response.headers.setdefault("x-ms-correlation-request-id", str(uuid.uuid4()))
        return response

    def _fault_error(self, fault: str, headers: dict[str, str]) -> ArmError:
        retry = {"Retry-After": str(self.faults.settings.retry_after)}
        if fault == "500":
            return ArmError(
                500,
                "InternalServerError",
                "Encountered internal server error. Diagnostic information: fault injected by the emulator.",
                headers=headers,
            )
        if fault == "503":
            return ArmError(
                503,
                "ServiceUnavailable",
                "The service is temporarily unavailable (fault injected by the emulator).",
                headers={**headers, **retry},
            )
        return ArmError(
            429,
            "TooManyRequests",
            "The request is being throttled (fault injected by the emulator).",
            headers={**headers, **retry},
        )

    async def _dispatch(
        self, request: web.Request, route: _Route, method: str, now: float, fault: str | None
    ) -> web.StreamResponse:
        name = route.name
        if name == "containerGroup":
            if method == "GET":
                return self._get(route, now)
            if method == "PUT":
                return await self._put(request, route, now, fault)
            if method == "PATCH":
                return await self._patch(request, route, now)
            if method == "DELETE":
                return self._delete(request, route, now)
        elif name == "containerGroups.listByResourceGroup" and method == "GET":
            return self._list_rg(request, route, now)
        elif name == "containerGroups.listBySubscription" and method == "GET":
            return self._list_sub(request, route, now)
        elif name == "operation" and method == "GET":
            return self._operation(route, now)
        elif name.startswith("containerGroup.") and method == "POST":
            return self._action(request, route, now)
        elif name == "containers.logs" and method == "GET":
            return self._logs(request, route, now)
        raise ArmError(
            405, "HttpMethodNotAllowed", f"The HTTP method '{method}' is not supported at '{request.path}'."
        )

    # -- operations --------------------------------------------------------------------------------

    def _require(self, route: _Route, now: float) -> GroupRecord:
        rec = self.store.get(route.subscription, route.resource_group, route.group, now)
        if rec is None:
            raise not_found(route.resource_group, route.group)
        return rec

    def _async_url(self, request: web.Request, op: Operation) -> str:
        return (
            f"https://{request.host}/subscriptions/{op.subscription}/providers/Microsoft.ContainerInstance"
            f"/locations/{op.location}/operations/{op.id}?api-version={OPERATIONS_API_VERSION}"
        )

    def _get(self, route: _Route, now: float) -> web.Response:
        return web.json_response(self._require(route, now).render(now))

    async def _read_json(self, request: web.Request) -> Any:
        raw = await request.read()
        try:
            return json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad_request(
                f"The request content was invalid and cannot be deserialized: '{exc}'."
            ) from exc

    def _validate(self, definition: str, body: JSON) -> JSON:
        """Reject a body the way ARM does, else return it as the resource provider reads it."""
        found: list[tuple[str, str, str]]
        if self._spec is not None:
            found = [
                (str(v.path), str(v.message), str(getattr(v, "code", "InvalidRequestContent")))
                for v in self._spec.validate(definition, body)
            ]
        else:
            found = [(p, m, "InvalidRequestContent") for p, m in _basic_violations(definition, body)]
        if found:
            path, message, code = found[0]
            where = f" Path '{arm_path(path)}'." if path else ""
            text = (
                f"The request content was invalid and cannot be deserialized: '{message}{where}'."
                if code == "InvalidRequestContent"
                else message
            )
            raise ArmError(
                400,
                code,
                text,
                details=[{"code": c, "target": arm_path(p), "message": m} for p, m, c in found],
            )
        if self._spec is not None and self._spec.normalize is not None:
            normalized = self._spec.normalize(definition, body)
            if isinstance(normalized, dict):
                return normalized
        return body

    async def _put(self, request: web.Request, route: _Route, now: float, fault: str | None) -> web.Response:
        fail = fault == "provision_fail"
        body = await self._read_json(request)
        if not isinstance(body, dict):
            raise bad_request(
                "The request content was invalid and cannot be deserialized: 'expected an object'."
            )
        if not body.get("location"):
            raise bad_request("The location property is required for this definition.", "LocationRequired")
        body = self._validate("ContainerGroup", body)
        existing = self.store.get(route.subscription, route.resource_group, route.group, now)
        problems = name_problems(existing.name if existing else route.group, body)
        if problems:
            code, _, message = problems[0]
            raise ArmError(
                400,
                code,
                message,
                details=[{"code": c, "target": arm_path(p), "message": m} for c, p, m in problems],
            )
        key = f"{route.subscription}/{route.resource_group}/{route.group}".lower()
        delay = self.config.provisioning_delay
        if existing is not None:
            self._check_update(existing, body, key, fault)
            spec = apply_defaults(body, key=key, location=existing.location, previous=existing.spec)
            existing.set_spec(keep_immutable(existing.spec, spec))
            op = self.store.begin(existing, "update", now, delay, fails=fail)
            rec, status = existing, 200
        else:
            spec = apply_defaults(body, key=key, location=str(body["location"]), previous=None)
            rec = GroupRecord(route.subscription, route.resource_group, route.group, spec, created=now)
            self.store.insert(rec)
            op = self.store.begin(rec, "create", now, delay, fails=fail)
            status = 201
        response = web.json_response(rec.render(now), status=status)
        response.headers["Azure-AsyncOperation"] = self._async_url(request, op)
        return response

    def _check_update(self, rec: GroupRecord, body: JSON, key: str, fault: str | None) -> None:
        if rec.transition is not None:
            raise ArmError(
                409,
                "ContainerGroupTransitioning",
                f"The container group '{rec.name}' is still transitioning, please retry later.",
            )
        new_location = normalize_location(str(body.get("location", "")))
        if new_location != rec.location:
            raise ArmError(
                409,
                "InvalidResourceLocation",
                f"The resource '{rec.name}' already exists in location '{rec.location}' in resource group "
                f"'{rec.resource_group}'. A resource with the same name cannot be created in location "
                f"'{new_location}'. Please select a new resource name.",
            )
        if rec.terminated:
            raise ArmError(
                409,
                "ContainerGroupTerminated",
                f"The container group '{rec.name}' is in the terminal state '{rec.group_state}' and "
                "cannot be updated. Delete it first and then create a new one.",
            )
        candidate = apply_defaults(body, key=key, location=rec.location, previous=rec.spec)
        refused = refused_fields(rec.spec, candidate)
        wording = self.config.update_refusal_wording
        if fault in ("refuse_update", "refuse_update_property"):
            # Azure deciding what no evidence decides (DESIGN section 5): refuse this update whatever changed.
            wording = "per-property" if fault == "refuse_update_property" else "generic"
            changed = _first_changed_property(rec.spec, candidate)
            raise invalid_update(rec.name, wording=wording, prop=refused[0].label if refused else changed)
        if refused:
            raise invalid_update(rec.name, wording=wording, prop=refused[0].label)

    async def _patch(self, request: web.Request, route: _Route, now: float) -> web.Response:
        body = await self._read_json(request)
        if not isinstance(body, dict):
            raise bad_request(
                "The request content was invalid and cannot be deserialized: 'expected an object'."
            )
        rec = self._require(route, now)
        body = self._validate("Resource", body)
        if "tags" in body:
            rec.set_tags(dict(body.get("tags") or {}))
            self.store.touch()
        return web.json_response(rec.render(now))

    def _delete(self, request: web.Request, route: _Route, now: float) -> web.Response:
        rec = self.store.get(route.subscription, route.resource_group, route.group, now)
        if rec is None:
            return web.Response(status=204)
        delay = (
            self.config.delete_delay
            if self.config.delete_delay is not None
            else self.config.provisioning_delay
        )
        if delay <= 0:
            body = rec.render(now)
            self.store.remove(rec)
            return web.json_response(body)
        t = rec.transition
        op = self.store.operation(t.op_id, now) if t is not None and t.kind == "delete" else None
        if op is None:
            op = self.store.begin(rec, "delete", now, delay)
        response = web.Response(status=202)
        response.headers["Azure-AsyncOperation"] = self._async_url(request, op)
        response.headers["Location"] = self._async_url(request, op)
        return response

    def _action(self, request: web.Request, route: _Route, now: float) -> web.Response:
        rec = self._require(route, now)
        if rec.transition is not None:
            raise ArmError(
                409,
                "ContainerGroupTransitioning",
                f"The container group '{rec.name}' is still transitioning, please retry later.",
            )
        if route.action == "stop":
            self.store.stop(rec, now)
            return web.Response(status=204)
        kind = "start" if route.action == "start" or rec.group_state == "Stopped" else "restart"
        op = self.store.begin(rec, kind, now, self.config.provisioning_delay)
        response = web.Response(status=202 if route.action == "start" else 204)
        response.headers["Azure-AsyncOperation"] = self._async_url(request, op)
        return response

    def _logs(self, request: web.Request, route: _Route, now: float) -> web.Response:
        rec = self._require(route, now)
        runtime = rec.containers.get(route.container)
        if runtime is None:
            raise ArmError(
                404,
                "ContainerNotFound",
                f"The container '{route.container}' could not be found in container group '{rec.name}'.",
            )
        content = runtime.logs
        tail = request.query.get("tail")
        if tail:
            try:
                count = int(tail)
            except ValueError as exc:
                raise bad_request(f"The value '{tail}' of 'tail' is not a valid integer.") from exc
            lines = content.splitlines(keepends=True)
            content = "".join(lines[-count:]) if count > 0 else ""
        return web.json_response({"content": content})

    def _operation(self, route: _Route, now: float) -> web.Response:
        op = self.store.operation(route.operation, now)
        if op is None or op.subscription.lower() != route.subscription.lower():
            raise ArmError(404, "OperationNotFound", f"The operation '{route.operation}' was not found.")
        status = op.status_at(now)
        rec = self.store.get(op.subscription, op.key[1], op.key[2], now)
        body: JSON = {
            "id": op.resource_id,
            "status": status,
            "startTime": iso(op.started, millis=True),
            "properties": {"events": rec.events_for_operation() if rec is not None else []},
        }
        if status == "Failed":
            body["error"] = {
                "code": "ContainerGroupProvisioningFailed",
                "message": f"The container group provisioning failed (fault injected by the emulator) for "
                f"'{op.resource_id}'.",
            }
        response = web.json_response(body)
        response.headers["Retry-After"] = str(self.config.retry_after)
        return response

    def _page_link(self, request: web.Request, token: object) -> str:
        version = request.query.get("api-version", API_VERSION)
        return f"https://{request.host}{request.path}?api-version={version}&$skipToken={_encode_token(token)}"

    def _list_rg(self, request: web.Request, route: _Route, now: float) -> web.Response:
        token = request.query.get("$skipToken")
        after = str(_decode_token(token)) if token else None
        records, last = self.store.page_resource_group(
            route.subscription, route.resource_group, after, max(1, self.config.page_size), now
        )
        body: JSON = {"value": [r.render(now, instance_view=False) for r in records]}
        if last is not None:
            body["nextLink"] = self._page_link(request, last)
        return web.json_response(body)

    def _list_sub(self, request: web.Request, route: _Route, now: float) -> web.Response:
        if self.config.deny_subscription_list:
            # ARM's answer to a principal whose role assignments are on resource groups only.
            raise ArmError(
                403,
                "AuthorizationFailed",
                "The client 'emulator-principal' with object id '00000000-0000-0000-0000-0000000000aa' does "
                "not have authorization to perform action 'Microsoft.ContainerInstance/containerGroups/read' "
                f"over scope '/subscriptions/{route.subscription}' or the scope is invalid. If access was "
                "recently granted, please refresh your credentials.",
            )
        token = request.query.get("$skipToken")
        after: tuple[str, str] | None = None
        if token:
            decoded = _decode_token(token)
            if not (isinstance(decoded, list) and len(decoded) == 2):
                raise bad_request("The $skipToken is not valid.", "InvalidSkipToken")
            after = (str(decoded[0]), str(decoded[1]))
        records, last = self.store.page_subscription(
            route.subscription, after, max(1, self.config.page_size), now
        )
        body: JSON = {"value": [r.render(now, instance_view=False) for r in records]}
        if last is not None:
            body["nextLink"] = self._page_link(request, list(last))
        return web.json_response(body)

    # -- managed identity --------------------------------------------------------------------------

    def _identity(self, request: web.Request) -> web.Response:
        if request.headers.get("X-IDENTITY-HEADER") != self.identity_header:
            return web.json_response(
                {"statusCode": 401, "message": "The X-IDENTITY-HEADER header is missing or wrong."},
                status=401,
            )
        resource = request.query.get("resource")
        if not resource:
            return web.json_response(
                {"statusCode": 400, "message": "The 'resource' query parameter is required."}, status=400
            )
        # Real time, not the emulator's clock: azure-identity judges expiry by the wall clock.
        expires = int(time.time()) + 3600
        return web.json_response(
            {
                "access_token": "emulator-" + secrets.token_urlsafe(32),
                "expires_on": str(expires),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": request.query.get("client_id", "00000000-0000-0000-0000-00000000e4d1"),
            }
        )

    # -- control surface ---------------------------------------------------------------------------

    async def _control(self, request: web.Request) -> web.Response:
        from reconciler.emulator.control import handle_control

        return await handle_control(self, request)


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp exposes the bound port only through the asyncio server
    sockets = getattr(server, "sockets", None) or []
    if not sockets:
        raise RuntimeError("the emulator's socket is not bound")
    return int(sockets[0].getsockname()[1])
