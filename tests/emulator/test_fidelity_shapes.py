"""Shared machinery of the fidelity tests, and the tests of that machinery.

`test_fidelity_examples.py` and `test_fidelity_recordings.py` replay Microsoft's material against the
emulator and compare *shapes*: which fields an answer carries and their JSON types, values left out where
the server generates them. This module holds what both need: where the material is, a client of the real
async SDK bound to an emulator, raw requests for bodies that must go out byte for byte, and the shape
comparison itself. The tests at the bottom pin the comparison down, so a fidelity test cannot pass because
the comparison is blind.
"""

from __future__ import annotations

import ast
import asyncio
import fnmatch
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ResponseNotReadError, StreamConsumedError
from azure.core.pipeline import PipelineResponse
from azure.core.rest import HttpRequest
from azure.mgmt.containerinstance.aio import ContainerInstanceManagementClient

from reconciler.emulator import spec

SHARED = Path(__file__).parents[2].parent / "shared" / "azure"
EXAMPLES = SHARED / "spec-2023-05-01" / "examples"
RECORDINGS = SHARED / "recordings"
SKIP_REASON = f"Microsoft's material is not at {SHARED} (the fidelity tests replay it)"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=SKIP_REASON)

API = "2023-05-01"
PROVIDER = "providers/Microsoft.ContainerInstance/containerGroups"

# Fields Azure returns at 2023-05-01 that the spec does not describe (seen in every 2023-05-01 recording).
AZURE_EXTRAS = frozenset(
    {"/properties/provisioningTimeoutInSeconds", "/properties/isCustomProvisioningTimeout"}
)

# Fields whose presence depends on how far the group has got, not on the request: the public IP appears once
# the group runs, container instance views once containers exist, events as they happen.
STATE_DEPENDENT = (
    "/properties/ipAddress/ip",
    "/properties/instanceView/events/*",
    "/properties/containers/*/properties/instanceView",
    "/properties/containers/*/properties/instanceView/*",
    "/properties/initContainers/*/properties/instanceView",
    "/properties/initContainers/*/properties/instanceView/*",
)


