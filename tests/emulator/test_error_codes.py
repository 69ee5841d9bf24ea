"""Each failure Azure answers with a code of its own, produced by the emulator and seen through the real SDK.

One row per code: the input that Azure refuses (as public records show: `tests/emulator/evidence/errors.md`),
and the HTTP status and code the SDK must see. The messages name the offending container and value, as
Azure's do.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.containerinstance import models

from reconciler.emulator.limits import FaultSettings
from reconciler.emulator.server import Emulator, EmulatorConfig
from tests.emulator.conftest import RG, SUBSCRIPTION, ClientFactory, body, group_model
from tests.emulator.test_fidelity_shapes import group_url, send_raw


def _container(group: models.ContainerGroup) -> models.Container:
    return group.containers[0]


def env_with_dot(g: models.ContainerGroup) -> None:
    _container(g).environment_variables = [models.EnvironmentVariable(name="app.mode", value="x")]


def limit_below_request(g: models.ContainerGroup) -> None:
    _container(g).resources.limits = models.ResourceLimits(cpu=0.5, memory_in_gb=1.5)


def limit_above_group_total(g: models.ContainerGroup) -> None:
    _container(g).resources.limits = models.ResourceLimits(cpu=2.0, memory_in_gb=1.5)


def gpu(g: models.ContainerGroup) -> None:
    _container(g).resources.requests.gpu = models.GpuResource(count=1, sku="V100")


@dataclass(frozen=True)
class Case:
    change: Callable[[models.ContainerGroup], None]
    config: EmulatorConfig
    status: int
    code: str
    named: str  # a value the message must name


def unchanged(g: models.ContainerGroup) -> None:
    return None


CASES = {
    "env name with a dot": Case(
        env_with_dot, EmulatorConfig(), 400, "InvalidContainerEnvironmentVariable", "container 'app'"
    ),
    "limit below request": Case(
        limit_below_request,
        EmulatorConfig(),
        400,
        "ResourceLimitsLessThanRequests",
        "The 'Cpu' limit value must be",
    ),
    "limit above the group's total request": Case(
        limit_above_group_total,
        EmulatorConfig(),
        400,
        "ContainerLimitGreaterThanContainerGroupTotalRequest",
        "'2'",
    ),
    "GPU without quota": Case(
        gpu, EmulatorConfig(gpu_quota=0), 400, "ContainerGroupQuotaReached", "quota 'V100Cores'"
    ),
    "cores past the quota": Case(
        unchanged, EmulatorConfig(core_quota=0.5), 400, "ContainerGroupQuotaReached", "quota 'StandardCores'"
    ),
    "no capacity in the region": Case(
        unchanged,
        EmulatorConfig(faults=FaultSettings(rate=1.0, kinds=("no_capacity",))),
        409,
        "ServiceUnavailable",
        "westeurope",
    ),
    "an image that cannot be pulled": Case(
        unchanged, EmulatorConfig(inaccessible_images=("nginx:*",)), 400, "InaccessibleImage", "nginx:1.25"
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_azure_refusal_reaches_the_sdk_with_azures_status_and_code(
    aci_client: ClientFactory, case: Case
) -> None:
    async with Emulator(case.config) as emu:
        client = await aci_client(emu)
        group = group_model()
        case.change(group)
        with pytest.raises(HttpResponseError) as caught:
            await client.container_groups.begin_create_or_update(RG, "web", group, polling_interval=0)
        assert caught.value.status_code == case.status
        assert caught.value.error is not None
        assert caught.value.error.code == case.code
        assert case.named in str(caught.value.error.message)
        assert emu.get_group(RG, "web") is None


async def test_memory_missing_from_the_requests_is_resource_some_requests_not_specified(
    aci_client: ClientFactory, emulator: Emulator
) -> None:
    # The SDK's model will not serialise a request without memory, so the body goes through its pipeline raw.
    client = await aci_client(emulator)
    payload = body()
    del payload["properties"]["containers"][0]["properties"]["resources"]["requests"]["memoryInGB"]
    answer = await send_raw(client, "PUT", group_url(emulator.endpoint, SUBSCRIPTION, RG, "web"), payload)
    assert answer.status == 400
    assert answer.body["error"]["code"] == "ResourceSomeRequestsNotSpecified"
    assert answer.body["error"]["message"].startswith(
        "The 'MemoryInGB' request is not specified in 'MemoryInGB '' Cpu '1'' in container 'app' of contain "
        "group 'web'."
    )


async def test_no_requests_at_all_is_resource_requests_not_specified(
    aci_client: ClientFactory, emulator: Emulator
) -> None:
    client = await aci_client(emulator)
    payload = body()
    del payload["properties"]["containers"][0]["properties"]["resources"]["requests"]
    answer = await send_raw(client, "PUT", group_url(emulator.endpoint, SUBSCRIPTION, RG, "web"), payload)
    assert answer.status == 400
    assert answer.body["error"]["code"] == "ResourceRequestsNotSpecified"


async def test_generic_500_carries_arms_diagnostic_message_shape(aci_client: ClientFactory) -> None:
    async with Emulator(EmulatorConfig(faults=FaultSettings(rate=1.0, kinds=("500",)))) as emu:
        client = await aci_client(emu, retry_total=0)
        with pytest.raises(HttpResponseError) as caught:
            await client.container_groups.get(RG, "web")
        assert caught.value.status_code == 500
        assert caught.value.error is not None
        assert caught.value.error.code == "InternalServerError"
        message = str(caught.value.error.message)
        assert re.fullmatch(
            r"Encountered an internal server error\. The tracking activity id is '[0-9a-f-]{36}', "
            r"correlation id is '[0-9a-f-]{36}'\.",
            message,
        )
        assert caught.value.response.headers["x-ms-failure-cause"] == "service"
