"""The JSON plan and apply output: shape, determinism, round trip and the absence of secrets."""

from __future__ import annotations

import json

from reconciler.model.plan import FORMAT_VERSION, Action, Change, FieldChange, PlanIssue
from reconciler.render import apply_to_json, plan_to_json, render_apply_json, render_plan_json
from tests.render.plans import (
    conflict_change,
    desired_with_secret,
    full_plan,
    full_result,
    held_change,
    noop_change,
    plan_of,
    replace_change,
    update_change,
)


def test_update_entry_has_the_documented_shape_with_secrets_as_sensitive() -> None:
    api = "/properties/containers/api/properties"
    assert plan_to_json(plan_of(update_change())) == {
        "format_version": "1",
        "revision": "3f2c1a9",
        "instance": "default",
        "has_changes": True,
        "reads": None,
        "changes": [
            {
                "resource_group": "rg-prod",
                "name": "api",
                "action": "update",
                "adopt": False,
                "changed_paths": [
                    f"{api}/image",
                    f"{api}/environmentVariables/DB_PASSWORD/secureValue",
                    f"{api}/environmentVariables/MODE/value",
                ],
                "replace_paths": [],
                "reason": "image, environment variables changed",
                "held": None,
                "changes_something": True,
                "source": "manifests/api.yaml:1:1",
                "fields": [
                    {
                        "path": f"{api}/environmentVariables/DB_PASSWORD/secureValue",
                        "kind": "change",
                        "before": "(sensitive)",
                        "after": "(sensitive)",
                        "sensitive": True,
                        "forces_replacement": False,
                    },
                    {
                        "path": f"{api}/environmentVariables/MODE/value",
                        "kind": "add",
                        "before": None,
                        "after": "prod",
                        "sensitive": False,
                        "forces_replacement": False,
                    },
                    {
                        "path": f"{api}/image",
                        "kind": "change",
                        "before": "api:1.0",
                        "after": "api:1.1",
                        "sensitive": False,
                        "forces_replacement": False,
                    },
                ],
            }
        ],
        "issues": [],
        "summary": {
            "create": 0,
            "update": 1,
            "tags": 0,
            "replace": 0,
            "delete": 0,
            "conflict": 0,
            "noop": 0,
            "held": 0,
            "errors": 0,
            "warnings": 0,
            "has_changes": True,
        },
    }


def test_replace_entry_carries_replace_paths_and_forcing_fields() -> None:
    (entry,) = plan_to_json(plan_of(replace_change()))["changes"]
    assert entry["action"] == "replace"
    assert entry["adopt"] is True
    assert entry["replace_paths"] == ["/properties/containers/worker/properties/resources/requests/cpu"]
    assert [(f["path"].rsplit("/", 1)[1], f["forces_replacement"]) for f in entry["fields"]] == [
        ("image", False),
        ("cpu", True),
    ]


def test_summary_has_every_action_key_even_when_zero() -> None:
    summary = plan_to_json(plan_of())["summary"]
    assert summary == {
        "create": 0,
        "update": 0,
        "tags": 0,
        "replace": 0,
        "delete": 0,
        "conflict": 0,
        "noop": 0,
        "held": 0,
        "errors": 0,
        "warnings": 0,
        "has_changes": False,
    }
    assert {a.value for a in Action} <= set(summary)


def test_held_and_conflict_do_not_count_as_changes() -> None:
    data = plan_to_json(plan_of(held_change(), conflict_change(), noop_change()))
    assert data["has_changes"] is False
    assert data["summary"]["replace"] == 1
    assert data["summary"]["held"] == 1
    assert data["summary"]["conflict"] == 1
    assert [c["changes_something"] for c in data["changes"]] == [False, False, False]


def test_issues_are_listed_with_their_place() -> None:
    issue = PlanIssue(severity="error", message="bad cpu", source="a.yaml:3:9", resource_group="rg", name="w")
    data = plan_to_json(plan_of(issues=(issue,)))
    assert data["issues"] == [
        {
            "severity": "error",
            "message": "bad cpu",
            "source": "a.yaml:3:9",
            "resource_group": "rg",
            "name": "w",
        }
    ]
    assert data["summary"]["errors"] == 1


def test_rendered_json_round_trips_and_is_deterministic() -> None:
    plan = full_plan()
    text = render_plan_json(plan)
    assert json.loads(text) == plan_to_json(plan)
    assert json.loads(text)["format_version"] == FORMAT_VERSION
    shuffled = plan.model_copy(update={"changes": tuple(reversed(plan.changes))})
    assert render_plan_json(shuffled) == text
    assert text.startswith('{\n  "changes": [\n')
    assert text.endswith("}\n")


def test_json_never_contains_the_desired_manifest() -> None:
    change = update_change().model_copy(update={"desired": desired_with_secret("only-in-desired-4711")})
    text = render_plan_json(plan_of(change))
    assert "only-in-desired-4711" not in text
    assert "desired" not in json.loads(text)["changes"][0]


def test_sensitive_add_and_remove_keep_the_absent_side_null() -> None:
    change = Change(
        resource_group="rg",
        name="g",
        action=Action.UPDATE,
        fields=(
            FieldChange(
                path="/properties/volumes/certs/secret", kind="add", after={"k": "czM="}, sensitive=True
            ),
            FieldChange(
                path="/properties/imageRegistryCredentials/r.io/password", kind="remove", before="pw"
            ),
        ),
    )
    fields = plan_to_json(plan_of(change))["changes"][0]["fields"]
    assert [(f["before"], f["after"], f["sensitive"]) for f in fields] == [
        ("(sensitive)", None, True),
        (None, "(sensitive)", True),
    ]


def test_values_that_are_not_plain_json_still_serialise() -> None:
    change = Change(
        resource_group="rg",
        name="g",
        action=Action.UPDATE,
        fields=(
            FieldChange(path="/zones", kind="change", before=("1",), after=("2",)),
            FieldChange(path="/properties/x", kind="change", before=float("inf"), after=1.5),
        ),
    )
    data = json.loads(render_plan_json(plan_of(change)))
    assert [(f["before"], f["after"]) for f in data["changes"][0]["fields"]] == [
        ("inf", 1.5),
        (["1"], ["2"]),
    ]


def test_apply_json_lists_outcomes_and_counts_every_kind() -> None:
    data = apply_to_json(full_result())
    assert json.loads(render_apply_json(full_result())) == data
    assert data["format_version"] == "1"
    assert data["ok"] is False
    assert data["summary"] == {
        "created": 1,
        "updated": 0,
        "replaced": 0,
        "tags_updated": 1,
        "deleted": 1,
        "failed": 2,
        "recreate_failed": 0,
        "held": 1,
        "skipped": 0,
        "conflict": 1,
        "unchanged": 1,
    }
    api = data["outcomes"][0]
    assert api == {
        "resource_group": "rg-prod",
        "name": "api",
        "action": "update",
        "result": "failed",
        "message": "429 Too Many Requests",
        "retryable": True,
        "attempts": 3,
        "duration_s": 40.0,
        "interrupted_after_delete": False,
    }
