"""Shared pieces of the benchmarks in `bench/`: emulator start-up, manifest generation, seeding, tables.

Imported by every `bench/bench_*.py` script (run them with `.venv/bin/python bench/bench_NAME.py`). Nothing
here asserts; the scripts print what they measured. Patterns follow `tests/engine/test_engine_emulator.py`
and `tests/e2e/harness.py`, copied rather than imported, so benchmarks never depend on the test tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import ssl
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from reconciler.cloud.azure import AzureGateway, Target, connect  # noqa: E402 - after the sys.path fix
from reconciler.cloud.retry import RetryPolicy  # noqa: E402
from reconciler.emulator.server import Emulator, EmulatorConfig  # noqa: E402
from reconciler.engine.reconcile import EngineSettings, plan_pass  # noqa: E402
from reconciler.execution import ApplyOptions  # noqa: E402
from reconciler.execution.ratelimit import RateLimit  # noqa: E402
from reconciler.model.plan import Action  # noqa: E402

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
SECRET_KEY = "bench-secret-key"
API = "api-version=2023-05-01"
WRITE_COUNTERS = ("PUT containerGroup", "PATCH containerGroup", "DELETE containerGroup")
# No quota at all: seeding is set-up, not what is measured.
UNLIMITED = (RateLimit(1_000_000_000, 1.0),)


def emulator_config(cert_dir: Path, **overrides: Any) -> EmulatorConfig:
    """An emulator with ARM's and ACI's limits off unless a benchmark turns them on."""
    base: dict[str, Any] = {
        "cert_dir": cert_dir,
        "read_bucket_size": None,
        "write_bucket_size": None,
        "delete_bucket_size": None,
        "aci_requests_per_5m": None,
        "aci_requests_per_1h": None,
        "request_log_size": 1_000_000,
    }
    base.update(overrides)
    return EmulatorConfig(**base)


def gateway_for(emu: Any, *, poll_interval: float = 1.0) -> AzureGateway:
    """The product's gateway on the in-process emulator, as the CLI builds it for `--endpoint`."""
    return connect(
        Target(
            subscription_id=SUBSCRIPTION,
            endpoint=emu.endpoint,
            ca_cert=emu.ca_cert_path,
            credential="static",
            poll_interval=poll_interval,
        )
    )


def settings_for(manifests: Path, **overrides: Any) -> EngineSettings:
    base: dict[str, Any] = {
        "manifests": manifests,
        "secret_key": SECRET_KEY.encode(),
        # The subscription the CLI runs against too: ownership proofs are bound to it.
        "subscription": SUBSCRIPTION,
        "apply": ApplyOptions(),
        "retry": RetryPolicy(),
    }
    base.update(overrides)
    return EngineSettings(**base)


def resource_groups(count: int) -> list[str]:
    return [f"rg-bench-{i}" for i in range(count)]


def group_name(index: int) -> str:
    return f"app-{index:05d}"


def manifest_text(index: int, rg: str, *, image_tag: str = "1.25", secret: bool = False) -> str:
    """One realistic group: a web container with env, probes, ports and a public IP; with `secret`, one
    secure environment variable read from `BENCH_SECRET`."""
    name = group_name(index)
    secure = "\n      - name: TOKEN\n        secureValueFrom: {env: BENCH_SECRET}" if secret else ""
    return f"""\
name: {name}
resourceGroup: {rg}
location: westeurope
tags:
  team: team-{index % 7}
  env: prod
properties:
  osType: Linux
  restartPolicy: Always
  containers:
  - name: web
    properties:
      image: myregistry.azurecr.io/web:{image_tag}
      command: ["/app/serve", "--port", "80"]
      environmentVariables:
      - name: MODE
        value: prod
      - name: SHARD
        value: "{index}"{secure}
      resources:
        requests: {{cpu: 1, memoryInGB: 1.5}}
      ports:
      - port: 80
      livenessProbe:
        httpGet: {{path: /healthz, port: 80}}
        periodSeconds: 15
  ipAddress:
    type: Public
    dnsNameLabel: {name}-bench
    ports:
    - port: 80
      protocol: TCP
"""


