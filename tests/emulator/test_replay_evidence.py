"""Replay of real Azure traffic recorded by other official clients (`tests/emulator/evidence/`).

The recordings are the test suites of Azure PowerShell and the .NET, JavaScript and Java SDKs (SOURCE.md
names each file). Every container-group interaction of a recorded session is sent again, in order, with the
recorded method, path, api-version and body, to a fresh emulator. Each answer is compared with Azure's:

* the status code (and the ARM error code of a 4xx);
* the `Azure-AsyncOperation` header of a long-running operation, present exactly when Azure sent one;
* the fields of the body and their JSON types; values Azure generates or that change with time (ids, times,
  IP addresses, etags, provisioning states, events) are wildcards, and what depends on how far a group has
  got (instance views, the public IP) is compared only where both sides have it;
* the values the request set and Azure echoed back (image, restart policy, sku, ports ...);
* no secret of the request in the answer;
* an operation poll: the same fields as Azure's poll body.

A difference that only the api-version explains (the field is not in the spec of the recorded version, or
not in the emulator's) is counted apart. The test prints the match ratio and fails below `BAR`.

When a session reads a group it never created (the test created it in a part that was not recorded), the
group is first created from Azure's answer, so the read can be compared.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.emulator import spec
from reconciler.emulator.server import Emulator, EmulatorConfig
from tests.emulator.evidence import Interaction, is_operation_poll, load_interactions
from tests.emulator.test_fidelity_recordings import GENERATED, collapsed, has, leaves, secret_paths
from tests.emulator.test_fidelity_shapes import (
    Answer,
    fields,
    matches,
    sdk_client,
    send_raw,
    shape_differences,
    wait_async_operation,
)

# The share of replayed interactions that must match Azure once api-version differences are set aside.
BAR = 0.95

_PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)(?:/resourceGroups/(?P<rg>[^/]+))?/providers/"
    r"Microsoft\.ContainerInstance/(?P<rest>[^?]*)$",
    re.IGNORECASE,
)
_SERVED = re.compile(
    r"^containerGroups(?:/(?P<name>[^/]+)(?P<suffix>|/restart|/stop|/start|/containers/[^/]+/logs))?$",
    re.IGNORECASE,
)

# Values Azure generates or that change with time: compared by JSON type only (the replay of the shared
# recordings uses the same list, plus what only time decides: ids, etags, the FQDN and group events).
WILDCARDS = (
    *GENERATED,
    "/id",
    "/etag",
    "/properties/instanceView",
    "/properties/ipAddress/fqdn",
    "/systemData",
)


@dataclass
class Verdict:
    """How one replayed interaction compares with Azure's answer."""

    where: str
    problems: list[str] = field(default_factory=list)
    version_only: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Target:
    kind: str  # group | list | action | logs | operation
    subscription: str
    resource_group: str | None
    name: str | None
    path: str  # the path and query to send to the emulator


def target(interaction: Interaction) -> Target | None:
    """What a recorded interaction asks of the emulator, or None when the emulator does not serve it."""
    url = interaction.uri
    path_and_query = re.sub(r"^https?://[^/]+", "", url)
    if "api-version=" not in path_and_query:
        # The JS SDK's old (nock) recordings keep no query string; the client did send an api-version.
        path_and_query += ("&" if "?" in path_and_query else "?") + f"api-version={spec.API_VERSION}"
    path = path_and_query.partition("?")[0]
    m = _PATH.match(path)
    if m is None:
        return None
    rest = m["rest"]
    if is_operation_poll(interaction):
        return Target("operation", m["sub"], None, None, path_and_query)
    served = _SERVED.match(rest)
    if served is None:
        return None
    name, suffix = served["name"], (served["suffix"] or "").lower()
    if name is None:
        kind = "list"
    elif not suffix:
        kind = "group"
    else:
        kind = "logs" if suffix.endswith("/logs") else "action"
    return Target(kind, m["sub"], m["rg"], name, path_and_query)


def sessions() -> dict[str, list[Interaction]]:
    out: dict[str, list[Interaction]] = {}
    for interaction in load_interactions():
        out.setdefault(f"{interaction.client}/{interaction.file}", []).append(interaction)
    return {name: steps for name, steps in out.items() if any(target(s) for s in steps)}


def version_of(interaction: Interaction) -> str:
    return interaction.api_version or spec.API_VERSION


def _known(version: str) -> frozenset[str] | None:
    """The response paths the spec of `version` describes, when the emulator knows that version's spec."""
    try:
        from reconciler.emulator import versions
    except ImportError:
        return None
    known = getattr(versions, "known_paths", None)
    if known is None:
        return None
    try:
        return frozenset(known(version))
    except (KeyError, ValueError):
        return None


