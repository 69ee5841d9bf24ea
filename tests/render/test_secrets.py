"""Property: no secret value ever appears in any rendering of a plan (DESIGN.md sections 4 and 7).

Secrets are placed where a careless planner might leave them: in fields marked sensitive but still holding
values, in fields at secret paths that are not marked, nested inside whole-element values (env vars,
registry credentials, volumes, diagnostics, extensions, whole groups being created), and in `Change.desired`.
Every other generated string is lowercase, and every secret starts with `S3cr`, so a secret can only show up
in the output by leaking.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reconciler.model.plan import Action, Change, FieldChange, Plan, PlanIssue
from reconciler.render import (
    format_value,
    plan_to_json,
    render_plan_json,
    render_plan_markdown,
    render_plan_text,
)
from tests.render.plans import desired_with_secret

secrets = st.text(alphabet=string.ascii_letters + string.digits + "+/=", min_size=12, max_size=36).map(
    lambda s: "S3cr" + s
)
words = st.text(alphabet=string.ascii_lowercase + "-", min_size=1, max_size=10)
kinds = st.sampled_from(["add", "remove", "change"])

C = "/properties/containers"

SECRET_PATHS: tuple[Callable[[str], str], ...] = (
    lambda k: f"{C}/{k}/properties/environmentVariables/{k}/secureValue",
    lambda k: f"{C}/{k}/properties/environmentVariables/{k}/SecureValue",
    lambda k: f"/properties/imageRegistryCredentials/{k}.azurecr.io/password",
    lambda k: f"/properties/volumes/{k}/azureFile/storageAccountKey",
    lambda k: f"/properties/volumes/{k}/secret",
    lambda k: f"/properties/volumes/{k}/secret/{k}.pem",
    lambda k: "/properties/diagnostics/logAnalytics/workspaceKey",
    lambda k: f"/properties/extensions/{k}/properties/protectedSettings",
)

# Values a planner would mark sensitive as a whole, shown at the non-secret path that holds them.
NESTED: tuple[tuple[Callable[[str], str], Callable[[str, str], Any]], ...] = (
    (
        lambda k: f"{C}/{k}/properties/environmentVariables/{k}",
        lambda k, s: {"name": k, "secureValue": s},
    ),
    (lambda k: f"{C}/{k}/properties/environmentVariables", lambda k, s: [{"name": k, "SECUREVALUE": s}]),
    (lambda k: f"{C}/{k}/properties/environmentVariables", lambda k, s: {k: {"secureValue": s}}),
    (
        lambda k: "/properties/imageRegistryCredentials",
        lambda k, s: [{"server": f"{k}.io", "username": k, "password": s}],
    ),
    (lambda k: f"/properties/volumes/{k}", lambda k, s: {"name": k, "secret": {"key": s}}),
    (
        lambda k: "/properties/volumes",
        lambda k, s: [{"name": k, "azureFile": {"shareName": k, "storageAccountKey": s}}],
    ),
    (
        lambda k: "/properties/diagnostics",
        lambda k, s: {"logAnalytics": {"workspaceId": k, "workspaceKey": s}},
    ),
    (lambda k: f"/properties/extensions/{k}", lambda k, s: {"properties": {"protectedSettings": {"t": s}}}),
    (
        lambda k: "/properties",
        lambda k, s: {
            "osType": "Linux",
            "containers": {
                k: {
                    "properties": {
                        "image": f"{k}:1",
                        "environmentVariables": {k: {"secureValue": s}},
                        "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                    }
                }
            },
            "imageRegistryCredentials": {f"{k}.io": {"username": k, "password": s}},
            "volumes": {k: {"secret": {"f": s}}},
        },
    ),
)


@st.composite
def leaky_field(draw: st.DrawFn, secret: str) -> FieldChange:
    key = draw(words)
    kind = draw(kinds)
    how = draw(st.sampled_from(["marked", "secret-path", "nested", "plain"]))
    if how == "marked":
        path = draw(
            st.sampled_from([f"{C}/{key}/properties/image", "/tags/x", *(p(key) for p in SECRET_PATHS)])
        )
        return FieldChange(path=path, kind=kind, before=secret, after=secret, sensitive=True)
    if how == "secret-path":
        path = draw(st.sampled_from(SECRET_PATHS))(key)
        value = draw(st.sampled_from([secret, {"v": secret}, [secret]]))
        return FieldChange(path=path, kind=kind, before=value, after=value)
    if how == "nested":
        make_path, make_value = draw(st.sampled_from(NESTED))
        value = make_value(key, secret)
        return FieldChange(
            path=make_path(key),
            kind=kind,
            before=value if kind != "add" else None,
            after=value if kind != "remove" else None,
        )
    return FieldChange(path=f"{C}/{key}/properties/image", kind=kind, before=draw(words), after=draw(words))


@st.composite
def leaky_change(draw: st.DrawFn, secret: str) -> Change:
    # The planner reports each path once per change.
    fields = draw(st.lists(leaky_field(secret), max_size=5, unique_by=lambda f: f.path))
    return Change(
        resource_group=draw(words),
        name=draw(words),
        action=draw(st.sampled_from(list(Action))),
        adopt=draw(st.booleans()),
        held=draw(st.none() | st.sampled_from(["suspended", "recreate: never"])),
        reason=draw(words),
        source=draw(st.none() | words.map(lambda w: f"{w}.yaml:1:1")),
        fields=tuple(fields),
        changed_paths=tuple(f.path for f in fields),
        replace_paths=tuple(f.path for f in fields if draw(st.booleans())),
        desired=desired_with_secret(secret) if draw(st.booleans()) else None,
    )


@st.composite
def leaky_plan(draw: st.DrawFn) -> tuple[str, Plan]:
    secret = draw(secrets)
    # A plan has one entry per group: the renderers key on (resource group, name).
    changes = draw(
        st.lists(leaky_change(secret), min_size=1, max_size=4, unique_by=lambda c: (c.resource_group, c.name))
    )
    issues = draw(
        st.lists(
            st.builds(
                PlanIssue,
                severity=st.sampled_from(["warning", "error"]),
                message=words,
                source=st.none() | words,
            ),
            max_size=2,
        )
    )
    return secret, Plan(revision="abc", instance="default", changes=tuple(changes), issues=tuple(issues))


def renderings(plan: Plan) -> dict[str, str]:
    return {
        "text": render_plan_text(plan),
        "text-color-noop": render_plan_text(plan, color=True, show_noop=True),
        "markdown": render_plan_markdown(plan),
        "markdown-cut": render_plan_markdown(plan, max_chars=2_000),
        "json": render_plan_json(plan),
        "json-data": json.dumps(plan_to_json(plan)),
    }


@given(leaky_plan())
def test_no_rendering_ever_contains_a_secret(case: tuple[str, Plan]) -> None:
    secret, plan = case
    for name, text in renderings(plan).items():
        assert secret not in text, f"{name} leaked the secret"


@given(leaky_plan())
def test_json_never_unmarks_a_field_the_planner_marked_sensitive(case: tuple[str, Plan]) -> None:
    _, plan = case
    rendered = {(c["resource_group"], c["name"]): c for c in plan_to_json(plan)["changes"]}
    for change in plan.changes:
        out = rendered[(change.resource_group, change.name)]["fields"]
        marked = {f.path for f in change.fields if f.sensitive}
        assert all(f["sensitive"] for f in out if f["path"] in marked)
        assert all({f["before"], f["after"]} <= {"(sensitive)", None} for f in out if f["sensitive"])


@given(secrets, st.sampled_from(NESTED), words)
def test_format_value_never_shows_a_nested_secret(secret: str, nested: Any, key: str) -> None:
    _, make_value = nested
    assert secret not in format_value(make_value(key, secret))


def test_the_generator_does_place_secrets_where_an_unguarded_renderer_would_print_them() -> None:
    # Guards the property above against passing vacuously: the secret is really in the data handed over.
    secret = "S3crTESTtest1234"
    field = FieldChange(
        path=f"{C}/a/properties/environmentVariables/DB/secureValue",
        kind="change",
        before=secret,
        after=secret,
    )
    assert secret in field.model_dump_json()
    plan = Plan(
        revision="abc",
        instance="default",
        changes=(Change(resource_group="rg", name="a", action=Action.UPDATE, fields=(field,)),),
    )
    assert all(secret not in text for text in renderings(plan).values())