def manifest_path(root: Path, index: int, rg: str) -> Path:
    return root / rg / f"{group_name(index)}.yaml"


def write_manifests(
    root: Path, count: int, rgs: Sequence[str], *, image_tag: str = "1.25", secret: bool = False
) -> list[Path]:
    """One file per group, one directory per resource group (the common repository layout)."""
    paths = []
    for i in range(count):
        rg = rgs[i % len(rgs)]
        path = manifest_path(root, i, rg)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(manifest_text(i, rg, image_tag=image_tag, secret=secret))
        paths.append(path)
    return paths


async def seed(
    emu: Any, settings: EngineSettings, *, concurrency: int = 64, environ: Mapping[str, str] | None = None
) -> float:
    """Create every planned group with one raw PUT each (the body the executor would send); seconds taken.

    Faster than a full apply at 10,000 groups (no LRO polls, no SDK overhead), and the result is the same
    converged state: the body and the ownership tags come from our own plan.
    """
    started = time.perf_counter()
    gateway = gateway_for(emu)
    try:
        planned = await plan_pass(settings, gateway, environ=environ or {})
    finally:
        await gateway.close()
    creates = [c for c in planned.plan.changes if c.action is Action.CREATE]
    ssl_ctx = ssl.create_default_context(cafile=str(emu.ca_cert_path))
    bound = asyncio.Semaphore(concurrency)
    headers = {"Authorization": "Bearer bench", "Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_ctx, limit=concurrency)) as http:

        async def put(change: Any) -> None:
            assert change.desired is not None
            body = change.desired.to_arm_body(reveal_secrets=True)
            body["tags"] = dict(change.write_tags)
            url = (
                f"{emu.endpoint}/subscriptions/{SUBSCRIPTION}/resourceGroups/{change.resource_group}"
                f"/providers/Microsoft.ContainerInstance/containerGroups/{change.name}?{API}"
            )
            async with bound, http.put(url, json=body, headers=headers) as response:
                if response.status >= 300:
                    raise RuntimeError(
                        f"seeding {change.name}: HTTP {response.status} {await response.text()}"
                    )

        async with asyncio.TaskGroup() as tasks:
            for change in creates:
                tasks.create_task(put(change), name=f"seed:{change.name}")
    emu.reset_counters()
    return time.perf_counter() - started


class EmulatorProcess:
    """`python -m reconciler.emulator` in its own process, as Azure is remote: its CPU is not the client's.

    Offers what the benchmarks use of the in-process `Emulator`: `endpoint`, `ca_cert_path`, `counters`,
    `reset_counters()` and `set_config(...)` (through the `/_emulator/...` control surface).
    """

    FIRST_LINE = re.compile(r"^emulator listening on (https://127\.0\.0\.1:\d+) \(CA certificate: (.+)\)$")

    def __init__(self, workdir: Path, *extra: str) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler.emulator",
                "--port",
                "0",
                "--cert-dir",
                str(workdir / "tls"),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=workdir,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        match = self.FIRST_LINE.match(line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"emulator did not start: {line!r}")
        self.endpoint = match.group(1)
        self.ca_cert_path = Path(match.group(2))
        self._ssl = ssl.create_default_context(cafile=str(self.ca_cert_path))

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.endpoint}/_emulator/{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self._ssl, timeout=60) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    @property
    def counters(self) -> dict[str, int]:
        counters: dict[str, int] = self.control("GET", "counters")["counters"]
        return counters

    def reset_counters(self) -> None:
        self.control("DELETE", "counters")

    def set_config(self, **values: Any) -> None:
        self.control("PATCH", "config", values)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.asynccontextmanager
async def emulator_process(workdir: Path, *extra: str) -> AsyncIterator[EmulatorProcess]:
    emu = await asyncio.to_thread(EmulatorProcess, workdir, "--no-throttling", *extra)
    try:
        yield emu
    finally:
        await asyncio.to_thread(emu.stop)


@contextlib.asynccontextmanager
async def running_emulator(cert_dir: Path, **overrides: Any) -> AsyncIterator[Emulator]:
    async with Emulator(emulator_config(cert_dir, **overrides)) as emu:
        yield emu


def writes(counters: Mapping[str, int]) -> int:
    return sum(counters.get(k, 0) for k in WRITE_COUNTERS)


