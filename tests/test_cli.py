"""The CLI's parsing, target choice and output shapes, without running a pass."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.cli import (
    EXIT_BROKEN_PIPE,
    LOCAL_SUBSCRIPTION,
    UsageError,
    _short_revision,
    _without_empty_lists,
    build_parser,
    choose_target,
    export_yaml,
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
        (["--local", "state"], "apply", ["--local", "state"]),
        (["export", "web"], "export", ["web"]),
        # Global options before the command, as the README writes them.
        (["--local", "status"], "status", ["--local=.reconciler"]),
        (["--local", "export", "web"], "export", ["--local=.reconciler", "web"]),
        (["--local", "state", "status"], "status", ["--local", "state"]),
        (["--local", "state", "export", "web"], "export", ["--local", "state", "web"]),
        (["export", "--local", "web"], "export", ["--local=.reconciler", "web"]),
        (["export", "web", "--local", "state"], "export", ["web", "--local", "state"]),
        (["-o", "json", "status", "--local"], "status", ["-o", "json", "--local"]),
        # A value of an option is never the command, even when it is spelled like one.
        (["--instance", "status", "plan"], "plan", ["--instance", "status"]),
        (["-f", "export", "--dry-run"], "apply", ["-f", "export", "--dry-run"]),
        (["--local", "--dry-run", "plan"], "plan", ["--local", "--dry-run"]),
    ],
)
def test_the_command_may_come_before_or_after_the_global_options(
    argv: list[str], command: str, rest: list[str]
) -> None:
    assert split_command(argv) == (command, rest)


@pytest.mark.parametrize(
    ("argv", "local", "name"),
    [
        (["--local", "export", "web", "--resource-group", "rg"], ".reconciler", "web"),
        (["export", "web", "--local", "--resource-group", "rg"], ".reconciler", "web"),
        (["export", "--local", "web", "--resource-group", "rg"], ".reconciler", "web"),
        (["--local", "st", "export", "web", "--resource-group", "rg"], "st", "web"),
        (["export", "--resource-group", "rg", "--local", "st", "web"], "st", "web"),
    ],
)
def test_export_with_local_anywhere_keeps_the_name(argv: list[str], local: str, name: str) -> None:
    command, rest = split_command(argv)
    args = build_parser(command, {}).parse_args(rest)
    assert (command, args.local, args.name, args.resource_group) == ("export", Path(local), name, "rg")


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


def options_of(command: str) -> set[str]:
    parser = build_parser(command, {})
    return {flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")}


APPLY_ONLY = {"--concurrency", "--poll-interval", "--lro-timeout", "--detailed-exitcode", "--show-noop"}
PLAN_SHAPING = {"--no-prune", "--prune-scope", "--allow-empty"}
TARGET = {"--subscription", "--endpoint", "--ca-cert", "--credential", "--local", "--no-wait"}


@pytest.mark.parametrize(
    ("command", "absent"),
    [
        ("status", APPLY_ONLY | {"--dry-run"}),
        ("export", APPLY_ONLY | PLAN_SHAPING | {"--manifests", "--location", "--instance", "--dry-run"}),
        ("validate", APPLY_ONLY | PLAN_SHAPING | TARGET | {"--instance", "--output"}),
        ("schema", APPLY_ONLY | PLAN_SHAPING | TARGET | {"--manifests", "--instance", "--output"}),
        ("emulator", APPLY_ONLY | PLAN_SHAPING | TARGET | {"--manifests", "--instance"}),
    ],
)
def test_each_command_offers_only_the_options_it_uses(command: str, absent: set[str]) -> None:
    assert options_of(command) & absent == set()


def test_every_command_that_takes_a_target_can_refuse_to_wait_for_the_local_lock() -> None:
    for command in ("plan", "apply", "status", "export", "daemon"):
        assert options_of(command) >= TARGET, command


GROUP = """\
name: web
resourceGroup: rg-pipe
location: westeurope
properties:
  osType: Linux
  containers:
  - name: web
    properties:
      image: nginx:1.25
      resources: {requests: {cpu: 1, memoryInGB: 1.5}}
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["schema"],
        ["validate"],
        ["--local", "state", "--dry-run"],
        ["plan", "--local", "state", "-o", "json"],
        ["--local", "state"],
        ["--local", "state", "status"],
        ["--local", "state", "export", "web", "--resource-group", "rg-pipe"],
    ],
    ids=" ".join,
)
def test_the_reader_of_stdout_going_away_ends_every_command_quietly(tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests/web.yaml").write_text(GROUP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "RECONCILER_"))}
    if "export" in argv:  # something to export
        argv_apply = [sys.executable, "-m", "reconciler.cli", "--local", "state"]
        subprocess.run(argv_apply, cwd=tmp_path, env=env, capture_output=True, check=True, timeout=60)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: every write meets EPIPE
    try:
        done = subprocess.run(
            [sys.executable, "-m", "reconciler.cli", *argv],
            cwd=tmp_path,
            env=env,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in done.stderr
    assert "BrokenPipe" not in done.stderr
    assert done.returncode == EXIT_BROKEN_PIPE


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"a": [], "b": {"c": [], "d": 1}}, {"b": {"d": 1}}),
        ({"emptyDir": {}, "l": [{"x": []}]}, {"emptyDir": {}, "l": [{}]}),
        ({"v": [1, []]}, {"v": [1, []]}),  # an element of a list is data, not an absent key
    ],
)
def test_export_leaves_out_empty_lists_but_keeps_empty_mappings(
    document: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert _without_empty_lists(document) == expected


# Line breaks other than \n do not survive PyYAML's round trip in any position; manifests hold none.
one_line = st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x85\u2028\u2029")
keys = st.text(alphabet=one_line, min_size=1, max_size=400)
documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(one_line, max_size=200),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, documents, min_size=1, max_size=4))
def test_export_yaml_never_writes_complex_keys_and_reads_back_the_same(document: dict[str, Any]) -> None:
    text = export_yaml(document)
    assert not any(line.lstrip().startswith("? ") or line.strip() == "?" for line in text.splitlines())
    assert yaml.safe_load(text) == document


