"""The emulator through the real azure-mgmt-containerinstance async SDK: what a reconciler relies on."""

from __future__ import annotations

import re
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.pipeline.transport import AioHttpTransport
from azure.mgmt.containerinstance import models

from reconciler.emulator.limits import FaultSettings
from reconciler.emulator.server import Emulator, EmulatorConfig
from tests.emulator.conftest import RG, SUBSCRIPTION, ClientFactory, FakeClock, group_model

pytestmark = pytest.mark.timeout(60)

SECRETS = ("s3cr3t-value", "reg-pass-123", "c2VjcmV0LXZvbHVtZQ==", "storage-key-xyz", "workspace-key-abc")


async def _create(client: Any, name: str, group: models.ContainerGroup | None = None) -> Any:
    poller = await client.container_groups.begin_create_or_update(
        RG, name, group or group_model(), polling_interval=0
    )
    return await poller.result()


async def test_create_returns_succeeded_group_with_azure_defaults(
    emulator: Emulator, aci_client: ClientFactory
) -> None:
    client = await aci_client(emulator)
    result = await _create(client, "web", group_model(dns_label="web-prod"))
    assert result.provisioning_state == "Succeeded"
    assert result.sku == "Standard"
    assert result.id == (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.ContainerInstance"
        "/containerGroups/web"
    )
    assert result.ip_address.ip
    assert result.ip_address.fqdn == "web-prod.westeurope.azurecontainer.io"
    assert result.containers[0].environment_variables == []
    assert result.init_containers == []
    assert result.restart_policy == "Always"
    assert result.instance_view.state == "Running"
    view = result.containers[0].instance_view
    assert view.current_state.state == "Running"
    assert view.restart_count == 0
    assert [e.name for e in view.events] == ["Pulling", "Pulled", "Started"]
    assert emulator.counters["PUT containerGroup"] == 1
    assert emulator.counters["GET operation"] >= 1


async def test_get_returns_group_and_missing_group_raises_not_found(
    emulator: Emulator, aci_client: ClientFactory
) -> None:
    client = await aci_client(emulator)
    await _create(client, "web")
    got = await client.container_groups.get(RG, "WEB")  # ARM names are case-insensitive
    assert got.name == "web"
    assert got.containers[0].image == "nginx:1.25"
    with pytest.raises(ResourceNotFoundError) as info:
        await client.container_groups.get(RG, "absent")
    assert info.value.error is not None
    assert info.value.error.code == "ResourceNotFound"


@pytest.fixture
def emulator_config() -> EmulatorConfig:
    return EmulatorConfig(page_size=2)


async def test_list_pages_through_every_group_with_next_link(
    emulator: Emulator, aci_client: ClientFactory
) -> None:
    client = await aci_client(emulator)
    names = [f"g{i}" for i in range(5)]
    for name in names:
        await _create(client, name)
    poller = await client.container_groups.begin_create_or_update(
        "other-rg", "elsewhere", group_model(), polling_interval=0
    )
    await poller.result()
    emulator.reset_counters()
    by_rg = [g.name async for g in client.container_groups.list_by_resource_group(RG)]
    assert by_rg == names
    assert emulator.counters["GET containerGroups.listByResourceGroup"] == 3  # pages of 2, 2, 1
    by_sub = [g.name async for g in client.container_groups.list()]
    assert sorted(by_sub) == sorted([*names, "elsewhere"])
    assert emulator.counters["GET containerGroups.listBySubscription"] == 3


async def test_update_in_place_restarts_containers_and_keeps_ip(
    emulator: Emulator, aci_client: ClientFactory
) -> None:
    client = await aci_client(emulator)
    created = await _create(client, "web", group_model(dns_label="web-app"))
    response_codes: list[int] = []
    poller = await client.container_groups.begin_create_or_update(
        RG,
        "web",
        group_model(image="nginx:1.26", dns_label="web-app"),
        polling_interval=0,
        raw_response_hook=lambda r: response_codes.append(r.http_response.status_code),
    )
    updated = await poller.result()
    assert response_codes[0] == 200  # an update, not a create
    assert updated.containers[0].image == "nginx:1.26"
    assert updated.ip_address.ip == created.ip_address.ip
    view = updated.containers[0].instance_view
    assert view.restart_count == 1
    assert view.previous_state.state == "Terminated"
    assert "Killing" in [e.name for e in view.events]