class FakeCredential:
    """An azure-core async token credential: the emulator wants a bearer token, not a valid one."""

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("emulator-token", int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> FakeCredential:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@asynccontextmanager
async def sdk_client(emu: Any, subscription: str) -> AsyncIterator[ContainerInstanceManagementClient]:
    """The real async SDK client, pointed at the emulator and trusting its CA."""
    client = ContainerInstanceManagementClient(
        FakeCredential(),
        subscription,
        base_url=emu.endpoint,
        connection_verify=str(emu.ca_cert_path),
    )
    async with client:
        yield client


UNREAD = "<body not readable from a raw_response_hook>"


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


@dataclass
class Recorder:
    """A `raw_response_hook` that keeps every HTTP answer an SDK call received, in order."""

    answers: list[Answer] = field(default_factory=list)

    def __call__(self, response: PipelineResponse[Any, Any]) -> None:
        http = response.http_response
        try:
            text = http.text()
        except (StreamConsumedError, ResponseNotReadError):
            # Long-running operations' first answers are streamed: status and headers are all the hook
            # can see. Tests that need such a body send the request raw.
            text, unread = "", True
        else:
            unread = False
        body = UNREAD if unread else (json.loads(text) if text else None)
        self.answers.append(Answer(http.status_code, body, dict(http.headers.items())))

    @property
    def first(self) -> Answer:
        assert self.answers, "the SDK call received no answer"
        return self.answers[0]


async def send_raw(
    client: ContainerInstanceManagementClient, method: str, url: str, body: Any = None
) -> Answer:
    """One request through the SDK's own pipeline (auth, TLS), with the body exactly as given."""
    content = None if body is None else json.dumps(body)
    headers = {"Content-Type": "application/json"} if content is not None else {}
    request = HttpRequest(method, url, content=content, headers=headers)
    response = await client._client.send_request(request)  # not streamed: the body is read already
    text = response.text()
    return Answer(response.status_code, json.loads(text) if text else None, dict(response.headers.items()))


async def wait_async_operation(client: ContainerInstanceManagementClient, answer: Answer) -> str:
    """Follow an `Azure-AsyncOperation` header to its end; the emulator's operations finish on read."""
    url = answer.headers.get("Azure-AsyncOperation") or answer.headers.get("azure-asyncoperation")
    if not url:
        return "None"
    status = "InProgress"
    for _ in range(50):
        polled = await send_raw(client, "GET", url)
        status = str((polled.body or {}).get("status", ""))
        if status not in ("InProgress", "Running", "Accepted", ""):
            return status
        await asyncio.sleep(0)
    return status


def group_url(endpoint: str, subscription: str, resource_group: str, name: str, suffix: str = "") -> str:
    return (
        f"{endpoint}/subscriptions/{subscription}/resourceGroups/{resource_group}/{PROVIDER}/{name}{suffix}"
        f"?api-version={API}"
    )


def recorded_json(raw: object) -> Any:
    """A cassette body as JSON. Old vcrpy cassettes (2018) stored the Python repr of the bytes: `b'{...}'`."""
    if not raw:
        return None
    if isinstance(raw, str) and raw.startswith(("b'", 'b"')):
        raw = ast.literal_eval(raw)
    assert isinstance(raw, str | bytes)
    text = raw.decode() if isinstance(raw, bytes) else raw
    return json.loads(text) if text.strip() else None


# --- shapes ---------------------------------------------------------------------------------------------


def fields(definition: str, body: object, *, spec_only: bool = False) -> dict[str, str]:
    """Path -> JSON type of every field of `body` (see `spec.shape`); `spec_only` keeps the spec's fields."""
    return {
        path: kind for path, (kind, known) in spec.shape(definition, body).items() if known or not spec_only
    }


def matches(path: str, patterns: Iterable[str]) -> bool:
    return any(path == p or fnmatch.fnmatchcase(path, p) or path.startswith(p + "/") for p in patterns)


def shape_differences(
    expected: dict[str, str],
    actual: dict[str, str],
    *,
    ignore: Callable[[str], bool] = lambda path: False,
    extra_allowed: bool = False,
) -> list[str]:
    """How `actual` differs from `expected`, one readable line per field: missing, of another type, or
    (unless `extra_allowed`) present although Azure's answer does not have it."""
    lines: list[str] = []
    for path in sorted(expected.keys() | actual.keys()):
        if ignore(path):
            continue
        want, got = expected.get(path), actual.get(path)
        if want == got:
            continue
        if want is None:
            if not extra_allowed:
                lines.append(f"{path or '/'}: Azure does not return it; the emulator returns {got}")
        elif got is None:
            lines.append(f"{path or '/'}: Azure returns {want}; the emulator leaves it out")
        else:
            lines.append(f"{path or '/'}: Azure returns {want}; the emulator returns {got}")
    return lines


def spec_problems(definition: str, body: object) -> list[str]:
    """Response-rule violations, allowing only the undocumented fields real Azure returns."""
    found = spec.response_violations(definition, body, allow_unknown=False)
    return [
        f"{v.path}: {v.message}"
        for v in found
        if not any(v.path.endswith(extra) for extra in AZURE_EXTRAS) or "not in the spec" not in v.message
    ]


# --- tests of the machinery -----------------------------------------------------------------------------


def test_fields_collapse_list_indices_and_map_keys() -> None:
    body = {
        "tags": {"a": "1", "b": "2"},
        "properties": {"containers": [{"name": "x"}, {"name": "y"}], "osType": "Linux"},
    }
    assert fields("ContainerGroup", body) == {
        "": "object",
        "/tags": "object",
        "/tags/*": "string",
        "/properties": "object",
        "/properties/containers": "array",
        "/properties/containers/*": "object",
        "/properties/containers/*/name": "string",
        "/properties/osType": "string",
    }


def test_fields_spec_only_drops_fields_the_spec_does_not_describe() -> None:
    body = {"properties": {"osType": "Linux", "configMap": {"keyValuePairs": {}}}}
    assert "/properties/configMap" in fields("ContainerGroup", body)
    assert "/properties/configMap" not in fields("ContainerGroup", body, spec_only=True)


def test_integers_and_floats_are_one_json_type() -> None:
    one = {"properties": {"containers": [{"properties": {"resources": {"requests": {"cpu": 1}}}}]}}
    two = {"properties": {"containers": [{"properties": {"resources": {"requests": {"cpu": 1.0}}}}]}}
    assert shape_differences(fields("ContainerGroup", one), fields("ContainerGroup", two)) == []


def test_shape_differences_report_missing_extra_and_retyped_fields() -> None:
    expected = {"/a": "string", "/b": "number", "/c": "array"}
    actual = {"/a": "string", "/b": "string", "/d": "boolean"}
    assert shape_differences(expected, actual) == [
        "/b: Azure returns number; the emulator returns string",
        "/c: Azure returns array; the emulator leaves it out",
        "/d: Azure does not return it; the emulator returns boolean",
    ]
    assert shape_differences(expected, actual, extra_allowed=True) == [
        "/b: Azure returns number; the emulator returns string",
        "/c: Azure returns array; the emulator leaves it out",
    ]


def test_ignored_paths_match_by_pattern_and_prefix() -> None:
    assert matches("/properties/containers/*/properties/instanceView/events/*/count", STATE_DEPENDENT)
    assert matches("/properties/ipAddress/ip", STATE_DEPENDENT)
    assert not matches("/properties/ipAddress/fqdn", STATE_DEPENDENT)


def test_spec_problems_allow_azures_undocumented_fields_only() -> None:
    body = {
        "properties": {
            "osType": "Linux",
            "containers": [],
            "provisioningTimeoutInSeconds": 1800,
            "isCustomProvisioningTimeout": False,
            "somethingElse": 1,
        }
    }
    assert spec_problems("ContainerGroup", body) == ["/properties/somethingElse: property not in the spec's "
                                                     "ContainerGroupProperties.properties"]  # fmt: skip


def test_recorded_json_reads_old_bytes_repr_bodies() -> None:
    assert recorded_json("b'{\"a\": 1}'") == {"a": 1}
    assert recorded_json('{"a": 1}') == {"a": 1}
    assert recorded_json("") is None
