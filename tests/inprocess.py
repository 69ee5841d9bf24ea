"""The engine wired to an in-process emulator through the real SDK adapter, for tests that need no subprocess.

Used by `tests/engine/` and `tests/reliability/`: an emulator with ARM's throttling buckets off (429s come
from injected faults where a test wants them), engine settings with zero retry and backoff delays, and a
gateway whose long-running-operation polls wait with an injected `sleep`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from reconciler.cloud.azure import AzureGateway, Target, connect
from reconciler.cloud.retry import RetryPolicy
from reconciler.emulator.server import Emulator, EmulatorConfig
from reconciler.engine.reconcile import EngineSettings
from reconciler.execution import ApplyOptions

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


async def no_sleep(_: float) -> None:
    # Retries and LRO polls yield to the loop (the in-process emulator runs on it) but never wait.
    await asyncio.sleep(0)


def emulator_config(cert_dir: Path, **overrides: Any) -> EmulatorConfig:
    # ARM's throttling buckets have their own tests; here they only add waiting. 429s come from faults.
    base: dict[str, Any] = {
        "cert_dir": cert_dir,
        "read_bucket_size": None,
        "write_bucket_size": None,
        "delete_bucket_size": None,
        "aci_requests_per_5m": None,
        "aci_requests_per_1h": None,
    }
    base.update(overrides)
    return EmulatorConfig(**base)


def engine_settings(manifests: Path, **overrides: Any) -> EngineSettings:
    base: dict[str, Any] = {
        "manifests": manifests,
        "secret_key": b"reliability-key-0123456789abcdef",
        "subscription": SUBSCRIPTION,
        "apply": ApplyOptions(
            concurrency=10, lro_timeout=30, max_attempts=6, backoff_base=0.0, backoff_cap=0.0
        ),
        "retry": RetryPolicy(max_attempts=6, backoff_base=0.0, backoff_cap=0.0),
    }
    base.update(overrides)
    return EngineSettings(**base)


def gateway_for(
    endpoint: str,
    ca_cert: Path,
    *,
    read_timeout: float = 120.0,
    sleep: Callable[[float], Coroutine[Any, Any, None]] = no_sleep,
) -> AzureGateway:
    return connect(
        Target(
            subscription_id=SUBSCRIPTION,
            endpoint=endpoint,
            ca_cert=ca_cert,
            credential="static",
            poll_interval=0.0,
            read_timeout=read_timeout,
        ),
        sleep=sleep,
    )


@asynccontextmanager
async def in_process(
    cert_dir: Path, *, sleep: Callable[[float], Coroutine[Any, Any, None]] = no_sleep, **config: Any
) -> AsyncIterator[tuple[Emulator, AzureGateway]]:
    """The emulator in this event loop and a gateway to it whose LRO polls wait with `sleep`."""
    async with Emulator(emulator_config(cert_dir, **config)) as emu:
        gateway = gateway_for(emu.endpoint, emu.ca_cert_path, sleep=sleep)
        try:
            yield emu, gateway
        finally:
            await gateway.close()
