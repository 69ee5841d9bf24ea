"""The emulator over raw HTTP: ARM error bodies, headers, quotas, faults, the control surface, persistence."""

from __future__ import annotations

import json
import re
import ssl
import stat
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from reconciler.emulator.server import Emulator, EmulatorConfig
from tests.emulator.conftest import AUTH, RG, SUBSCRIPTION, FakeClock, Q, body, group_path, https_session

pytestmark = pytest.mark.timeout(60)


async def _put(session: aiohttp.ClientSession, name: str, payload: Any, **kw: Any) -> tuple[int, Any, Any]:
    async with session.put(group_path(name, **kw), params=Q, headers=AUTH, json=payload) as r:
        return r.status, await r.json(), r.headers


async def test_create_answers_201_with_absolute_async_operation_url(
    emulator: Emulator, raw_session: aiohttp.ClientSession
) -> None:
    status, data, headers = await _put(raw_session, "web", body())
    assert status == 201
    assert data["properties"]["provisioningState"] == "Pending"
    assert data["properties"]["instanceView"] == {"events": [], "state": "Pending"}
    url = headers["Azure-AsyncOperation"]
    assert re.fullmatch(
        rf"{re.escape(emulator.endpoint)}/subscriptions/{SUBSCRIPTION}/providers/Microsoft\.ContainerInstance"
        r"/locations/westeurope/operations/[0-9a-f-]{36}\?api-version=2018-06-01",
        url,
    )
    assert headers["x-ms-ratelimit-remaining-subscription-writes"] == "199"
    assert headers["x-ms-ratelimit-remaining-subscription-resource-requests-pt5m"] == "899"
    assert headers["x-ms-ratelimit-remaining-subscription-resource-requests-pt1h"] == "1799"
    async with raw_session.get(url, headers=AUTH) as r:
        op = await r.json()
        assert r.headers["Retry-After"] == "0"
    assert op["status"] == "Succeeded"
    assert op["id"].endswith("/containerGroups/web")
    assert [e["name"] for e in op["properties"]["events"]] == ["Pulling", "Pulled", "Started"]


async def test_a_create_operation_goes_pending_then_creating_then_succeeded(
    raw_session: aiohttp.ClientSession,
) -> None:
    clock = FakeClock()
    async with Emulator(EmulatorConfig(provisioning_delay=10, clock=clock, retry_after=3)) as emu:
        context = ssl.create_default_context(cafile=str(emu.ca_cert_path))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context)) as session:
            async with session.put(
                emu.endpoint + group_path("web"), params=Q, headers=AUTH, json=body()
            ) as r:
                url = r.headers["Azure-AsyncOperation"]
            async with session.get(url, headers=AUTH) as r:
                assert (await r.json())["status"] == "Pending"
                assert r.headers["Retry-After"] == "3"
            clock.advance(6)
            async with session.get(url, headers=AUTH) as r:
                assert (await r.json())["status"] == "Creating"
            clock.advance(4)
            async with session.get(url, headers=AUTH) as r:
                assert (await r.json())["status"] == "Succeeded"


async def test_paths_are_case_insensitive_and_names_keep_their_casing(
    raw_session: aiohttp.ClientSession,
) -> None:
    await _put(raw_session, "web", body())
    path = group_path("WEB").replace("resourceGroups", "resourcegroups").replace("Microsoft", "microsoft")
    async with raw_session.get(path, params=Q, headers=AUTH) as r:
        assert r.status == 200
        data = await r.json()
    assert data["name"] == "web"
    assert data["id"] == group_path("web")


@pytest.mark.parametrize(
    ("params", "code"),
    [({}, "MissingApiVersionParameter"), ({"api-version": "1999-01-01"}, "NoRegisteredProviderFound")],
)
async def test_bad_api_version_is_rejected(
    raw_session: aiohttp.ClientSession, params: dict[str, str], code: str
) -> None:
    async with raw_session.get(group_path("web"), params=params, headers=AUTH) as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == code


