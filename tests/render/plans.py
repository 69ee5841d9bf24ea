"""Example plans and outcomes shared by the renderer tests: one entry of every action kind."""

from __future__ import annotations

from reconciler.model.manifest import GroupManifest, parse_manifest
from reconciler.model.outcome import ApplyResult, GroupOutcome, Result
from reconciler.model.plan import Action, Change, FieldChange, Plan, PlanIssue

C = "/properties/containers"


def create_change() -> Change:
    return Change(
        resource_group="rg-prod",
        name="web",
        action=Action.CREATE,
        reason="no container group of that name exists",
        source="manifests/web.yaml:1:1",
        fields=(
            FieldChange(path="/location", kind="add", after="westeurope"),
            FieldChange(path="/tags/team", kind="add", after="payments"),
            FieldChange(path="/properties/osType", kind="add", after="Linux"),
            FieldChange(
                path=C,
                kind="add",
                after=[
                    {
                        "name": "web",
                        "properties": {
                            "image": "myregistry.azurecr.io/web:1.4.2",
                            "command": ["/app/serve", "--port", "80"],
                            "resources": {"requests": {"cpu": 1.0, "memoryInGB": 1.5}},
                            "ports": [{"port": 80, "protocol": "TCP"}],
                            "environmentVariables": [
                                {"name": "MODE", "value": "prod"},
                                {"name": "DB_PASSWORD", "secureValue": "hunter2-create"},
                            ],
                        },
                    }
                ],
            ),
            FieldChange(
                path="/properties/ipAddress",
                kind="add",
                after={
                    "type": "Public",
                    "dnsNameLabel": "web-prod",
                    "ports": [{"port": 80, "protocol": "TCP"}],
                },
            ),
        ),
    )


def update_change() -> Change:
    return Change(
        resource_group="rg-prod",
        name="api",
        action=Action.UPDATE,
        changed_paths=(
            f"{C}/api/properties/image",
            f"{C}/api/properties/environmentVariables/DB_PASSWORD/secureValue",
            f"{C}/api/properties/environmentVariables/MODE/value",
        ),
        reason="image, environment variables changed",
        source="manifests/api.yaml:1:1",
        fields=(
            FieldChange(path=f"{C}/api/properties/image", kind="change", before="api:1.0", after="api:1.1"),
            FieldChange(
                path=f"{C}/api/properties/environmentVariables/DB_PASSWORD/secureValue",
                kind="change",
                sensitive=True,
            ),
            FieldChange(path=f"{C}/api/properties/environmentVariables/MODE/value", kind="add", after="prod"),
        ),
    )


def replace_change() -> Change:
    return Change(
        resource_group="rg-prod",
        name="worker",
        action=Action.REPLACE,
        adopt=True,
        changed_paths=(f"{C}/worker/properties/image", f"{C}/worker/properties/resources/requests/cpu"),
        replace_paths=(f"{C}/worker/properties/resources/requests/cpu",),
        reason="cpu of container worker changed",
        source="manifests/worker.yaml:4:1",
        fields=(
            FieldChange(
                path=f"{C}/worker/properties/resources/requests/cpu",
                kind="change",
                before=1.0,
                after=2.0,
                forces_replacement=True,
            ),
            FieldChange(
                path=f"{C}/worker/properties/image", kind="change", before="worker:7", after="worker:8"
            ),
        ),
    )


def tags_change() -> Change:
    return Change(
        resource_group="rg-prod",
        name="cache",
        action=Action.TAGS,
        changed_paths=("/tags/team",),
        reason="only tags changed",
        fields=(FieldChange(path="/tags/team", kind="change", before="core", after="payments"),),
    )


def delete_change() -> Change:
    return Change(
        resource_group="rg-prod",
        name="old",
        action=Action.DELETE,
        reason="its manifest is gone and prune is on",
    )


