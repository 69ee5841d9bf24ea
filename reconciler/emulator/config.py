"""The emulator's settings and the record it keeps of each request.

`EmulatorConfig` is built by tests, benchmarks and `cli.py`; the core, the ARM routes and the control
surface read it (and the control surface changes its run-time knobs). Nothing here does any work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from reconciler.emulator.limits import FaultSettings

API_VERSION = "2023-05-01"
OPERATIONS_API_VERSION = "2018-06-01"
IDENTITY_PATH = "/msi/token"
MAX_BODY = 4 * 1024 * 1024  # ARM's request size limit


@dataclass
class EmulatorConfig:
    """Start-up settings. `latency`, `provisioning_delay`, `delete_delay`, `retry_after`, `page_size`,
    `job_run_time` and `restart_backoff` may also be changed at run time (`emu.config.latency = 0.05`,
    or `PATCH /_emulator/config`).

    Bucket sizes of None switch a limit off. The defaults are ARM's and ACI's published ones.
    """

    host: str = "127.0.0.1"
    port: int = 0
    state_file: Path | None = None
    cert_dir: Path | None = None
    provisioning_delay: float = 0.0
    # Its own knob: Azure deletes most groups at once (200 with the body) and some only after a while (202).
    delete_delay: float = 0.0
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
    # ACI's per-region quotas of a subscription (None: no limit). A PUT whose group would take the
    # subscription past one is refused with `ContainerGroupQuotaReached`. Most subscriptions have no GPU
    # quota at all: `gpu_quota=0` reproduces that.
    core_quota: float | None = None
    gpu_quota: int | None = None
    # Images ACI cannot pull (shell-style patterns, e.g. "myregistry.azurecr.io/*"): a PUT that names one
    # is refused with `InaccessibleImage`, as Azure does for an image that does not exist or whose
    # registry refuses the credentials.
    inaccessible_images: tuple[str, ...] = ()
    # Job containers (restart policy Never or OnFailure) run a simulation of their command (`runtime.py`):
    # a command it does not model runs for `job_run_time` seconds; under OnFailure a failed container waits
    # `restart_backoff` seconds before its first restart, doubling up to 30 times that, as ACI's
    # CrashLoopBackOff does (10 s to 5 min).
    job_run_time: float = 1.0
    restart_backoff: float = 10.0


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
    # Who sent it (the daemon's writes name the replica and its lease there, DESIGN section 13).
    user_agent: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