async def test_invalid_bodies_get_arm_400s(raw_session: aiohttp.ClientSession) -> None:
    async with raw_session.put(group_path("web"), params=Q, headers=AUTH, data=b"{not json") as r:
        assert r.status == 400
        assert (await r.json())["error"]["code"] == "InvalidRequestContent"
    no_location = body()
    del no_location["location"]
    status, data, _ = await _put(raw_session, "web", no_location)
    assert (status, data["error"]["code"]) == (400, "LocationRequired")
    status, data, _ = await _put(raw_session, "web", body(osType="Solaris"))
    assert status == 400
    assert data["error"]["code"] in ("InvalidOsType", "InvalidRequestContent")
    no_containers = body()
    del no_containers["properties"]["containers"]
    status, data, _ = await _put(raw_session, "web", no_containers)
    assert status == 400
    assert "containers" in json.dumps(data["error"])


async def test_list_omits_instance_view_as_azure_does(raw_session: aiohttp.ClientSession) -> None:
    await _put(raw_session, "web", body())
    path = group_path("web").rsplit("/", 1)[0]
    async with raw_session.get(path, params=Q, headers=AUTH) as r:
        data = await r.json()
        assert r.headers["x-ms-ratelimit-remaining-subscription-reads"] == "249"
    (item,) = data["value"]
    assert "instanceView" not in item["properties"]
    assert "instanceView" not in item["properties"]["containers"][0]["properties"]
    assert "nextLink" not in data


async def test_delete_answers_200_with_body_then_204_when_gone(raw_session: aiohttp.ClientSession) -> None:
    await _put(raw_session, "web", body())
    async with raw_session.delete(group_path("web"), params=Q, headers=AUTH) as r:
        assert r.status == 200
        assert (await r.json())["name"] == "web"
        assert r.headers["x-ms-ratelimit-remaining-subscription-deletes"] == "199"
    async with raw_session.delete(group_path("web"), params=Q, headers=AUTH) as r:
        assert r.status == 204


@pytest.mark.parametrize(("provisioning", "deleting", "expected"), [(5.0, 0.0, 200), (0.0, 3.0, 202)])
async def test_delete_takes_the_delete_delay_not_the_provisioning_delay(
    provisioning: float, deleting: float, expected: int
) -> None:
    clock = FakeClock()
    config = EmulatorConfig(provisioning_delay=provisioning, delete_delay=deleting, clock=clock)
    async with Emulator(config) as emu, https_session(emu) as session:
        assert (await _put(session, "web", body()))[0] == 201
        clock.advance(provisioning)
        async with session.delete(group_path("web"), params=Q, headers=AUTH) as r:
            assert r.status == expected
            assert ("Azure-AsyncOperation" in r.headers) == (expected == 202)


async def test_location_change_is_rejected(raw_session: aiohttp.ClientSession) -> None:
    await _put(raw_session, "web", body())
    moved = body()
    moved["location"] = "eastus"
    status, data, _ = await _put(raw_session, "web", moved)
    assert status == 409
    assert data["error"]["code"] == "InvalidResourceLocation"


async def test_update_while_provisioning_is_a_409() -> None:
    clock = FakeClock()
    async with Emulator(EmulatorConfig(provisioning_delay=5, clock=clock)) as emu:
        context = ssl.create_default_context(cafile=str(emu.ca_cert_path))
        async with aiohttp.ClientSession(
            base_url=emu.endpoint, connector=aiohttp.TCPConnector(ssl=context)
        ) as session:
            assert (await _put(session, "web", body()))[0] == 201
            status, data, _ = await _put(session, "web", body(image="other"))
            assert (status, data["error"]["code"]) == (409, "ContainerGroupTransitioning")
            clock.advance(5)
            assert (await _put(session, "web", body(image="other")))[0] == 200


async def test_aci_quota_answers_429_with_retry_after() -> None:
    clock = FakeClock()
    async with Emulator(EmulatorConfig(clock=clock, aci_requests_per_5m=2)) as emu:
        context = ssl.create_default_context(cafile=str(emu.ca_cert_path))
        async with aiohttp.ClientSession(
            base_url=emu.endpoint, connector=aiohttp.TCPConnector(ssl=context)
        ) as session:
            assert (await _put(session, "a", body()))[0] == 201
            clock.advance(100)
            assert (await _put(session, "b", body()))[0] == 201
            status, data, headers = await _put(session, "c", body())
            assert status == 429
            assert data["error"]["code"] == "ResourceRequestsThrottled"
            assert headers["Retry-After"] == "200"
            clock.advance(200)
            assert (await _put(session, "c", body()))[0] == 201