def arm_calls(counters: Mapping[str, int]) -> int:
    """Every ARM request the emulator answered (the control surface and token endpoint are not counted)."""
    return sum(v for k, v in counters.items() if k.startswith(("GET ", "PUT ", "PATCH ", "DELETE ", "POST ")))


def cli_env(emu: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "RECONCILER_", "IDENTITY_"))}
    env.update(
        {
            "RECONCILER_ENDPOINT": emu.endpoint,
            "RECONCILER_CA_CERT": str(emu.ca_cert_path),
            "RECONCILER_CREDENTIAL": "static",
            "RECONCILER_SECRET_KEY": SECRET_KEY,
            "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
            "NO_COLOR": "1",
        }
    )
    return env


async def run_cli(emu: Any, *args: str, cwd: Path, limit_s: float = 600) -> tuple[int, str, str, float]:
    """Run `python -m reconciler.cli ARGS` as a user would; (exit code, stdout, stderr, wall seconds)."""
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reconciler.cli",
        *args,
        cwd=cwd,
        env=cli_env(emu),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    return proc.returncode or 0, out.decode(), err.decode(), time.perf_counter() - started


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear interpolation; a small-sample-safe p95."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[min(98, max(0, round(q) - 1))]


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append(
            "  ".join(
                c.rjust(w) if n and _numeric(c) else c.ljust(w) for c, w in zip(row, widths, strict=True)
            )
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
    return str(value)


def _numeric(text: str) -> bool:
    try:
        float(text.rstrip("xs%"))
    except ValueError:
        return False
    return True


def ratio(a: float, b: float) -> str:
    return "inf" if b == 0 else f"{a / b:.1f}x"


@dataclass
class Stopwatch:
    started: float = 0.0
    elapsed: float = 0.0

    def __enter__(self) -> Stopwatch:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.elapsed = time.perf_counter() - self.started


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Daemon:
    """`reconcile daemon` in a subprocess against the in-process emulator, with its /metrics on loopback."""

    def __init__(
        self, emu: Any, manifests: Path, work: Path, *extra: str, env: Mapping[str, str] | None = None
    ) -> None:
        self.emu = emu
        self.manifests = manifests
        self.work = work
        self.extra = extra
        self.env = dict(env or {})
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.log_path = work / f"daemon-{self.port}.log"

    async def __aenter__(self) -> Daemon:
        self._log = self.log_path.open("wb")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "reconciler.cli",
            "daemon",
            "-f",
            str(self.manifests),
            "--listen",
            f"127.0.0.1:{self.port}",
            "--state-dir",
            str(self.work / f"state-{self.port}"),
            "--log-format",
            "json",
            "--log-level",
            "warning",
            *self.extra,
            cwd=self.work,
            env={**cli_env(self.emu), **self.env},
            stdout=self._log,
            stderr=self._log,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._log.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def tail(self, lines: int = 15) -> str:
        """The end of the daemon's log (the work directory may be gone by the time anyone looks)."""
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.returncode is not None:
            raise RuntimeError(f"daemon exited {self.proc.returncode}:\n{self.tail()}")

    async def metrics(self) -> dict[str, float]:
        """Prometheus samples by full name (with labels); {} while the daemon is not listening yet."""
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(
                    f"http://127.0.0.1:{self.port}/metrics", timeout=aiohttp.ClientTimeout(total=5)
                ) as r,
            ):
                text = await r.text()
        except (aiohttp.ClientError, OSError, TimeoutError):
            return {}
        samples: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    samples[name] = float(value)
        return samples

    async def passes(self) -> int:
        m = await self.metrics()
        return int(sum(v for k, v in m.items() if k.startswith("aci_reconciler_passes_total")))

    async def wait_passes(self, at_least: int, limit_s: float = 600) -> int:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            self.check_alive()
            done = await self.passes()
            if done >= at_least:
                return done
            await asyncio.sleep(0.05)
        raise TimeoutError(f"daemon did not finish {at_least} passes in {limit_s}s:\n{self.tail()}")

    def rss_peak_mb(self) -> float:
        """VmHWM of the daemon process (peak resident set), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks
