"""`AzureGateway` through the real SDK pipeline, against an azure-core fake transport (no network)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ServiceRequestError

from reconciler.cloud.azure import API_VERSION, AzureGateway, Target, connect
from reconciler.cloud.errors import (
    NotFoundError,
    OperationTimeoutError,
    RetryableError,
    StalledError,
)
from tests.fakes.azure_transport import FakeArmTransport, FakeRequest, Reply

ENDPOINT = "https://management.azure.com"
GROUPS = "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups"
OP_URL = (
    f"{ENDPOINT}/subscriptions/sub/providers/Microsoft.ContainerInstance/locations/westeurope/operations/op1"
)


def group_json(
    name: str, *, state: str = "Succeeded", instance: str | None = None, **extra: Any
) -> dict[str, Any]:
    props: dict[str, Any] = {"provisioningState": state, "sku": "Standard", "containers": [], **extra}
    if instance is not None:
        props["instanceView"] = {"state": instance, "events": []}
    return {
        "id": f"{GROUPS}/{name}",
        "name": name,
        "type": "Microsoft.ContainerInstance/containerGroups",
        "location": "westeurope",
        "tags": {"team": "payments"},
        "properties": props,
    }


class Recorder:
    """Sleeps requested by the adapter (never real) and on_request calls."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.requests: list[tuple[str, str]] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def on_request(self, operation: str, status: str, duration: float) -> None:
        assert duration >= 0
        self.requests.append((operation, status))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make(recorder: Recorder) -> Callable[..., tuple[AzureGateway, FakeArmTransport]]:
    def build(handler: Callable[[FakeRequest], Any], **target: Any) -> tuple[AzureGateway, FakeArmTransport]:
        transport = FakeArmTransport(handler)
        settings: dict[str, Any] = {
            "subscription_id": "sub",
            "endpoint": ENDPOINT,
            "credential": "static",
            "poll_interval": 2.0,
            **target,
        }
        gateway = connect(
            Target(**settings), transport=transport, on_request=recorder.on_request, sleep=recorder.sleep
        )
        return gateway, transport

    return build


def script(*replies: Reply | BaseException) -> Callable[[FakeRequest], Reply | BaseException]:
    queue = list(replies)

    def handler(_: FakeRequest) -> Reply | BaseException:
        assert queue, "more requests than scripted"
        return queue.pop(0)

    return handler


async def test_list_follows_next_link_one_request_per_page(make: Any, recorder: Recorder) -> None:
    next_link = f"{ENDPOINT}{GROUPS}?api-version={API_VERSION}&$skiptoken=abc"
    gateway, transport = make(
        script(
            Reply(200, {"value": [group_json("a"), group_json("b")], "nextLink": next_link}),
            Reply(200, {"value": [group_json("c")]}),
        )
    )
    groups = await gateway.list_groups("rg")
    assert [g.name for g in groups] == ["a", "b", "c"]
    assert [r.url for r in transport.requests] == [f"{ENDPOINT}{GROUPS}?api-version={API_VERSION}", next_link]
    assert recorder.requests == [("list", "200"), ("list", "200")]
    assert all(g.resource_group == "rg" for g in groups)


SUBSCRIPTION_GROUPS = "/subscriptions/sub/providers/Microsoft.ContainerInstance/containerGroups"


def in_group(body: dict[str, Any], rg: str) -> dict[str, Any]:
    return {**body, "id": body["id"].replace("/resourceGroups/rg/", f"/resourceGroups/{rg}/")}


async def test_subscription_list_pages_once_for_every_resource_group_and_takes_the_rg_from_the_id(
    make: Any, recorder: Recorder
) -> None:
    next_link = f"{ENDPOINT}{SUBSCRIPTION_GROUPS}?api-version={API_VERSION}&$skipToken=abc"
    gateway, transport = make(
        script(
            Reply(200, {"value": [in_group(group_json("a"), "rg-one")], "nextLink": next_link}),
            # ARM may upper-case the resource group in ids of subscription-wide lists: kept as returned.
            Reply(200, {"value": [in_group(group_json("b"), "RG-TWO")]}),
        )
    )
    groups = await gateway.list_subscription_groups()
    assert [(g.resource_group, g.name) for g in groups] == [("rg-one", "a"), ("RG-TWO", "b")]
    assert [r.url for r in transport.requests] == [
        f"{ENDPOINT}{SUBSCRIPTION_GROUPS}?api-version={API_VERSION}",
        next_link,
    ]
    assert recorder.requests == [("list", "200"), ("list", "200")]


