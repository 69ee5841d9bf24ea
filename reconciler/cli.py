"""The `reconcile` command line: argument parsing and composition.

This is the only module that wires concrete classes together (the manifest directory, the Azure adapter or the
embedded emulator, the engine, the renderers). Every command resolves its target first and never falls back
silently: with no subscription, no `--endpoint` and no `--local`, it says how to choose one and exits 1.

Exit codes follow `terraform plan`: 0 success (no changes with `--detailed-exitcode`), 1 error, 2 changes
present (with `--detailed-exitcode`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from reconciler import __version__

# Tiny and pure (no pydantic): `run`'s exit codes, known before any command is parsed.
from reconciler.model.jobrun import EXIT_RECONCILER_ERROR

if TYPE_CHECKING:  # imported lazily at run time so that `reconcile --help` and `validate` start fast
    from reconciler.cloud.coordination import CoordinationStore
    from reconciler.cloud.gateway import Gateway, WriteGuard
    from reconciler.engine.reconcile import EngineSettings

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_BROKEN_PIPE = 128 + 13  # as a shell reports a process ended by SIGPIPE

LOCAL_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
DEFAULT_LOCAL_DIR = ".reconciler"

COMMANDS = ("plan", "apply", "validate", "schema", "status", "export", "run", "logs", "emulator", "daemon")
# Commands whose one positional word is a group's NAME (never a bare `--local`'s DIR).
NAMED_COMMANDS = frozenset({"export", "run", "logs"})


class UsageError(Exception):
    """Bad command line or environment; the message says what to do instead."""


# ---------------------------------------------------------------------------------------------------------
# Parsing


def _env_default(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name)
        if value:
            return value
    return None


def _add_manifest_options(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    parser.add_argument(
        "-f",
        "--manifests",
        dest="manifest_roots",
        type=Path,
        action="append",
        metavar="PATH",
        help="a directory or a file of manifests; repeat for several, loaded as one set "
        "(default: ./manifests; env RECONCILER_MANIFESTS)",
    )
    parser.add_argument(
        "--env-allow",
        action="append",
        metavar="PATTERN",
        default=None,
        help="variables ${VAR} in manifests may read, a glob such as 'BUILD_*'; repeat for several; "
        "replaces the default ACI_* (env RECONCILER_ENV_ALLOW, comma-separated). AZURE_*, RECONCILER_* "
        "and the other credentials of the reconciler itself are never readable",
    )
    parser.add_argument(
        "--resource-group",
        default=_env_default(environ, "AZURE_RESOURCE_GROUP"),
        metavar="RG",
        help="resource group of manifests that name none (env AZURE_RESOURCE_GROUP)",
    )
    parser.add_argument(
        "--location",
        default=_env_default(environ, "AZURE_LOCATION"),
        help="location of manifests that name none (env AZURE_LOCATION)",
    )


def finish_manifest_options(args: argparse.Namespace, environ: Mapping[str, str]) -> None:
    """Fill in what the manifest options leave to the environment; check `--env-allow` patterns.

    Sets `args.manifest_roots` (every `-f`, in order), `args.manifests` (the first: the daemon watches one)
    and `args.env_allow` (None: the default allowlist).
    """
    from reconciler.source.envpolicy import check_pattern

    if not hasattr(args, "manifest_roots"):
        return
    roots = args.manifest_roots or [Path(environ.get("RECONCILER_MANIFESTS") or "manifests")]
    args.manifest_roots = tuple(roots)
    args.manifests = roots[0]
    patterns = args.env_allow
    if patterns is None and environ.get("RECONCILER_ENV_ALLOW") is not None:
        patterns = [p.strip() for p in environ["RECONCILER_ENV_ALLOW"].split(",") if p.strip()]
    if patterns is not None:
        for pattern in patterns:
            problem = check_pattern(pattern)
            if problem is not None:
                raise UsageError(f"--env-allow: {problem}")
        args.env_allow = tuple(patterns)


def _manifest_roots_usable(args: argparse.Namespace) -> str | None:
    """Why the `-f` paths cannot be loaded (a message naming the path), or None."""
    from reconciler.model.text import plain

    for root in args.manifest_roots:
        if not root.is_dir() and not root.is_file():
            return f"{plain(root)}: no such directory or file of manifests (choose with -f PATH)"
    return None


def _roots_label(args: argparse.Namespace) -> str:
    from reconciler.model.text import plain

    return ", ".join(plain(r) for r in args.manifest_roots)


def _add_target_options(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    target = parser.add_argument_group("target (choose one)")
    target.add_argument(
        "--subscription",
        default=_env_default(environ, "AZURE_SUBSCRIPTION_ID"),
        metavar="ID",
        help="Azure subscription id (env AZURE_SUBSCRIPTION_ID)",
    )
    target.add_argument(
        "--endpoint",
        default=_env_default(environ, "RECONCILER_ENDPOINT"),
        metavar="URL",
        help="an ARM endpoint other than Azure's, e.g. a running `reconcile emulator` "
        "(env RECONCILER_ENDPOINT)",
    )
    target.add_argument(
        "--ca-cert",
        type=Path,
        default=_env_default(environ, "RECONCILER_CA_CERT"),
        metavar="FILE",
        help="CA certificate that signs the --endpoint's TLS certificate (env RECONCILER_CA_CERT)",
    )
    target.add_argument(
        "--credential",
        choices=("default", "static"),
        default=_env_default(environ, "RECONCILER_CREDENTIAL") or "default",
        help="'default': DefaultAzureCredential (Azure CLI, managed identity, environment...); "
        "'static': a fixed token, accepted by emulators only (env RECONCILER_CREDENTIAL)",
    )
    target.add_argument(
        "--local",
        nargs="?",
        const=DEFAULT_LOCAL_DIR,
        default=None,
        type=Path,
        metavar="DIR",
        help="use the embedded local emulator, its state kept under DIR (default .reconciler/)",
    )


def _add_no_wait(parser: argparse.ArgumentParser) -> None:
    # The daemon adds its own `--no-wait` (for its --state-dir); one flag then covers both locks.
    if "--no-wait" not in parser._option_string_actions:  # argparse has no public lookup of a flag
        parser.add_argument(
            "--no-wait",
            action="store_true",
            help="with --local (and the daemon's --state-dir): fail at once when another process uses the "
            "directory, instead of waiting",
        )


def _add_instance(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    parser.add_argument(
        "--instance",
        default=_env_default(environ, "RECONCILER_INSTANCE") or "default",
        metavar="NAME",
        help="name of this reconciler instance; only groups tagged with it are ever pruned "
        "(default: default)",
    )


def _add_plan_options(parser: argparse.ArgumentParser) -> None:
    """Options that change what the plan says (and so what `status` reports)."""
    parser.add_argument(
        "--no-prune",
        dest="prune",
        action="store_false",
        help="never delete groups whose manifest is gone",
    )
    parser.add_argument(
        "--scope",
        action="append",
        default=[],
        metavar="SCOPE",
        help="what to observe (and prune in): 'subscription' (default: one list of every resource group), "
        "RG[,RG...] (those resource groups and the manifests' ones, for a principal that may read only "
        "some), or 'manifests' (only the manifests' resource groups); env RECONCILER_SCOPE",
    )
    parser.add_argument(
        "--prune-scope",
        action="append",
        default=[],
        metavar="RG",
        help="the older name of --scope RG",
    )
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="allow a plan that prunes every managed group because the manifest set is empty",
    )


def _add_engine_options(parser: argparse.ArgumentParser) -> None:
    """Options of commands that write: the plan's options and how the apply runs."""
    _add_plan_options(parser)
    parser.add_argument(
        "--concurrency", type=int, default=20, metavar="N", help="groups applied at once (default 20)"
    )
    _add_lro_options(parser)


