"""The terminal plan and apply output, checked against exact expected text."""

from __future__ import annotations

import re

from reconciler.model.outcome import ApplyResult, GroupOutcome, Result
from reconciler.model.plan import Action, Change, FieldChange, PlanIssue
from reconciler.render import render_apply_text, render_plan_text
from tests.render.plans import (
    conflict_change,
    create_change,
    delete_change,
    full_result,
    held_change,
    noop_change,
    plan_of,
    replace_change,
    tags_change,
    update_change,
)

HEAD = "aci-reconciler plan: revision 3f2c1a9, instance default\n"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_create_lists_the_main_fields_of_the_new_group_and_counts_the_rest() -> None:
    assert render_plan_text(plan_of(create_change())) == HEAD + (
        "\n"
        "Resource actions are indicated with the following symbols:\n"
        "  + create\n"
        "\n"
        "The reconciler will perform the following actions:\n"
        "\n"
        "  # rg-prod/web will be created\n"
        "  #   no container group of that name exists\n"
        '  + container_group "rg-prod/web" {\n'
        '      + /location                                                           = "westeurope"\n'
        '      + /properties/osType                                                  = "Linux"\n'
        '      + /properties/containers/web/properties/image                         = "myregistry.azurecr.io/web:1.4.2"\n'  # noqa: E501 - the expected line is this long
        "      + /properties/containers/web/properties/resources/requests/cpu        = 1.0\n"
        "      + /properties/containers/web/properties/resources/requests/memoryInGB = 1.5\n"
        '      + /properties/containers/web/properties/ports                         = [{"port": 80, "protocol": "TCP"}]\n'  # noqa: E501 - the expected line is this long
        '      + /properties/ipAddress/type                                          = "Public"\n'
        '      + /properties/ipAddress/dnsNameLabel                                  = "web-prod"\n'
        '      + /properties/ipAddress/ports                                         = [{"port": 80, "protocol": "TCP"}]\n'  # noqa: E501 - the expected line is this long
        "        # (4 more fields)\n"
        "    }\n"
        "\n"
        "Plan: 1 to create.\n"
    )