def conflict_change() -> Change:
    return Change(
        resource_group="rg-prod",
        name="legacy",
        action=Action.CONFLICT,
        reason="set reconcile.failIfExists: false to adopt it",
        source="manifests/legacy.yaml:1:1",
    )


def noop_change() -> Change:
    return Change(resource_group="rg-prod", name="quiet", action=Action.NOOP)


def held_change() -> Change:
    return Change(
        resource_group="rg-prod",
        name="batch",
        action=Action.REPLACE,
        changed_paths=("/properties/restartPolicy",),
        replace_paths=("/properties/restartPolicy",),
        held="recreate: never",
        fields=(
            FieldChange(path="/properties/restartPolicy", kind="change", before="Always", after="Never"),
        ),
    )


def plan_of(*changes: Change, issues: tuple[PlanIssue, ...] = ()) -> Plan:
    return Plan(revision="3f2c1a9", instance="default", changes=changes, issues=issues)


def full_plan() -> Plan:
    return plan_of(
        create_change(),
        update_change(),
        replace_change(),
        tags_change(),
        delete_change(),
        conflict_change(),
        noop_change(),
        held_change(),
        issues=(
            PlanIssue(
                severity="warning",
                message="environment variable DB_PASSWORD has a literal secureValue; use secureValueFrom",
                source="manifests/api.yaml:14:11",
                resource_group="rg-prod",
                name="api",
            ),
        ),
    )


def full_result() -> ApplyResult:
    return ApplyResult(
        revision="3f2c1a9",
        outcomes=(
            GroupOutcome(
                resource_group="rg-prod",
                name="web",
                action=Action.CREATE,
                result=Result.SUCCEEDED,
                attempts=1,
                duration_s=12.34,
            ),
            GroupOutcome(
                resource_group="rg-prod",
                name="api",
                action=Action.UPDATE,
                result=Result.FAILED,
                message="429 Too Many Requests",
                retryable=True,
                attempts=3,
                duration_s=40.0,
            ),
            GroupOutcome(
                resource_group="rg-prod",
                name="worker",
                action=Action.REPLACE,
                result=Result.FAILED,
                message="InvalidImage: the image 'worker:8' was not found",
                retryable=False,
                attempts=1,
                duration_s=75.2,
                interrupted_after_delete=True,
            ),
            GroupOutcome(
                resource_group="rg-prod",
                name="batch",
                action=Action.REPLACE,
                result=Result.HELD,
                message="recreate: never",
            ),
            GroupOutcome(
                resource_group="rg-prod",
                name="legacy",
                action=Action.CONFLICT,
                result=Result.SKIPPED,
            ),
            GroupOutcome(resource_group="rg-prod", name="quiet", action=Action.NOOP, result=Result.SKIPPED),
            GroupOutcome(
                resource_group="rg-prod",
                name="cache",
                action=Action.TAGS,
                result=Result.SUCCEEDED,
                attempts=1,
                duration_s=0.4,
            ),
            GroupOutcome(
                resource_group="rg-prod",
                name="old",
                action=Action.DELETE,
                result=Result.SUCCEEDED,
                attempts=1,
                duration_s=3661,
            ),
        ),
    )


def desired_with_secret(secret: str, name: str = "api") -> GroupManifest:
    """A desired manifest holding `secret` as a secure env value and a registry password, as planning keeps it
    on `Change.desired` for execution (renderers must never show it)."""
    return parse_manifest(
        {
            "name": name,
            "resourceGroup": "rg-prod",
            "location": "westeurope",
            "properties": {
                "osType": "Linux",
                "containers": [
                    {
                        "name": name,
                        "properties": {
                            "image": "api:1",
                            "resources": {"requests": {"cpu": 1, "memoryInGB": 1}},
                            "environmentVariables": [{"name": "DB", "secureValue": secret}],
                        },
                    }
                ],
                "imageRegistryCredentials": [{"server": "r.io", "username": "u", "password": secret}],
            },
        }
    )