def _add_lro_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--poll-interval",
        type=_seconds(zero=True),
        default=None,
        metavar="SECONDS",
        help="wait between polls of a long-running operation when Azure names none "
        "(default 5; 1 for --endpoint, 0 for --local)",
    )
    parser.add_argument(
        "--lro-timeout",
        type=_seconds(zero=False),
        default=900.0,
        metavar="SECONDS",
        help="how long to wait for one create, update or delete (default 900)",
    )


def _seconds(*, zero: bool) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds, positive (or also 0 with `zero`); a usage error names
    the value otherwise (the engine's own checks would raise past argparse, as a traceback)."""

    def parse(text: str) -> float:
        from reconciler.model.text import shown

        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{shown(text)} is not a number of seconds") from None
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            least = "0 or more" if zero else "more than 0"
            raise argparse.ArgumentTypeError(f"{shown(text)}: give a finite number of seconds, {least}")
        return value

    return parse


def _timeout_value(text: str) -> float:
    from reconciler.model.job import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_run_options(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    parser.add_argument("name", help="the job's group name, as its manifest names it")
    _add_manifest_options(parser, environ)
    _add_target_options(parser, environ)
    _add_instance(parser, environ)
    _add_lro_options(parser)
    parser.add_argument(
        "--keep",
        type=str.lower,
        choices=("always", "never", "on-failure"),
        default=None,
        help="keep the group after the run: never (default, or the manifest's reconcile.job.keep), "
        "on-failure, always",
    )
    parser.add_argument(
        "--timeout",
        type=_timeout_value,
        default=None,
        metavar="DURATION",
        help="stop the run after this long and exit 124 (90, 90s, 5m, 1h30m; default: the manifest's "
        "reconcile.job.timeout, else none)",
    )
    parser.add_argument(
        "--concurrency",
        dest="job_concurrency",
        type=str.capitalize,
        choices=("Forbid", "Replace", "Allow"),
        default=None,
        help="when a run of the job is still active: Forbid (default) refuses, Replace stops it first, "
        "Allow runs beside it in a group of its own",
    )
    parser.add_argument("--no-logs", dest="stream_logs", action="store_false", help="do not stream the log")
    parser.add_argument(
        "--timestamps", action="store_true", help="prefix each log line with the time Azure recorded it"
    )
    _add_no_wait(parser)


def _add_logs_options(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> None:
    parser.add_argument("name", help="container group name")
    _add_manifest_options(parser, environ)
    _add_target_options(parser, environ)
    _add_instance(parser, environ)
    parser.add_argument("--container", metavar="C", help="only this container (default: every one)")
    parser.add_argument("--tail", type=int, metavar="N", help="only the last N lines")
    parser.add_argument(
        "--follow",
        action="store_true",
        help="keep printing new lines until the group's containers have ended (Ctrl-C stops)",
    )
    parser.add_argument(
        "--timestamps", action="store_true", help="prefix each line with the time Azure recorded it"
    )
    _add_no_wait(parser)


def _add_output(parser: argparse.ArgumentParser, choices: Sequence[str]) -> None:
    parser.add_argument("-o", "--output", choices=tuple(choices), default=choices[0])


def build_parser(command: str, environ: Mapping[str, str]) -> argparse.ArgumentParser:
    prog = "reconcile" if command == "apply" else f"reconcile {command}"
    descriptions = {
        "plan": "Print what apply would do (like `terraform plan`); changes nothing.",
        "apply": "Plan, then make Azure match the manifests, then verify. `reconcile --dry-run` only plans.",
        "validate": "Validate the manifests; exit 0 when valid, 1 with every error listed.",
        "schema": "Print the JSON Schema of the manifest format.",
        "status": "Every managed group with its sync state, provisioning and instance state.",
        "export": "Print a live container group as a manifest (the way to adopt groups that exist).",
        "run": "Run a job (a group with restartPolicy Never or OnFailure) to completion: create or start its "
        "group, stream its log, exit with its exit code (124: timed out, 125: the reconciler failed), and "
        "delete the group per --keep.",
        "logs": "Print (or follow) the log of a container group's containers.",
        "emulator": "Serve the local ARM emulator of Azure Container Instances until SIGTERM.",
        "daemon": "Watch the manifests and keep Azure matching them (GitOps controller).",
    }
    parser = argparse.ArgumentParser(
        prog=prog,
        description=descriptions[command],
        epilog=(
            "commands: reconcile [apply] | plan | validate | schema | status | export NAME | run NAME "
            "| logs NAME | emulator | daemon"
            if command == "apply"
            else None
        ),
    )
    parser.add_argument("--version", action="version", version=f"aci-reconciler {__version__}")
    if command in ("plan", "apply"):
        _add_manifest_options(parser, environ)
        _add_target_options(parser, environ)
        _add_instance(parser, environ)
        _add_engine_options(parser)
        _add_output(parser, ("text", "json", "markdown"))
        parser.add_argument(
            "--detailed-exitcode",
            action="store_true",
            help="exit 0 when there are no changes, 2 when there are, 1 on error",
        )
        parser.add_argument("--show-noop", action="store_true", help="also list groups that are in sync")
        parser.add_argument(
            "--rekey",
            action="store_true",
            help="after a change of RECONCILER_SECRET_KEY: re-tag the groups tagged under the previous key "
            "(a tags PATCH, no restart), asserting that their secrets did not change",
        )
        if command == "apply":
            parser.add_argument("--dry-run", action="store_true", help="plan only (same as `reconcile plan`)")
        _add_no_wait(parser)
    elif command == "validate":
        _add_manifest_options(parser, environ)
        parser.add_argument(
            "--no-secrets",
            action="store_true",
            help="the secrets are not available here (CI): check secret references for their form only, "
            "not that their variables are set and their files exist",
        )
    elif command == "status":
        _add_manifest_options(parser, environ)
        _add_target_options(parser, environ)
        _add_instance(parser, environ)
        _add_plan_options(parser)
        _add_output(parser, ("text", "json"))
        parser.add_argument(
            "--state-dir",
            type=Path,
            default=Path(environ.get("RECONCILER_STATE_DIR", ".reconciler/daemon")),
            metavar="DIR",
            help="a daemon's --state-dir, whose job runs are shown (default .reconciler/daemon; env "
            "RECONCILER_STATE_DIR)",
        )
        _add_no_wait(parser)
    elif command == "export":
        parser.add_argument("name", help="container group name")
        parser.add_argument(
            "--resource-group",
            default=_env_default(environ, "AZURE_RESOURCE_GROUP"),
            metavar="RG",
            help="resource group of the container group (env AZURE_RESOURCE_GROUP); without it, the "
            "name is looked up in the whole subscription",
        )
        _add_target_options(parser, environ)
        _add_output(parser, ("yaml", "json"))
        _add_no_wait(parser)
    elif command == "run":
        _add_run_options(parser, environ)
    elif command == "logs":
        _add_logs_options(parser, environ)
    elif command == "emulator":
        from reconciler.emulator import cli as emulator_cli

        emulator_cli.add_arguments(parser)
    elif command == "daemon":
        _add_manifest_options(parser, environ)
        _add_target_options(parser, environ)
        _add_instance(parser, environ)
        _add_engine_options(parser)
        from reconciler.daemon import cli as daemon_cli

        daemon_cli.add_arguments(parser, environ)
        _add_no_wait(parser)
    return parser


def _value_options() -> frozenset[str]:
    """Every global option that takes a value, so a value is never mistaken for a command."""
    parser = build_parser("apply", {})
    return frozenset(
        flag
        for action in parser._actions  # argparse has no public list of its actions
        if action.nargs is None and action.option_strings
        for flag in action.option_strings
    )


def split_command(argv: Sequence[str]) -> tuple[str, list[str]]:
    """The command and the arguments for its parser. Global options may come before or after the command
    (`reconcile --local status` is `reconcile status --local`). A bare `--local` never swallows the command or
    the NAME of `export` as its DIR: it becomes `--local=.reconciler`."""
    args = list(argv)
    values = _value_options()
    candidates: list[int] = []  # positions of words that are not an option's value
    local_dir_at: dict[int, int] = {}  # position of a word after a bare `--local` -> position of `--local`
    i = 0
    while i < len(args):
        token = args[i]
        if token == "--":
            candidates.extend(range(i + 1, len(args)))
            break
        if token.startswith("-") and token != "-":
            if token in values:
                i += 2
                continue
            if token == "--local" and i + 1 < len(args) and not args[i + 1].startswith("-"):
                local_dir_at[i + 1] = i
                candidates.append(i + 1)
                i += 2
                continue
        else:
            candidates.append(i)
        i += 1
    at = next((j for j in candidates if args[j] in COMMANDS), None)
    command = "apply" if at is None else args[at]
    positional = [j for j in candidates if j != at and j not in local_dir_at]
    bare_local = {local_dir_at[at]} if at in local_dir_at else set()
    if command in NAMED_COMMANDS and not positional:
        # `export --local NAME`: the only word is the group's name, so `--local` has no DIR.
        bare_local |= {local_dir_at[j] for j in candidates if j != at and j in local_dir_at}
    rest = [f"--local={DEFAULT_LOCAL_DIR}" if j in bare_local else w for j, w in enumerate(args) if j != at]
    return command, rest


# ---------------------------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True)
class TargetChoice:
    kind: str  # "azure" | "endpoint" | "local"
    subscription: str
    endpoint: str | None = None
    ca_cert: Path | None = None
    credential: str = "default"
    local_dir: Path | None = None
    poll_interval: float | None = None

    def describe(self) -> str:
        if self.kind == "local":
            return f"the embedded emulator (state in {self.local_dir})"
        if self.kind == "endpoint":
            return f"{self.endpoint} (subscription {self.subscription})"
        return f"Azure subscription {self.subscription}"


NO_TARGET = (
    "no target chosen. Pick one of:\n"
    "  --local                 the embedded local emulator (state under .reconciler/), to try things out\n"
    "  --subscription ID       Azure (or set AZURE_SUBSCRIPTION_ID); credentials from "
    "DefaultAzureCredential\n"
    "  --endpoint URL          another ARM endpoint, e.g. a running `reconcile emulator` (with --ca-cert)"
)


def choose_target(args: argparse.Namespace) -> TargetChoice:
    if args.local is not None:
        if args.endpoint:
            raise UsageError("--local and --endpoint both choose a target; give one of them")
        return TargetChoice(
            kind="local",
            subscription=args.subscription or LOCAL_SUBSCRIPTION,
            credential="static",
            local_dir=Path(args.local),
            poll_interval=getattr(args, "poll_interval", None),
        )
    if args.endpoint:
        if not args.endpoint.startswith("https://"):
            raise UsageError(
                f"--endpoint {args.endpoint!r} must be an https:// URL (tokens are never sent in clear)"
            )
        if args.ca_cert is not None and not Path(args.ca_cert).is_file():
            raise UsageError(f"--ca-cert {args.ca_cert}: no such file")
        return TargetChoice(
            kind="endpoint",
            subscription=args.subscription or LOCAL_SUBSCRIPTION,
            endpoint=args.endpoint.rstrip("/"),
            ca_cert=args.ca_cert,
            credential=args.credential,
            poll_interval=getattr(args, "poll_interval", None),
        )
    if args.subscription:
        return TargetChoice(
            kind="azure",
            subscription=args.subscription,
            credential=args.credential,
            poll_interval=getattr(args, "poll_interval", None),
        )
    raise UsageError(NO_TARGET)


@contextlib.asynccontextmanager
async def open_gateway(
    choice: TargetChoice,
    on_request: Callable[[str, str, float], None] | None = None,
    write_guard: WriteGuard | None = None,
) -> AsyncIterator[Gateway]:
    """The gateway of the chosen target; for `--local`, the emulator runs in this process meanwhile.

    `on_request(operation, status, seconds)` is told of every Azure request (the daemon's metrics);
    `write_guard` is asked before every write request (the daemon's lease fence, `--coordination`).
    """
    from reconciler.cloud.azure import Target, connect

    if choice.kind == "local":
        from reconciler.emulator.server import Emulator, EmulatorConfig
        from reconciler.emulator.store import StateSaveError

        assert choice.local_dir is not None
        choice.local_dir.mkdir(parents=True, exist_ok=True)
        config = EmulatorConfig(
            state_file=choice.local_dir / "emulator-state.json", cert_dir=choice.local_dir / "tls"
        )
        try:
            async with Emulator(config) as emulator:
                gateway = connect(
                    Target(
                        subscription_id=choice.subscription,
                        endpoint=emulator.endpoint,
                        ca_cert=emulator.ca_cert_path,
                        credential="static",
                        poll_interval=choice.poll_interval or 0.0,
                    ),
                    on_request=on_request,
                    write_guard=write_guard,
                )
                try:
                    yield gateway
                finally:
                    await gateway.close()
        except StateSaveError as err:
            raise UsageError(f"{err}; free some space (or fix {choice.local_dir}) and run again") from None
        return
    gateway = connect(
        Target(
            subscription_id=choice.subscription,
            endpoint=choice.endpoint,
            ca_cert=choice.ca_cert,
            credential="static" if choice.credential == "static" else "default",
            poll_interval=choice.poll_interval
            if choice.poll_interval is not None
            else (1.0 if choice.kind == "endpoint" else 5.0),
        ),
        on_request=on_request,
        write_guard=write_guard,
    )
    try:
        yield gateway
    finally:
        await gateway.close()


@contextlib.contextmanager
def holding_target(choice: TargetChoice, args: argparse.Namespace) -> Iterator[None]:
    """For `--local DIR`, hold DIR's lock for the whole command: the state is read at the start and written
    at the end, so a second process on DIR waits (or, with `--no-wait`, stops) instead of losing groups."""
    if choice.local_dir is None:
        yield
        return
    with holding_directory(choice.local_dir, args, f"another reconcile with --local {choice.local_dir}"):
        yield


@contextlib.contextmanager
def holding_directory(directory: Path, args: argparse.Namespace, user: str) -> Iterator[None]:
    """Hold `directory`'s lock (reconciler.locking) for the block: wait with a message, or with `--no-wait`
    stop at once with an error naming the holder. `user` says who else uses such a directory."""
    from reconciler.locking import LockBusyError, describe_holder, hold_directory_lock

    def waiting(holder: int | None) -> None:
        print(
            f"waiting for the lock on {directory} held by {describe_holder(holder)} "
            f"({user}; --no-wait fails instead)...",
            file=sys.stderr,
            flush=True,
        )

    try:
        with hold_directory_lock(directory, wait=not getattr(args, "no_wait", False), on_wait=waiting):
            yield
    except LockBusyError as err:
        raise UsageError(
            f"{directory} is in use by {describe_holder(err.holder)} ({user}); run again when it ends, "
            "or leave out --no-wait to wait for it"
        ) from None


def engine_settings(
    args: argparse.Namespace,
    choice: TargetChoice,
    environ: Mapping[str, str],
    *,
    resolve_secrets: bool = True,
) -> EngineSettings:
    from reconciler.engine.keys import ENV_KEY, SecretKeyError, resolve_secret_key
    from reconciler.engine.observe import Scope, ScopeError
    from reconciler.engine.reconcile import EngineSettings
    from reconciler.execution import ApplyOptions

    key_file = (choice.local_dir / "secret.key") if choice.local_dir is not None else None
    try:
        key = resolve_secret_key(
            environ_value=environ.get(ENV_KEY),
            key_file=key_file,
            subscription=choice.subscription,
            instance=args.instance,
        )
    except SecretKeyError as err:
        raise UsageError(str(err)) from err
    except OSError as err:  # only the local key file is read or written here
        raise UsageError(f"cannot create the key file {key_file}: {err.strerror or err}") from None
    if key.warning:
        _warn(key.warning)
    concurrency = getattr(args, "concurrency", 20)  # `status` applies nothing and has no such option
    if concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    # `run` and `logs` observe one group and prune nothing: they have no scope or prune options.
    scope_values = [*getattr(args, "scope", ()), *getattr(args, "prune_scope", ())] or [
        environ.get("RECONCILER_SCOPE", "")
    ]
    try:
        scope = Scope.parse(scope_values)
    except ScopeError as err:
        raise UsageError(str(err)) from err
    return EngineSettings(
        manifests=args.manifest_roots[0] if len(args.manifest_roots) == 1 else args.manifest_roots,
        env_allow=args.env_allow,
        secret_key=key.key,
        key_is_private=key.private,
        subscription=choice.subscription,
        rekey=getattr(args, "rekey", False),
        instance=args.instance,
        default_resource_group=args.resource_group,
        default_location=args.location,
        prune=getattr(args, "prune", True),
        allow_empty=getattr(args, "allow_empty", False),
        scope=scope,
        apply=ApplyOptions(concurrency=concurrency, lro_timeout=getattr(args, "lro_timeout", 900.0)),
        resolve_secrets=resolve_secrets,
    )


# ---------------------------------------------------------------------------------------------------------
# Output helpers


def _color_enabled(stream: TextIO, environ: Mapping[str, str]) -> bool:
    if environ.get("NO_COLOR"):
        return False
    if environ.get("FORCE_COLOR"):
        return True
    return stream.isatty()


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


class Progress:
    """Apply progress on stderr: one rewritten status line on a terminal, plain lines otherwise."""

    def __init__(self, stream: TextIO, total: int, *, live: bool) -> None:
        self.stream = stream
        self.total = total
        self.live = live
        self.finished = 0

    def __call__(self, event: Any) -> None:
        phase = str(event.phase)
        label = f"{event.resource_group}/{event.name}"
        if phase in ("done", "failed", "cancelled"):
            self.finished += 1
        # A held change is no part of the total (nothing is written), so it gets no counter.
        counter = "" if phase == "held" else f"[{self.finished}/{self.total}] "
        text = f"{counter}{label}: {phase}"
        if event.message:
            text += f" ({event.message})"
        if self.live:
            if phase in ("failed", "retrying"):
                self.stream.write("\r\033[K" + text + "\n")
            else:
                self.stream.write("\r\033[K" + text[:200])
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.live:
            self.stream.write("\r\033[K")
            self.stream.flush()


def _render_plan(plan: Any, output: str, *, color: bool, show_noop: bool) -> str:
    from reconciler.render import render_plan_json, render_plan_markdown, render_plan_text

    if output == "json":
        return render_plan_json(plan)
    if output == "markdown":
        return render_plan_markdown(plan)
    return render_plan_text(plan, color=color, show_noop=show_noop)


# ---------------------------------------------------------------------------------------------------------
# Commands


def cmd_validate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from reconciler.source import Defaults, load_manifests

    unusable = _manifest_roots_usable(args)
    if unusable is not None:
        _error(unusable)
        return EXIT_ERROR
    # Secret references are resolved as plan resolves them (an unset variable is an error, as an unset
    # ${VAR} is), unless --no-secrets says the secrets are not here (CI): then only their form is checked.
    result = load_manifests(
        args.manifest_roots,
        defaults=Defaults(
            resource_group=args.resource_group, location=args.location, env_allow=args.env_allow
        ),
        environ=environ,
        resolve_secrets=not args.no_secrets,
    )
    # Every line is str(SourceError): path and message escaped and bounded, so input cannot forge a line.
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for error in result.errors:
        print(f"error: {error}", file=sys.stderr)
    label = _roots_label(args)
    if result.errors:
        print(f"{len(result.errors)} error(s) in {label}", file=sys.stderr)
        return EXIT_ERROR
    print(f"{len(result.groups)} manifest(s) valid in {label} (revision {result.revision})")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from reconciler.model.schema import manifest_json_schema

    print(json.dumps(manifest_json_schema(), indent=2, sort_keys=False))
    return EXIT_OK


async def _plan_or_apply(args: argparse.Namespace, environ: Mapping[str, str], *, apply: bool) -> int:
    """Plan (and apply). With `--output json` stdout holds exactly one JSON document."""
    from reconciler.engine.reconcile import PassOutcome, apply_pass, plan_pass
    from reconciler.render import apply_to_json, plan_to_json, render_apply_markdown, render_apply_text

    choice = choose_target(args)
    unusable = _manifest_roots_usable(args)
    if unusable is not None:
        raise UsageError(unusable)
    settings = engine_settings(args, choice, environ)
    color = _color_enabled(sys.stdout, environ)
    async with open_gateway(choice) as gateway:
        planned = await plan_pass(settings, gateway, environ=environ)
        plan = planned.plan
        if args.output != "json":
            print(_render_plan(plan, args.output, color=color, show_noop=args.show_noop))
        if not apply:
            if args.output == "json":
                print(_render_plan(plan, "json", color=False, show_noop=True))
            outcome = PassOutcome(planned=planned)
        else:
            total = sum(1 for c in plan.changes if c.changes_something)
            progress = Progress(sys.stderr, total, live=sys.stderr.isatty() and not environ.get("CI"))
            try:
                outcome = await apply_pass(planned, settings, gateway, environ=environ, on_event=progress)
            finally:
                progress.close()
    if outcome.applied is not None:
        if args.output == "json":
            document = {
                "plan": plan_to_json(plan),
                "apply": apply_to_json(outcome.applied),
                "unconverged": list(outcome.unconverged),
            }
            print(json.dumps(document, indent=2, sort_keys=True))
        elif args.output == "markdown":
            print(render_apply_markdown(outcome.applied))
        else:
            print(render_apply_text(outcome.applied, color=color))
        for label in outcome.unconverged:
            _warn(f"{label} still differs from its manifest after apply; the next run will try again")
    if outcome.failed or outcome.unconverged:
        return EXIT_ERROR
    return EXIT_CHANGES if (args.detailed_exitcode and plan.has_changes) else EXIT_OK


def cmd_plan(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    with holding_target(choose_target(args), args):
        return asyncio.run(_plan_or_apply(args, environ, apply=False))


def cmd_apply(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    with holding_target(choose_target(args), args):
        return asyncio.run(_plan_or_apply(args, environ, apply=not args.dry_run))


async def _status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from reconciler.engine.status import status_pass

    choice = choose_target(args)
    # Status reads; it never needs a secret's value (secrets are then not compared, and the plan says so).
    settings = engine_settings(args, choice, environ, resolve_secrets=False)
    async with open_gateway(choice) as gateway:
        planned, statuses = await status_pass(settings, gateway, environ=environ)
    from reconciler.daemon.state import read_job_ledger

    jobs = read_job_ledger(args.state_dir) if args.state_dir.is_dir() else []
    if args.output == "json":
        print(
            json.dumps(
                {
                    "revision": planned.plan.revision,
                    "instance": settings.instance,
                    "groups": [s.to_json() for s in statuses],
                    "jobs": jobs,
                    "issues": [i.model_dump() for i in planned.plan.issues],
                },
                indent=2,
            )
        )
    else:
        print(_status_table(statuses))
        if jobs:
            print()
            print(_jobs_table(jobs))
        for issue in planned.plan.issues:
            where = f"{issue.source}: " if issue.source else ""
            print(f"{issue.severity}: {where}{issue.message}", file=sys.stderr)
    return EXIT_ERROR if planned.plan.errors else EXIT_OK


def _short_revision(revision: str | None) -> str:
    if not revision:
        return "-"
    prefix, _, digest = revision.rpartition(":")
    return f"{prefix}:{digest[:12]}" if prefix else revision[:12]


def _status_table(statuses: Sequence[Any]) -> str:
    if not statuses:
        return "No container groups: no manifests and nothing managed by this instance."
    header = ("GROUP", "SYNC", "PROVISIONING", "STATE", "REVISION")
    rows = [
        (
            f"{s.resource_group}/{s.name}",
            s.sync.value + (f" ({s.held})" if s.held else ""),
            s.provisioning_state or "-",
            s.instance_state or "-",
            _short_revision(s.applied_revision),
        )
        for s in statuses
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def _jobs_table(jobs: Sequence[Mapping[str, Any]], *, tail: int = 5) -> str:
    """The daemon's job runs (its ledger): the last run of each job, with the end of its log."""
    from datetime import UTC, datetime

    from reconciler.model.text import plain_line

    lines = ["JOB RUNS (from the daemon's state)"]
    for job in jobs:
        runs = [r for r in job.get("runs") or () if r.get("result") != "skipped"]
        label = f"{job.get('resource_group')}/{job.get('name')}"
        if not runs:
            lines.append(f"  {label}: no run yet")
            continue
        last = runs[-1]
        when = datetime.fromtimestamp(float(last.get("started_at") or 0), UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        took = f", {last['duration_s']:.1f}s" if last.get("duration_s") is not None else ""
        code = f", exit {last['exit_code']}" if last.get("exit_code") is not None else ""
        lines.append(f"  {label}: {last.get('result')}{code}{took}, {last.get('trigger')} run at {when}")
        lines += [f"    | {plain_line(str(text))}" for text in (last.get("log_tail") or [])[-tail:]]
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    with holding_target(choose_target(args), args):
        return asyncio.run(_status(args, environ))


def _name_hint(args: argparse.Namespace, choice: TargetChoice, command: str) -> str:
    """The command line (`export`, `logs`) again, with the resource group it lacked (RG: to fill in)."""
    target = {
        "local": f"--local {choice.local_dir}" if choice.local_dir != Path(DEFAULT_LOCAL_DIR) else "--local",
        "endpoint": f"--endpoint {choice.endpoint}",
        "azure": f"--subscription {choice.subscription}",
    }[choice.kind]
    return f"reconcile {command} {args.name} --resource-group RG {target}"


def _without_empty_lists(value: Any) -> Any:
    """The document without `[]` values: an empty list means what an absent key means to ACI, and Azure's
    answers carry some (`initContainers: []`) that nobody writes in a manifest."""
    if isinstance(value, dict):
        return {k: _without_empty_lists(v) for k, v in value.items() if v != []}
    if isinstance(value, list):
        return [_without_empty_lists(v) for v in value]
    return value


def export_yaml(document: Mapping[str, Any]) -> str:
    """The manifest as YAML with every key written `key: value` (see `_ManifestDumper`)."""
    import yaml

    class _ManifestDumper(yaml.SafeDumper):
        # PyYAML writes a key longer than 128 characters (a user-assigned identity's resource id) as a
        # `? key` complex key: valid YAML, but people and several tools misread it. Keys up to the readers'
        # limit of 1024 characters stay simple.
        def check_simple_key(self) -> bool:
            event = self.event
            if isinstance(event, yaml.ScalarEvent) and event.anchor is None:
                if self.analysis is None:
                    self.analysis = self.analyze_scalar(event.value)
                if not self.analysis.multiline and 0 < len(event.value) < 1000:
                    return True
            return bool(super().check_simple_key())

    return yaml.dump(document, Dumper=_ManifestDumper, sort_keys=False, allow_unicode=True)


async def _export(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from reconciler.model.manifest import GroupManifest

    choice = choose_target(args)
    async with open_gateway(choice) as gateway:
        live = await _find_live(gateway, args, choice, "export")
    if live is None:
        where = f"{args.resource_group}/{args.name}" if args.resource_group else repr(args.name)
        _error(f"container group {where} not found in {choice.describe()}")
        return EXIT_ERROR
    from reconciler.planning.ownership import user_tags

    # Our ownership tags describe the last apply, not the group; a manifest may not set them.
    body = {**live.body, "tags": user_tags(live.tags)}
    manifest = GroupManifest.from_arm(body, resource_group=live.resource_group, name=live.name)
    document = _without_empty_lists(manifest.to_manifest_dict())
    if args.output == "json":
        print(json.dumps(document, indent=2))
    else:
        print(
            "# Exported by `reconcile export`; secrets are placeholders (secureValueFrom, passwordFrom, "
            "storageAccountKeyFrom, workspaceKeyFrom, secretFrom): fill them in; validation fails until then."
        )
        print(export_yaml(document), end="")
    return EXIT_OK


def cmd_export(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    with holding_target(choose_target(args), args):
        return asyncio.run(_export(args, environ))


# ---------------------------------------------------------------------------------------------------------
# Jobs: `run` and `logs`


class LogPrinter:
    """Prints log text line by line to stdout, prefixed with the container's name when there are several."""

    def __init__(self, containers: Sequence[str], stream: TextIO | None = None) -> None:
        self.prefixed = len(containers) > 1
        self.width = max((len(c) for c in containers), default=0)
        self.stream = stream or sys.stdout

    def __call__(self, container: str, text: str) -> None:
        from reconciler.model.text import plain_line

        lines = text.splitlines()
        for line in lines:
            # A container may print anything: control sequences are escaped, never sent to the terminal.
            shown = plain_line(line)
            self.stream.write(f"{container.ljust(self.width)} | {shown}\n" if self.prefixed else f"{shown}\n")
        self.stream.flush()


def _say(message: str) -> None:
    print(f"reconcile run: {message}", file=sys.stderr, flush=True)


def _describe_result(result: Any) -> str:
    from reconciler.model.jobrun import RunResult

    duration = f" in {result.duration_s:.1f}s" if result.duration_s is not None else ""
    failed = [c for c in result.containers if c.exit_code not in (0, None)]
    which = f" ({failed[0].name})" if failed and result.result is RunResult.FAILED else ""
    kept = "kept" if result.kept else "deleted"
    group = f"{result.resource_group}/{result.group_name}"
    if result.result is RunResult.SUCCEEDED:
        return f"{result.name} succeeded{duration}; group {group} {kept}"
    outcome = f"{result.result.value.replace('_', ' ')}{which}: exit code {result.exit_code}"
    return f"{result.name} {outcome}{duration}; group {group} {kept}"


async def _run_job(args: argparse.Namespace, environ: Mapping[str, str], choice: TargetChoice) -> int:
    import signal

    from reconciler.engine.jobs import JobContext, JobError, JobRunner, find_job, job_containers
    from reconciler.engine.reconcile import load
    from reconciler.execution.watch import watching
    from reconciler.model.jobrun import JobRequest, RunResult

    unusable = _manifest_roots_usable(args)
    if unusable is not None:
        raise UsageError(unusable)
    settings = engine_settings(args, choice, environ)
    request = JobRequest(
        name=args.name,
        resource_group=args.resource_group,
        keep=args.keep,
        timeout_s=args.timeout,
        concurrency=args.job_concurrency,
        logs=args.stream_logs,
        timestamps=args.timestamps,
    )
    loaded = await asyncio.to_thread(load, settings, environ)
    try:
        desired = find_job(loaded, request)
    except JobError as err:
        _error(str(err))
        return EXIT_RECONCILER_ERROR
    for issue in loaded.errors:
        _warn(f"{issue.path}:{issue.line}: {issue.message} (not needed for this run)")
    loop = asyncio.get_running_loop()
    signals: list[int] = []
    async with open_gateway(choice) as gateway, watching(gateway) as watcher:
        context = JobContext(
            settings=settings,
            gateway=gateway,
            watcher=watcher,
            environ=environ,
            on_log=LogPrinter(job_containers(desired)),
            on_status=_say,
            loaded=loaded,
        )
        running = asyncio.create_task(JobRunner(context).run(request), name=f"job-run-{args.name}")

        def on_signal(signum: int) -> None:
            if signals:
                # A second signal: out at once, whatever is left in Azure (the first one's cleanup may hang).
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(128 + signum)
            signals.append(signum)
            keep = "stopping it" if args.keep == "always" else "stopping and deleting its group"
            _say(f"{signal.Signals(signum).name}: {keep} (again to exit at once)")
            running.cancel()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            result = await running
        except asyncio.CancelledError:
            if not signals:
                raise
            return 128 + signals[0]
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
    if result.result in (RunResult.ERROR, RunResult.SKIPPED):
        _error(result.message)
    else:
        _say(_describe_result(result))
    return result.exit_code


def cmd_run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    try:
        choice = choose_target(args)
        with holding_target(choice, args):
            return asyncio.run(_run_job(args, environ, choice))
    except UsageError as err:
        # `run` exits as `docker run` does: 125 when the reconciler itself could not run the job.
        _error(str(err))
        return EXIT_RECONCILER_ERROR


async def _find_live(gateway: Gateway, args: argparse.Namespace, choice: TargetChoice, command: str) -> Any:
    """The live group NAME of `export` or `logs`: in `--resource-group`, else looked up in the subscription
    (one paged list); None when it does not exist."""
    from reconciler.cloud.errors import GatewayError

    hint = _name_hint(args, choice, command)
    if args.resource_group:
        return await gateway.get_group(args.resource_group, args.name)
    try:
        found = [g for g in await gateway.list_subscription_groups() if g.name.lower() == args.name.lower()]
    except GatewayError as err:
        raise UsageError(
            f"cannot look {args.name!r} up in the subscription ({err}); name its resource group: `{hint}`"
        ) from None
    if len(found) > 1:
        places = ", ".join(sorted(g.resource_group for g in found))
        raise UsageError(f"{args.name!r} exists in several resource groups ({places}); name one: `{hint}`")
    return await gateway.get_group(found[0].resource_group, found[0].name) if found else None


def _live_containers(live: Any) -> list[str]:
    props = live.body.get("properties") or {}
    return [
        str((c or {}).get("name"))
        for section in ("initContainers", "containers")
        for c in props.get(section) or ()
    ]


def _logs_mask(args: argparse.Namespace, choice: TargetChoice, environ: Mapping[str, str], live: Any) -> Any:
    """The secrets of the group's manifest, when its manifest loads with them: masked in what is printed."""
    from reconciler.engine.reconcile import load
    from reconciler.model.mask import SecretMask

    if _manifest_roots_usable(args) is not None:
        return SecretMask(())
    try:
        loaded = load(engine_settings(args, choice, environ), environ)
    except (UsageError, OSError):
        return SecretMask(())
    for group in loaded.groups:
        m = group.manifest
        if (m.resource_group.lower(), m.name.lower()) == (live.resource_group.lower(), live.name.lower()):
            return SecretMask(m.secret_values().values())
    return SecretMask(())


async def _logs(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from reconciler.execution.watch import watching

    choice = choose_target(args)
    async with open_gateway(choice) as gateway:
        live = await _find_live(gateway, args, choice, "logs")
        if live is None:
            where = f"{args.resource_group}/{args.name}" if args.resource_group else repr(args.name)
            _error(f"container group {where} not found in {choice.describe()}")
            return EXIT_ERROR
        containers = _live_containers(live)
        if args.container is not None:
            if args.container not in containers:
                _error(
                    f"{live.resource_group}/{live.name} has no container {args.container!r}; it has "
                    + ", ".join(containers)
                )
                return EXIT_ERROR
            containers = [args.container]
        mask = await asyncio.to_thread(_logs_mask, args, choice, environ, live)
        printer = LogPrinter(containers)
        seen: dict[str, int] = {}
        for container in containers:
            whole = await gateway.logs(live.resource_group, live.name, container, timestamps=args.timestamps)
            seen[container] = len(whole)
            lines = whole.splitlines()
            if args.tail is not None:
                lines = lines[-args.tail :] if args.tail > 0 else []
            if lines:
                printer(container, mask("\n".join(lines)))
        if not args.follow:
            return EXIT_OK

        def on_log(container: str, text: str) -> None:
            # The watcher delivers each log from its start: what was printed above is skipped.
            skip = seen.get(container, 0)
            if skip:
                seen[container] = max(0, skip - len(text))
                text = text[skip:]
            if text:
                printer(container, mask(text))

        async with watching(gateway, name="logs-watcher") as watcher:
            await watcher.watch(
                live.resource_group, live.name, containers, on_log=on_log, timestamps=args.timestamps
            ).result()
    return EXIT_OK


def cmd_logs(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    with holding_target(choose_target(args), args):
        return asyncio.run(_logs(args, environ))


def cmd_emulator(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from reconciler.emulator import cli as emulator_cli

    return emulator_cli.run(args)


def cmd_daemon(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from reconciler.daemon import cli as daemon_cli

    choice = choose_target(args)

    def gateway_factory(
        on_request: Callable[[str, str, float], None] | None = None,
        write_guard: WriteGuard | None = None,
    ) -> contextlib.AbstractAsyncContextManager[Gateway]:
        return open_gateway(choice, on_request=on_request, write_guard=write_guard)

    with contextlib.ExitStack() as locks:
        locks.enter_context(holding_target(choice, args))
        state_dir = Path(os.path.abspath(args.state_dir))
        # One lock per directory: flock(2) locks of two descriptors of one process exclude each other.
        if choice.local_dir is None or state_dir != Path(os.path.abspath(choice.local_dir)):
            locks.enter_context(holding_directory(state_dir, args, "another daemon with this --state-dir"))
        # Inside the locks: for --local, the key file in DIR may be created here.
        settings = engine_settings(args, choice, environ)
        return daemon_cli.run(args, settings, gateway_factory, environ, open_store=_open_blob_store)


def _open_blob_store(url: str, connection_string: str | None) -> CoordinationStore:
    """`--coordination`'s store: an Azure Blob container (reconciler.cloud.blobstore)."""
    from reconciler.cloud.blobstore import open_store

    return open_store(url, connection_string=connection_string)


HANDLERS: dict[str, Callable[[argparse.Namespace, Mapping[str, str]], int]] = {
    "plan": cmd_plan,
    "apply": cmd_apply,
    "validate": cmd_validate,
    "schema": cmd_schema,
    "status": cmd_status,
    "export": cmd_export,
    "run": cmd_run,
    "logs": cmd_logs,
    "emulator": cmd_emulator,
    "daemon": cmd_daemon,
}


def tune_runtime() -> None:
    """Interpreter settings for how a pass runs. Called by `main` (every command, the daemon included) and by
    the benchmarks, which measure what it runs.

    - The collector: a pass allocates many small objects that live until it ends (manifests, bodies, plan
      entries); the default thresholds rescan them over and over. Measured: 13% of a 5,000-group dry run.
    - The GIL's switch interval: a cold pass loads manifests on a worker thread while the event loop follows
      the list's pages. The loop waits for the GIL up to the interval every time a response arrives; at the
      default 5 ms a list page of 1,000 groups took ~100 ms instead of ~35 ms while the load ran (and the
      daemon's lease renewals and status page wait alike). At 1 ms the page chain keeps pace with the load:
      a cold dry-run of 1,000 groups at 20 ms a request 0.76-0.80 s -> 0.58-0.63 s, for the same CPU."""
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    sys.setswitchinterval(SWITCH_INTERVAL_S)


# The GIL switch interval `tune_runtime` sets (CPython's default is 5 ms).
SWITCH_INTERVAL_S = 0.001


def main(argv: Sequence[str] | None = None) -> int:
    tune_runtime()
    environ = dict(os.environ)
    command = ""
    try:
        command, rest = split_command(sys.argv[1:] if argv is None else argv)
        try:
            args = build_parser(command, environ).parse_args(rest)
        except SystemExit as usage:
            # `run` exits as `docker run` does: a bad option is the reconciler's error, 125, never a code
            # the job itself could have returned.
            if command == "run" and usage.code == 2:
                return EXIT_RECONCILER_ERROR
            raise
        finish_manifest_options(args, environ)
        code = HANDLERS[command](args, environ)
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is handled below
        return code
    except UsageError as err:
        _error(str(err))
        return EXIT_RECONCILER_ERROR if command == "run" else EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `reconcile schema | head`: the reader has gone. Quietly, with the status of a process that
        # SIGPIPE ended, and stdout pointed at /dev/null so the exit-time flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
