"""No traceback from any input (issue 10, finding 2): generated documents, full of odd numbers, keys, strings
and nesting, go through load, the model, the ARM body and a plan against an empty observation. Every failure
is a located `SourceError`; nothing escapes as an exception; every body that is accepted is finite JSON."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.planning.plan import DesiredGroup, build_plan
from reconciler.source import Defaults, load_manifests

KEY = b"k" * 32

# Scalars written unquoted into the YAML text, so that the reader resolves them itself.
RAW = st.sampled_from(
    [
        "1",
        "0",
        "-1",
        "1.5",
        "0.5",
        "1e400",
        "1.0e+400",
        "-1e400",
        "1e-400",
        ".inf",
        "-.inf",
        ".nan",
        "inf",
        "Infinity",
        "nan",
        "NaN",
        "1_0",
        "0x1F",
        "0o17",
        "017",
        "1:30",
        "true",
        "yes",
        "on",
        "null",
        "~",
        "2018-10-01",
        "9" * 5000,
        "-" + "9" * 5000,
        "1" + "0" * 400 + ".5",
        "0.0000001",
        "65536",
        "!!int 1_0",
        "!!float .inf",
        "!!float 1e400",
        "!!int " + "9" * 5000,
        "!!str 80",
        "''",
        '"80"',
        '"inf"',
        '"1e309"',
        '" 1 "',
        '"1_0"',
        '"' + "9" * 5000 + '"',
    ]
)
KEYS = st.one_of(
    st.sampled_from(["cpu", "memoryInGB", "port", "count", "name", "x", "1", "9" * 5000, "1e400", ".inf"]),
    st.text(alphabet="abcXYZ019_-.", min_size=1, max_size=8),
)


def _scalar() -> st.SearchStrategy[str]:
    return st.one_of(RAW, st.text(max_size=10).map(json.dumps))


NODES = st.recursive(
    _scalar(),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.dictionaries(KEYS, inner, max_size=3).map(
            lambda d: (
                "{" + ", ".join(f"{json.dumps(k) if k[0] == '9' else k}: {v}" for k, v in d.items()) + "}"
            )
        ),
    ),
    max_leaves=8,
)

# The numeric places of a manifest, filled from RAW or generated nodes.
SLOTS = ("CPU", "MEM", "PORT", "IPPORT", "GPU", "PERIOD", "DELAY", "USER")

TEMPLATE = """name: {NAME}
resourceGroup: rg
location: westeurope
tags: {{t: {TAG}}}
properties:
  osType: Linux
  ipAddress: {{type: Public, ports: [{{port: {IPPORT}}}]}}
  containers:
  - name: web
    properties:
      image: nginx
      resources:
        requests: {{cpu: {CPU}, memoryInGB: {MEM}, gpu: {{count: {GPU}, sku: K80}}}}
      ports: [{{port: {PORT}}}]
      livenessProbe: {{exec: {{command: [x]}}, periodSeconds: {PERIOD}, initialDelaySeconds: {DELAY}}}
      securityContext: {{runAsUser: {USER}}}
      environmentVariables: [{{name: E, value: {ENV}}}]
  extra: {EXTRA}
"""

GOOD = {
    "CPU": "1",
    "MEM": "1.5",
    "PORT": "80",
    "IPPORT": "80",
    "GPU": "1",
    "PERIOD": "5",
    "DELAY": "0",
    "USER": "0",
}


@st.composite
def documents(draw: st.DrawFn) -> str:
    values = dict(GOOD)
    for slot in draw(st.lists(st.sampled_from(SLOTS), max_size=3, unique=True)):
        values[slot] = draw(st.one_of(RAW, NODES))
    values["NAME"] = draw(st.sampled_from(["web", "myContainerGroup", "Web_1", "9" * 5000, "1e400", "true"]))
    values["TAG"] = draw(_scalar())
    values["ENV"] = draw(_scalar())
    values["EXTRA"] = draw(st.one_of(st.just("null"), NODES))
    text = TEMPLATE.format(**values)
    if values["EXTRA"] == "null":
        text = text.replace("  extra: null\n", "")
    return text


def _check(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "a.yaml").write_text(text)
        result = load_manifests(root, defaults=Defaults(), environ={})
        for error in result.errors:
            assert str(error).startswith(f"{root / 'a.yaml'}:{error.line}:{error.column}: ")
            assert error.line >= 1
            assert error.column >= 1
        for group in result.groups:
            body = group.manifest.to_arm_body(reveal_secrets=True)
            json.dumps(body, allow_nan=False)
        plan = build_plan(
            [DesiredGroup(g.manifest, str(g.source)) for g in result.groups],
            [],
            instance="default",
            revision=result.revision,
            secret_key=KEY,
            load_complete=result.complete,
        )
        json.dumps([c.action for c in plan.changes])


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None, max_examples=150)
@given(documents())
def test_generated_documents_never_raise_and_every_error_is_located(text: str) -> None:
    _check(text)


def test_the_good_template_loads_and_plans_a_create() -> None:
    text = TEMPLATE.format(**GOOD, NAME="myContainerGroup", TAG='"a"', ENV='"b"', EXTRA="null").replace(
        "  extra: null\n", ""
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "a.yaml").write_text(text)
        result = load_manifests(root, defaults=Defaults(), environ={})
        assert not result.errors, result.errors
        assert [g.manifest.name for g in result.groups] == ["myContainerGroup"]


def test_a_five_thousand_digit_number_as_value_or_key_is_a_located_error() -> None:
    digits = "9" * 5000
    for text in (
        TEMPLATE.format(**{**GOOD, "CPU": digits}, NAME="web", TAG="a", ENV="b", EXTRA="null"),
        TEMPLATE.format(**GOOD, NAME="web", TAG="a", ENV="b", EXTRA="{" + digits + ": 1}"),
        TEMPLATE.format(**GOOD, NAME="web", TAG="a", ENV="b", EXTRA="{1: 2}").replace(
            "  extra: {1: 2}\n", f"  {digits}: 1\n"
        ),
    ):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            (root / "a.yaml").write_text(text)
            result = load_manifests(root, defaults=Defaults(), environ={})
            assert result.errors
            assert not result.groups
            assert all(len(e.message) < 400 for e in result.errors if "unknown key" not in e.message)
