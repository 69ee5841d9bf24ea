"""The daemon's options: durations, the listen address, git and webhook settings, and clear errors."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from reconciler.daemon.cli import (
    DaemonUsageError,
    add_arguments,
    config_from_args,
    parse_duration,
    parse_listen,
)


def parse(argv: list[str], environ: dict[str, str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("-f", "--manifests", type=Path, default=Path("manifests"))
    parser.add_argument("--instance", default="default")
    add_arguments(parser, environ or {})
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("300", 300),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1m30s", 90),
        ("250ms", 0.25),
        ("1.5s", 1.5),
        ("0", 0),
    ],
)
def test_durations_take_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5 minutes", "m5", "-3s", "5x", "", "1m 30s"])
def test_bad_durations_say_how_to_write_one(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:9440", ("127.0.0.1", 9440)),
        (":9440", ("127.0.0.1", 9440)),
        ("0.0.0.0:80", ("0.0.0.0", 80)),
        ("[::1]:9440", ("::1", 9440)),
        ("off", None),
    ],
)
def test_listen_addresses(text: str, address: tuple[str, int] | None) -> None:
    assert parse_listen(text) == address


@pytest.mark.parametrize("text", ["9440", "host", "host:99999", "a:b"])
def test_bad_listen_address_is_rejected(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_listen(text)


def test_defaults(tmp_path: Path) -> None:
    args = parse(["-f", str(tmp_path)])
    config = config_from_args(args, {})
    assert config.interval == 300
    assert config.listen == ("127.0.0.1", 9440)
    assert config.jitter == 0.1
    assert config.webhook_secret is None
    assert config.git_url is None


def test_environment_sets_defaults(tmp_path: Path) -> None:
    args = parse(
        ["-f", str(tmp_path)],
        {
            "RECONCILER_INTERVAL": "30s",
            "RECONCILER_LISTEN": "0.0.0.0:8080",
            "RECONCILER_WEBHOOK_SECRET": "abc\n",
        },
    )
    config = config_from_args(args, {"RECONCILER_WEBHOOK_SECRET": "abc\n"})
    assert config.interval == 30
    assert config.listen == ("0.0.0.0", 8080)
    assert config.webhook_secret == b"abc"


def test_webhook_secret_from_a_file(tmp_path: Path) -> None:
    secret = tmp_path / "hook"
    secret.write_text("s3cret\n")
    config = config_from_args(parse(["-f", str(tmp_path), "--webhook-secret-file", str(secret)]), {})
    assert config.webhook_secret == b"s3cret"


def test_unreadable_or_empty_webhook_secret_file_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(DaemonUsageError, match=r"--webhook-secret-file .*missing"):
        config_from_args(parse(["-f", str(tmp_path), "--webhook-secret-file", str(tmp_path / "missing")]), {})
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(DaemonUsageError, match="empty"):
        config_from_args(parse(["-f", str(tmp_path), "--webhook-secret-file", str(empty)]), {})


def test_missing_manifest_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DaemonUsageError, match="no such directory"):
        config_from_args(parse(["-f", str(tmp_path / "nope")]), {})


def test_with_git_the_manifests_option_is_a_path_inside_the_repository(tmp_path: Path) -> None:
    config = config_from_args(parse(["--git-url", "https://example.invalid/r.git", "-f", "deploy/aci"]), {})
    assert config.manifests == Path("deploy/aci")
    with pytest.raises(DaemonUsageError, match="inside the repository"):
        config_from_args(parse(["--git-url", "https://example.invalid/r.git", "-f", str(tmp_path)]), {})


async def test_gateway_factory_gets_the_azure_request_metrics_hook_when_it_takes_one() -> None:
    import contextlib
    from collections.abc import AsyncIterator, Callable

    from reconciler.daemon.cli import open_gateway_with_metrics
    from reconciler.daemon.metrics import DaemonMetrics

    hooks: list[Callable[[str, str, float], None] | None] = []

    @contextlib.asynccontextmanager
    async def factory(on_request: Callable[[str, str, float], None] | None = None) -> AsyncIterator[str]:
        hooks.append(on_request)
        yield "gateway"

    metrics = DaemonMetrics()
    async with open_gateway_with_metrics(factory, metrics) as gateway:
        assert gateway == "gateway"
    hook = hooks[0]
    assert hook is not None
    hook("put", "429", 0.3)
    assert (
        metrics.registry.get_sample_value("aci_reconciler_azure_throttled_total", {"operation": "put"}) == 1
    )

    @contextlib.asynccontextmanager
    async def legacy() -> AsyncIterator[str]:
        yield "old"

    async with open_gateway_with_metrics(legacy, metrics) as gateway:
        assert gateway == "old"


def test_bad_environment_value_is_reported_as_an_option_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse([], {"RECONCILER_INTERVAL": "soon"})
    assert "--interval" in capsys.readouterr().err


def test_secrets_of_the_environment_and_settings_are_known_to_the_log_redactor(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from reconciler.daemon.cli import _known_secrets

    config = config_from_args(parse(["-f", str(tmp_path)]), {})
    config.webhook_secret = b"hook-secret-1"
    settings = SimpleNamespace(secret_key=b"\x01\x02key-material")
    values = _known_secrets(config, settings, {"AZURE_CLIENT_SECRET": "sp-secret-2", "HOME": "/root"})
    assert {"sp-secret-2", "hook-secret-1", b"\x01\x02key-material".hex()} <= set(values)
    assert "/root" not in values


def test_notification_and_status_page_options_reach_the_config_and_their_secrets_the_redactor(
    tmp_path: Path,
) -> None:
    from types import SimpleNamespace

    from reconciler.daemon.cli import _known_secrets

    users = tmp_path / "users"
    users.write_text("ana:correct horse battery\n")
    environ = {"SLACK": "https://hooks.slack.com/services/T/B/secretpart"}
    args = parse(
        ["-f", str(tmp_path), "--notify", "slack=env:SLACK", "--listen", "0.0.0.0:9440",
         "--ui-basic-auth-file", str(users), "--ui-refresh", "1s"],
    )  # fmt: skip
    config = config_from_args(args, environ)
    assert [r.type for r in config.notifications.receivers] == ["slack"]
    assert config.ui.needs_sign_in
    assert config.ui.refusal is None
    assert config.ui.refresh_ms == 1000
    values = _known_secrets(config, SimpleNamespace(), environ)
    assert {environ["SLACK"], "correct horse battery"} <= set(values)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--notify", "slack=https://hooks.slack.com/services/T/B/x"], "never the value itself"),
        (["--notify", "pager=x"], "KIND webhook, slack, teams or github"),
        (["--ui-token-file", "/nonexistent/token"], "--ui-token-file /nonexistent/token: cannot read"),
    ],
)
def test_bad_notification_or_page_options_stop_the_start_with_the_fix(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    with pytest.raises(DaemonUsageError, match=message):
        config_from_args(parse(["-f", str(tmp_path), *argv]), {})


def test_a_bad_status_page_mode_from_the_environment_is_refused(tmp_path: Path) -> None:
    environ = {"RECONCILER_STATUS_PAGE": "maybe"}
    with pytest.raises(DaemonUsageError, match="--status-page 'maybe': choose on, off or public"):
        config_from_args(parse(["-f", str(tmp_path)], environ), environ)