def test_a_user_assigned_identity_id_is_written_as_a_plain_key() -> None:
    identity = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-identities-westeurope"
        "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id-aci-reconciler-workload"
    )
    assert len(identity) > 128  # PyYAML's own limit for a simple key
    text = export_yaml({"identity": {"type": "UserAssigned", "userAssignedIdentities": {identity: {}}}})
    assert f"    {identity}: {{}}\n" in text


def test_a_second_daemon_on_one_state_dir_is_refused_with_no_wait_naming_the_holder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.cli import main
    from reconciler.locking import hold_directory_lock

    state = tmp_path / "daemon-state"
    (tmp_path / "m").mkdir()
    argv = ["daemon", "--local", str(tmp_path / "local"), "-f", str(tmp_path / "m")]
    argv += ["--state-dir", str(state)]
    with hold_directory_lock(state, wait=False):
        assert main([*argv, "--no-wait"]) == 1
    err = capsys.readouterr().err
    assert f"{state} is in use by pid {os.getpid()} (another daemon with this --state-dir)" in err
    assert "leave out --no-wait to wait" in err


def test_status_shows_the_last_run_of_each_job_with_the_end_of_its_log() -> None:
    from reconciler.cli import _jobs_table

    jobs = [
        {
            "resource_group": "rg",
            "name": "nightly",
            "runs": [
                {
                    "result": "succeeded",
                    "exit_code": 0,
                    "started_at": 0,
                    "duration_s": 1.0,
                    "trigger": "schedule",
                },
                {
                    "result": "failed",
                    "exit_code": 3,
                    "started_at": 86400,
                    "duration_s": 12.5,
                    "trigger": "schedule",
                    "log_tail": [f"line {i}" for i in range(8)] + ["\x1b[31mred"],
                },
                {"result": "skipped", "started_at": 90000, "trigger": "schedule"},
            ],
        },
        {"resource_group": "rg", "name": "fresh", "runs": []},
    ]
    text = _jobs_table(jobs)
    lines = text.splitlines()
    assert lines[1] == "  rg/nightly: failed, exit 3, 12.5s, schedule run at 1970-01-02 00:00:00Z"
    assert lines[2:7] == [
        "    | line 4",
        "    | line 5",
        "    | line 6",
        "    | line 7",
        "    | \\x1b[31mred",
    ]
    assert lines[7] == "  rg/fresh: no run yet"


