"""Masking the secrets a job was given in what its containers print.

A container may print its own secrets (a debug line, a failing connection string), and `reconcile run`
streams that log to a terminal, a CI log, the daemon's status and the Python API's callback. The engine's job
runner builds one `SecretMask` from the secret values it resolved for the run and passes every log line
through it before anyone sees it. Pure; no I/O.

Each secret is masked in every form a container is likely to print it: as given, line by line when it spans
lines, and decoded when it is base64 (secret volume files are given base64 and the container reads them
decoded), and each string inside a JSON secret (protected settings). Values shorter than `MIN_LENGTH` are not
masked: masking "1" or "on" would star every log while hiding nothing worth the name.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

MASK = "***"
MIN_LENGTH = 4


def _decoded(value: str) -> str | None:
    compact = "".join(value.split())
    if len(compact) < MIN_LENGTH or len(compact) % 4:
        return None
    try:
        raw = base64.b64decode(compact, validate=True)
        return raw.decode("utf-8")
    except ValueError:  # not base64, not ASCII, not UTF-8 once decoded
        return None


def _json_strings(value: str) -> Iterator[str]:
    try:
        data: Any = json.loads(value)
    except ValueError:
        return
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _forms(value: str) -> Iterator[str]:
    for text in (value, _decoded(value)):
        if text is None:
            continue
        yield text
        yield from (line.strip() for line in text.splitlines())
        yield from _json_strings(text)


class SecretMask:
    """Replaces every known secret form in a text with `MASK`; the longest forms first, so a secret that
    contains another is masked whole."""

    def __init__(self, values: Iterable[str]) -> None:
        forms = {form for value in values for form in _forms(value) if len(form) >= MIN_LENGTH}
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(f) for f in ordered)) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)