def test_create_from_the_canonical_form_lists_containers_in_manifest_order() -> None:
    # Planning hands a create over as whole subtrees of its canonical form: keyed lists are maps.
    properties = {
        "osType": "Linux",
        "containers": {
            "web": {
                "properties": {
                    "image": "nginx:1.25",
                    "command": ["nginx", "-g", "daemon off;"],
                    "ports": {"80": {"port": 80, "protocol": "TCP"}},
                    "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                }
            },
            "log": {"properties": {"image": "fluentbit:3", "resources": {"requests": {"cpu": 0.5}}}},
        },
        "ipAddress": {"type": "Public", "ports": {"80": {"port": 80, "protocol": "TCP"}}},
    }
    change = Change(
        resource_group="rg",
        name="web",
        action=Action.CREATE,
        fields=(
            FieldChange(path="/location", kind="add", after="westeurope"),
            FieldChange(path="/properties", kind="add", after=properties),
        ),
    )
    lines = render_plan_text(plan_of(change)).splitlines()
    start = lines.index('  + container_group "rg/web" {')
    web, log = "/properties/containers/web/properties", "/properties/containers/log/properties"
    width = len(f"{web}/resources/requests/memoryInGB")
    expected = [
        ("/location", '"westeurope"'),
        ("/properties/osType", '"Linux"'),
        (f"{web}/image", '"nginx:1.25"'),
        (f"{web}/ports", '[{"port": 80, "protocol": "TCP"}]'),
        (f"{web}/resources/requests/cpu", "1"),
        (f"{web}/resources/requests/memoryInGB", "1.5"),
        (f"{log}/image", '"fluentbit:3"'),
        (f"{log}/resources/requests/cpu", "0.5"),
        ("/properties/ipAddress/type", '"Public"'),
        ("/properties/ipAddress/ports", '[{"port": 80, "protocol": "TCP"}]'),
    ]
    assert lines[start + 1 : start + 12] == [
        *(f"      + {path.ljust(width)} = {value}" for path, value in expected),
        "        # (1 more field)",
    ]


def test_update_shows_before_and_after_and_secrets_as_sensitive() -> None:
    api = "/properties/containers/api/properties"
    assert render_plan_text(plan_of(update_change())) == HEAD + (
        "\n"
        "Resource actions are indicated with the following symbols:\n"
        "  ~ update in place\n"
        "\n"
        "The reconciler will perform the following actions:\n"
        "\n"
        "  # rg-prod/api will be updated in place\n"
        "  #   image, environment variables changed\n"
        '  ~ container_group "rg-prod/api" {\n'
        f"      ~ {api}/environmentVariables/DB_PASSWORD/secureValue = (sensitive)\n"
        f'      + {api}/environmentVariables/MODE/value              = "prod"\n'
        f'      ~ {api}/image                                        = "api:1.0" -> "api:1.1"\n'
        "    }\n"
        "\n"
        "Plan: 1 to update in place.\n"
    )


def test_replace_marks_the_paths_that_force_it() -> None:
    worker = "/properties/containers/worker/properties"
    assert render_plan_text(plan_of(replace_change())) == HEAD + (
        "\n"
        "Resource actions are indicated with the following symbols:\n"
        "-/+ replace (delete, then create)\n"
        "\n"
        "The reconciler will perform the following actions:\n"
        "\n"
        "  # rg-prod/worker must be replaced (adopting)\n"
        "  #   cpu of container worker changed\n"
        '-/+ container_group "rg-prod/worker" {\n'
        f'      ~ {worker}/image                  = "worker:7" -> "worker:8"\n'
        f"      ~ {worker}/resources/requests/cpu = 1.0 -> 2.0 # forces replacement\n"
        "    }\n"
        "\n"
        "Plan: 1 to replace.\n"
    )


def test_replace_path_listed_only_in_change_replace_paths_still_forces_replacement() -> None:
    change = Change(
        resource_group="rg",
        name="g",
        action=Action.REPLACE,
        replace_paths=("/properties/osType",),
        fields=(FieldChange(path="/properties/osType", kind="change", before="Linux", after="Windows"),),
    )
    assert '= "Linux" -> "Windows" # forces replacement\n' in render_plan_text(plan_of(change))


def test_tags_only_change_is_its_own_kind() -> None:
    assert render_plan_text(plan_of(tags_change())) == HEAD + (
        "\n"
        "Resource actions are indicated with the following symbols:\n"
        "  ~ update in place\n"
        "\n"
        "The reconciler will perform the following actions:\n"
        "\n"
        "  # rg-prod/cache tags will be updated\n"
        "  #   only tags changed\n"
        '  ~ container_group "rg-prod/cache" {\n'
        '      ~ /tags/team = "core" -> "payments"\n'
        "    }\n"
        "\n"
        "Plan: 1 to update tags.\n"
    )


def test_delete_without_fields_is_one_line() -> None:
    assert render_plan_text(plan_of(delete_change())) == HEAD + (
        "\n"
        "Resource actions are indicated with the following symbols:\n"
        "  - delete\n"
        "\n"
        "The reconciler will perform the following actions:\n"
        "\n"
        "  # rg-prod/old will be deleted\n"
        "  #   its manifest is gone and prune is on\n"
        '  - container_group "rg-prod/old"\n'
        "\n"
        "Plan: 1 to delete.\n"
    )


def test_delete_with_fields_lists_what_goes_away() -> None:
    change = Change(
        resource_group="rg",
        name="old",
        action=Action.DELETE,
        fields=(
            FieldChange(path="/location", kind="remove", before="westeurope"),
            FieldChange(path="/properties/containers/a/properties/image", kind="remove", before="a:1"),
            FieldChange(path="/properties/containers/a/properties/command", kind="remove", before=["x"]),
        ),
    )
    assert render_plan_text(plan_of(change)).split("\n")[7:13] == [
        "  # rg/old will be deleted",
        '  - container_group "rg/old" {',
        '      - /location                                 = "westeurope"',
        '      - /properties/containers/a/properties/image = "a:1"',
        "        # (1 more field)",
        "    }",
    ]


def test_conflict_shows_its_reason_and_counts_as_a_conflict() -> None:
    assert render_plan_text(plan_of(conflict_change())) == HEAD + (
        "\n"
        "Resource actions are indicated with the following symbols:\n"
        "  ! conflict (not touched)\n"
        "\n"
        "The reconciler will perform the following actions:\n"
        "\n"
        "  # rg-prod/legacy exists and is not managed by this reconciler (failIfExists)\n"
        "  #   set reconcile.failIfExists: false to adopt it\n"
        '  ! container_group "rg-prod/legacy"\n'
        "\n"
        "Plan: 1 conflict.\n"
    )


def test_held_change_is_marked_and_counted_as_held_not_as_a_replace() -> None:
    assert render_plan_text(plan_of(held_change())) == HEAD + (
        "\n"
        "Resource actions are indicated with the following symbols:\n"
        "-/+ replace (delete, then create)\n"
        "\n"
        "The reconciler will perform the following actions:\n"
        "\n"
        "  # rg-prod/batch must be replaced\n"
        "  # held: recreate: never\n"
        '-/+ container_group "rg-prod/batch" {\n'
        '      ~ /properties/restartPolicy = "Always" -> "Never" # forces replacement\n'
        "    }\n"
        "\n"
        "Plan: 1 held.\n"
    )


def test_adopted_update_says_adopting() -> None:
    change = update_change().model_copy(update={"adopt": True})
    assert "  # rg-prod/api will be updated in place (adopting)\n" in render_plan_text(plan_of(change))


def test_empty_plan_says_azure_matches() -> None:
    assert render_plan_text(plan_of()) == HEAD + "\nNo changes. Azure matches the manifests.\n"


def test_noop_groups_are_hidden_unless_asked_for() -> None:
    plan = plan_of(noop_change())
    assert render_plan_text(plan) == HEAD + "\nNo changes. Azure matches the manifests.\n"
    assert render_plan_text(plan, show_noop=True) == HEAD + (
        "\n"
        "The reconciler will perform the following actions:\n"
        "\n"
        "  # rg-prod/quiet is up to date\n"
        "\n"
        "No changes. Azure matches the manifests.\n"
    )


def test_issues_are_listed_with_their_place_errors_first_and_counted() -> None:
    plan = plan_of(
        issues=(
            PlanIssue(
                severity="warning", message="literal secureValue; use secureValueFrom", source="a.yaml:3:5"
            ),
            PlanIssue(
                severity="error",
                message="cpu must be a number",
                source="b.yaml:9:14",
                resource_group="rg",
                name="web",
            ),
            PlanIssue(severity="error", message="AZURE_SUBSCRIPTION_ID is not set"),
        )
    )
    assert render_plan_text(plan) == HEAD + (
        "\n"
        "Error: AZURE_SUBSCRIPTION_ID is not set\n"
        "Error: b.yaml:9:14: rg/web: cpu must be a number\n"
        "Warning: a.yaml:3:5: literal secureValue; use secureValueFrom\n"
        "\n"
        "No changes planned, but the plan has 2 errors.\n"
    )
    with_change = plan_of(create_change(), issues=plan.issues[1:2])
    assert render_plan_text(with_change).endswith("\nPlan: 1 to create; 1 error.\n")


def test_summary_counts_every_kind_in_terraform_order() -> None:
    plan = plan_of(
        create_change(),
        update_change(),
        update_change().model_copy(update={"name": "api2"}),
        tags_change(),
        replace_change(),
        delete_change(),
        conflict_change(),
        conflict_change().model_copy(update={"name": "l2"}),
        held_change(),
        noop_change(),
    )
    assert render_plan_text(plan).endswith(
        "\nPlan: 1 to create, 2 to update in place, 1 to update tags, 1 to replace, 1 to delete, "
        "1 held, 2 conflicts.\n"
    )


def test_groups_are_listed_by_address_whatever_the_plan_order() -> None:
    text = render_plan_text(plan_of(update_change(), create_change(), delete_change()))
    headers = [line for line in text.splitlines() if line.startswith("  # rg-prod/")]
    assert headers == [
        "  # rg-prod/api will be updated in place",
        "  # rg-prod/old will be deleted",
        "  # rg-prod/web will be created",
    ]


def test_long_values_are_folded_and_indented_under_their_field() -> None:
    before = ["/bin/sh", "-c", "python -m http.server 8080 --bind 0.0.0.0 --directory /srv/www"]
    change = Change(
        resource_group="rg",
        name="g",
        action=Action.UPDATE,
        fields=(
            FieldChange(
                path="/properties/containers/a/properties/command", kind="change", before=before, after=["x"]
            ),
        ),
    )
    lines = render_plan_text(plan_of(change)).splitlines()
    start = lines.index('  ~ container_group "rg/g" {')
    assert lines[start + 1 : start + 8] == [
        "      ~ /properties/containers/a/properties/command = [",
        '          "/bin/sh",',
        '          "-c",',
        '          "python -m http.server 8080 --bind 0.0.0.0 --directory /srv/www"',
        '        ] -> ["x"]',
        "    }",
        "",
    ]


def test_removed_field_shows_its_old_value_going_to_null() -> None:
    change = Change(
        resource_group="rg",
        name="g",
        action=Action.UPDATE,
        fields=(FieldChange(path="/properties/ipAddress/dnsNameLabel", kind="remove", before="web"),),
    )
    assert '      - /properties/ipAddress/dnsNameLabel = "web" -> null\n' in render_plan_text(plan_of(change))


def test_text_without_color_has_no_escape_codes() -> None:
    plan = plan_of(create_change(), update_change(), replace_change(), delete_change(), conflict_change())
    assert "\x1b" not in render_plan_text(plan, show_noop=True)
    assert "\x1b" not in render_apply_text(full_result())


def test_color_uses_terraform_colours_and_strips_back_to_the_plain_text() -> None:
    plan = plan_of(create_change(), update_change(), replace_change(), delete_change(), conflict_change())
    coloured = render_plan_text(plan, color=True)
    assert "\x1b[32m+\x1b[0m" in coloured  # green create
    assert "\x1b[33m~\x1b[0m" in coloured  # yellow update
    assert "\x1b[31m-\x1b[0m/\x1b[32m+\x1b[0m" in coloured  # red/green replace
    assert "\x1b[31m# forces replacement\x1b[0m" in coloured
    assert "\x1b[35m!\x1b[0m" in coloured  # conflict
    assert ANSI.sub("", coloured) == render_plan_text(plan)


def test_names_and_reasons_cannot_inject_terminal_escapes() -> None:
    change = conflict_change().model_copy(update={"reason": "evil\x1b[2Jreason\nsecond line"})
    text = render_plan_text(plan_of(change))
    assert "\x1b" not in text
    assert "  #   evil\\u001b[2Jreason second line\n" in text


# --- apply ---


def test_apply_lists_each_group_and_a_final_summary() -> None:
    assert render_apply_text(full_result()) == (
        "rg-prod/api: update failed after 3 attempts in 40.0s (will be retried): 429 Too Many Requests\n"
        "rg-prod/batch: replace held: recreate: never\n"
        "rg-prod/cache: tags updated in 0.4s\n"
        "rg-prod/legacy: not touched (exists and is not managed by this reconciler)\n"
        "rg-prod/old: deleted in 1h01m\n"
        "rg-prod/web: created in 12.3s\n"
        "rg-prod/worker: replace failed in 1m15s (stalled: not retried until its manifest changes): "
        "InvalidImage: the image 'worker:8' was not found; "
        "the group was deleted and will be created on the next pass\n"
        "\n"
        "Apply complete: 1 created, 1 tags updated, 1 deleted, 2 failed, 1 held, 1 conflict.\n"
    )


def test_apply_of_nothing_says_no_changes_and_noops_show_only_on_request() -> None:
    quiet = GroupOutcome(resource_group="rg", name="q", action=Action.NOOP, result=Result.SKIPPED)
    result = ApplyResult(revision="r", outcomes=(quiet,))
    assert render_apply_text(ApplyResult(revision="r")) == "Apply complete: no changes.\n"
    assert render_apply_text(result) == "Apply complete: no changes.\n"
    assert render_apply_text(result, show_noop=True) == "rg/q: unchanged\n\nApply complete: no changes.\n"


def test_apply_success_after_retries_says_how_many_attempts() -> None:
    done = GroupOutcome(
        resource_group="rg", name="a", action=Action.UPDATE, result=Result.SUCCEEDED, attempts=2, duration_s=5
    )
    assert render_apply_text(ApplyResult(revision="r", outcomes=(done,))) == (
        "rg/a: updated in 5.0s after 2 attempts\n\nApply complete: 1 updated.\n"
    )


def test_apply_colour_marks_failures_red_and_strips_back_to_plain() -> None:
    coloured = render_apply_text(full_result(), color=True)
    assert "\x1b[31mupdate failed" in coloured
    assert "\x1b[32mcreated in 12.3s\x1b[0m" in coloured
    assert ANSI.sub("", coloured) == render_apply_text(full_result())


def test_apply_messages_cannot_inject_terminal_escapes() -> None:
    failed = GroupOutcome(
        resource_group="rg",
        name="a",
        action=Action.CREATE,
        result=Result.FAILED,
        message="boom\x1b]0;pwned\x07\nnext",
        retryable=None,
    )
    assert render_apply_text(ApplyResult(revision="r", outcomes=(failed,))) == (
        "rg/a: create failed in 0.0s: boom\\u001b]0;pwned\\u0007 next\n\nApply complete: 1 failed.\n"
    )
