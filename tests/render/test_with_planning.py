"""Renderings of plans that the real planner built from real manifests (not hand-made Change data), so the
renderers are checked against the shapes planning actually produces: canonical maps, the secure marker,
sensitive secret paths."""

from __future__ import annotations

import string
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reconciler.model.manifest import GroupManifest, parse_manifest
from reconciler.model.observed import ObservedGroup
from reconciler.model.plan import Plan
from reconciler.planning import DesiredGroup, build_plan
from reconciler.render import render_plan_json, render_plan_markdown, render_plan_text

KEY = b"test-secret-hash-key"


def manifest(image: str, secret: str, password: str = "S3crRegistryPw") -> GroupManifest:
    return parse_manifest(
        {
            "name": "web",
            "resourceGroup": "rg-prod",
            "location": "westeurope",
            "tags": {"team": "payments"},
            "properties": {
                "osType": "Linux",
                "containers": [
                    {
                        "name": "web",
                        "properties": {
                            "image": image,
                            "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                            "ports": [{"port": 80}],
                            "environmentVariables": [
                                {"name": "MODE", "value": "prod"},
                                {"name": "DB_PASSWORD", "secureValue": secret},
                            ],
                        },
                    }
                ],
                "imageRegistryCredentials": [
                    {"server": "myregistry.azurecr.io", "username": "puller", "password": password}
                ],
                "ipAddress": {"type": "Public", "dnsNameLabel": "web-prod", "ports": [{"port": 80}]},
            },
        }
    )


def create_plan(m: GroupManifest) -> Plan:
    return build_plan(
        [DesiredGroup(m, "manifests/web.yaml:1:1")], [], instance="default", revision="abc", secret_key=KEY
    )


def live_after_create(m: GroupManifest) -> ObservedGroup:
    """The group as a GET returns it after the create: no secrets, the ownership tags written."""
    (change,) = create_plan(m).changes
    body: dict[str, Any] = {**m.to_arm_body(reveal_secrets=False), "tags": dict(change.write_tags)}
    return ObservedGroup(
        resource_group="rg-prod",
        name="web",
        location="westeurope",
        tags=dict(change.write_tags),
        body=body,
        provisioning_state="Succeeded",
        instance_state="Running",
    )


def everything(plan: Plan) -> str:
    return "\n".join(
        [
            render_plan_text(plan, show_noop=True),
            render_plan_text(plan, color=True),
            render_plan_markdown(plan),
            render_plan_json(plan),
        ]
    )


def test_create_of_a_real_manifest_lists_its_main_fields() -> None:
    text = render_plan_text(create_plan(manifest("nginx:1.25", "S3crDbPassword")))
    assert "  # rg-prod/web will be created\n" in text
    for expected in (
        '/location                                                           = "westeurope"',
        '/properties/containers/web/properties/image                         = "nginx:1.25"',
        "/properties/containers/web/properties/ports                         = "
        '[{"port": 80, "protocol": "TCP"}]',
        "/properties/containers/web/properties/resources/requests/cpu        = 1\n",
        "/properties/containers/web/properties/resources/requests/memoryInGB = 1.5\n",
        '/properties/ipAddress/dnsNameLabel                                  = "web-prod"',
    ):
        assert expected in text
    assert text.endswith("\nPlan: 1 to create.\n")
    assert "S3crDbPassword" not in text


def test_update_of_a_real_group_shows_the_image_and_a_sensitive_secret_change() -> None:
    live = live_after_create(manifest("nginx:1.25", "S3crOldPassword"))
    plan = build_plan(
        [DesiredGroup(manifest("nginx:1.26", "S3crNewPassword"), "manifests/web.yaml:1:1")],
        [live],
        instance="default",
        revision="def",
        secret_key=KEY,
    )
    text = render_plan_text(plan)
    assert "  # rg-prod/web will be updated in place\n" in text
    assert '= "nginx:1.25" -> "nginx:1.26"\n' in text
    assert "/properties/(secrets)" in text
    assert "= (sensitive)\n" in text
    for secret in ("S3crOldPassword", "S3crNewPassword", "S3crRegistryPw"):
        assert secret not in everything(plan)


def test_unchanged_real_group_renders_no_changes() -> None:
    m = manifest("nginx:1.25", "S3crSame")
    plan = build_plan(
        [DesiredGroup(m, None)], [live_after_create(m)], instance="default", revision="abc", secret_key=KEY
    )
    assert render_plan_text(plan).endswith("\nNo changes. Azure matches the manifests.\n")


secrets = st.text(alphabet=string.ascii_letters + string.digits + "+/=", min_size=12, max_size=30).map(
    lambda s: "S3cr" + s
)


@given(secrets, secrets, st.booleans())
def test_no_secret_of_a_real_plan_reaches_any_rendering(old: str, new: str, exists: bool) -> None:
    desired = manifest("nginx:1.26", new, password=new + "pw")
    live = [live_after_create(manifest("nginx:1.25", old, password=old + "pw"))] if exists else []
    plan = build_plan([DesiredGroup(desired, None)], live, instance="default", revision="r", secret_key=KEY)
    out = everything(plan)
    for secret in (old, new, old + "pw", new + "pw"):
        assert secret not in out