async def test_subscription_list_refused_by_rbac_raises_a_stalled_403(make: Any) -> None:
    gateway, _ = make(
        script(
            Reply(
                403,
                {
                    "error": {
                        "code": "AuthorizationFailed",
                        "message": "The client 'x' does not have authorization to perform action "
                        "'Microsoft.ContainerInstance/containerGroups/read' over scope '/subscriptions/sub'.",
                    }
                },
            )
        )
    )
    with pytest.raises(StalledError) as info:
        await gateway.list_subscription_groups()
    assert info.value.status == 403
    assert info.value.code == "AuthorizationFailed"


async def test_subscription_list_of_a_missing_subscription_is_an_error_not_empty(make: Any) -> None:
    gateway, _ = make(script(Reply(404, {"error": {"code": "SubscriptionNotFound", "message": "not found"}})))
    with pytest.raises(StalledError):
        await gateway.list_subscription_groups()


async def test_list_keeps_the_raw_arm_json_including_unknown_fields(make: Any) -> None:
    raw = group_json("a", futureField={"x": 1}, instance="Running")
    gateway, _ = make(script(Reply(200, {"value": [raw]})))
    [group] = await gateway.list_groups("rg")
    assert group.body == raw
    assert group.tags == {"team": "payments"}
    assert group.provisioning_state == "Succeeded"
    assert group.instance_state == "Running"


async def test_list_of_a_missing_resource_group_is_empty(make: Any) -> None:
    gateway, _ = make(
        script(
            Reply(
                404,
                {
                    "error": {
                        "code": "ResourceGroupNotFound",
                        "message": "Resource group 'rg' could not be found.",
                    }
                },
            )
        )
    )
    assert await gateway.list_groups("rg") == []


async def test_list_throttled_raises_retryable_with_retry_after_and_sends_once(make: Any) -> None:
    gateway, transport = make(
        script(Reply(429, {"error": {"code": "TooManyRequests", "message": "slow"}}, {"Retry-After": "7"}))
    )
    with pytest.raises(RetryableError) as info:
        await gateway.list_groups("rg")
    assert info.value.retry_after == 7.0
    assert len(transport.requests) == 1  # the SDK's own retry policy is off


async def test_get_missing_group_is_none(make: Any) -> None:
    gateway, _ = make(script(Reply(404, {"error": {"code": "ResourceNotFound", "message": "gone"}})))
    assert await gateway.get_group("rg", "web") is None


async def test_get_reads_instance_view_state(make: Any) -> None:
    gateway, transport = make(script(Reply(200, group_json("job", instance="Succeeded"))))
    group = await gateway.get_group("rg", "job")
    assert group is not None
    assert group.instance_state == "Succeeded"
    assert transport.requests[0].path == f"{GROUPS}/job"
    assert transport.requests[0].headers["Authorization"].startswith("Bearer ")


