"""Restart, stop and start as Azure answers them, and what a stopped or starting group looks like.

The evidence is recorded traffic of official clients (`tests/emulator/evidence/FINDINGS.md` cites the
files): stop is 204 at any time, even right after a restart; a restart is 204 with an operation and shows
`Updating`; start on a running group is 204 with no operation; a stopped container is Terminated "per client
request" with its running state as `previousState`, and the group's public address is released.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from reconciler.emulator.server import Emulator, EmulatorConfig
from tests.emulator.conftest import AUTH, FakeClock, Q, body, group_path, https_session

PUBLIC = {"type": "Public", "ports": [{"port": 80, "protocol": "TCP"}]}


def served(**props: Any) -> dict[str, Any]:
    """A group whose container listens on port 80, published on a public address."""
    payload = body(ipAddress=PUBLIC, **props)
    payload["properties"]["containers"][0]["properties"]["ports"] = [{"port": 80}]
    return payload


class Api:
    def __init__(self, session: aiohttp.ClientSession, clock: FakeClock) -> None:
        self.session = session
        self.clock = clock

    async def put(self, name: str, payload: dict[str, Any]) -> tuple[int, Any, Any]:
        async with self.session.put(group_path(name), params=Q, headers=AUTH, json=payload) as r:
            return r.status, await r.json(), r.headers

    async def get(self, name: str) -> Any:
        async with self.session.get(group_path(name), params=Q, headers=AUTH) as r:
            assert r.status == 200
            return await r.json()

    async def post(self, name: str, action: str) -> tuple[int, Any]:
        async with self.session.post(group_path(name) + f"/{action}", params=Q, headers=AUTH) as r:
            return r.status, r.headers

    async def operation(self, url: str) -> str:
        async with self.session.get(url, headers=AUTH) as r:
            return str((await r.json())["status"])


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    clock = FakeClock()
    async with (
        Emulator(EmulatorConfig(provisioning_delay=10, clock=clock)) as emu,
        https_session(emu) as session,
    ):
        yield Api(session, clock)


async def running(api: Api, name: str = "web", **props: Any) -> Any:
    status, _, _ = await api.put(name, served(**props))
    assert status == 201
    api.clock.advance(10)
    return await api.get(name)


async def test_start_on_a_running_group_is_204_without_an_operation_and_changes_nothing(api: Api) -> None:
    before = await running(api)
    status, headers = await api.post("web", "start")
    assert status == 204
    assert "Azure-AsyncOperation" not in headers
    after = await api.get("web")
    assert after["properties"]["provisioningState"] == "Succeeded"
    assert after["properties"]["containers"] == before["properties"]["containers"]


async def test_restart_shows_updating_until_the_containers_run_again(api: Api) -> None:
    before = await running(api)
    status, headers = await api.post("web", "restart")
    assert status == 204
    assert (await api.get("web"))["properties"]["provisioningState"] == "Updating"
    assert await api.operation(headers["Azure-AsyncOperation"]) == "Updating"
    api.clock.advance(10)
    got = await api.get("web")
    assert got["properties"]["provisioningState"] == "Succeeded"
    view = got["properties"]["containers"][0]["properties"]["instanceView"]
    was = before["properties"]["containers"][0]["properties"]["instanceView"]
    # Azure starts the container again without counting a restart or keeping a previous state.
    assert view["restartCount"] == 0
    assert "previousState" not in view
    assert view["currentState"]["startTime"] > was["currentState"]["startTime"]
    assert [e["name"] for e in view["events"]].count("Killing") == 1


async def test_restart_is_accepted_while_a_restart_is_under_way(api: Api) -> None:
    await running(api)
    assert (await api.post("web", "restart"))[0] == 204
    api.clock.advance(5)
    status, headers = await api.post("web", "restart")
    assert status == 204
    assert "Azure-AsyncOperation" in headers
    assert (await api.get("web"))["properties"]["provisioningState"] == "Updating"


async def test_stop_right_after_a_restart_is_accepted_and_leaves_the_group_failed_and_stopped(
    api: Api,
) -> None:
    await running(api)
    _, restart = await api.post("web", "restart")
    status, headers = await api.post("web", "stop")
    assert status == 204
    assert "Azure-AsyncOperation" not in headers
    got = await api.get("web")
    assert got["properties"]["instanceView"]["state"] == "Stopped"
    assert got["properties"]["provisioningState"] == "Failed"
    assert await api.operation(restart["Azure-AsyncOperation"]) == "Failed"


async def test_stop_after_a_settled_restart_keeps_the_group_succeeded(api: Api) -> None:
    await running(api)
    await api.post("web", "restart")
    api.clock.advance(10)
    assert (await api.post("web", "stop"))[0] == 204
    got = await api.get("web")
    assert (got["properties"]["provisioningState"], got["properties"]["instanceView"]["state"]) == (
        "Succeeded",
        "Stopped",
    )


async def test_a_stopped_container_is_terminated_per_client_request_and_the_address_is_released(
    api: Api,
) -> None:
    started = await running(api)
    assert started["properties"]["ipAddress"]["ip"]
    api.clock.advance(60)
    assert (await api.post("web", "stop"))[0] == 204
    got = await api.get("web")
    view = got["properties"]["containers"][0]["properties"]["instanceView"]
    current = view["currentState"]
    assert current["state"] == "Terminated"
    assert current["detailStatus"] == "Container stopped per client request"
    assert current["finishTime"]
    assert "startTime" not in current
    assert "exitCode" not in current
    assert view["previousState"]["state"] == "Running"
    assert "ip" not in got["properties"]["ipAddress"]
    assert got["properties"]["ipAddress"]["type"] == "Public"


async def test_start_after_stop_is_204_with_an_operation_and_gets_a_new_address(api: Api) -> None:
    started = await running(api)
    await api.post("web", "stop")
    status, headers = await api.post("web", "start")
    assert status == 204
    assert "Azure-AsyncOperation" in headers
    api.clock.advance(10)
    got = await api.get("web")
    assert got["properties"]["instanceView"]["state"] == "Running"
    assert (
        got["properties"]["containers"][0]["properties"]["instanceView"]["currentState"]["state"] == "Running"
    )
    assert got["properties"]["ipAddress"]["ip"]
    assert got["properties"]["ipAddress"]["ip"] != started["properties"]["ipAddress"]["ip"]


async def test_the_answer_to_a_create_has_no_address_until_the_group_is_placed(api: Api) -> None:
    status, created, _ = await api.put("web", served())
    assert status == 201
    assert "ip" not in created["properties"]["ipAddress"]
    api.clock.advance(10)
    assert (await api.get("web"))["properties"]["ipAddress"]["ip"]


async def test_an_update_keeps_the_address_in_its_answer(api: Api) -> None:
    placed = await running(api)
    status, updated, _ = await api.put("web", served(image="nginx:1.26"))
    assert status == 200
    assert updated["properties"]["ipAddress"]["ip"] == placed["properties"]["ipAddress"]["ip"]


async def test_init_containers_show_a_completed_instance_view_once_the_group_runs(api: Api) -> None:
    init = [{"name": "setup", "properties": {"image": "busybox", "command": ["true"]}}]
    status, created, _ = await api.put("job", body(initContainers=init))
    assert status == 201
    assert "instanceView" not in created["properties"]["initContainers"][0]["properties"]
    api.clock.advance(10)
    view = (await api.get("job"))["properties"]["initContainers"][0]["properties"]["instanceView"]
    assert view["restartCount"] == 0
    assert view["currentState"]["state"] == "Terminated"
    assert view["currentState"]["exitCode"] == 0
    assert view["currentState"]["detailStatus"] == "Completed"
    async with api.session.get(
        group_path("job") + "/containers/setup/logs", params=Q, headers=AUTH
    ) as r:  # init containers have logs too
        assert r.status == 200
        assert (await r.json()) == {"content": ""}
