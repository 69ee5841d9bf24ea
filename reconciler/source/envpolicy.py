"""Which environment variables a manifest may read: the one rule for `${VAR}` and every `...From: {env: ...}`.

Called by `reconciler.source.substitute` (for `${VAR}`), `reconciler.source.secrets` (for `secureValueFrom`,
`passwordFrom`, `storageAccountKeyFrom`, `workspaceKeyFrom` and any other `...From: {env: NAME}`) and the
loader, which builds the policy from `--env-allow` and the `envAllow:` of `_defaults.yaml` files.

Manifests are written by many people; the reconciler's process environment is not theirs. Two rules:

- **Denied, always** (`denied_reason`): the reconciler's own credentials and settings, whatever any allowlist
  says: `AZURE_*`, `RECONCILER_*`, `IDENTITY_*`, `MSI_*`, `MSAL_*`, `GIT_*`, every variable azure-identity
  reads (`IMDS_ENDPOINT`, ...), proxy settings (they may carry a password) and `SSH_AUTH_SOCK` (git's key
  agent). Matched case-insensitively,
  because Windows names are. Applies to `${VAR}` and to secret references alike: no manifest can copy the
  reconciler's credentials into a container it controls.
- **Allowed, opt-in** (`EnvPolicy.allows`): `${VAR}` reads only variables matching an allowlist pattern,
  `ACI_*` by default. A pattern is a shell glob over the whole name (`*`, `?`), case-sensitive. Secret
  references are not held to the allowlist: naming a variable in `secureValueFrom` is already an explicit
  choice to read it, and its value only ever goes to a write-only secret field (never a plan, tag or status).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase

from reconciler.model.text import shown

DEFAULT_ALLOW = ("ACI_*",)

# Prefixes of the reconciler's own credential and configuration variables (case-folded).
DENIED_PREFIXES = ("AZURE_", "RECONCILER_", "IDENTITY_", "MSI_", "MSAL_", "GIT_", "ACTIONS_ID_TOKEN_")
# Whole names: what azure-identity reads outside those prefixes, and proxies (`http://user:password@host`).
DENIED_NAMES = frozenset(
    {
        "IMDS_ENDPOINT",
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
        "IDENTITY_SERVER_THUMBPRINT",
        "MSI_ENDPOINT",
        "MSI_SECRET",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "SSH_AUTH_SOCK",
    }
)
DENY_RULE = "AZURE_*, RECONCILER_*, IDENTITY_*, MSI_*, MSAL_*, GIT_*, IMDS_ENDPOINT and proxy settings"

_PATTERN = re.compile(r"[A-Za-z0-9_*?]+\Z")


def denied_reason(name: str) -> str | None:
    """Why `name` may never be read by a manifest, or None when the deny rule does not cover it."""
    upper = name.upper()
    if upper in DENIED_NAMES or upper.startswith(DENIED_PREFIXES):
        return (
            f"{shown(name)} is the reconciler's own credential or setting: manifests may never read "
            f"{DENY_RULE}, whatever --env-allow says; put the value in a variable of your own "
            f"(e.g. ACI_{_suggest(upper)})"
        )
    return None


def _suggest(upper: str) -> str:
    for prefix in DENIED_PREFIXES:
        if upper.startswith(prefix):
            return upper[len(prefix) :] or "VALUE"
    return upper


def check_pattern(pattern: str) -> str | None:
    """Why `pattern` is not a valid allowlist pattern, or None."""
    if not _PATTERN.match(pattern):
        return (
            f"{shown(pattern)} is not a variable name pattern: use letters, digits, '_' and the wildcards "
            "'*' and '?', e.g. ACI_* or BUILD_ID"
        )
    return None


@dataclass(frozen=True, slots=True)
class EnvPolicy:
    """Which variables `${VAR}` may read: the allowlist (the deny rule always applies on top)."""

    allow: tuple[str, ...] = DEFAULT_ALLOW

    def widened(self, patterns: Iterable[str]) -> EnvPolicy:
        """This policy plus `patterns` (an `envAllow:` in a `_defaults.yaml`)."""
        return EnvPolicy(allow=tuple(dict.fromkeys((*self.allow, *patterns))))

    def allows(self, name: str) -> bool:
        return any(fnmatchcase(name, p) for p in self.allow)

    def refusal(self, name: str) -> str | None:
        """Why `${name}` may not be substituted, or None when it may."""
        denied = denied_reason(name)
        if denied is not None:
            return denied
        if not self.allows(name):
            allowed = ", ".join(self.allow) if self.allow else "none"
            return (
                f"{shown(name)} is not in the variables manifests may read (allowed: {allowed}); rename it "
                f"to match, or allow it with --env-allow {name} or envAllow: [{name}] in _defaults.yaml"
            )
        return None


def read_env(
    name: str, environ: Mapping[str, str], *, policy: EnvPolicy | None
) -> tuple[str | None, str | None]:
    """(value or None when unset, None) or (None, why it is refused): every environment read of a manifest.

    `policy` is the allowlist for `${VAR}`; None for a secret reference, which only the deny rule limits.
    """
    refused = denied_reason(name) if policy is None else policy.refusal(name)
    if refused is not None:
        return None, refused
    return environ.get(name), None
