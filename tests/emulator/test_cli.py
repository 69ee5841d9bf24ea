"""`python -m reconciler.emulator` (what `reconcile emulator` runs): first line, state file, clean SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import ssl
import sys
from pathlib import Path

import aiohttp
import pytest

from reconciler.emulator.cli import add_arguments, config_from_args
from tests.emulator.conftest import AUTH, RG, Q, body, group_path

pytestmark = pytest.mark.timeout(60)

FIRST_LINE = re.compile(r"emulator listening on (https://127\.0\.0\.1:\d+) \(CA certificate: (.+)\)\n")


async def test_cli_prints_endpoint_serves_and_persists_until_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reconciler.emulator",
        "--state",
        str(state),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        match = FIRST_LINE.fullmatch(line)
        assert match, line
        endpoint, ca = match.groups()
        assert Path(ca).parent == tmp_path / "state.json.tls"
        context = ssl.create_default_context(cafile=ca)
        async with (
            aiohttp.ClientSession(base_url=endpoint, connector=aiohttp.TCPConnector(ssl=context)) as session,
            session.put(group_path("web"), params=Q, headers=AUTH, json=body()) as r,
        ):
            assert r.status == 201
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    saved = json.loads(state.read_text())
    assert [(g["resource_group"], g["name"]) for g in saved["groups"]] == [(RG, "web")]


def test_arguments_become_a_config() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--port", "8443", "--provisioning-delay", "2.5", "--no-throttling", "--fault-rate", "0.1",
         "--fault-kinds", "500,reset", "--page-size", "10"]
    )  # fmt: skip
    config = config_from_args(args)
    assert config.port == 8443
    assert config.provisioning_delay == 2.5
    assert config.read_bucket_size is None
    assert config.aci_requests_per_5m is None
    assert config.faults.kinds == ("500", "reset")
    assert config.page_size == 10
    assert config.delete_delay == 0.0


def test_delete_delay_has_its_own_flag_apart_from_the_provisioning_delay() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    slow_create = config_from_args(parser.parse_args(["--provisioning-delay", "5"]))
    assert (slow_create.provisioning_delay, slow_create.delete_delay) == (5.0, 0.0)
    slow_delete = config_from_args(parser.parse_args(["--delete-delay", "3"]))
    assert (slow_delete.provisioning_delay, slow_delete.delete_delay) == (0.0, 3.0)


@pytest.mark.parametrize("argv", [["--port", "70000"], ["--latency", "-1"], ["--port", "x"]])
def test_bad_arguments_are_rejected_by_the_parser(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(argv)
    assert "expected" in capsys.readouterr().err


def test_unknown_fault_kind_is_a_clear_error() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(ValueError, match="unknown fault kinds"):
        config_from_args(parser.parse_args(["--fault-kinds", "teapot"]))