async def test_request_log_and_counters_hold_no_secrets(
    emulator: Emulator, raw_session: aiohttp.ClientSession
) -> None:
    payload = body()
    payload["properties"]["containers"][0]["properties"]["environmentVariables"] = [
        {"name": "PW", "secureValue": "hunter2-secret"}
    ]
    await _put(raw_session, "web", payload)
    async with raw_session.get("/_emulator/requests") as r:
        log = await r.json()
    async with raw_session.get("/_emulator/counters") as r:
        counters = await r.json()
    assert log["requests"][0]["method"] == "PUT"
    assert log["requests"][0]["status"] == 201
    assert "?" not in log["requests"][0]["path"]
    assert counters["counters"]["PUT containerGroup"] == 1
    everything = json.dumps([log, counters, [e.to_json() for e in emulator.request_log]])
    assert "hunter2-secret" not in everything
    async with raw_session.get(group_path("web"), params=Q, headers=AUTH) as r:
        assert "hunter2-secret" not in await r.text()


async def test_control_surface_sets_faults_knobs_and_terminates_jobs(
    emulator: Emulator, raw_session: aiohttp.ClientSession
) -> None:
    async with raw_session.put("/_emulator/faults", json={"rate": 1, "kinds": ["500"], "count": 1}) as r:
        assert r.status == 200
    async with raw_session.get(group_path("web"), params=Q, headers=AUTH) as r:
        assert r.status == 500
        assert (await r.json())["error"]["code"] == "InternalServerError"
    async with raw_session.get(group_path("web"), params=Q, headers=AUTH) as r:
        assert r.status == 404  # count=1: only one fault
    async with raw_session.put("/_emulator/faults", json={"kinds": ["bogus"]}) as r:
        assert r.status == 400
    async with raw_session.delete("/_emulator/faults") as r:
        assert r.status == 204
    async with raw_session.patch("/_emulator/config", json={"page_size": 7, "retry_after": 2}) as r:
        assert (await r.json())["page_size"] == 7
    assert emulator.config.page_size == 7
    async with raw_session.patch("/_emulator/config", json={"bogus": 1}) as r:
        assert r.status == 400
    knobs = {"gpu_quota": 0, "core_quota": None, "inaccessible_images": ["private.example/*"]}
    async with raw_session.patch("/_emulator/config", json=knobs) as r:
        assert r.status == 200
        assert (await r.json())["inaccessible_images"] == ["private.example/*"]
    assert (emulator.config.gpu_quota, emulator.config.core_quota) == (0, None)
    assert emulator.config.inaccessible_images == ("private.example/*",)
    status, data, _ = await _put(raw_session, "private", body(image="private.example/app:1"))
    assert (status, data["error"]["code"]) == (400, "InaccessibleImage")
    for bad in ({"inaccessible_images": "x"}, {"gpu_quota": -1}, {"latency": None}):
        async with raw_session.patch("/_emulator/config", json=bad) as r:
            assert r.status == 400, bad

    await _put(raw_session, "job", body(restartPolicy="Never"))
    async with raw_session.post(
        "/_emulator/terminate", json={"resourceGroup": RG, "name": "job", "exitCode": 0}
    ) as r:
        assert (await r.json()) == {"state": "Succeeded"}
    async with raw_session.get("/_emulator/groups") as r:
        groups = (await r.json())["value"]
    assert groups == [{"id": group_path("job"), "provisioningState": "Succeeded", "state": "Succeeded"}]
    async with raw_session.delete("/_emulator/counters") as r:
        assert r.status == 204
    assert not emulator.counters


async def test_connection_reset_fault_drops_the_connection(
    emulator: Emulator, raw_session: aiohttp.ClientSession
) -> None:
    # aiohttp retries an idempotent request once on a dropped connection, so drop both attempts.
    emulator.faults.set(rate=1.0, kinds=["reset"], count=2)
    with pytest.raises(aiohttp.ClientError):
        await _put(raw_session, "web", body())
    assert emulator.get_group(RG, "web") is None
    assert [e.fault for e in emulator.request_log] == ["reset", "reset"]