def _echoed(request: Any, recorded: Any) -> dict[str, Any]:
    """The leaves of Azure's answer that repeat what the request set at the same path."""
    if not isinstance(request, dict) or not isinstance(recorded, dict):
        return {}
    sent = leaves(request)
    return {path: value for path, value in leaves(recorded).items() if sent.get(path) == value}


def compare_body(definition: str, interaction: Interaction, got: Answer, verdict: Verdict) -> None:
    recorded = interaction.response_body
    if not isinstance(recorded, dict) or not isinstance(got.body, dict):
        if recorded != got.body and not (recorded in (None, "", {}) and got.body in (None, "", {})):
            verdict.problems.append(
                f"body: Azure {str(recorded)[:80]!r}; the emulator {str(got.body)[:80]!r}"
            )
        return
    # A field is an api-version difference when the recorded version's spec lacks it, or when only another
    # version's spec has it: the emulator renders the 2023-05-01 group and can only narrow it.
    theirs, base = _known(version_of(interaction)), _known(spec.API_VERSION)
    want, have = fields(definition, recorded), fields(definition, got.body)
    for line in shape_differences(want, have, ignore=lambda p: matches(p, WILDCARDS)):
        path = line.split(":", 1)[0]
        if theirs is not None and base is not None:
            only_version = path not in theirs or path not in base
        else:
            only_version = path not in fields(definition, recorded, spec_only=True)
        (verdict.version_only if only_version else verdict.problems).append(line)
    mine = leaves(got.body)
    for path, value in _echoed(interaction.request_body, recorded).items():
        if matches(collapsed(path), WILDCARDS) or path not in mine:
            continue
        if mine[path] != value and str(mine[path]).lower() != str(value).lower():
            verdict.problems.append(f"{path}: Azure echoes {value!r}; the emulator {mine[path]!r}")
    for path in secret_paths(interaction.request_body):
        if has(got.body, path):
            verdict.problems.append(f"{path}: the emulator returns a secret")


def _seed_body(answer: dict[str, Any]) -> dict[str, Any]:
    """A PUT body that creates the group Azure's answer shows: its writable fields, with a stand-in for each
    required secret Azure left out of its answer."""
    body = spec.normalize("ContainerGroup", answer)
    assert isinstance(body, dict)
    body["location"] = str(answer.get("location", "westus"))
    analytics = ((body.get("properties") or {}).get("diagnostics") or {}).get("logAnalytics")
    if isinstance(analytics, dict):
        analytics.setdefault("workspaceKey", "stand-in")
    return body


def _minimal(container: str | None) -> dict[str, Any]:
    body = json.loads(json.dumps(MINIMAL))
    if container:
        body["properties"]["containers"][0]["name"] = container
    return body


