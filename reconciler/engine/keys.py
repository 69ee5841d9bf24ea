"""The key of the secret-material hash tag (DESIGN.md section 4).

The hash must be the same on every machine that reconciles one instance (CI and the daemon would otherwise
re-PUT each other's groups forever), and it must not let someone who can read tags test guesses of a secret
cheaply. Called by the CLI when it builds the engine's settings.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

_SALT = b"aci-reconciler/secret-hash/v1"
ENV_KEY = "RECONCILER_SECRET_KEY"


@dataclass(frozen=True)
class SecretKey:
    key: bytes
    # Said once per run when the key is derived rather than configured.
    warning: str | None = None


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
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key


def resolve_secret_key(
    *, environ_value: str | None, key_file: Path | None, subscription: str, instance: str
) -> SecretKey:
    if environ_value:
        return SecretKey(environ_value.encode())
    if key_file is not None:
        return SecretKey(load_or_create_key_file(key_file))
    return SecretKey(
        derive_default_key(subscription, instance),
        warning=(
            f"{ENV_KEY} is not set: secret-change detection uses a key derived from the subscription and "
            "instance name. Set the same random value everywhere this instance runs to make it private."
        ),
    )