async def test_reset_after_fault_applies_the_write_but_loses_the_answer(
    emulator: Emulator, raw_session: aiohttp.ClientSession
) -> None:
    emulator.faults.set(rate=1.0, kinds=["reset_after"], count=2)
    with pytest.raises(aiohttp.ClientError):
        await _put(raw_session, "web", body())
    assert emulator.get_group(RG, "web") is not None


async def test_identity_endpoint_requires_its_header(emulator: Emulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(emulator.identity_endpoint, params={"resource": "https://x"}) as r:
            assert r.status == 401
        async with session.get(
            emulator.identity_endpoint,
            params={"resource": "https://management.azure.com", "api-version": "2019-08-01"},
            headers={"X-IDENTITY-HEADER": emulator.identity_header},
        ) as r:
            token = await r.json()
        assert token["token_type"] == "Bearer"
        assert int(token["expires_on"]) > 0
        # The plain-http port serves nothing but the token endpoint.
        arm = emulator.identity_endpoint.replace("/msi/token", group_path("web"))
        async with session.get(arm, params=Q, headers=AUTH) as r:
            assert r.status == 400


async def test_state_file_persists_groups_without_secrets(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    payload = body()
    payload["properties"]["containers"][0]["properties"]["environmentVariables"] = [
        {"name": "PW", "secureValue": "hunter2-secret"}
    ]
    async with Emulator(EmulatorConfig(state_file=state)) as emu:
        first_ca = emu.ca_cert_path.read_bytes()
        context = ssl.create_default_context(cafile=str(emu.ca_cert_path))
        async with aiohttp.ClientSession(
            base_url=emu.endpoint, connector=aiohttp.TCPConnector(ssl=context)
        ) as session:
            assert (await _put(session, "web", payload))[0] == 201
    text = state.read_text()
    assert "hunter2-secret" not in text
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    async with Emulator(EmulatorConfig(state_file=state)) as emu:
        assert emu.ca_cert_path.read_bytes() == first_ca  # clients keep trusting the same CA
        group = emu.get_group(RG, "web")
    assert group is not None
    assert group["properties"]["provisioningState"] == "Succeeded"
    assert group["properties"]["containers"][0]["properties"]["environmentVariables"] == [{"name": "PW"}]


async def test_corrupt_state_file_is_reported_with_its_path(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("{broken")
    with pytest.raises(ValueError, match=re.escape(str(state))):
        await Emulator(EmulatorConfig(state_file=state)).start()


@pytest.mark.parametrize(
    ("name", "payload", "code"),
    [
        ("web_x", body(), "InvalidContainerGroupName"),
        ("web--x", body(), "InvalidContainerGroupName"),
        ("-web", body(), "InvalidContainerGroupName"),
        (
            "web",
            body(ipAddress={"type": "Public", "dnsNameLabel": "Web", "ports": [{"port": 80}]}),
            "InvalidDnsNameLabel",
        ),
    ],
)
async def test_aci_naming_rules_are_enforced_on_create(
    raw_session: aiohttp.ClientSession, name: str, payload: dict[str, Any], code: str
) -> None:
    status, data, _ = await _put(raw_session, name, payload)
    assert (status, data["error"]["code"]) == (400, code)


async def test_upper_case_group_names_are_created_as_azure_creates_mycontainergroup(
    raw_session: aiohttp.ClientSession,
) -> None:
    status, data, _ = await _put(raw_session, "myContainerGroup", body())
    assert status in (200, 201), data
    assert data["name"] == "myContainerGroup"


async def test_upper_case_container_names_are_still_rejected(raw_session: aiohttp.ClientSession) -> None:
    payload = body()
    payload["properties"]["containers"][0]["name"] = "Web"
    status, data, _ = await _put(raw_session, "web", payload)
    assert (status, data["error"]["code"]) == (400, "InvalidContainerName")


async def test_duplicate_container_names_are_rejected(raw_session: aiohttp.ClientSession) -> None:
    payload = body()
    payload["properties"]["containers"].append(payload["properties"]["containers"][0])
    status, data, _ = await _put(raw_session, "web", payload)
    assert (status, data["error"]["code"]) == (400, "DuplicateContainerName")


async def test_flush_writes_the_state_file_while_running(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    async with Emulator(EmulatorConfig(state_file=state, persist_interval=3600)) as emu:
        context = ssl.create_default_context(cafile=str(emu.ca_cert_path))
        async with aiohttp.ClientSession(
            base_url=emu.endpoint, connector=aiohttp.TCPConnector(ssl=context)
        ) as session:
            await _put(session, "web", body())
        await emu.flush()
        saved = json.loads(state.read_text())
        assert [g["name"] for g in saved["groups"]] == ["web"]


async def test_groups_view_is_read_only_and_renders_like_get(
    emulator: Emulator, raw_session: aiohttp.ClientSession
) -> None:
    await _put(raw_session, "web", body())
    rid = group_path("web")
    assert list(emulator.groups) == [rid]
    assert len(emulator.groups) == 1
    view = emulator.groups[rid.upper()]
    assert view["properties"]["provisioningState"] == "Succeeded"
    view["properties"]["containers"][0]["properties"]["image"] = "mutated"
    again = emulator.get_group(RG, "web")
    assert again is not None
    assert again["properties"]["containers"][0]["properties"]["image"] == "nginx:1.25"
    with pytest.raises(KeyError):
        emulator.groups[group_path("absent")]


async def test_latency_knob_delays_arm_answers_only(
    emulator: Emulator, raw_session: aiohttp.ClientSession
) -> None:
    emulator.config.latency = 0.05
    async with raw_session.get("/_emulator/health") as r:
        assert r.status == 200
    async with raw_session.get(group_path("web"), params=Q, headers=AUTH) as r:
        assert r.status == 404
    durations = [e.duration for e in emulator.request_log]
    assert durations[0] >= 0.05


async def test_state_file_of_another_shape_is_reported_with_its_path(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"version": 1, "groups": [{"name": "x", "colour": "red"}]}))
    with pytest.raises(ValueError, match="this version can read"):
        await Emulator(EmulatorConfig(state_file=state)).start()


async def test_port_in_use_fails_start_cleanly(emulator: Emulator) -> None:
    second = Emulator(EmulatorConfig(port=emulator.port))
    with pytest.raises(OSError, match="address already in use"):
        await second.start()
    await second.stop()  # stopping again is harmless


@pytest.mark.parametrize(
    ("version", "absent", "present"),
    [
        ("2018-10-01", ["sku", "initContainers"], ["osType", "containers"]),
        ("2019-12-01", [], ["sku", "initContainers"]),
        ("2023-05-01", [], ["sku", "initContainers", "provisioningTimeoutInSeconds"]),
        ("2024-05-01-preview", [], ["sku", "initContainers"]),
    ],
)
async def test_a_group_is_answered_in_the_shape_of_the_requested_api_version(
    raw_session: aiohttp.ClientSession, version: str, absent: list[str], present: list[str]
) -> None:
    await _put(raw_session, "web", body())
    for method in ("get", "put", "list"):
        path = group_path("web") if method != "list" else group_path("web").rsplit("/", 1)[0]
        call = raw_session.put if method == "put" else raw_session.get
        kwargs: dict[str, Any] = {"json": body()} if method == "put" else {}
        async with call(path, params={"api-version": version}, headers=AUTH, **kwargs) as r:
            assert r.status == 200, await r.text()
            data = await r.json()
        props = (data["value"][0] if method == "list" else data)["properties"]
        assert not [name for name in absent if name in props], (method, version)
        assert all(name in props for name in present), (method, version)


async def test_an_api_version_azure_does_not_serve_is_no_registered_provider(
    raw_session: aiohttp.ClientSession,
) -> None:
    async with raw_session.get(group_path("web"), params={"api-version": "2019-01-01"}, headers=AUTH) as r:
        assert r.status == 400
        error = (await r.json())["error"]
    assert error["code"] == "NoRegisteredProviderFound"
    assert "2024-05-01-preview" in error["message"]
    assert "2018-10-01" in error["message"]