MINIMAL = {
    "location": "westus",
    "properties": {
        "osType": "Linux",
        "containers": [
            {
                "name": "app",
                "properties": {"image": "nginx", "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}}},
            }
        ],
    },
}


def seeds(steps: list[Interaction]) -> dict[str, dict[str, Any]]:
    """For each group of a session, a body that creates it as Azure first shows it (else a minimal group)."""
    out: dict[str, dict[str, Any]] = {}
    for step in steps:
        where = target(step)
        if where is None or where.name is None:
            continue
        key = f"{where.resource_group}/{where.name}".lower()
        answer = step.response_body
        if key not in out and where.kind == "group" and isinstance(answer, dict) and "properties" in answer:
            out[key] = _seed_body(answer)
    return out


async def _create_first(client: Any, emu: Emulator, where: Target, seed: dict[str, Any] | None) -> str | None:
    """Create the group a recorded read names, as Azure first showed it (else a minimal group with the
    container whose logs are read). Returns a problem when the emulator refuses it."""
    path = where.path.split("?")[0]
    group_path = re.sub(r"/(restart|stop|start|containers/[^/]+/logs)$", "", path, flags=re.IGNORECASE)
    logs_of = re.search(r"/containers/([^/]+)/logs$", path, re.IGNORECASE)
    body = seed or _minimal(logs_of.group(1) if logs_of else None)
    seeded = await send_raw(client, "PUT", f"{emu.endpoint}{group_path}?api-version={spec.API_VERSION}", body)
    await wait_async_operation(client, seeded)
    if seeded.status not in (200, 201):
        return f"could not create the group first: {str(seeded.body)[:200]}"
    return None


async def replay(emu: Emulator, steps: list[Interaction]) -> list[Verdict]:
    verdicts: list[Verdict] = []
    created: set[str] = set()
    last_operation: dict[str, str] = {}  # resource group/name -> the emulator's last Azure-AsyncOperation URL
    latest: str | None = None
    initial = seeds(steps)
    first = next(t for t in map(target, steps) if t is not None)
    async with sdk_client(emu, first.subscription) as client:
        for step in steps:
            where = target(step)
            if where is None:
                continue
            verdict = Verdict(
                f"{step.file}#{step.index} {step.method} {where.kind} {where.name or ''}".rstrip()
            )
            key = f"{where.resource_group}/{where.name}".lower()
            if where.kind == "operation":
                url = last_operation.get(latest or "")
                if step.method != "GET" or url is None or not isinstance(step.response_body, dict):
                    continue
                polled = await send_raw(client, "GET", url)
                mine = polled.body if isinstance(polled.body, dict) else {}
                missing = sorted(set(step.response_body) - set(mine) - {"error"})
                if missing:
                    verdict.problems.append(f"operation poll: Azure's has {missing}; the emulator's does not")
                verdicts.append(verdict)
                continue
            reads_a_group = where.kind in ("group", "action", "logs") and step.method != "PUT"
            if reads_a_group and 200 <= step.status < 300 and key not in created:
                # The session's test created this group in a part that was not recorded: create it.
                problem = await _create_first(client, emu, where, initial.get(key))
                if problem:
                    verdict.problems.append(problem)
                created.add(key)
            body = step.request_body
            if step.method == "PUT" and body is None and isinstance(step.response_body, dict):
                body = _seed_body(step.response_body)  # the Java SDK's recordings keep no request bodies
            url = emu.endpoint + where.path
            got = await send_raw(client, step.method, url, body)
            if step.method == "PUT" and got.status in (200, 201):
                created.add(key)
            if step.method == "DELETE" and got.status in (200, 202, 204):
                created.discard(key)
            if got.status != step.status:
                verdict.problems.append(
                    f"status: Azure {step.status}; the emulator {got.status} {str(got.body)[:160]}"
                )
                verdicts.append(verdict)
                continue
            if got.status >= 400:
                want_code = (
                    (step.response_body or {}).get("error", {}).get("code")
                    if isinstance(step.response_body, dict)
                    else None
                )
                have_code = (
                    (got.body or {}).get("error", {}).get("code") if isinstance(got.body, dict) else None
                )
                if want_code and want_code != have_code:
                    verdict.problems.append(f"error code: Azure {want_code}; the emulator {have_code}")
                verdicts.append(verdict)
                continue
            recorded_lro = any(h.lower() == "azure-asyncoperation" for h in step.response_headers)
            mine_lro = any(h.lower() == "azure-asyncoperation" for h in got.headers)
            if recorded_lro != mine_lro:
                verdict.problems.append(
                    f"Azure-AsyncOperation: Azure {'sends' if recorded_lro else 'sends none'}; "
                    f"the emulator {'sends one' if mine_lro else 'sends none'}"
                )
            if mine_lro:
                last_operation[key] = next(
                    v for h, v in got.headers.items() if h.lower() == "azure-asyncoperation"
                )
                latest = key
            if where.kind == "group" and step.method in ("GET", "PUT", "PATCH", "DELETE"):
                compare_body("ContainerGroup", step, got, verdict)
            elif where.kind == "list":
                recorded = (
                    {i.get("name"): i for i in (step.response_body or {}).get("value", [])}
                    if isinstance(step.response_body, dict)
                    else {}
                )
                mine = (
                    {i.get("name"): i for i in (got.body or {}).get("value", [])}
                    if isinstance(got.body, dict)
                    else {}
                )
                for name in set(recorded) & set(mine):
                    item = Interaction(
                        **{**step.__dict__, "response_body": recorded[name], "request_body": None}
                    )
                    compare_body("ListResultContainerGroup", item, Answer(200, mine[name], {}), verdict)
            elif where.kind == "logs" and not isinstance((got.body or {}).get("content"), str):
                verdict.problems.append("logs: no content string")
            verdicts.append(verdict)
    return verdicts


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emulator-tls")


async def test_recorded_traffic_of_other_clients_is_answered_like_azure(cert_dir: Path) -> None:
    all_verdicts: list[Verdict] = []
    per_client: Counter[str] = Counter()
    matched: Counter[str] = Counter()
    for name, steps in sorted(sessions().items()):
        async with Emulator(EmulatorConfig(cert_dir=cert_dir)) as emu:
            verdicts = await replay(emu, steps)
        client = name.split("/", 1)[0]
        per_client[client] += len(verdicts)
        matched[client] += sum(v.matches for v in verdicts)
        all_verdicts += verdicts
    total = len(all_verdicts)
    good = sum(v.matches for v in all_verdicts)
    version_only = sum(bool(v.version_only) for v in all_verdicts)
    lines = [f"replayed {total} interactions; {good} match ({good / max(1, total):.1%}); bar {BAR:.0%}"]
    lines += [f"  {c}: {matched[c]}/{per_client[c]}" for c in sorted(per_client)]
    lines.append(f"  differences that only the api-version explains: {version_only} interactions")
    lines += [f"  MISMATCH {v.where}: {p}" for v in all_verdicts for p in v.problems]
    lines += [f"  api-version {v.where}: {p}" for v in all_verdicts for p in v.version_only]
    report = "\n".join(lines)
    print(report)
    assert total >= 150, report
    assert len(per_client) >= 3, report
    assert good / total >= BAR, report


# --- the comparison is not blind ---------------------------------------------------------------------------


def _interaction(request: Any, response: Any, *, version: str = spec.API_VERSION) -> Interaction:
    return Interaction(
        client="test",
        file="t.json",
        index=0,
        method="PUT",
        uri=f"https://management.azure.com/subscriptions/s/resourceGroups/rg/providers/"
        f"Microsoft.ContainerInstance/containerGroups/web?api-version={version}",
        api_version=version,
        request_headers={},
        request_body=request,
        status=200,
        response_headers={},
        response_body=response,
    )


def _group(**props: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "osType": "Linux",
        "restartPolicy": "Never",
        "containers": [
            {
                "name": "app",
                "properties": {
                    "image": "nginx",
                    "environmentVariables": [{"name": "A", "secureValue": "s3cret"}],
                    "resources": {"requests": {"cpu": 1.0, "memoryInGB": 1.5}},
                },
            }
        ],
    }
    base.update(props)
    return {"location": "westus", "properties": base}


def _verdict(request: Any, recorded: Any, mine: Any) -> Verdict:
    verdict = Verdict("t")
    compare_body("ContainerGroup", _interaction(request, recorded), Answer(200, mine, {}), verdict)
    return verdict


def _without_secret(body: dict[str, Any]) -> dict[str, Any]:
    out = json.loads(json.dumps(body))
    out["properties"]["containers"][0]["properties"]["environmentVariables"][0].pop("secureValue")
    return out


def test_the_same_answer_matches() -> None:
    answer = _without_secret(_group())
    assert _verdict(_group(), answer, answer).matches


def test_a_missing_field_a_changed_type_and_a_wrong_echo_are_mismatches() -> None:
    answer = _without_secret(_group())
    missing = json.loads(json.dumps(answer))
    del missing["properties"]["restartPolicy"]
    retyped = json.loads(json.dumps(answer))
    retyped["properties"]["osType"] = 1
    wrong_echo = json.loads(json.dumps(answer))
    wrong_echo["properties"]["restartPolicy"] = "Always"
    for mine in (missing, retyped, wrong_echo):
        assert not _verdict(_group(), answer, mine).matches, mine


def test_a_returned_secret_is_a_mismatch() -> None:
    answer = _without_secret(_group())
    assert not _verdict(_group(), answer, _group()).matches


def test_wildcards_and_time_dependent_fields_are_not_compared_by_value() -> None:
    answer = _without_secret(_group(provisioningState="Pending"))
    answer["id"] = "/subscriptions/a/x"
    mine = _without_secret(_group(provisioningState="Succeeded"))
    mine["id"] = "/subscriptions/b/y"
    assert _verdict(_group(), answer, mine).matches


@pytest.mark.parametrize(
    ("uri", "kind"),
    [
        (
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/a?api-version=1",
            "group",
        ),
        (
            "/subscriptions/s/resourcegroups/rg/providers/microsoft.containerinstance/containerGroups/a/restart?x",
            "action",
        ),
        (
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/a/containers/c/logs?x",
            "logs",
        ),
        ("/subscriptions/s/providers/Microsoft.ContainerInstance/containerGroups?api-version=1", "list"),
        (
            "/subscriptions/s/providers/Microsoft.ContainerInstance/locations/westus/operations/1?api-version=1",
            "operation",
        ),
        (
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/a/containers/c/exec?x",
            None,
        ),
        ("/subscriptions/s/resourcegroups/rg?api-version=1", None),
    ],
)
def test_which_recorded_requests_are_replayed(uri: str, kind: str | None) -> None:
    found = target(
        _interaction(None, None).__class__(**{**_interaction(None, None).__dict__, "uri": "https://h" + uri})
    )
    assert (found.kind if found else None) == kind
