"""Differential fuzzing of the two readers of untrusted text we wrote ourselves, each against the standard
reader it must agree with. Run by hand (never by the suite; atheris is not a dependency):

    .venv/bin/pip install atheris
    .venv/bin/python tools/fuzz_readers.py lines CORPUS_DIR [libFuzzer options, e.g. -max_total_time=600]
    .venv/bin/python tools/fuzz_readers.py page CORPUS_DIR [...]

- `lines`: the YAML line reader (`reconciler.source.yamlread._line_documents`). Whatever text it reads must be
  read exactly alike (types and key order too, by `repr`) by libyaml's events (`_event_documents`) and by the
  positioned builder that reports errors (`_positioned_documents`); anything else it must leave to them.
  Seed the corpus with manifests (`cp manifests/*.yaml CORPUS_DIR/`).
- `page`: the ARM list-page splitter (`reconciler.cloud.listpage.page_items`). For any bytes it must give
  `json.loads`'s items and nextLink, each item's text must decode to that item, and a body that is not a
  JSON object must list nothing. Seed it with list responses (`ContainerGroupsList.json`'s body).

A disagreement raises AssertionError with the input; libFuzzer saves it as `crash-*` (`-artifact_prefix=`).
Only the module under test is instrumented for coverage. The hypothesis tests in `tests/source/` and
`tests/cloud/` hold the same properties on generated input in every run of the suite; this finds what their
generators do not make.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import atheris  # installed by hand (see above); untyped

TARGETS = {"lines": "reconciler.source.yamlread", "page": "reconciler.cloud.listpage"}


def lines_target() -> Callable[[bytes], None]:
    with atheris.instrument_imports(include=[TARGETS["lines"]]):
        from reconciler.source import yamlread

    def one(data: bytes) -> None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return
        lines = yamlread._line_documents(text)
        if lines is None:
            return
        events = yamlread._event_documents(text)
        if events is None or repr(lines) != repr(events):
            raise AssertionError(f"the line reader and the events disagree on {text!r}: {lines!r} {events!r}")
        docs, errors = yamlread._positioned_documents(text, Path("fuzz.yaml"))
        values = [v for _, v in lines]
        if errors or repr([d.value for d in docs]) != repr(values):
            raise AssertionError(f"the line reader and the positioned builder disagree on {text!r}: {errors}")

    return one


def page_target() -> Callable[[bytes], None]:
    with atheris.instrument_imports(include=[TARGETS["page"]]):
        from reconciler.cloud.listpage import page_items

    def one(raw: bytes) -> None:
        got = page_items(raw)
        try:
            page = json.loads(raw.decode(json.detect_encoding(raw), "surrogatepass"))
        except (UnicodeDecodeError, ValueError):
            page = None
        if not isinstance(page, dict):
            assert got is None, (raw, got)
            return
        assert got is not None, raw
        items, next_link = got
        listed = page.get("value") if isinstance(page.get("value"), list) else []
        assert repr([item for item, _ in items]) == repr(listed), (raw, items)
        for item, text in items:
            assert repr(json.loads(text)) == repr(item), (raw, text)
        assert repr(next_link) == repr(page.get("nextLink")), (raw, next_link)

    return one


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} CORPUS_DIR [libFuzzer options]")
    target = lines_target() if sys.argv[1] == "lines" else page_target()
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
