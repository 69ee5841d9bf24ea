"""The key of the secret-material hash tag and of the ownership proof (DESIGN.md section 4).

The hash must be the same on every machine that reconciles one instance (CI and the daemon would otherwise
re-PUT each other's groups forever), and it must not let someone who can read tags test guesses of a secret
cheaply. Called by the CLI when it builds the engine's settings.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

_SALT = b"aci-reconciler/secret-hash/v1"
ENV_KEY = "RECONCILER_SECRET_KEY"


MIN_KEY_BYTES = 16
# Values people leave in templates; compared case-insensitively, also as parts of the key.
_PLACEHOLDERS = ("changeme", "change-me", "change_me", "placeholder", "replace-with", "replace_me", "example")
_WHOLE_PLACEHOLDERS = frozenset({"secret", "password", "key", "test", "default", "xxx"})
_MIN_DISTINCT = 4


class SecretKeyError(ValueError):
    """A configured key that is too short or a placeholder; the message says the fix (never the key)."""


@dataclass(frozen=True)
class SecretKey:
    key: bytes
    # Said once per run when the key is derived rather than configured.
    warning: str | None = None
    # False when derived from public values (subscription, instance): its ownership proofs can be forged.
    private: bool = True


_FIX = "generate one with `openssl rand -hex 32` and set it wherever this instance runs"


def check_key(value: bytes, *, source: str) -> None:
    """Refuse an obviously weak key: short, a template placeholder, or a few repeated characters."""
    if len(value) < MIN_KEY_BYTES:
        raise SecretKeyError(
            f"{source} is too short ({len(value)} bytes; at least {MIN_KEY_BYTES} are needed): {_FIX}"
        )
    lowered = value.decode(errors="ignore").strip().lower()
    if lowered in _WHOLE_PLACEHOLDERS or any(p in lowered for p in _PLACEHOLDERS) or "<" in lowered:
        raise SecretKeyError(f"{source} looks like a placeholder from a template, not a key: {_FIX}")
    if len(set(value)) < _MIN_DISTINCT:
        raise SecretKeyError(f"{source} repeats fewer than {_MIN_DISTINCT} distinct characters: {_FIX}")


def derive_default_key(subscription: str, instance: str) -> bytes:
    """A stable key for deployments that configured none: scrypt makes each guess of a secret costly."""
    return hashlib.scrypt(
        f"{subscription.lower()}/{instance}".encode(), salt=_SALT, n=2**14, r=8, p=1, dklen=32
    )


def load_or_create_key_file(path: Path) -> bytes:
    """For the embedded emulator: a random key kept beside its state (mode 0600)."""
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    # Written whole before it appears (a full disk must not leave an empty key file that every later run
    # would read), and linked rather than renamed so that a key another process wrote first is never replaced.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return path.read_bytes().strip()
    finally:
        Path(tmp).unlink(missing_ok=True)
    return key


def resolve_secret_key(
    *, environ_value: str | None, key_file: Path | None, subscription: str, instance: str
) -> SecretKey:
    """The configured key (env, else the local key file), else one derived from public values.

    Raises `SecretKeyError` for a configured key that is short or a placeholder.
    """
    if environ_value:
        key = environ_value.encode()
        check_key(key, source=ENV_KEY)
        return SecretKey(key)
    if key_file is not None:
        key = load_or_create_key_file(key_file)
        check_key(key, source=f"the key file {key_file}")
        return SecretKey(key)
    return SecretKey(
        derive_default_key(subscription, instance),
        warning=(
            f"{ENV_KEY} is not set: secret-change detection and ownership proofs use a key derived from the "
            "subscription and instance name, which anyone could derive, so nothing is pruned. Set the same "
            "random value (`openssl rand -hex 32`) everywhere this instance runs."
        ),
        private=False,
    )
