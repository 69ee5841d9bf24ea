"""End-to-end helpers: the emulator, the real `reconcile` CLI and the daemon, each in its own process.

The emulator is started as `python -m reconciler.emulator --port 0`; its first line gives the endpoint and
the CA file. Tests read Azure's side through its `/_emulator/...` control surface (counters, groups) and the
CLI is run exactly as a user runs it, with `--endpoint`/`--ca-cert` in the environment. `DaemonProcess` runs
`reconcile daemon` and follows its JSON log lines as they arrive.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import ssl
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
FIRST_LINE = re.compile(r"^emulator listening on (https://127\.0\.0\.1:\d+) \(CA certificate: (.+)\)$")


class EmulatorProcess:
    def __init__(self, workdir: Path, *extra: str) -> None:
        self.workdir = workdir
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler.emulator",
                "--port",
                "0",
                "--state",
                str(workdir / "state.json"),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=workdir,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        match = FIRST_LINE.match(line)
        if not match:
            self.proc.kill()
            raise RuntimeError(
                f"emulator did not start: {line!r} {self.proc.stderr.read() if self.proc.stderr else ''}"
            )
        self.endpoint = match.group(1)
        self.ca_cert = Path(match.group(2))
        self._ssl = ssl.create_default_context(cafile=str(self.ca_cert))

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.endpoint}/_emulator/{path}",
            method=method,
            data=data,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self._ssl, timeout=30) as response:
            raw = response.read()
        return json.loads(raw) if raw else None

    def counters(self) -> dict[str, int]:
        return dict(self.control("GET", "counters")["counters"])

    def reset_counters(self) -> None:
        self.control("DELETE", "counters")

    def writes(self) -> dict[str, int]:
        """Container-group writes seen since the last reset, by verb."""
        c = self.counters()
        return {verb: c.get(f"{verb} containerGroup", 0) for verb in ("PUT", "PATCH", "DELETE")}

    def group_ids(self) -> list[str]:
        return sorted(g["id"] for g in self.control("GET", "groups")["value"])

    def arm(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A raw ARM call, as another tool (the portal, `az`) would make it."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.endpoint}/subscriptions/{SUBSCRIPTION}{path}?api-version=2023-05-01",
            method=method,
            data=data,
            headers={"Content-Type": "application/json", "Authorization": "Bearer out-of-band"},
        )
        try:
            with urllib.request.urlopen(request, context=self._ssl, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def get(self, rg: str, name: str) -> dict[str, Any] | None:
        status, body = self.arm(
            "GET", f"/resourceGroups/{rg}/providers/Microsoft.ContainerInstance/containerGroups/{name}"
        )
        return body if status == 200 else None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def run_cli(
    emulator: EmulatorProcess, *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> CliResult:
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "RECONCILER_", "IDENTITY_"))
    }
    full_env.update(
        {
            "RECONCILER_ENDPOINT": emulator.endpoint,
            "RECONCILER_CA_CERT": str(emulator.ca_cert),
            "RECONCILER_CREDENTIAL": "static",
            "RECONCILER_SECRET_KEY": "e2e-test-key-0123456789abcdef",
            "NO_COLOR": "1",
        }
    )
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "reconciler.cli", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


class DaemonProcess:
    """`reconcile daemon` with its JSON log lines (stderr) collected by a named reader thread."""

    def __init__(self, args: list[str], env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reconciler.cli", "daemon", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(env),
        )
        self.events: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.stdout = ""
        self._new: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="daemon-log-reader", daemon=True)
        self._reader.start()
        self._out = threading.Thread(target=self._read_stdout, name="daemon-stdout-reader", daemon=True)
        self._out.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.raw.append(line)
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict):
                self.events.append(event)
                self._new.put(event)
        self._new.put(None)

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout.read()

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 30.0) -> dict[str, Any]:
        """The next log event (after those already waited past) that matches; fails at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                event = self._new.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no matching daemon log event in {timeout}s:\n{self.log_tail()}"
                ) from None
            if event is None:
                raise AssertionError(f"the daemon exited ({self.proc.poll()}):\n{self.log_tail()}")
            if predicate(event):
                return event

    def log_tail(self, lines: int = 40) -> str:
        return "".join(self.raw[-lines:])

    @property
    def url(self) -> str:
        for event in self.events:
            if event.get("event") == "listening":
                return str(event["url"])
        raise AssertionError("the daemon did not say where it listens")

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as response:
                return int(response.status), response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def finish(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code (the reader threads have drained both streams)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(5)
        self._out.join(5)
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self._reader.join(5)
        self._out.join(5)
