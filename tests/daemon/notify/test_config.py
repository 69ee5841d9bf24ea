"""The notifications configuration: every error names the file or flag, the receiver and the fix; secrets are
references only and end up in the redactor's list."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.daemon.notify import NotifyConfigError, load_notifications
from reconciler.daemon.notify.events import DEFAULT_KINDS, EventKind

ENV = {
    "HOOK_SECRET": "hmac-key-123456",
    "SLACK_URL": "https://hooks.slack.com/services/T/B/xyz",
    "GH": "ghp_tok",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "notify.yaml"
    path.write_text(text)
    return path


def test_a_file_with_every_kind_of_receiver_loads_with_its_filters(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
notifications:
  receivers:
    - name: ops
      type: webhook
      url: https://hooks.example.com/aci
      secret: env:HOOK_SECRET
      events: [replace, prune]
      minSeverity: warning
      resourceGroups: ["rg-prod-*"]
      rateLimitPerMinute: 5
      dedupWindow: 10m
    - type: slack
      url: env:SLACK_URL
    - type: teams
      url: file:teams.url
    - type: github
      repository: my-org/manifests
      token: env:GH
""",
    )
    (tmp_path / "teams.url").write_text("https://example.webhook.office.com/x\n")
    config = load_notifications(path, [], ENV)
    ops, slack, teams, github = config.receivers
    assert ops.kinds == {EventKind.REPLACE, EventKind.PRUNE}
    assert (ops.min_severity, ops.resource_groups, ops.rate_limit_per_minute) == (
        "warning",
        ("rg-prod-*",),
        5,
    )
    assert ops.dedup_window_s == 600
    assert ops.secret == b"hmac-key-123456"
    assert slack.kinds == DEFAULT_KINDS
    assert slack.url == ENV["SLACK_URL"]
    assert teams.url == "https://example.webhook.office.com/x"
    assert github.kinds == {EventKind.REVISION}
    assert github.url == "https://api.github.com/repos/my-org/manifests/statuses/"
    assert set(config.secrets) == {
        "hmac-key-123456",
        ENV["SLACK_URL"],
        "https://example.webhook.office.com/x",
        "ghp_tok",
    }
    assert "xyz" not in repr(config)
    assert "hmac" not in repr(config)


@pytest.mark.parametrize(
    ("receiver", "message"),
    [
        ("{type: slack, url: 'https://hooks.slack.com/services/T/B/xyz'}", "must be a reference, env:NAME"),
        ("{type: webhook, url: 'https://h.example/x', secret: plain}", "secret must be a reference"),
        ("{type: webhook, url: 'https://h.example/x'}", "secret is required"),
        ("{type: webhook, url: 'http://h.example/x', secret: env:HOOK_SECRET}", "allowed to loopback only"),
        ("{type: webhook, url: 'https://u:p@h.example/x', secret: env:HOOK_SECRET}", "has credentials in it"),
        ("{type: slack, url: env:NOPE}", "the environment variable NOPE is not set"),
        ("{type: teams, url: 'file:missing.url'}", "cannot read"),
        ("{type: github, repository: 'not a repo', token: env:GH}", "repository must be OWNER/NAME"),
        ("{type: github, repository: o/r}", "token is required"),
        ("{type: pager, url: x}", "receivers[0].type"),
        ("{type: slack, url: env:SLACK_URL, events: [explode]}", "receivers[0].events"),
        ("{type: slack, url: env:SLACK_URL, dedupWindow: forever}", "a duration such as"),
        ("{type: slack, url: env:SLACK_URL, colour: red}", "colour"),
    ],
)
def test_bad_receivers_are_refused_naming_the_file_the_receiver_and_the_fix(
    tmp_path: Path, receiver: str, message: str
) -> None:
    path = write(tmp_path, f"notifications:\n  receivers:\n    - {receiver}\n")
    with pytest.raises(NotifyConfigError) as err:
        load_notifications(path, [], ENV)
    assert str(path) in str(err.value)
    assert message in str(err.value)
    assert "xyz" not in str(err.value)
    assert "plain" not in str(err.value).split("secret must")[0][-20:]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "notifications:\n  receivers: [\n")
    with pytest.raises(NotifyConfigError, match=r"notify.yaml:\d+:\d+: not valid YAML"):
        load_notifications(path, [], ENV)


def test_flags_add_receivers_and_github_takes_its_token_from_github_token() -> None:
    config = load_notifications(
        None,
        [
            "webhook=https://h.example/x,secret=env:HOOK_SECRET,events=stalled+job_failed",
            "slack=env:SLACK_URL,minSeverity=error",
            "github=o/r",
        ],
        {**ENV, "GITHUB_TOKEN": "ghs_x"},
    )
    hook, slack, github = config.receivers
    assert hook.kinds == {EventKind.STALLED, EventKind.JOB_FAILED}
    assert slack.min_severity == "error"
    assert github.secret == b"ghs_x"


@pytest.mark.parametrize("flag", ["pager=x", "slack", "webhook=https://h.example/x,colour=red"])
def test_bad_flags_say_how_to_write_them(flag: str) -> None:
    with pytest.raises(NotifyConfigError, match="--notify"):
        load_notifications(None, [flag], ENV)


def test_two_receivers_with_one_name_are_refused() -> None:
    with pytest.raises(NotifyConfigError, match="two receivers are named 'slack-flag'"):
        load_notifications(None, ["slack=env:SLACK_URL", "slack=env:SLACK_URL"], ENV)
