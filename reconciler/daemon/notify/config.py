"""The `notifications` section of the daemon's configuration: a YAML file (`--notifications FILE`) and the
`--notify KIND=TARGET` flags, read into `Receiver`s by `load_notifications` (called by
`reconciler.daemon.cli`).

A file looks like::

    notifications:
      receivers:
        - name: ops
          type: webhook              # webhook | slack | teams | github
          url: https://hooks.example.com/aci
          secret: env:OPS_HOOK_SECRET  # HMAC key (env:NAME or file:PATH)
          events: [replace, prune, stalled, job_failed]
          minSeverity: warning
          resourceGroups: ["rg-prod-*"]
          rateLimitPerMinute: 20
          dedupWindow: 1h
        - type: slack
          url: env:SLACK_WEBHOOK_URL   # Slack and Teams URLs are secrets: env: or file: only
        - type: github
          repository: my-org/manifests
          token: env:GITHUB_TOKEN

Secrets are never literal in the file or on a command line (they would show in `ps`, shell history and the
repository): `env:NAME` and `file:PATH` are resolved here, once, and every resolved value is handed to the log
redactor. Every error names the file, the receiver and the fix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from reconciler.daemon.notify.events import DEFAULT_KINDS, EventKind, Severity

ReceiverType = Literal["webhook", "slack", "teams", "github"]
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
_REPOSITORY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,38}/[A-Za-z0-9._-]{1,100}$")


class NotifyConfigError(ValueError):
    """The notifications configuration cannot be used; the message names where and how to fix it."""


class _ReceiverIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)

    name: (
        Annotated[str, Field(min_length=1, max_length=63, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")] | None
    ) = None
    type: ReceiverType
    url: str | None = None
    secret: str | None = None
    repository: str | None = None
    token: str | None = None
    api_url: str = Field(default="https://api.github.com", alias="apiUrl")
    context: str | None = None
    target_url: str | None = Field(default=None, alias="targetUrl")
    events: list[EventKind] | None = None
    min_severity: Severity = Field(default="info", alias="minSeverity")
    resource_groups: list[str] | None = Field(default=None, alias="resourceGroups")
    rate_limit_per_minute: int = Field(default=30, ge=1, le=600, alias="rateLimitPerMinute")
    dedup_window: str = Field(default="1h", alias="dedupWindow")
    timeout: str = "10s"
    max_attempts: int = Field(default=5, ge=1, le=20, alias="maxAttempts")

    @field_validator("dedup_window", "timeout")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not _DURATION.match(value):
            raise ValueError("a duration such as 30s, 10m, 1h or 1d")
        return value


class _FileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receivers: list[dict[str, Any]] = Field(default_factory=list)


@dataclass(frozen=True)
class Receiver:
    """One resolved receiver: where, how, which events; `secret` is the HMAC key (webhook) or the token
    (github), `url` may itself be a secret (Slack, Teams)."""

    name: str
    type: ReceiverType
    url: str
    secret: bytes | None = None
    kinds: frozenset[EventKind] = DEFAULT_KINDS
    min_severity: Severity = "info"
    resource_groups: tuple[str, ...] = ()
    rate_limit_per_minute: int = 30
    dedup_window_s: float = 3600.0
    timeout_s: float = 10.0
    max_attempts: int = 5
    context: str = ""
    target_url: str | None = None

    def __repr__(self) -> str:  # the URL and the secret may be secrets: never in a log or a traceback
        return f"Receiver(name={self.name!r}, type={self.type!r})"


@dataclass(frozen=True)
class NotificationsConfig:
    receivers: tuple[Receiver, ...] = ()
    # Resolved secret values (URLs, keys, tokens), for the log redactor.
    secrets: tuple[str, ...] = field(default=(), repr=False)


def _seconds(text: str) -> float:
    match = _DURATION.match(text)
    assert match is not None  # validated
    return float(match.group(1)) * _UNITS[match.group(2)]


def _resolve(ref: str, where: str, what: str, environ: Mapping[str, str], base: Path | None) -> str:
    if ref.startswith("env:"):
        name = ref[4:]
        value = environ.get(name, "").strip()
        if not value:
            raise NotifyConfigError(f"{where}: {what} {ref}: the environment variable {name} is not set")
        return value
    if ref.startswith("file:"):
        path = Path(ref[5:]).expanduser()
        if base is not None and not path.is_absolute():
            path = base / path
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as err:
            raise NotifyConfigError(f"{where}: {what} {ref}: cannot read {path} ({err.strerror})") from None
        if not value:
            raise NotifyConfigError(f"{where}: {what} {ref}: {path} is empty")
        return value
    raise NotifyConfigError(
        f"{where}: {what} must be a reference, env:NAME or file:PATH, never the value itself (it would show "
        "in the repository, the process list and the logs)"
    )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str, where: str, what: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise NotifyConfigError(f"{where}: {what} must be an https:// URL")
    if parts.scheme == "http" and not _loopback(host):
        raise NotifyConfigError(
            f"{where}: {what} uses http:// to {host}: use https:// (plain http is allowed to loopback only)"
        )
    if parts.username or parts.password:
        raise NotifyConfigError(f"{where}: {what} has credentials in it: use secret/token references")
    return url


def _receiver(item: Mapping[str, Any], where: str, environ: Mapping[str, str], base: Path | None) -> Receiver:
    try:
        spec = _ReceiverIn.model_validate(item)
    except ValidationError as err:
        first = err.errors()[0]
        place = ".".join(str(p) for p in first["loc"]) or "receiver"
        raise NotifyConfigError(f"{where}.{place}: {first['msg']}") from None
    name = spec.name or spec.type
    where = f"{where} ({name})"
    secret: bytes | None = None
    if spec.type == "github":
        if spec.url is not None or spec.secret is not None:
            raise NotifyConfigError(f"{where}: a github receiver takes repository and token, not url/secret")
        if not spec.repository or not _REPOSITORY.match(spec.repository):
            raise NotifyConfigError(f"{where}: repository must be OWNER/NAME, e.g. my-org/manifests")
        if not spec.token:
            raise NotifyConfigError(f"{where}: token is required (env:GITHUB_TOKEN or file:PATH)")
        secret = _resolve(spec.token, where, "token", environ, base).encode()
        api = _check_url(spec.api_url.rstrip("/"), where, "apiUrl")
        url = f"{api}/repos/{spec.repository}/statuses/"
        kinds = frozenset(spec.events) if spec.events is not None else frozenset({EventKind.REVISION})
    else:
        if spec.repository or spec.token:
            raise NotifyConfigError(f"{where}: repository and token belong to github receivers")
        if not spec.url:
            raise NotifyConfigError(f"{where}: url is required")
        if spec.type == "webhook":
            url = (
                spec.url
                if not spec.url.startswith(("env:", "file:"))
                else _resolve(spec.url, where, "url", environ, base)
            )
            if spec.secret is None:
                raise NotifyConfigError(
                    f"{where}: secret is required (env:NAME or file:PATH): payloads are HMAC-signed so the "
                    "receiver can tell them from forgeries"
                )
            secret = _resolve(spec.secret, where, "secret", environ, base).encode()
        else:
            # A Slack or Teams webhook URL is the credential itself.
            url = _resolve(spec.url, where, "url", environ, base)
        url = _check_url(url, where, "url")
        kinds = frozenset(spec.events) if spec.events is not None else DEFAULT_KINDS
    return Receiver(
        name=name,
        type=spec.type,
        url=url,
        secret=secret,
        kinds=kinds,
        min_severity=spec.min_severity,
        resource_groups=tuple(g.lower() for g in spec.resource_groups or ()),
        rate_limit_per_minute=spec.rate_limit_per_minute,
        dedup_window_s=_seconds(spec.dedup_window),
        timeout_s=_seconds(spec.timeout),
        max_attempts=spec.max_attempts,
        context=spec.context or "aci-reconciler",
        target_url=spec.target_url,
    )


def _flag_item(flag: str) -> dict[str, Any]:
    """`--notify KIND=TARGET`: `webhook=URL,secret=env:NAME`, `slack=env:NAME`, `teams=file:PATH`,
    `github=OWNER/REPO,token=env:GITHUB_TOKEN`."""
    kind, sep, rest = flag.partition("=")
    if not sep or kind not in ("webhook", "slack", "teams", "github"):
        raise NotifyConfigError(
            f"--notify {flag!r}: give KIND=TARGET with KIND webhook, slack, teams or github "
            "(e.g. --notify slack=env:SLACK_WEBHOOK_URL)"
        )
    target, *options = rest.split(",")
    item: dict[str, Any] = {"type": kind, "name": f"{kind}-flag"}
    item["repository" if kind == "github" else "url"] = target
    for option in options:
        key, sep, value = option.partition("=")
        if not sep or key not in ("secret", "token", "events", "minSeverity"):
            raise NotifyConfigError(
                f"--notify {kind}=...: unknown option {key!r} (secret=, token=, events=a+b, minSeverity=)"
            )
        item[key] = value.split("+") if key == "events" else value
    if kind == "github" and "token" not in item:
        item["token"] = "env:GITHUB_TOKEN"
    return item


def load_notifications(
    path: Path | None, flags: Sequence[str], environ: Mapping[str, str]
) -> NotificationsConfig:
    """The receivers of the file (its `notifications:` section, or the section alone) and of the flags."""
    receivers: list[Receiver] = []
    if path is not None:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise NotifyConfigError(f"--notifications {path}: cannot read it ({err.strerror})") from None
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            at = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
            raise NotifyConfigError(f"{path}{at}: not valid YAML ({getattr(err, 'problem', err)})") from None
        section = raw.get("notifications", raw) if isinstance(raw, dict) else raw
        if not isinstance(section, dict):
            raise NotifyConfigError(f"{path}: expected a mapping with `receivers:` under `notifications:`")
        try:
            parsed = _FileIn.model_validate(section)
        except ValidationError as err:
            first = err.errors()[0]
            place = ".".join(str(p) for p in first["loc"])
            raise NotifyConfigError(f"{path}: notifications.{place}: {first['msg']}") from None
        for n, item in enumerate(parsed.receivers):
            receivers.append(_receiver(item, f"{path}: notifications.receivers[{n}]", environ, path.parent))
    for flag in flags:
        receivers.append(_receiver(_flag_item(flag), f"--notify {flag.split(',')[0]}", environ, None))
    names = [r.name for r in receivers]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate is not None:
        raise NotifyConfigError(f"notifications: two receivers are named {duplicate!r}; give each a name")
    secrets: list[str] = []
    for r in receivers:
        if r.secret:
            secrets.append(r.secret.decode(errors="replace"))
        if r.type in ("slack", "teams"):
            secrets.append(r.url)
    return NotificationsConfig(receivers=tuple(receivers), secrets=tuple(secrets))
