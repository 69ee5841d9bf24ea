"""The emulator's state file under a failing disk: a write that fails (ENOSPC at any step) leaves the previous
state intact, leaves no temp file, and is reported as `StateSaveError` naming the file."""

from __future__ import annotations

import errno
import json
import os
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from reconciler.emulator import store
from reconciler.emulator.server import Emulator, EmulatorConfig
from reconciler.emulator.store import StateSaveError, write_atomic
from tests.emulator.conftest import AUTH, RG, Q, body, group_path, https_session

pytestmark = pytest.mark.timeout(60)


def _no_space(*_: Any, **__: Any) -> Any:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


STEPS: dict[str, Callable[[pytest.MonkeyPatch], None]] = {
    "creating the temp file": lambda mp: mp.setattr(store.tempfile, "mkstemp", _no_space),
    "writing": lambda mp: mp.setattr(store.os, "fdopen", _failing_fdopen),
    "syncing": lambda mp: mp.setattr(store.os, "fsync", _no_space),
    "renaming": lambda mp: mp.setattr(store.os, "replace", _no_space),
}


def _failing_fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
    handle = open(fd, *args, **kwargs)  # noqa: SIM115 (returned to the `with` of write_atomic)

    def write(_: str) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    handle.write = write  # type: ignore[method-assign]  # the disk fills up at the first write
    return handle


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_full_disk_at_any_step_keeps_the_previous_state_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    state = tmp_path / "state.json"
    write_atomic(state, '{"version": 1, "groups": ["before"]}')
    with monkeypatch.context() as mp:
        STEPS[step](mp)
        expected = r"state\.json.*No space left on device.*previous state"
        with pytest.raises(StateSaveError, match=expected) as err:
            write_atomic(state, '{"version": 1, "groups": ["after"]}')
    assert err.value.errno == errno.ENOSPC
    assert json.loads(state.read_text())["groups"] == ["before"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temp file left behind


async def _create(emu: Emulator, name: str) -> None:
    context = ssl.create_default_context(cafile=str(emu.ca_cert_path))
    connector = aiohttp.TCPConnector(ssl=context)
    async with (
        aiohttp.ClientSession(base_url=emu.endpoint, connector=connector) as s,
        s.put(group_path(name), params=Q, headers=AUTH, json=body()) as r,
    ):
        assert r.status == 201


async def test_a_failed_save_while_running_is_retried_and_a_failed_last_save_is_raised_at_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state.json"
    async with Emulator(EmulatorConfig(state_file=state, persist_interval=0)) as emu:
        await _create(emu, "first")
        await emu.flush()
    emu = Emulator(EmulatorConfig(state_file=state, persist_interval=0))
    await emu.start()
    monkeypatch.setattr(store.os, "fsync", _no_space)
    await _create(emu, "second")
    with pytest.raises(StateSaveError, match="No space left on device"):
        await emu.stop()
    assert [g["name"] for g in json.loads(state.read_text())["groups"]] == ["first"]


async def test_the_state_is_saved_once_the_disk_has_room_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state.json"
    async with Emulator(EmulatorConfig(state_file=state, persist_interval=0)) as emu:
        with monkeypatch.context() as mp:
            mp.setattr(store.os, "fsync", _no_space)
            await _create(emu, "web")
            with pytest.raises(StateSaveError):
                await emu.flush()
        # The persist loop met the same full disk and is still running: the stop writes the state.
    assert [g["name"] for g in json.loads(state.read_text())["groups"]] == ["web"]


async def test_a_stopped_group_with_init_containers_survives_a_restart_of_the_emulator(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.json"
    init = [{"name": "setup", "properties": {"image": "busybox"}}]
    config = EmulatorConfig(state_file=state, cert_dir=tmp_path / "tls")
    async with Emulator(config) as emu, https_session(emu) as session:
        put = session.put(group_path("job"), params=Q, headers=AUTH, json=body(initContainers=init))
        async with put as r:
            assert r.status == 201
        async with session.get(group_path("job"), params=Q, headers=AUTH) as r:
            before = await r.json()
        async with session.post(group_path("job") + "/stop", params=Q, headers=AUTH) as r:
            assert r.status == 204
    async with Emulator(config) as emu:
        got = emu.get_group(RG, "job")
    assert got is not None
    assert got["properties"]["instanceView"]["state"] == "Stopped"
    assert (
        got["properties"]["initContainers"][0]["properties"]["instanceView"]
        == before["properties"]["initContainers"][0]["properties"]["instanceView"]
    )