@pytest.mark.parametrize("command", ["run", "logs"])
def test_a_bare_local_never_swallows_the_name_of_run_or_logs(command: str) -> None:
    from reconciler.cli import split_command

    assert split_command(["--local", command, "nightly"]) == (command, ["--local=.reconciler", "nightly"])
    assert split_command([command, "--local", "nightly"]) == (command, ["--local=.reconciler", "nightly"])


def test_run_reads_durations_and_policies_as_the_manifest_does() -> None:
    from reconciler.cli import build_parser

    args = build_parser("run", {}).parse_args(
        ["nightly", "--timeout", "1h30m", "--keep", "On-Failure", "--concurrency", "allow"]
    )
    assert (args.name, args.timeout, args.keep, args.job_concurrency) == (
        "nightly",
        5400.0,
        "on-failure",
        "Allow",
    )
    with pytest.raises(SystemExit):
        build_parser("run", {}).parse_args(["nightly", "--timeout", "soon"])


def test_a_bad_option_of_run_exits_125_as_docker_run_does_never_a_code_the_job_could_return() -> None:
    from reconciler.cli import main

    assert main(["run", "nightly", "--timeout", "0"]) == 125
    assert main(["run"]) == 125


def test_run_with_manifests_that_do_not_exist_exits_125(tmp_path: Path) -> None:
    from reconciler.cli import main

    assert (
        main(["run", "nightly", "-f", str(tmp_path / "nowhere"), "--local", str(tmp_path / "state")]) == 125
    )


def test_every_command_runs_with_a_gil_switch_interval_short_enough_for_the_loop_to_follow_reads() -> None:
    """A cold pass loads on a thread while the event loop follows the list's pages: at CPython's 5 ms the
    loop waits that long for the GIL at every response (see `tune_runtime`)."""
    from reconciler.cli import SWITCH_INTERVAL_S, main

    before = sys.getswitchinterval()
    try:
        sys.setswitchinterval(0.005)
        assert main(["run"]) == 125  # any command, even one refused at once
        assert sys.getswitchinterval() == pytest.approx(SWITCH_INTERVAL_S)
        assert SWITCH_INTERVAL_S <= 0.001
    finally:
        sys.setswitchinterval(before)


@pytest.mark.parametrize(
    ("option", "value", "ok"),
    [
        ("--poll-interval", "0", True),
        ("--poll-interval", "2.5", True),
        ("--poll-interval", "-1", False),
        ("--poll-interval", "nan", False),
        ("--poll-interval", "inf", False),
        ("--lro-timeout", "30", True),
        ("--lro-timeout", "0", False),
        ("--lro-timeout", "-5", False),
        ("--lro-timeout", "nan", False),
        ("--lro-timeout", "soon", False),
    ],
)
def test_timing_options_take_finite_seconds_and_refuse_the_rest_as_usage_errors(
    option: str, value: str, ok: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    from reconciler.cli import build_parser

    for command in ("apply", "run"):
        argv = ["nightly"] if command == "run" else []
        if ok:
            parsed = build_parser(command, {}).parse_args([*argv, option, value])
            assert getattr(parsed, option[2:].replace("-", "_")) == float(value)
            continue
        with pytest.raises(SystemExit):
            build_parser(command, {}).parse_args([*argv, option, value])
        assert f"argument {option}" in capsys.readouterr().err
