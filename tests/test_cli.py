"""The CLI's parsing and target choice, without running a pass."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from reconciler.cli import (
    LOCAL_SUBSCRIPTION,
    UsageError,
    _short_revision,
    build_parser,
    choose_target,
    finish_manifest_options,
    split_command,
)


@pytest.mark.parametrize(
    ("argv", "command", "rest"),
    [
        ([], "apply", []),
        (["--dry-run"], "apply", ["--dry-run"]),
        (["plan", "-o", "json"], "plan", ["-o", "json"]),
        (["--local", "--dry-run"], "apply", ["--local", "--dry-run"]),
        (["export", "web"], "export", ["web"]),
    ],
)
def test_the_command_is_the_first_word_and_apply_is_the_default(
    argv: list[str], command: str, rest: list[str]
) -> None:
    assert split_command(argv) == (command, rest)


def test_a_command_after_local_is_a_usage_error_that_shows_the_right_order() -> None:
    with pytest.raises(UsageError, match="put the command first: `reconcile status --local`"):
        split_command(["--local", "status"])


def parse(command: str, *argv: str, environ: dict[str, str] | None = None) -> argparse.Namespace:
    args = build_parser(command, environ or {}).parse_args(list(argv))
    finish_manifest_options(args, environ or {})
    return args


def test_no_target_says_how_to_choose_one() -> None:
    with pytest.raises(UsageError) as err:
        choose_target(parse("plan"))
    message = str(err.value)
    for option in ("--local", "--subscription", "--endpoint"):
        assert option in message


def test_subscription_from_the_environment_chooses_azure() -> None:
    choice = choose_target(parse("plan", environ={"AZURE_SUBSCRIPTION_ID": "sub-1"}))
    assert choice.kind == "azure"
    assert choice.subscription == "sub-1"
    assert choice.credential == "default"


def test_local_takes_an_optional_directory_and_a_fixed_subscription() -> None:
    assert choose_target(parse("apply", "--local")).local_dir == Path(".reconciler")
    choice = choose_target(parse("apply", "--local", "state"))
    assert choice.kind == "local"
    assert choice.local_dir == Path("state")
    assert choice.subscription == LOCAL_SUBSCRIPTION


def test_local_and_endpoint_together_are_refused() -> None:
    with pytest.raises(UsageError, match="give one of them"):
        choose_target(parse("apply", "--local", "--endpoint", "https://127.0.0.1:1"))


def test_an_endpoint_must_be_https_because_tokens_are_never_sent_in_clear() -> None:
    with pytest.raises(UsageError, match="https"):
        choose_target(parse("plan", "--endpoint", "http://127.0.0.1:1"))


def test_a_missing_ca_file_is_named() -> None:
    with pytest.raises(UsageError, match=r"no-such\.pem"):
        choose_target(parse("plan", "--endpoint", "https://127.0.0.1:1", "--ca-cert", "no-such.pem"))


def test_environment_variables_fill_the_common_options() -> None:
    args = parse(
        "plan",
        environ={
            "RECONCILER_ENDPOINT": "https://127.0.0.1:9",
            "RECONCILER_CREDENTIAL": "static",
            "AZURE_RESOURCE_GROUP": "rg-x",
            "RECONCILER_INSTANCE": "blue",
            "RECONCILER_MANIFESTS": "deploy/aci",
        },
    )
    choice = choose_target(args)
    assert (choice.kind, choice.endpoint, choice.credential) == ("endpoint", "https://127.0.0.1:9", "static")
    assert args.resource_group == "rg-x"
    assert args.instance == "blue"
    assert args.manifests == Path("deploy/aci")


@pytest.mark.parametrize(
    ("revision", "shown"),
    [(None, "-"), ("sha256:" + "a" * 64, "sha256:aaaaaaaaaaaa"), ("0123456789abcdef0123", "0123456789ab")],
)
def test_status_shows_revisions_short(revision: str | None, shown: str) -> None:
    assert _short_revision(revision) == shown


def test_manifests_option_repeats_and_keeps_its_order(tmp_path: Path) -> None:
    args = parse("validate", "-f", "a", "--manifests", "b.yaml", "-f", "c")
    assert args.manifest_roots == (Path("a"), Path("b.yaml"), Path("c"))
    assert args.manifests == Path("a")
    assert parse("validate", environ={"RECONCILER_MANIFESTS": "m"}).manifest_roots == (Path("m"),)


def test_env_allow_repeats_comes_from_the_environment_and_checks_its_patterns() -> None:
    assert parse("validate").env_allow is None  # the default allowlist
    assert parse("validate", "--env-allow", "BUILD_*", "--env-allow", "TAG").env_allow == ("BUILD_*", "TAG")
    assert parse("plan", "--local", environ={"RECONCILER_ENV_ALLOW": "A_*, B"}).env_allow == ("A_*", "B")
    with pytest.raises(UsageError, match="--env-allow: 'a-b' is not a variable name pattern"):
        parse("validate", "--env-allow", "a-b")


def test_the_daemon_refuses_several_manifest_roots(tmp_path: Path) -> None:
    from reconciler.daemon.cli import DaemonUsageError, config_from_args

    args = parse("daemon", "--local", "-f", str(tmp_path), "-f", str(tmp_path))
    with pytest.raises(DaemonUsageError, match="give -f once"):
        config_from_args(args, {})


def test_progress_never_counts_a_held_change_against_the_total() -> None:
    import io

    from reconciler.cli import Progress
    from reconciler.execution import ProgressEvent
    from reconciler.model.plan import Action

    out = io.StringIO()
    progress = Progress(out, total=1, live=False)
    progress(ProgressEvent("rg", "kept", Action.DELETE, "held", "its manifest set reconcile.prune: false"))
    progress(ProgressEvent("rg", "web", Action.UPDATE, "started"))
    progress(ProgressEvent("rg", "web", Action.UPDATE, "done"))
    assert out.getvalue().splitlines() == [
        "rg/kept: held (its manifest set reconcile.prune: false)",
        "[0/1] rg/web: started",
        "[1/1] rg/web: done",
    ]


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        ([], {}, "subscription"),
        ([], {"RECONCILER_SCOPE": "rg-a,rg-b"}, "resource groups rg-a, rg-b"),
        (["--scope", "manifests"], {"RECONCILER_SCOPE": "rg-a"}, "manifests"),
        (["--prune-scope", "rg-x"], {}, "resource groups rg-x"),
        (["--scope", "rg-a", "--prune-scope", "rg-b"], {}, "resource groups rg-a, rg-b"),
    ],
)
def test_scope_comes_from_the_flag_then_the_environment_and_prune_scope_is_its_older_name(
    argv: list[str], env: dict[str, str], expected: str, tmp_path: Path
) -> None:
    from reconciler.cli import engine_settings

    args = parse("plan", "--local", str(tmp_path), *argv, environ=env)
    settings = engine_settings(args, choose_target(args), env)
    assert settings.scope.describe() == expected
