"""Who may read the status page and `/status`: nobody else's business on a shared network.

`load_ui_settings` (called by `reconciler.daemon.cli`) reads `--status-page`, `--ui-token-file` and
`--ui-basic-auth-file`; `UiSettings.allows` checks one request's `Authorization` header in constant time.
Without sign-in configured the page is served only when the listener is loopback (or `--status-page public`
says so): on `0.0.0.0` it answers 403 naming the fix, so a forgotten flag never publishes the fleet.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Mode = Literal["on", "off", "public"]
_MODES: dict[str, Mode] = {"on": "on", "off": "off", "public": "public"}


class UiAuthError(ValueError):
    """A sign-in file cannot be used; the message names it and the fix."""


@dataclass(frozen=True)
class UiSettings:
    mode: Mode = "on"
    token: bytes | None = field(default=None, repr=False)
    users: dict[str, bytes] = field(default_factory=dict, repr=False)
    loopback: bool = True
    # How often the page refreshes itself (the script; without it, a reload).
    refresh_ms: int = 3000

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    @property
    def needs_sign_in(self) -> bool:
        return self.token is not None or bool(self.users)

    @property
    def refusal(self) -> str | None:
        """Why the page is not served to anyone (no sign-in on a non-loopback listener); None when it is."""
        if self.mode == "on" and not self.needs_sign_in and not self.loopback:
            return (
                "the status page needs sign-in when --listen is not a loopback address: set --ui-token-file "
                "or --ui-basic-auth-file (or --status-page public to publish it, or off)"
            )
        return None

    @property
    def secrets(self) -> tuple[str, ...]:
        values = [self.token.decode(errors="replace")] if self.token else []
        values += [p.decode(errors="replace") for p in self.users.values()]
        return tuple(values)

    def allows(self, authorization: str | None) -> bool:
        if not self.needs_sign_in:
            return True
        if not authorization:
            return False
        scheme, _, value = authorization.strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and self.token is not None:
            return hmac.compare_digest(value.encode(errors="replace"), self.token)
        if scheme.lower() == "basic" and self.users:
            try:
                decoded = base64.b64decode(value, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return False
            user, sep, password = decoded.partition(":")
            # Compare against a dummy for unknown users too, so timing does not tell which names exist.
            expected = self.users.get(user, b"\0" * 32)
            ok = hmac.compare_digest(password.encode(), expected)
            return bool(sep) and user in self.users and ok
        return False

    @property
    def challenge(self) -> str:
        return (
            'Basic realm="aci-reconciler", charset="UTF-8"' if self.users else 'Bearer realm="aci-reconciler"'
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _read(path: Path, flag: str) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UiAuthError(f"{flag} {path}: cannot read it ({err.strerror}); give a readable file") from None
    except UnicodeDecodeError:
        raise UiAuthError(f"{flag} {path}: not UTF-8 text") from None
    return text


def load_ui_settings(
    *,
    mode: str,
    token_file: Path | None,
    basic_auth_file: Path | None,
    listen_host: str | None,
    refresh_s: float = 3.0,
) -> UiSettings:
    checked = _MODES.get(mode)
    if checked is None:
        raise UiAuthError(f"--status-page {mode!r}: choose on, off or public")
    token: bytes | None = None
    users: dict[str, bytes] = {}
    if token_file is not None:
        value = _read(token_file, "--ui-token-file").strip()
        if len(value) < 16:
            what = "empty" if not value else "shorter than 16 characters"
            raise UiAuthError(
                f"--ui-token-file {token_file}: the token is {what}; put a long random one in it "
                "(e.g. `openssl rand -hex 32`)"
            )
        token = value.encode()
    if basic_auth_file is not None:
        for n, raw in enumerate(_read(basic_auth_file, "--ui-basic-auth-file").splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, password = line.partition(":")
            if not sep or not user or len(password) < 8:
                raise UiAuthError(
                    f"--ui-basic-auth-file {basic_auth_file}:{n}: write USER:PASSWORD with a password of 8 "
                    "characters or more"
                )
            users[user] = password.encode()
        if not users:
            raise UiAuthError(f"--ui-basic-auth-file {basic_auth_file}: no USER:PASSWORD line in it")
    return UiSettings(
        mode=checked,
        token=token,
        users=users,
        loopback=listen_host is None or is_loopback(listen_host),
        refresh_ms=max(500, int(refresh_s * 1000)),
    )