async def test_identical_put_restarts_containers_as_azure_does(
    emulator: Emulator, aci_client: ClientFactory
) -> None:
    client = await aci_client(emulator)
    await _create(client, "web")
    again = await _create(client, "web")
    assert again.containers[0].instance_view.restart_count == 1


async def test_tags_patch_changes_tags_without_restart(emulator: Emulator, aci_client: ClientFactory) -> None:
    client = await aci_client(emulator)
    await _create(client, "web", group_model(tags={"team": "a"}))
    patched = await client.container_groups.update(RG, "web", models.Resource(tags={"team": "b", "x": "y"}))
    assert patched.tags == {"team": "b", "x": "y"}
    got = await client.container_groups.get(RG, "web")
    assert got.tags == {"team": "b", "x": "y"}
    assert got.containers[0].instance_view.restart_count == 0
    assert emulator.counters["PATCH containerGroup"] == 1


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"cpu": 2.0}, "cpu"),
        ({"memory": 3.0}, "memory"),
        ({"restart_policy": "Never"}, "restart policy"),
    ],
)
async def test_immutable_change_is_rejected_with_azures_error(
    emulator: Emulator, aci_client: ClientFactory, change: dict[str, Any], expected: str
) -> None:
    client = await aci_client(emulator)
    await _create(client, "web")
    with pytest.raises(HttpResponseError) as info:
        await client.container_groups.begin_create_or_update(
            RG, "web", group_model(**change), polling_interval=0
        )
    assert info.value.status_code == 400
    assert info.value.error is not None
    assert info.value.error.code == "InvalidContainerGroupUpdate"
    assert "you must delete it first and then create a new one" in info.value.error.message
    assert expected in info.value.error.message.lower()


async def test_os_type_change_is_rejected(emulator: Emulator, aci_client: ClientFactory) -> None:
    client = await aci_client(emulator)
    await _create(client, "web")
    windows = group_model()
    windows.os_type = "Windows"
    with pytest.raises(HttpResponseError) as info:
        await client.container_groups.begin_create_or_update(RG, "web", windows, polling_interval=0)
    assert info.value.error is not None
    assert info.value.error.code == "InvalidContainerGroupUpdate"


async def test_delete_removes_group(emulator: Emulator, aci_client: ClientFactory) -> None:
    client = await aci_client(emulator)
    await _create(client, "web")
    poller = await client.container_groups.begin_delete(RG, "web", polling_interval=0)
    await poller.result()
    with pytest.raises(ResourceNotFoundError):
        await client.container_groups.get(RG, "web")
    # Deleting what is not there is not an error in ARM (204).
    poller = await client.container_groups.begin_delete(RG, "web", polling_interval=0)
    await poller.result()


async def test_lro_polls_through_provisioning_states_on_a_fake_clock(aci_client: ClientFactory) -> None:
    clock = FakeClock()
    async with Emulator(EmulatorConfig(provisioning_delay=30, delete_delay=30, clock=clock)) as emu:
        client = await aci_client(emu)
        poller = await client.container_groups.begin_create_or_update(
            RG, "slow", group_model(), polling_interval=0
        )
        assert poller.status() == "InProgress"
        first = await client.container_groups.get(RG, "slow")
        assert first.provisioning_state == "Pending"
        clock.advance(20)
        assert (await client.container_groups.get(RG, "slow")).provisioning_state == "Creating"
        await poller.polling_method().update_status()
        assert not poller.done()
        clock.advance(10)
        result = await poller.result()
        assert result.provisioning_state == "Succeeded"
        assert emu.counters["GET operation"] >= 2

        delete = await client.container_groups.begin_delete(RG, "slow", polling_interval=0)
        assert (await client.container_groups.get(RG, "slow")).provisioning_state == "Deleting"
        clock.advance(30)
        await delete.result()
        with pytest.raises(ResourceNotFoundError):
            await client.container_groups.get(RG, "slow")


