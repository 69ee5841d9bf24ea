"""`reconcile daemon`: the daemon's options, and running it with signal handling.

`reconciler.cli` parses the common options (manifests, target, engine), then calls `add_arguments` for the
daemon's own and `run(args, settings, open_gateway, environ)`, which returns the exit code:

- 0 after an orderly shutdown (the first SIGTERM or SIGINT: stop taking triggers, drop a pass that is still
  planning, let one that is applying finish within `--grace-period`, record what is unfinished), and after a
  successful `--once` pass;
- 1 on bad options or when the daemon cannot run (the message says which option and what to do), and when the
  `--once` pass failed;
- 130 on a second SIGTERM/SIGINT: the state file is written and the process exits at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import inspect
import os
import re
import secrets
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import structlog

from reconciler.cloud.coordination import (
    CoordinationStore,
    StorageUnavailableError,
    StoreConfigError,
    StoreOpener,
)
from reconciler.daemon import logging as daemon_logging
from reconciler.daemon.coordination.coordinator import CoordinationSettings, CoordinationStartError
from reconciler.daemon.coordination.fence import LeaseTable
from reconciler.daemon.duplicate import DuplicateDaemonError, Heartbeat
from reconciler.daemon.gitsource import check_ref, check_url
from reconciler.daemon.jobs import JobLauncher
from reconciler.daemon.metrics import DaemonMetrics
from reconciler.daemon.notify import NotifyConfigError, load_notifications
from reconciler.daemon.runner import Daemon, DaemonConfig, mask_secrets
from reconciler.daemon.state import BackoffPolicy
from reconciler.daemon.ui.auth import UiAuthError, UiSettings, load_ui_settings
from reconciler.model.jobrun import JobRequest, JobResult

EXIT_FORCED = 130
DEFAULT_LISTEN = "127.0.0.1:9440"
DEFAULT_STATE_DIR = ".reconciler/daemon"
WEBHOOK_SECRET_ENV = "RECONCILER_WEBHOOK_SECRET"
STORAGE_CONNECTION_STRING_ENV = "RECONCILER_STORAGE_CONNECTION_STRING"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class DaemonUsageError(Exception):
    """A bad daemon option; the message names it and says what to give instead."""


def parse_duration(text: str) -> float:
    """`300`, `30s`, `5m`, `1h`, `1m30s`, `250ms` -> seconds."""
    value = text.strip().lower()
    try:
        seconds = float(value)
    except ValueError:
        parts = _DURATION_PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a duration; write seconds (30) or a number with a unit: 250ms, 30s, 5m, 1h"
            ) from None
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a duration cannot be negative")
    return seconds


def parse_listen(text: str) -> tuple[str, int] | None:
    """`HOST:PORT`, `[::1]:PORT`, `:PORT` (loopback), or `off` -> (host, port) or None."""
    value = text.strip()
    if value.lower() in ("off", "none", ""):
        return None
    match = re.fullmatch(r"\[([^\]]+)\]:(\d+)|([^:\[\]]*):(\d+)", value)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"--listen {text!r}: write HOST:PORT, e.g. 127.0.0.1:9440 (or 'off')"
        )
    host = match.group(1) or match.group(3) or "127.0.0.1"
    port = int(match.group(2) or match.group(4))
    if port > 65535:
        raise argparse.ArgumentTypeError(f"--listen {text!r}: port {port} is out of range")
    return host, port


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number between 0 and 1") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a fraction between 0 and 1 (0.1 spreads by +/-10%)")
    return value


def add_arguments(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    group = parser.add_argument_group("daemon")
    group.add_argument(
        "--interval",
        type=parse_duration,
        # A string default goes through `type` too, so a bad environment value is reported like a bad flag.
        default=environ.get("RECONCILER_INTERVAL", "5m"),
        metavar="DURATION",
        help="resync (re-observe Azure and correct drift) this often; 0 disables (default 5m; "
        "env RECONCILER_INTERVAL)",
    )
    group.add_argument(
        "--jitter",
        type=_fraction,
        default=0.1,
        metavar="FRACTION",
        help="spread each interval by +/- this fraction (default 0.1)",
    )
    group.add_argument(
        "--debounce",
        type=parse_duration,
        default=1.0,
        metavar="DURATION",
        help="wait this long after the last file change before a pass (default 1s)",
    )
    group.add_argument(
        "--listen",
        type=parse_listen,
        default=environ.get("RECONCILER_LISTEN", DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help="address of /healthz /readyz /metrics /status /hook; 'off' disables "
        f"(default {DEFAULT_LISTEN}; env RECONCILER_LISTEN)",
    )
    group.add_argument(
        "--git-url",
        default=environ.get("RECONCILER_GIT_URL") or None,
        metavar="URL",
        help="pull manifests from this git remote; -f then names a directory inside it "
        "(env RECONCILER_GIT_URL)",
    )
    group.add_argument(
        "--git-ref",
        default=environ.get("RECONCILER_GIT_REF") or None,
        metavar="REF",
        help="branch, tag or commit to follow (default: the remote's HEAD; env RECONCILER_GIT_REF)",
    )
    group.add_argument(
        "--git-interval",
        type=parse_duration,
        default=60.0,
        metavar="DURATION",
        help="fetch the remote this often (default 1m); the webhook fetches at once",
    )
    group.add_argument(
        "--git-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the clone and checkouts live (default: STATE_DIR/git)",
    )
    group.add_argument(
        "--git-timeout",
        type=parse_duration,
        default=120.0,
        metavar="DURATION",
        help="give up on one git command after this long (default 2m)",
    )
    group.add_argument(
        "--webhook-secret-file",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"enable POST /hook, checking GitHub's X-Hub-Signature-256 with this secret (or env "
        f"{WEBHOOK_SECRET_ENV})",
    )
    group.add_argument(
        "--state-dir",
        type=Path,
        default=Path(environ.get("RECONCILER_STATE_DIR", DEFAULT_STATE_DIR)),
        metavar="DIR",
        help=f"where the daemon keeps its state file (default {DEFAULT_STATE_DIR}; env RECONCILER_STATE_DIR)",
    )
    group.add_argument(
        "--grace-period",
        type=parse_duration,
        default=60.0,
        metavar="DURATION",
        help="on SIGTERM, how long a pass that is applying may take to finish (default 60s; one still "
        "planning is dropped at once)",
    )
    group.add_argument(
        "--backoff-max",
        type=parse_duration,
        default=600.0,
        metavar="DURATION",
        help="longest wait before retrying a group that failed retryably (default 10m)",
    )
    group.add_argument("--dry-run", action="store_true", help="plan on every trigger, never apply")
    group.add_argument("--once", action="store_true", help="run one pass and exit (0 when it succeeded)")
    group.add_argument(
        "--no-watch",
        dest="watch",
        action="store_false",
        help="do not watch the manifest directory for changes",
    )
    ha = parser.add_argument_group("high availability (DESIGN section 13)")
    ha.add_argument(
        "--coordination",
        default=environ.get("RECONCILER_COORDINATION") or None,
        metavar="URL",
        help="an Azure Blob container URL (https://ACCOUNT.blob.core.windows.net/CONTAINER) where replicas "
        "of this instance elect a writer and share their state; credentials from DefaultAzureCredential, or "
        f"env {STORAGE_CONNECTION_STRING_ENV} (env RECONCILER_COORDINATION)",
    )
    ha.add_argument(
        "--shards",
        type=int,
        default=int(environ.get("RECONCILER_SHARDS", "1") or "1"),
        metavar="N",
        help="with --coordination, hash resource groups into N shards, each with its own lease, spread over "
        "the replicas (default 1: one leader; env RECONCILER_SHARDS). Every replica must give the same N",
    )
    ha.add_argument(
        "--lease-duration",
        type=parse_duration,
        default=15.0,
        metavar="DURATION",
        help="how long a lease outlives its last renewal: a dead leader is replaced after at most this "
        "(15s to 60s; default 15s)",
    )
    ha.add_argument(
        "--lease-renew",
        type=parse_duration,
        default=5.0,
        metavar="DURATION",
        help="renew held leases this often (default 5s)",
    )
    ha.add_argument(
        "--lease-margin",
        type=parse_duration,
        default=5.0,
        metavar="DURATION",
        help="stop writing this long before a lease that could not be renewed may expire: the longest a "
        "write request may take to reach Azure (default 5s)",
    )
    ha.add_argument(
        "--replica-id",
        default=environ.get("RECONCILER_REPLICA_ID") or None,
        metavar="ID",
        help="this replica's name in the container and in /status (default: HOSTNAME-PID-RANDOM; env "
        "RECONCILER_REPLICA_ID)",
    )
    ha.add_argument(
        "--allow-duplicate",
        action="store_true",
        help="without --coordination: start even when another live daemon of this instance holds the "
        "heartbeat tag (the two would undo each other's work)",
    )
    ha.add_argument(
        "--heartbeat-resource-group",
        default=environ.get("RECONCILER_HEARTBEAT_RESOURCE_GROUP") or None,
        metavar="RG",
        help="without --coordination: the resource group whose tag holds this instance's heartbeat "
        "(default: the first of --scope, else of the manifests; env RECONCILER_HEARTBEAT_RESOURCE_GROUP)",
    )
    ha.add_argument(
        "--heartbeat-interval",
        type=parse_duration,
        default=30.0,
        metavar="DURATION",
        help="renew the heartbeat tag this often; it expires after three (default 30s)",
    )
    seen = parser.add_argument_group("status page and notifications (deploy/README.md)")
    seen.add_argument(
        "--notifications",
        type=Path,
        default=environ.get("RECONCILER_NOTIFICATIONS") or None,
        metavar="FILE",
        help="YAML with a `notifications:` section: receivers (webhook, slack, teams, github), their events, "
        "filters, rate limits (env RECONCILER_NOTIFICATIONS)",
    )
    seen.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="KIND=TARGET",
        help="one more receiver: webhook=URL,secret=env:NAME | slack=env:NAME | teams=file:PATH | "
        "github=OWNER/REPO[,token=env:NAME]; repeat for several",
    )
    seen.add_argument(
        "--status-page",
        choices=("on", "off", "public"),
        default=environ.get("RECONCILER_STATUS_PAGE", "on"),
        help="the read-only page at / (default on: served without sign-in on a loopback --listen only, "
        "else it needs --ui-token-file or --ui-basic-auth-file; public: no sign-in anywhere; env "
        "RECONCILER_STATUS_PAGE)",
    )
    seen.add_argument(
        "--ui-token-file",
        type=Path,
        default=environ.get("RECONCILER_UI_TOKEN_FILE") or None,
        metavar="FILE",
        help="the page and /status ask for `Authorization: Bearer <the file's content>` (env "
        "RECONCILER_UI_TOKEN_FILE)",
    )
    seen.add_argument(
        "--ui-basic-auth-file",
        type=Path,
        default=environ.get("RECONCILER_UI_BASIC_AUTH_FILE") or None,
        metavar="FILE",
        help="the page and /status ask for HTTP basic auth; the file has one USER:PASSWORD per line (env "
        "RECONCILER_UI_BASIC_AUTH_FILE)",
    )
    seen.add_argument(
        "--ui-refresh",
        type=parse_duration,
        default=3.0,
        metavar="DURATION",
        help="how often the status page refreshes itself in the browser (default 3s, at least 0.5s)",
    )
    group.add_argument(
        "--log-format",
        choices=("auto", "json", "console"),
        default=environ.get("RECONCILER_LOG_FORMAT", "auto"),
        help="auto: JSON lines unless stderr is a terminal (env RECONCILER_LOG_FORMAT)",
    )
    group.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=environ.get("RECONCILER_LOG_LEVEL", "info"),
    )


def _webhook_secret(args: argparse.Namespace, environ: Mapping[str, str]) -> bytes | None:
    path: Path | None = args.webhook_secret_file
    if path is not None:
        try:
            secret = path.read_bytes().strip()
        except OSError as err:
            raise DaemonUsageError(
                f"--webhook-secret-file {path}: cannot read it ({err.strerror}); give a readable file"
            ) from None
        if not secret:
            raise DaemonUsageError(f"--webhook-secret-file {path}: the file is empty; put the secret in it")
        return secret
    value = environ.get(WEBHOOK_SECRET_ENV)
    return value.strip().encode() if value and value.strip() else None


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> DaemonConfig:
    manifests: Path = args.manifests
    if len(getattr(args, "manifest_roots", ())) > 1:
        raise DaemonUsageError(
            "the daemon watches one directory of manifests: give -f once (a directory can hold several trees)"
        )
    if args.git_url:
        if manifests.is_absolute() or ".." in manifests.parts:
            raise DaemonUsageError(
                f"-f {manifests}: with --git-url, -f names a directory inside the repository "
                "(e.g. -f manifests, or -f . for its root)"
            )
        try:
            check_url(args.git_url)
            if args.git_ref is not None:
                check_ref(args.git_ref)
        except ValueError as err:
            raise DaemonUsageError(str(err)) from None
    elif not manifests.is_dir():
        raise DaemonUsageError(f"{manifests}: no such directory of manifests (choose one with -f DIR)")
    if args.backoff_max <= 0:
        raise DaemonUsageError("--backoff-max must be longer than 0s")
    coordination = _coordination(args)
    try:
        notifications = load_notifications(args.notifications, args.notify, environ)
    except NotifyConfigError as err:
        raise DaemonUsageError(str(err)) from None
    ui = ui_settings(args, args.listen)
    return DaemonConfig(
        manifests=manifests,
        instance=args.instance,
        interval=args.interval,
        jitter=args.jitter,
        debounce=args.debounce,
        listen=args.listen,
        git_url=args.git_url,
        git_ref=args.git_ref,
        git_interval=max(args.git_interval, 0.1),
        git_dir=args.git_dir,
        git_timeout=args.git_timeout,
        webhook_secret=_webhook_secret(args, environ),
        state_dir=args.state_dir,
        grace_period=args.grace_period,
        dry_run=args.dry_run,
        once=args.once,
        backoff=BackoffPolicy(base=min(10.0, args.backoff_max), cap=args.backoff_max),
        watch=args.watch,
        coordination=coordination,
        allow_duplicate=args.allow_duplicate,
        heartbeat_resource_group=args.heartbeat_resource_group,
        heartbeat_interval=max(args.heartbeat_interval, 1.0),
        notifications=notifications,
        ui=ui,
    )


def ui_settings(args: argparse.Namespace, listen: tuple[str, int] | None) -> UiSettings:
    try:
        return load_ui_settings(
            mode=args.status_page,
            token_file=args.ui_token_file,
            basic_auth_file=args.ui_basic_auth_file,
            listen_host=listen[0] if listen is not None else None,
            refresh_s=args.ui_refresh,
        )
    except UiAuthError as err:
        raise DaemonUsageError(str(err)) from None


_REPLICA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def default_replica_id() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:40].strip(".-_") or "replica"
    return f"{host}-{os.getpid()}-{secrets.token_hex(2)}"


def _coordination(args: argparse.Namespace) -> CoordinationSettings | None:
    url: str | None = args.coordination
    if not url:
        if args.shards != 1:
            raise DaemonUsageError("--shards needs --coordination URL (the container the replicas share)")
        return None
    if args.once:
        raise DaemonUsageError(
            "--once runs one pass on its own: leave out --coordination (or use `reconcile apply`)"
        )
    replica = args.replica_id or default_replica_id()
    if not _REPLICA_ID.fullmatch(replica):
        raise DaemonUsageError(
            f"--replica-id {replica!r}: use 1 to 63 letters, digits, '.', '_' or '-', starting with a letter "
            "or digit"
        )
    duration = args.lease_duration
    if duration != int(duration):
        raise DaemonUsageError(f"--lease-duration {duration:g}s: give whole seconds, 15 to 60")
    settings = CoordinationSettings(
        replica=replica,
        url=url,
        shards=args.shards,
        lease_duration=int(duration),
        renew_every=args.lease_renew,
        margin=args.lease_margin,
    )
    problems = settings.problems()
    if problems:
        raise DaemonUsageError("; ".join(problems))
    return settings


# Environment variables whose values are secrets; they are masked in every log line.
SECRET_ENVIRONMENT = (
    "RECONCILER_SECRET_KEY",
    WEBHOOK_SECRET_ENV,
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_PASSWORD",
    STORAGE_CONNECTION_STRING_ENV,
)


def _known_secrets(config: DaemonConfig, settings: Any, environ: Mapping[str, str]) -> list[str]:
    values = [environ.get(name, "") for name in SECRET_ENVIRONMENT]
    if config.webhook_secret:
        values.append(config.webhook_secret.decode(errors="replace"))
    values += list(config.notifications.secrets)
    values += list(config.ui.secrets)
    key = getattr(settings, "secret_key", None)
    if isinstance(key, bytes) and key:
        values += [key.hex(), key.decode(errors="ignore")]
    return [v for v in values if v]


GatewayFactory = Callable[..., AbstractAsyncContextManager[Any]]


@contextlib.asynccontextmanager
async def open_gateway_with_metrics(
    open_gateway: GatewayFactory, metrics: DaemonMetrics, write_guard: LeaseTable | None = None
) -> AsyncIterator[Any]:
    try:
        accepts = set(inspect.signature(open_gateway).parameters)
    except (TypeError, ValueError):
        accepts = set()
    # The CLI's factory reports Azure requests once it takes `on_request`; older factories take nothing.
    kwargs: dict[str, Any] = {"on_request": metrics.on_request} if "on_request" in accepts else {}
    if write_guard is not None:
        if "write_guard" not in accepts:
            raise DaemonUsageError("--coordination: this target cannot fence its writes; use an Azure target")
        kwargs["write_guard"] = write_guard
    async with open_gateway(**kwargs) as gateway:
        yield gateway


async def open_coordination_store(
    settings: CoordinationSettings, environ: Mapping[str, str], opener: StoreOpener
) -> CoordinationStore:
    """The Blob container of `--coordination`, created when missing and the principal may create it."""
    try:
        store = opener(settings.url, environ.get(STORAGE_CONNECTION_STRING_ENV) or None)
    except StoreConfigError as err:
        raise CoordinationStartError(str(err)) from None
    try:
        await store.ensure_container()
    except StoreConfigError as err:
        await store.close()
        raise CoordinationStartError(f"--coordination {store.location}: {err}") from None
    except StorageUnavailableError as err:
        # A standby until the store answers: the tick retries.
        structlog.get_logger("reconciler.daemon").warning(
            "coordination store unreachable at start; standing by", store=store.location, error=str(err)
        )
    return store


class DaemonJobs:
    """The daemon's job launcher: the engine's job runner bound to the daemon's gateway (whose requests the
    metrics count), its settings and environment, and one watcher for every run of the process.

    Each run reads the manifests where the passes read them: `manifests()` when given (the git checkout of
    the moment), else `settings.manifests`. Being cancelled (the daemon's shutdown, after the grace period)
    stops the run's group and deletes it per `keep`, as a signal does to `reconcile run`. The watcher's task
    starts with the first run and ends in `aclose`."""

    def __init__(
        self, settings: Any, gateway: Any, environ: Mapping[str, str], manifests: Callable[[], Path] | None
    ) -> None:
        from reconciler.execution.watch import JobWatcher

        self.settings = settings
        self.gateway = gateway
        self.environ = environ
        self.manifests = manifests
        self.watcher = JobWatcher(gateway)
        self._watching: asyncio.Task[None] | None = None

    async def __call__(self, request: JobRequest) -> JobResult:
        from reconciler.engine.jobs import JobContext, JobRunner

        if self._watching is None or self._watching.done():
            self._watching = asyncio.create_task(self.watcher.run(), name="job-watcher")
        settings = self.settings
        if self.manifests is not None:
            settings = dataclasses.replace(settings, manifests=self.manifests())
        log = structlog.get_logger("reconciler.daemon.jobs")

        def on_status(message: str) -> None:
            log.info("job run", job=request.name, step=message)

        context = JobContext(
            settings=settings,
            gateway=self.gateway,
            watcher=self.watcher,
            environ=self.environ,
            on_status=on_status,
        )
        return await JobRunner(context).run(request)

    async def aclose(self) -> None:
        if self._watching is not None:
            self._watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watching


def job_launcher(
    settings: Any, gateway: Any, environ: Mapping[str, str], manifests: Callable[[], Path] | None
) -> DaemonJobs:
    """The launcher the daemon's job scheduler starts runs with (see `DaemonJobs`)."""
    return DaemonJobs(settings, gateway, environ, manifests)


async def serve(
    config: DaemonConfig,
    settings: Any,
    open_gateway: GatewayFactory,
    environ: Mapping[str, str],
    *,
    on_started: Callable[[Daemon], None] | None = None,
    open_store: StoreOpener | None = None,
) -> int:
    """`open_store`: how to open the coordination store (the CLI gives the Blob Storage one); needed only
    with `--coordination`."""
    log = structlog.get_logger("reconciler.daemon")
    ha = config.coordination
    if ha is None:
        return await _serve(config, settings, open_gateway, environ, on_started=on_started)
    leases = LeaseTable(ha.replica, ha.shards, margin=ha.margin, monotonic=config.monotonic)
    if open_store is None:
        raise DaemonUsageError("--coordination is not available here: no coordination store is wired")
    store = await open_coordination_store(ha, environ, open_store)
    log.info(
        "coordinating through blob storage",
        store=store.location,
        replica=ha.replica,
        shards=ha.shards,
        lease_duration_s=ha.lease_duration,
        lease_renew_s=ha.renew_every,
        lease_margin_s=ha.margin,
    )
    connection = environ.get(STORAGE_CONNECTION_STRING_ENV) or None
    try:
        return await _serve(
            config,
            settings,
            open_gateway,
            environ,
            on_started=on_started,
            coordination=(store, leases),
            lease_keeper_store=lambda: open_store(ha.url, connection),
        )
    finally:
        await store.close()


async def _serve(
    config: DaemonConfig,
    settings: Any,
    open_gateway: GatewayFactory,
    environ: Mapping[str, str],
    *,
    on_started: Callable[[Daemon], None] | None,
    coordination: tuple[CoordinationStore, LeaseTable] | None = None,
    lease_keeper_store: Callable[[], CoordinationStore] | None = None,
) -> int:
    from reconciler.daemon.passes import EnginePasses

    log = structlog.get_logger("reconciler.daemon")
    metrics = DaemonMetrics()
    leases = coordination[1] if coordination is not None else None
    async with open_gateway_with_metrics(open_gateway, metrics, leases) as gateway:
        check: DuplicateCheck | None = None

        async def after_load(loaded: Any) -> None:
            if check is not None:
                await check.after_load(loaded)

        def engine(manifests: Callable[[], Path] | None, revision: Callable[[], str | None] | None) -> Any:
            return EnginePasses(
                settings,
                gateway,
                environ=environ,
                manifests=manifests,
                revision=revision,
                settle_delay=max(config.debounce, 0.2),
                owned=leases.owned_filter if leases is not None else None,
                loaded_hook=after_load,
            )

        launchers: list[DaemonJobs] = []

        def launcher(manifests: Callable[[], Path] | None) -> JobLauncher | None:
            launchers.append(job_launcher(settings, gateway, environ, manifests))
            return launchers[-1]

        from reconciler.daemon.ui.live import GroupInspector

        daemon = Daemon(
            config,
            engine,
            metrics=metrics,
            launcher_factory=launcher,
            coordination=coordination,
            lease_keeper_store=lease_keeper_store,
            inspector=GroupInspector(gateway, redact=mask_secrets) if config.ui.enabled else None,
        )
        if duplicate_check_wanted(config, gateway):
            check = DuplicateCheck(config, settings, gateway, daemon.fatal_stop)
        loop = asyncio.get_running_loop()
        signals = 0

        def on_signal(signum: int) -> None:
            nonlocal signals
            signals += 1
            if signals == 1:
                log.info("signal received; stopping", signal=signal.Signals(signum).name)
                daemon.stop()
                return
            log.warning("second signal; exiting at once", signal=signal.Signals(signum).name)
            daemon.save_now()
            sys.stderr.flush()
            os._exit(EXIT_FORCED)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            log.info(
                "daemon starting",
                instance=config.instance,
                manifests=str(config.manifests),
                git_url=daemon.git.display_url if daemon.git else None,
                interval_s=config.interval,
                dry_run=config.dry_run,
            )
            try:
                await daemon.start()
                if on_started is not None:
                    on_started(daemon)
                return await daemon.wait()
            finally:
                if check is not None:
                    await check.close()
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            for jobs in launchers:
                await jobs.aclose()


class DuplicateCheck:
    """Keeps a second daemon of this instance from running beside this one (`reconciler.daemon.duplicate`),
    without `--coordination`. The check runs after the first load of the manifests and before Azure is
    asked anything (the manifests may name the home resource group, and with git they exist only after the
    first fetch); a duplicate stops this daemon (exit 1) with the message naming the other."""

    def __init__(
        self, config: DaemonConfig, settings: Any, gateway: Any, stop: Callable[[str], None]
    ) -> None:
        self.config = config
        self.settings = settings
        self.gateway = gateway
        self.stop = stop
        self.heartbeat: Heartbeat | None = None
        self._task: asyncio.Task[None] | None = None
        self._done = False
        self._log = structlog.get_logger("reconciler.daemon")

    def _home(self, loaded: Any) -> str | None:
        """`--heartbeat-resource-group`, else the first resource group of the scope, the default one, or the
        manifests'."""
        if self.config.heartbeat_resource_group:
            return self.config.heartbeat_resource_group
        named = list(getattr(getattr(self.settings, "scope", None), "resource_groups", ()))
        if not named and getattr(self.settings, "default_resource_group", None):
            named = [self.settings.default_resource_group]
        if not named:
            named = [g.declared.resource_group for g in loaded.groups]
        return sorted(named, key=str.lower)[0] if named else None

    async def after_load(self, loaded: Any) -> None:
        if self._done:
            return
        home = self._home(loaded)
        if home is None:
            return  # no manifest yet: nothing will be written either; the next pass checks
        self._done = True
        self.heartbeat = Heartbeat(
            self.gateway,
            home,
            instance=self.config.instance,
            replica=heartbeat_identity(self.config),
            interval=self.config.heartbeat_interval,
            clock=self.config.clock,
            sleep=self.config.sleep,
        )
        try:
            await self.heartbeat.claim()
        except DuplicateDaemonError as err:
            self.heartbeat = None
            self.stop(str(err))
            raise
        self._log.info("heartbeat tag held", resource_group=home, tag=self.heartbeat.name)
        self._task = asyncio.create_task(self.heartbeat.run(self.stop), name="daemon-duplicate-heartbeat")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.heartbeat is not None:
            await self.heartbeat.release()


def duplicate_check_wanted(config: DaemonConfig, gateway: Any) -> bool:
    """Off with --coordination, --dry-run (nothing is written), --allow-duplicate (logged), or a gateway
    that has no resource-group tags (test fakes)."""
    if config.coordination is not None or config.dry_run:
        return False
    if config.allow_duplicate:
        structlog.get_logger("reconciler.daemon").warning(
            "--allow-duplicate: not checking for another daemon of this instance"
        )
        return False
    return hasattr(gateway, "get_resource_group_tags")


def heartbeat_identity(config: DaemonConfig) -> str:
    """Who this daemon is in the heartbeat: the host and its state directory. A daemon restarted on the same
    host and directory (after a crash, by systemd or kubelet) is the same daemon and starts at once; the
    directory's lock already keeps two daemons off one directory."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:40] or "host"
    if config.state_dir is None:
        return default_replica_id()
    where = hashlib.sha256(os.path.abspath(config.state_dir).encode()).hexdigest()[:8]
    return f"{host}-{where}"


def run(
    args: argparse.Namespace,
    settings: Any,
    open_gateway: GatewayFactory,
    environ: Mapping[str, str],
    open_store: StoreOpener | None = None,
) -> int:
    json_lines = {"auto": None, "json": True, "console": False}[args.log_format]
    daemon_logging.configure(json_lines=json_lines, level=args.log_level)
    try:
        config = config_from_args(args, environ)
    except DaemonUsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    daemon_logging.REDACTOR.add(_known_secrets(config, settings, environ))
    try:
        return asyncio.run(serve(config, settings, open_gateway, environ, open_store=open_store))
    except (CoordinationStartError, DaemonUsageError, DuplicateDaemonError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        # Typically the listen address is taken; say which option to change.
        print(f"error: cannot start the daemon: {err} (check --listen and --state-dir)", file=sys.stderr)
        return 1
