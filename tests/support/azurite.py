"""Azurite (Microsoft's Azure Storage emulator, npm package `azurite`) for the tests, and a loopback TCP proxy
that can cut one client off from it.

`Azurite` runs `node_modules/.bin/azurite-blob` (installed by `npm ci` at the repository root; `.ci/run` does
that) on 127.0.0.1 with its well-known development account, persisting to a temporary directory so that a
stop and a start on the same port keep every blob: tests stop it to make storage unreachable. `TcpProxy`
forwards one port to another and can drop every connection and refuse new ones (`cut`), which partitions a
single daemon process from storage while the others still reach it.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's published development key (docs: "Use the Azurite emulator"), not a secret.
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, *, up: bool, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise AssertionError(f"port {port} did not come {'up' if up else 'down'} in {timeout}s")


class Azurite:
    def __init__(self) -> None:
        if not BINARY.exists():
            raise AssertionError(
                f"{BINARY} is missing: install the test tools with `npm ci` at the repository root"
            )
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="azurite-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def account_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{ACCOUNT}"

    def connection_string(self, port: int | None = None) -> str:
        endpoint = f"http://127.0.0.1:{port or self.port}/{ACCOUNT}"
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={endpoint};"
        )

    def container_url(self, name: str, port: int | None = None) -> str:
        return f"http://127.0.0.1:{port or self.port}/{ACCOUNT}/{name}"

    def start(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        self.proc = subprocess.Popen(
            [
                str(BINARY),
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                str(self.port),
                "--location",
                str(self.directory),
                "--silent",
                "--skipApiVersionCheck",
                "--loose",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, up=True)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        wait_for_port(self.port, up=False)

    def _service(self):  # type: ignore[no-untyped-def]  # the sync SDK client, for test set-up only
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string())

    def create_container(self, name: str | None = None) -> str:
        name = name or f"c{secrets.token_hex(6)}"
        with self._service() as service:
            service.create_container(name)
        return name

    def break_lease(self, container: str, blob: str) -> None:
        from azure.storage.blob import BlobLeaseClient

        with self._service() as service:
            BlobLeaseClient(service.get_blob_client(container, blob)).break_lease(lease_break_period=0)


class TcpProxy:
    """127.0.0.1:`port` forwarded to 127.0.0.1:`target`, in threads; `cut()` partitions, `restore()` heals."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self._cut = threading.Event()
        self._closed = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.1)
        self._thread = threading.Thread(target=self._accept, name=f"tcp-proxy-{self.port}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), name="tcp-proxy-pipe", daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(None)
        try:
            while data := source.recv(65536):
                if self._cut.is_set():
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self._cut.set()
        with self._lock:
            conns, self._conns = self._conns, []
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self.cut()
        self._closed.set()
        self._listener.close()
        self._thread.join(2)
