"""One number rule for every numeric field of the model (issue 10, finding 2): JSON numbers and numeric
strings are read as Azure reads them; booleans, underscores, non-finite values, huge text, values beyond the
field's Azure limit and precision Azure does not keep are refused at the field's loc, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from reconciler.model.manifest import parse_manifest
from tests.model.material import base_doc

Doc = dict[str, Any]
C0 = ("properties", "containers", 0, "properties")

# Every numeric field of the model: (path, a value Azure accepts there).
FIELDS: list[tuple[tuple[Any, ...], Any]] = [
    ((*C0, "resources", "requests", "cpu"), 1),
    ((*C0, "resources", "requests", "memoryInGB"), 1.5),
    ((*C0, "resources", "limits", "cpu"), 1),
    ((*C0, "resources", "limits", "memoryInGB"), 1.5),
    ((*C0, "resources", "requests", "gpu", "count"), 1),
    ((*C0, "resources", "limits", "gpu", "count"), 1),
    ((*C0, "ports", 0, "port"), 80),
    (("properties", "ipAddress", "ports", 0, "port"), 80),
    ((*C0, "livenessProbe", "initialDelaySeconds"), 5),
    ((*C0, "livenessProbe", "periodSeconds"), 5),
    ((*C0, "livenessProbe", "failureThreshold"), 3),
    ((*C0, "livenessProbe", "successThreshold"), 1),
    ((*C0, "livenessProbe", "timeoutSeconds"), 1),
    ((*C0, "readinessProbe", "httpGet", "port"), 80),
    ((*C0, "securityContext", "runAsUser"), 1000),
    ((*C0, "securityContext", "runAsGroup"), 1000),
]

# Values no numeric field takes, whatever its range.
NEVER = [
    True,
    False,
    float("inf"),
    float("-inf"),
    float("nan"),
    "inf",
    "-inf",
    "Infinity",
    "NaN",
    "nan",
    ".inf",
    "1e309",
    "1e400",
    "1_0",
    "0x10",
    "1,5",
    "",
    "one",
    "9" * 5000,
    9**5000,
    "1" + "0" * 40,
    [1],
    {"a": 1},
]


def _doc_with(path: tuple[Any, ...], value: Any) -> Doc:
    doc = base_doc()
    c = doc["properties"]["containers"][0]["properties"]
    c["resources"]["requests"]["gpu"] = {"count": 1, "sku": "K80"}
    # A GPU limit is held between the request and the group's total, so it is there only when it is the
    # field under test, and then equal to the request: only the value under test decides.
    c["resources"]["limits"] = {"gpu": {"count": 1, "sku": "K80"}} if "limits" in path else {}
    c["livenessProbe"] = {"exec": {"command": ["true"]}, "initialDelaySeconds": 5, "periodSeconds": 5}
    c["readinessProbe"] = {"httpGet": {"port": 80}}
    c["securityContext"] = {"runAsUser": 1000}
    # The group's port is one of the container's (Azure's rule) whatever the container's first port becomes.
    c["ports"] = [{"port": 80}, {"port": 8080}]
    doc["properties"]["ipAddress"] = {"type": "Public", "ports": [{"port": 8080}]}
    node: Any = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return doc


def _field_error(doc: Doc, path: tuple[Any, ...]) -> str:
    with pytest.raises(ValidationError) as info:
        parse_manifest(doc)
    errors = info.value.errors()
    mine = [e for e in errors if tuple(e["loc"]) == path]
    assert mine, errors
    return str(mine[0]["msg"])


@pytest.mark.parametrize(("path", "good"), FIELDS, ids=[".".join(map(str, p[-3:])) for p, _ in FIELDS])
def test_every_numeric_field_accepts_numbers_and_numeric_strings(path: tuple[Any, ...], good: Any) -> None:
    for value in (good, str(good), f" {good} ", f"{good}.0" if isinstance(good, int) else f"{good}0"):
        parse_manifest(_doc_with(path, value))


@pytest.mark.parametrize("bad", NEVER, ids=lambda v: type(v).__name__ if isinstance(v, int) else repr(v)[:20])
@pytest.mark.parametrize(("path", "good"), FIELDS, ids=[".".join(map(str, p[-3:])) for p, _ in FIELDS])
def test_every_numeric_field_refuses_what_azure_does_not_read_as_a_number_at_its_loc(
    path: tuple[Any, ...], good: Any, bad: Any
) -> None:
    del good
    message = _field_error(_doc_with(path, bad), path)
    assert len(message) < 300  # a 5,000-digit value is never echoed


LIMITS = [
    # (path, refused values, accepted edge values)
    ((*C0, "ports", 0, "port"), [0, 65536, -1, 80.5, "1e5"], [1, 65535, "8e1"]),
    ((*C0, "resources", "requests", "cpu"), [0, -1, 0.001, 0.0000001, "0.125", 33, 1e309], [0.01, 0.25, 32]),
    ((*C0, "resources", "requests", "memoryInGB"), [0, 0.05, 1.25, 257, "1e400"], [0.1, 1.5, "0.3", 256]),
    ((*C0, "resources", "requests", "gpu", "count"), [0, 8, 1.5], [1, 2, 4]),
    ((*C0, "livenessProbe", "periodSeconds"), [0, 2**31, 1.5], [1, 2**31 - 1]),
    ((*C0, "livenessProbe", "initialDelaySeconds"), [-1, 2**31], [0]),
    ((*C0, "securityContext", "runAsUser"), [-1, 2**31], [0, 2**31 - 1]),
]


@pytest.mark.parametrize(("path", "refused", "accepted"), LIMITS, ids=[str(p[-1]) for p, _, _ in LIMITS])
def test_each_field_keeps_to_its_azure_range_and_precision(
    path: tuple[Any, ...], refused: list[Any], accepted: list[Any]
) -> None:
    for value in refused:
        _field_error(_doc_with(path, value), path)
    for value in accepted:
        parse_manifest(_doc_with(path, value))


def test_messages_name_the_rule_and_the_fix() -> None:
    cpu = (*C0, "resources", "requests", "cpu")
    mem = (*C0, "resources", "requests", "memoryInGB")
    assert "boolean" in _field_error(_doc_with(cpu, True), cpu)
    assert "underscores" in _field_error(_doc_with(cpu, "1_0"), cpu)
    assert "0.01-32" in _field_error(_doc_with(cpu, 1e300), cpu)
    assert "use 1.2 or 1.3" in _field_error(_doc_with(mem, 1.25), mem)
    assert "multiple of 0.01" in _field_error(_doc_with(cpu, 0.0000001 + 1), cpu)


NUMBERISH: Callable[[], st.SearchStrategy[Any]] = lambda: st.one_of(  # noqa: E731 - a strategy factory
    st.integers(),
    st.floats(),
    st.booleans(),
    st.text(alphabet="0123456789.eE+-_ xInfinatyN,", max_size=12),
    st.decimals().map(str),
)


@given(value=NUMBERISH())
def test_any_value_in_a_numeric_field_is_accepted_or_a_validation_error(value: Any) -> None:
    for path, _ in FIELDS:
        try:
            manifest = parse_manifest(_doc_with(path, value))
        except ValidationError:
            continue
        body = manifest.to_arm_body(reveal_secrets=False)
        assert body  # accepted values produce a body
