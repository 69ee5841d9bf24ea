"""structlog configuration of the daemon: JSON lines off a terminal, a readable console on one.

Configured once by `reconciler.daemon.cli.run`; every other daemon module logs through `structlog.get_logger`.
A redaction processor is defence in depth: the code never logs secret values, and this processor still drops
fields whose name says secret and masks known secret values (the webhook secret, resolved manifest secrets)
and token-like strings wherever they appear.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

from reconciler.daemon.redact import redact_url

REDACTED = "(redacted)"

_SECRET_KEY = re.compile(
    r"(pass(word)?|secret|token|credential|authorization|api[_-]?key|access[_-]?key|signature|private[_-]?key"
    r"|secure[_-]?value|sas|connection[_-]?string)",
    re.IGNORECASE,
)
# Keys whose values are names of secret things, not secrets (a path, a count, a flag).
_SAFE_KEYS = frozenset({"secret_file", "webhook_secret_file", "secrets_changed", "sensitive"})
_TOKEN_PATTERNS = (
    re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),  # JWT (bearer tokens)
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/-]{8,}=*"),
    re.compile(r"(?i)(AccountKey|SharedAccessKey|sig|password)=[^;&\s]+"),
    re.compile(r"sha256=[0-9a-fA-F]{64}"),
)


class Redactor:
    """A structlog processor; `add` registers values that must never appear, whatever field holds them."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()

    def add(self, values: Iterable[str]) -> None:
        # Short values would mask innocent text ("1", "true"); those are not secrets worth the name.
        with self._lock:
            self._values.update(v for v in values if isinstance(v, str) and len(v) >= 6)

    def scrub(self, text: str) -> str:
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, REDACTED)
        for pattern in _TOKEN_PATTERNS:
            text = pattern.sub(REDACTED, text)
        return redact_url(text)

    def _clean(self, key: str, value: Any) -> Any:
        if key not in _SAFE_KEYS and _SECRET_KEY.search(key) and value not in (None, "", False, True):
            return REDACTED
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, BaseException):
            return self.scrub(f"{type(value).__name__}: {value}")
        if isinstance(value, dict):
            return {str(k): self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean("", v) for v in value]
        return value

    def __call__(
        self, logger: Any, method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        del logger, method
        for key in list(event_dict):
            event_dict[key] = self._clean(key, event_dict[key])
        return event_dict


REDACTOR = Redactor()


def _scrub_exception(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    del logger, method
    for key in ("exception", "stack"):
        if isinstance(event_dict.get(key), str):
            event_dict[key] = REDACTOR.scrub(event_dict[key])
    return event_dict


def configure(*, stream: TextIO | None = None, json_lines: bool | None = None, level: str = "info") -> None:
    """Route structlog to `stream` (stderr): JSON lines unless it is a terminal (or `json_lines` says)."""
    out = stream or sys.stderr
    as_json = (not out.isatty()) if json_lines is None else json_lines
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        REDACTOR,
    ]
    if as_json:
        processors = [
            *shared,
            structlog.processors.format_exc_info,
            _scrub_exception,
            structlog.processors.JSONRenderer(sort_keys=False),
        ]
    else:
        processors = [*shared, structlog.dev.ConsoleRenderer(colors=True)]
    numeric = logging.getLevelNamesMapping()[level.upper()]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    _route_stdlib_logging(out, shared, processors[-1], numeric)


_HANDLER_NAME = "aci-reconciler-structlog"


def reset() -> None:
    """Undo `configure` (tests; an embedding program that configured logging itself)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
    structlog.reset_defaults()


def _route_stdlib_logging(out: TextIO, shared: list[Any], renderer: Any, level: int) -> None:
    """Lines logged with `logging` (the executor, the SDK, aiohttp) get the same format and redaction."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _scrub_exception,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # The SDK logs every HTTP request at INFO; the daemon's own metrics and events say what matters.
    for noisy in ("azure", "aiohttp.access", "watchfiles"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