async def test_request_without_token_gets_401(emulator: Emulator, raw_session: Any) -> None:
    from tests.emulator.conftest import Q, group_path

    async with raw_session.get(group_path("web"), params=Q) as response:
        assert response.status == 401
        payload = await response.json()
    assert payload["error"]["code"] == "AuthenticationFailed"
    assert emulator.counters["status 401"] == 1


async def test_sdk_honours_retry_after_of_a_429(
    aci_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    sleeps: list[float] = []

    async def fake_sleep(self: AioHttpTransport, duration: float) -> None:
        sleeps.append(duration)
        clock.advance(duration)

    monkeypatch.setattr(AioHttpTransport, "sleep", fake_sleep)
    config = EmulatorConfig(clock=clock, read_bucket_size=1, read_refill_rate=0.5)
    async with Emulator(config) as emu:
        client = await aci_client(emu)
        with pytest.raises(ResourceNotFoundError):
            await client.container_groups.get(RG, "a")  # takes the only read token
        with pytest.raises(ResourceNotFoundError):
            await client.container_groups.get(RG, "b")  # 429, waits Retry-After: 2, then 404
    assert emu.counters["status 429"] == 1
    assert sleeps == [2]
    assert emu.counters["GET containerGroup"] == 3


async def test_sdk_retries_injected_503(emulator: Emulator, aci_client: ClientFactory) -> None:
    client = await aci_client(emulator)
    emulator.faults.set(FaultSettings(rate=1.0, kinds=("503",), count=2, methods=("GET",)))
    with pytest.raises(ResourceNotFoundError):
        await client.container_groups.get(RG, "web")
    assert emulator.counters["status 503"] == 2
    assert emulator.faults.injected == 2


async def test_injected_provisioning_failure_fails_the_lro(
    emulator: Emulator, aci_client: ClientFactory
) -> None:
    client = await aci_client(emulator)
    emulator.faults.set(rate=1.0, kinds=["provision_fail"], count=1)
    poller = await client.container_groups.begin_create_or_update(
        RG, "bad", group_model(), polling_interval=0
    )
    with pytest.raises(HttpResponseError):
        await poller.result()
    got = await client.container_groups.get(RG, "bad")
    assert got.provisioning_state == "Failed"


async def test_secrets_are_never_returned(emulator: Emulator, aci_client: ClientFactory) -> None:
    client = await aci_client(emulator)
    group = group_model(
        env=[
            models.EnvironmentVariable(name="PLAIN", value="visible"),
            models.EnvironmentVariable(name="TOKEN", secure_value="s3cr3t-value"),
        ]
    )
    group.image_registry_credentials = [
        models.ImageRegistryCredential(server="r.azurecr.io", username="u", password="reg-pass-123")
    ]
    group.volumes = [
        models.Volume(name="sec", secret={"k": "c2VjcmV0LXZvbHVtZQ=="}),
        models.Volume(
            name="files",
            azure_file=models.AzureFileVolume(
                share_name="s", storage_account_name="acct", storage_account_key="storage-key-xyz"
            ),
        ),
    ]
    group.diagnostics = models.ContainerGroupDiagnostics(
        log_analytics=models.LogAnalytics(workspace_id="w", workspace_key="workspace-key-abc")
    )
    created = await _create(client, "sec", group)
    got = await client.container_groups.get(RG, "sec")
    listed = [g async for g in client.container_groups.list_by_resource_group(RG)]
    for item in (created, got, listed[0]):
        text = str(item.as_dict())
        for secret in (
            "s3cr3t-value",
            "reg-pass-123",
            "c2VjcmV0LXZvbHVtZQ==",
            "storage-key-xyz",
            "workspace-key-abc",
        ):
            assert secret not in text
    env = {e.name: e for e in got.containers[0].environment_variables}
    assert env["TOKEN"].secure_value is None
    assert env["PLAIN"].value == "visible"
    assert got.volumes[0].secret == {}
    stored = emulator.submitted_body(RG, "sec")
    assert stored is not None
    assert stored["properties"]["containers"][0]["properties"]["environmentVariables"][1]["secureValue"] == (
        "s3cr3t-value"
    )


async def test_restart_stop_start_and_logs(emulator: Emulator, aci_client: ClientFactory) -> None:
    client = await aci_client(emulator)
    await _create(client, "web")
    await (await client.container_groups.begin_restart(RG, "web", polling_interval=0)).result()
    got = await client.container_groups.get(RG, "web")
    assert got.containers[0].instance_view.restart_count == 0  # the restart API counts no restart
    assert "Killing" in [e.name for e in got.containers[0].instance_view.events]
    await client.container_groups.stop(RG, "web")
    got = await client.container_groups.get(RG, "web")
    assert got.instance_view.state == "Stopped"
    assert got.containers[0].instance_view.current_state.state == "Terminated"
    await (await client.container_groups.begin_start(RG, "web", polling_interval=0)).result()
    got = await client.container_groups.get(RG, "web")
    assert got.instance_view.state == "Running"
    emulator.set_logs(RG, "web", "app", "one\ntwo\nthree\n")
    logs = await client.containers.list_logs(RG, "web", "app", tail=2)
    assert logs.content == "two\nthree\n"
    stamped = await client.containers.list_logs(RG, "web", "app", tail=1, timestamps=True)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z three\n", stamped.content or "")


async def test_finished_job_reports_exit_code_and_rejects_updates(
    emulator: Emulator, aci_client: ClientFactory
) -> None:
    client = await aci_client(emulator)
    await _create(client, "job", group_model(restart_policy="Never", command=["sleep", "inf"]))
    assert emulator.terminate(RG, "job", exit_code=3) == "Failed"
    got = await client.container_groups.get(RG, "job")
    assert got.instance_view.state == "Failed"
    state = got.containers[0].instance_view.current_state
    assert (state.state, state.exit_code, state.detail_status) == ("Terminated", 3, "Error")
    with pytest.raises(HttpResponseError) as info:
        await client.container_groups.begin_create_or_update(
            RG, "job", group_model(restart_policy="Never", image="new"), polling_interval=0
        )
    assert info.value.status_code == 409
    # Tags can still be patched on a finished group.
    await client.container_groups.update(RG, "job", models.Resource(tags={"done": "yes"}))


async def test_on_failure_policy_restarts_a_failing_container(
    emulator: Emulator, aci_client: ClientFactory
) -> None:
    client = await aci_client(emulator)
    await _create(client, "job", group_model(restart_policy="OnFailure", command=["sleep", "inf"]))
    assert emulator.terminate(RG, "job", exit_code=1) == "Running"
    assert emulator.terminate(RG, "job", exit_code=0) == "Succeeded"
    got = await client.container_groups.get(RG, "job")
    assert got.containers[0].instance_view.restart_count == 1


async def test_default_azure_credential_through_managed_identity_endpoint(
    emulator: Emulator, aci_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.identity.aio import DefaultAzureCredential

    for name in (
        "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_USERNAME",
        "AZURE_FEDERATED_TOKEN_FILE", "MSI_ENDPOINT", "MSI_SECRET", "IMDS_ENDPOINT",
        "IDENTITY_SERVER_THUMBPRINT",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IDENTITY_ENDPOINT", emulator.identity_endpoint)
    monkeypatch.setenv("IDENTITY_HEADER", emulator.identity_header)
    credential = DefaultAzureCredential(
        exclude_cli_credential=True,
        exclude_developer_cli_credential=True,
        exclude_powershell_credential=True,
        exclude_visual_studio_code_credential=True,
        exclude_shared_token_cache_credential=True,
    )
    async with credential:
        client = await aci_client(emulator, credential=credential)
        created = await _create(client, "mi")
    assert created.provisioning_state == "Succeeded"
    assert emulator.counters["GET identity.token"] == 1
