"""The one redaction of URLs the daemon reports: userinfo and token-like query parameters are masked.

Used by `reconciler.daemon.gitsource` (display URL, git error messages), by the log redactor of
`reconciler.daemon.logging` (every log line) and so by `/status`, which shows only what those produce.
"""

from __future__ import annotations

import re

MASK = "***"

# `scheme://user:password@host` and `scheme://token@host`: everything between `//` and the last `@`
# of the authority is credentials.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s]+@")
# Query (or fragment) parameters that carry a secret in common git hosts and cloud storage URLs.
_TOKEN_PARAMS = re.compile(
    r"(?i)([?&#;](?:access_token|private_token|oauth_token|id_token|refresh_token|token|api[_-]?key|key"
    r"|sig|signature|password|passwd|pwd|secret|client_secret|auth|x-amz-signature|x-goog-signature)=)"
    r"[^&#\s\"'<>]*"
)


def redact_url(text: str) -> str:
    """`text` with the credentials of every URL in it masked; safe on any text, not only one URL."""
    return _TOKEN_PARAMS.sub(r"\1" + MASK, _USERINFO.sub(r"\1" + MASK + "@", text))