async def test_put_sends_the_exact_desired_json_and_polls_the_async_operation(
    make: Any, recorder: Recorder
) -> None:
    body = {
        "location": "westeurope",
        "tags": {"managed-by": "aci-reconciler"},
        "properties": {
            "containers": [
                {
                    "name": "web",
                    "properties": {
                        "image": "nginx",
                        "environmentVariables": [{"name": "PW", "secureValue": "hunter2"}],
                        "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                    },
                }
            ],
            "osType": "Linux",
            "someFieldTheSdkDoesNotKnow": {"kept": True},
        },
    }
    gateway, transport = make(
        script(
            Reply(
                201, group_json("web", state="Pending"), {"Azure-AsyncOperation": OP_URL, "Retry-After": "3"}
            ),
            Reply(200, {"status": "InProgress"}),  # no Retry-After: poll_interval
            Reply(200, {"status": "Succeeded"}),
            Reply(200, group_json("web", instance="Running")),
        )
    )
    group = await gateway.create_or_update("rg", "web", body, timeout=60)
    put = transport.requests[0]
    assert put.method == "PUT"
    assert put.headers["Content-Type"] == "application/json"
    assert put.json() == body
    assert [r.method for r in transport.requests] == ["PUT", "GET", "GET", "GET"]
    assert transport.requests[1].url == OP_URL
    assert recorder.sleeps == [3.0, 2.0]
    assert group.instance_state == "Running"
    assert [op for op, _ in recorder.requests] == ["put", "poll", "poll", "get"]


async def test_put_polls_provisioning_state_when_no_operation_header(make: Any, recorder: Recorder) -> None:
    gateway, transport = make(
        script(
            Reply(201, group_json("web", state="Creating")),
            Reply(200, group_json("web", state="Creating")),
            Reply(200, group_json("web", state="Succeeded")),
            Reply(200, group_json("web", state="Succeeded")),
        )
    )
    await gateway.create_or_update("rg", "web", {"location": "x"}, timeout=60)
    assert len(transport.requests) == 4
    assert recorder.sleeps == [2.0, 2.0]


async def test_put_whose_operation_fails_with_bad_image_is_stalled(make: Any) -> None:
    gateway, _ = make(
        script(
            Reply(201, group_json("web", state="Pending"), {"Azure-AsyncOperation": OP_URL}),
            Reply(
                200,
                {
                    "status": "Failed",
                    "error": {"code": "InaccessibleImage", "message": "The image 'nope' is not accessible."},
                },
            ),
        )
    )
    with pytest.raises(StalledError) as info:
        await gateway.create_or_update("rg", "web", {"location": "x"}, timeout=60)
    assert info.value.code == "InaccessibleImage"


async def test_transient_poll_failure_is_tolerated_until_the_operation_finishes(make: Any) -> None:
    gateway, transport = make(
        script(
            Reply(201, group_json("web", state="Pending"), {"Azure-AsyncOperation": OP_URL}),
            Reply(503, {"error": {"code": "ServiceUnavailable", "message": "blip"}}, {"Retry-After": "5"}),
            ServiceRequestError("connection reset"),
            Reply(200, {"status": "Succeeded"}),
            Reply(200, group_json("web")),
        )
    )
    await gateway.create_or_update("rg", "web", {"location": "x"}, timeout=60)
    assert [r.method for r in transport.requests].count("PUT") == 1


async def test_lro_that_never_finishes_times_out_as_retryable(make: Any) -> None:
    forever = asyncio.Event()

    async def blocked_sleep(_: float) -> None:
        await forever.wait()

    transport = FakeArmTransport(
        script(Reply(201, group_json("web", state="Pending"), {"Azure-AsyncOperation": OP_URL}))
    )
    gateway = connect(
        Target(subscription_id="sub", endpoint=ENDPOINT, credential="static"),
        transport=transport,
        sleep=blocked_sleep,
    )
    with pytest.raises(OperationTimeoutError) as info:
        await gateway.create_or_update("rg", "web", {"location": "x"}, timeout=0.01)
    assert info.value.retryable
    await gateway.close()


async def test_poll_url_on_another_host_is_refused_without_sending_the_token(make: Any) -> None:
    gateway, transport = make(
        script(
            Reply(
                201,
                group_json("web", state="Pending"),
                {"Azure-AsyncOperation": "https://evil.example/operations/1"},
            )
        )
    )
    with pytest.raises(StalledError, match="refusing"):
        await gateway.create_or_update("rg", "web", {"location": "x"}, timeout=60)
    assert all("evil.example" not in r.url for r in transport.requests)


async def test_put_rejected_update_is_stalled_and_message_never_echoes_the_body(make: Any) -> None:
    gateway, _ = make(
        script(
            Reply(
                400,
                {
                    "error": {
                        "code": "InvalidContainerGroupUpdate",
                        "message": "The updates on container group 'web' are invalid.",
                    }
                },
            )
        )
    )
    body = {"location": "x", "properties": {"secret": "hunter2-very-secret"}}
    with pytest.raises(StalledError) as info:
        await gateway.create_or_update("rg", "web", body, timeout=60)
    assert "hunter2" not in str(info.value)
    assert "update rejected" in str(info.value)


async def test_connection_error_is_retryable_and_not_retried_by_the_sdk(
    make: Any, recorder: Recorder
) -> None:
    gateway, transport = make(script(ServiceRequestError("Cannot connect to host")))
    with pytest.raises(RetryableError):
        await gateway.get_group("rg", "web")
    assert len(transport.requests) == 1
    assert recorder.requests == [("get", "error")]


async def test_delete_waits_until_the_group_is_gone(make: Any, recorder: Recorder) -> None:
    gateway, transport = make(
        script(
            Reply(200, group_json("web")),
            Reply(200, group_json("web", state="Deleting")),
            Reply(404, {"error": {"code": "ResourceNotFound", "message": "gone"}}),
        )
    )
    await gateway.delete("rg", "web", timeout=60)
    assert [r.method for r in transport.requests] == ["DELETE", "GET", "GET"]
    assert recorder.sleeps == [2.0]


async def test_delete_accepted_polls_location_then_checks_gone(make: Any) -> None:
    location = f"{ENDPOINT}/subscriptions/sub/operationresults/xyz"
    gateway, transport = make(
        script(
            Reply(202, None, {"Location": location, "Retry-After": "1"}),
            Reply(202, None, {"Location": location}),
            Reply(204),
            Reply(404, {"error": {"code": "ResourceNotFound", "message": "gone"}}),
        )
    )
    await gateway.delete("rg", "web", timeout=60)
    assert [r.url for r in transport.requests][1:3] == [location, location]


async def test_delete_of_a_missing_group_is_not_an_error(make: Any) -> None:
    gateway, _ = make(script(Reply(404, {"error": {"code": "ResourceNotFound", "message": "gone"}})))
    await gateway.delete("rg", "web", timeout=60)


async def test_patch_sends_only_the_tags(make: Any) -> None:
    gateway, transport = make(script(Reply(200, group_json("web"))))
    await gateway.patch_tags("rg", "web", {"managed-by": "aci-reconciler"})
    assert transport.requests[0].method == "PATCH"
    assert transport.requests[0].json() == {"tags": {"managed-by": "aci-reconciler"}}


async def test_patch_of_a_missing_group_raises_not_found(make: Any) -> None:
    gateway, _ = make(script(Reply(404, {"error": {"code": "ResourceNotFound", "message": "gone"}})))
    with pytest.raises(NotFoundError):
        await gateway.patch_tags("rg", "web", {})


async def test_logs_pass_tail_and_return_content(make: Any) -> None:
    gateway, transport = make(script(Reply(200, {"content": "hello\nworld\n"})))
    assert await gateway.logs("rg", "web", "app", tail=10) == "hello\nworld\n"
    assert transport.requests[0].path == f"{GROUPS}/web/containers/app/logs"
    assert transport.requests[0].query["tail"] == ["10"]


async def test_names_are_url_quoted(make: Any) -> None:
    gateway, transport = make(script(Reply(404, {"error": {"code": "ResourceNotFound", "message": "x"}})))
    await gateway.get_group("rg (prod)", "web")
    assert "/resourceGroups/rg%20%28prod%29/" in transport.requests[0].url


async def test_a_failing_metrics_hook_does_not_break_the_call() -> None:
    def broken(*_: Any) -> None:
        raise RuntimeError("metrics down")

    gateway = connect(
        Target(subscription_id="sub", endpoint=ENDPOINT, credential="static"),
        transport=FakeArmTransport(script(Reply(200, {"value": []}))),
        on_request=broken,
    )
    assert await gateway.list_groups("rg") == []
    await gateway.close()


@pytest.mark.parametrize(
    ("target", "fix"),
    [
        (Target(subscription_id="sub", credential="static"), "emulator"),
        (Target(subscription_id="sub", endpoint="http://127.0.0.1:1"), "https"),
        (Target(subscription_id=" "), "subscription"),
        (Target(subscription_id="sub", endpoint=ENDPOINT, ca_cert=Path("/nonexistent/ca.pem")), "CA"),
    ],
)
def test_bad_targets_are_refused_with_the_fix(target: Target, fix: str) -> None:
    with pytest.raises(ValueError, match=fix):
        target.validate()


async def test_retry_after_zero_on_a_poll_falls_back_to_the_poll_interval(
    make: Any, recorder: Recorder
) -> None:
    gateway, _ = make(
        script(
            Reply(
                201, group_json("web", state="Pending"), {"Azure-AsyncOperation": OP_URL, "Retry-After": "0"}
            ),
            Reply(200, {"status": "Succeeded"}),
            Reply(200, group_json("web")),
        )
    )
    await gateway.create_or_update("rg", "web", {"location": "x"}, timeout=60)
    assert recorder.sleeps == [2.0]


async def test_transient_failure_of_the_final_read_does_not_fail_the_write(
    make: Any, recorder: Recorder
) -> None:
    gateway, transport = make(
        script(
            Reply(201, group_json("web", state="Pending"), {"Azure-AsyncOperation": OP_URL}),
            Reply(200, {"status": "Succeeded"}),
            Reply(429, {"error": {"code": "TooManyRequests", "message": "slow"}}, {"Retry-After": "4"}),
            Reply(200, group_json("web", instance="Running")),
        )
    )
    group = await gateway.create_or_update("rg", "web", {"location": "x"}, timeout=60)
    assert group.instance_state == "Running"
    assert [r.method for r in transport.requests].count("PUT") == 1
    assert recorder.sleeps == [2.0, 4.0]
