"""Command line of the emulator: `reconcile emulator` (wired by reconciler/cli.py) and
`python -m reconciler.emulator`.

`add_arguments` adds the options to a parser; `run` serves until SIGTERM or SIGINT and returns the exit
status. The first line printed is `emulator listening on https://127.0.0.1:PORT (CA certificate: PATH)`,
flushed at once, so scripts and tests can wait for it and read the port and CA file from it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path

from reconciler.emulator.limits import FAULT_KINDS, FaultSettings
from reconciler.emulator.server import Emulator, EmulatorConfig


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port between 0 and 65535, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=0, help="https port (default: a free one)")
    parser.add_argument(
        "--state", type=Path, default=None, metavar="FILE", help="keep container groups in FILE across runs"
    )
    parser.add_argument(
        "--cert-dir", type=Path, default=None, help="where to write the CA and server certificates"
    )
    parser.add_argument(
        "--provisioning-delay",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="how long creates, updates, starts and restarts take (default: 0)",
    )
    parser.add_argument(
        "--delete-delay",
        type=_non_negative,
        default=0.0,
        metavar="SECONDS",
        help="how long a delete takes; 0 (the default) deletes at once and answers 200 with the body, as "
        "Azure does for most groups; more answers 202 with Azure-AsyncOperation and shows Deleting",
    )
    parser.add_argument(
        "--retry-after", type=int, default=0, help="Retry-After seconds on operation polls (default: 0)"
    )
    parser.add_argument("--page-size", type=int, default=100, help="list page size (default: 100)")
    parser.add_argument(
        "--latency", type=_non_negative, default=0.0, metavar="SECONDS", help="added to every ARM request"
    )
    parser.add_argument("--identity-port", type=_port, default=0, help="plain-http managed-identity port")
    parser.add_argument(
        "--no-throttling", action="store_true", help="switch off ARM's token buckets and ACI's quotas"
    )
    parser.add_argument(
        "--deny-subscription-list",
        action="store_true",
        help="refuse the subscription-wide list with 403 AuthorizationFailed, as for a principal whose roles "
        "are on resource groups only",
    )
    parser.add_argument(
        "--core-quota",
        type=_non_negative,
        default=None,
        metavar="CORES",
        help="CPU cores per region (default: no limit)",
    )
    parser.add_argument(
        "--gpu-quota",
        type=int,
        default=None,
        metavar="GPUS",
        help="GPUs per region (default: no limit; 0: no GPU quota, as most subscriptions have)",
    )
    parser.add_argument(
        "--inaccessible-image",
        action="append",
        default=[],
        metavar="PATTERN",
        help="an image ACI cannot pull (shell-style pattern; may be repeated): a PUT naming it is refused "
        "with InaccessibleImage",
    )
    parser.add_argument(
        "--job-run-time",
        type=_non_negative,
        default=1.0,
        metavar="SECONDS",
        help="how long a job container whose command the emulator does not simulate runs before it exits 0 "
        "(default: 1)",
    )
    parser.add_argument(
        "--restart-backoff",
        type=_non_negative,
        default=10.0,
        metavar="SECONDS",
        help="how long a failed container of an OnFailure group waits before its first restart, doubling "
        "up to 30 times that (default: 10, as ACI)",
    )
    parser.add_argument("--fault-rate", type=float, default=0.0, help="chance of a fault per request")
    parser.add_argument(
        "--fault-kinds",
        default="",
        help=f"comma-separated fault kinds: {', '.join(sorted(FAULT_KINDS))}",
    )


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    kinds = tuple(k.strip() for k in str(args.fault_kinds).split(",") if k.strip())
    config = EmulatorConfig(
        host=args.host,
        port=args.port,
        state_file=args.state,
        cert_dir=args.cert_dir,
        provisioning_delay=args.provisioning_delay,
        delete_delay=args.delete_delay,
        retry_after=args.retry_after,
        page_size=args.page_size,
        latency=args.latency,
        identity_port=args.identity_port,
        faults=FaultSettings(rate=args.fault_rate, kinds=kinds),
        deny_subscription_list=args.deny_subscription_list,
        core_quota=args.core_quota,
        gpu_quota=args.gpu_quota,
        inaccessible_images=tuple(args.inaccessible_image),
        job_run_time=args.job_run_time,
        restart_backoff=args.restart_backoff,
    )
    if args.no_throttling:
        config.read_bucket_size = config.write_bucket_size = config.delete_bucket_size = None
        config.aci_requests_per_5m = config.aci_requests_per_1h = None
    return config


async def serve(config: EmulatorConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Emulator(config) as emu:
            print(f"emulator listening on {emu.endpoint} (CA certificate: {emu.ca_cert_path})", flush=True)
            env = {
                "IDENTITY_ENDPOINT": emu.identity_endpoint,
                "IDENTITY_HEADER": emu.identity_header,
            }
            print(f"managed identity: {json.dumps(env)}", flush=True)
            await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def run(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"reconcile emulator: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(config))
    except (ValueError, OSError) as exc:
        print(f"reconcile emulator: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m reconciler.emulator",
        description="A local ARM server for Microsoft.ContainerInstance/containerGroups (2023-05-01).",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return run(args)
    return 0
