"""YAML (and JSON) text -> plain values that remember where every value came from.

Called by `reconciler.source.loader` for manifests and `_defaults.yaml` files. Built on PyYAML's event
stream (libyaml's C parser when available) rather than its composer or constructor, because:

- the composer recurses in C and crashes the interpreter on deeply nested input; the event stream does not,
  and we stop at `MAX_DEPTH` levels before the scanner gets slow;
- we expand aliases ourselves under a hard budget (`MAX_DOCUMENT_NODES`), so "billion laughs" fails fast;
- duplicate keys are an error here (PyYAML keeps the last one silently);
- scalars are resolved conservatively (YAML 1.2 core schema, JSON-compatible): `true`/`false` are booleans,
  `null`/`~`/empty is null, and a number is produced only when its text round-trips (`80`, `1.5`). Everything
  else stays a string: `2018-10-01` (never a date), `yes`/`on`/`no` (YAML 1.1 booleans), `0123`, `1.10`,
  `22:30` (sexagesimal), `0x1F`, `1_0`, `1e400`, `.inf`, and any number longer than `MAX_NUMBER_TEXT`
  characters (which `int()` could refuse or `float()` overflow). The manifest model reads numbers written as
  strings by one rule (`reconciler.model.aci.to_decimal`), so it decides what is a number, with a location;
- every value and every mapping key keeps its 1-based (line, column), indexed by its path in the document
  (for plain text worked out only when asked: see `parse_documents`).

Plain block YAML (the shape of nearly every manifest) is read by a line reader of our own instead of the
event stream, for half the CPU; it reads only what it can read exactly as the events do and hands anything
else to them (`_line_documents`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reconciler.model.compact import shared_text
from reconciler.model.text import plain, shown
from reconciler.source.errors import FILE_START, Pos, SourceError

# Files larger than this are rejected before they are read: no manifest is anywhere near it.
MAX_FILE_BYTES = 4 * 1024 * 1024
# Deeper nesting than this is not a container group; libyaml's scanner gets quadratic on deep flow nesting.
MAX_DEPTH = 64
# Values (scalars and collections) one document may expand to, aliases included.
MAX_DOCUMENT_NODES = 100_000
# Longer numeric text stays a string (the model refuses it where a number is due, with its place): Python's
# `int()` refuses more than 4300 digits, and no manifest value needs more than a few.
MAX_NUMBER_TEXT = 32

try:  # libyaml is an order of magnitude faster; the pure-Python parser gives the same events.
    _Loader: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader

Key = str | int
DocPath = tuple[Key, ...]

_INT = re.compile(r"-?(?:0|[1-9][0-9]*)\Z")
_FLOAT = re.compile(r"-?[0-9]+\.[0-9]+(?:e[-+][0-9]+)?\Z")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_YAML11_BOOLS = {
    **dict.fromkeys(("yes", "Yes", "YES", "on", "On", "ON", "y", "Y"), True),
    **dict.fromkeys(("no", "No", "NO", "off", "Off", "OFF", "n", "N"), False),
    **_BOOLS,
}
_TAG = "tag:yaml.org,2002:"
_MAP_TAGS = frozenset({None, "!", _TAG + "map"})
_SEQ_TAGS = frozenset({None, "!", _TAG + "seq"})
# Under these keys mapping keys are data (file names of a secret volume) and case matters.
_CASE_SENSITIVE_PARENTS = frozenset({"secret", "secretfrom"})


class _Abort(Exception):
    """Stops reading a file whose remaining content cannot be read safely (too deep, too big)."""


@dataclass(slots=True)
class ParsedDocument:
    """One document of a file: its plain value and where each part of it was written.

    A document read by the fast path (`_fast_documents`) learns where its parts were written only when
    asked: the first question re-reads its file with the positioned builder (a valid manifest never asks;
    an error or a warning does)."""

    index: int
    start: Pos
    value: Any = None
    errors: list[SourceError] = field(default_factory=list)
    complete: bool = True  # False when the file's syntax broke off inside this document
    located: dict[DocPath, Pos] | None = field(default=None, repr=False)
    key_located: dict[DocPath, Pos] | None = field(default=None, repr=False)
    # The text a fast-path document came from, until it is located.
    source: _Source | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.complete and not self.errors

    @property
    def positions(self) -> dict[DocPath, Pos]:
        """Where each value was written, by its path in the document."""
        if self.located is None:
            self._locate()
        return self.located or {}

    @property
    def key_positions(self) -> dict[DocPath, Pos]:
        """Where each mapping key was written, by the path of its value."""
        if self.key_located is None:
            self._locate()
        return self.key_located or {}

    def _locate(self) -> None:
        if self.source is None:
            return
        twin = self.source.twin(self.index)
        self.source = None
        if twin is not None:
            self.located, self.key_located = twin.located, twin.key_located

    def position(self, path: DocPath) -> Pos:
        """Where `path` (or its nearest ancestor that has a position) was written."""
        for i in range(len(path), -1, -1):
            pos = self.positions.get(path[:i])
            if pos is not None:
                return pos
        return self.start


@dataclass(slots=True)
class _Source:
    """A file's text read by the fast path, read again with positions once, for all its documents (a file
    of many bad documents is not read again per document)."""

    text: str
    path: Path
    positioned: list[ParsedDocument] | None = None

    def twin(self, index: int) -> ParsedDocument | None:
        if self.positioned is None:
            self.positioned, _ = _positioned_documents(self.text, self.path)
        return self.positioned[index] if index < len(self.positioned) else None


def _pos(mark: Any) -> Pos:
    return (mark.line + 1, mark.column + 1)


def resolve_plain_scalar(text: str) -> Any:
    """The value of an untagged plain scalar (see the module docstring for why so few become non-strings)."""
    if text in _NULLS:
        return None
    b = _BOOLS.get(text)
    if b is not None:
        return b
    first = text[0]
    if (first.isdigit() or first == "-") and len(text) <= MAX_NUMBER_TEXT:
        if _INT.match(text):
            return int(text)
        if _FLOAT.match(text):
            value = float(text)
            if repr(value) == text:
                return value
    return text


class _Frame:
    __slots__ = (
        "anchor",
        "count",
        "folded",
        "is_merge",
        "key",
        "key_mark",
        "key_pos",
        "merges",
        "path",
        "pos_mark",
        "value",
    )

    def __init__(
        self,
        value: dict[str, Any] | list[Any],
        path: DocPath,
        anchor: str | None,
        *,
        pos_mark: int,
        key_mark: int,
        count: int,
    ) -> None:
        self.value = value
        self.path = path
        self.anchor = anchor
        # Where this node's entries start in the position logs (an anchor keeps its slice of them).
        self.pos_mark = pos_mark
        self.key_mark = key_mark
        self.count = count  # document size when this node started
        self.key: str | None = None
        self.is_merge = False
        self.folded: dict[str, str] = {}  # case-folded key -> key as written
        self.key_pos: Pos = FILE_START
        self.merges: list[tuple[dict[str, Any], DocPath, Pos]] = []


@dataclass(slots=True)
class _Anchor:
    value: Any
    size: int
    positions: list[tuple[DocPath, Pos]]  # relative to the anchored node
    key_positions: list[tuple[DocPath, Pos]]


class _DocumentBuilder:
    """Builds one document's value from parser events; errors go to the document, fatal ones abort."""

    def __init__(self, path: Path, doc: ParsedDocument) -> None:
        self.path = path
        self.doc = doc
        self.stack: list[_Frame] = []
        self.anchors: dict[str, _Anchor | None] = {}  # None: still being built (an alias to it recurses)
        self.positions: list[tuple[DocPath, Pos]] = []
        self.key_positions: list[tuple[DocPath, Pos]] = []
        self.size = 0

    def error(self, pos: Pos, message: str) -> None:
        self.doc.errors.append(SourceError.at(self.path, pos, message))

    def _count(self, n: int, pos: Pos) -> None:
        self.size += n
        if self.size > MAX_DOCUMENT_NODES:
            self.error(
                pos,
                f"document expands to more than {MAX_DOCUMENT_NODES} values (aliases included); "
                "is it an alias bomb? Write the values out, or split the document",
            )
            raise _Abort

    # Where the next value goes, and whether it is a mapping key.
    def _child_path(self) -> DocPath | None:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        if top.key is None:
            return None  # a key
        return (*top.path, top.key)

    def _is_case_sensitive(self, frame: _Frame) -> bool:
        return bool(frame.path) and str(frame.path[-1]).casefold() in _CASE_SENSITIVE_PARENTS

    def _add(self, value: Any, pos: Pos) -> None:
        """Attach a finished value to its parent (or make it the document's value)."""
        if not self.stack:
            self.doc.value = value
            return
        top = self.stack[-1]
        if isinstance(top.value, list):
            top.value.append(value)
            return
        key = top.key
        assert key is not None
        top.key = None
        if top.is_merge:
            top.is_merge = False
            self._merge_source(top, value, pos)
            return
        mapping = top.value
        if key in mapping:
            self.error(top.key_pos, f"duplicate key {shown(key)}")
            return
        if not self._is_case_sensitive(top):
            folded = key.casefold()
            existing = top.folded.get(folded)
            if existing is not None:
                self.error(
                    top.key_pos, f"duplicate key {shown(key)} (keys are case-insensitive: {shown(existing)})"
                )
                return
            top.folded[folded] = key
        mapping[key] = value

    def _merge_source(self, top: _Frame, value: Any, pos: Pos) -> None:
        """`<<: *base` (YAML merge key): remember the mappings to merge when the mapping ends."""
        sources = value if isinstance(value, list) else [value]
        if not all(isinstance(s, dict) for s in sources):
            self.error(pos, "a merge key '<<' takes a mapping or a list of mappings")
            return
        base = (*top.path, "<<")
        if isinstance(value, list):
            top.merges.extend((s, (*base, i), pos) for i, s in enumerate(sources))
        else:
            top.merges.append((value, base, pos))

    def _apply_merges(self, frame: _Frame) -> None:
        mapping = frame.value
        assert isinstance(mapping, dict)
        # Positions of the merged values were logged under `<path>.<<[.i].<key>`; index them by that prefix
        # once (one pass over this mapping's own entries), then re-home each merged key's entries.
        sources = {source_path for _, source_path, _ in frame.merges}
        moved: dict[DocPath, list[tuple[DocPath, Pos]]] = {}
        key_moved: dict[DocPath, list[tuple[DocPath, Pos]]] = {}
        for log, start, into in (
            (self.positions, frame.pos_mark, moved),
            (self.key_positions, frame.key_mark, key_moved),
        ):
            for p, q in log[start:]:
                for cut in (len(frame.path) + 2, len(frame.path) + 3):
                    if len(p) > cut - 1 and p[: cut - 1] in sources:
                        into.setdefault(p[:cut], []).append((p, q))
                        break
        folded = {k.casefold() for k in mapping}
        for source, source_path, _ in frame.merges:
            for k, v in source.items():
                if k.casefold() in folded:
                    continue  # explicit keys (and earlier merges) win, as YAML specifies
                folded.add(k.casefold())
                mapping[k] = v
                old_base = (*source_path, k)
                new_base = (*frame.path, k)
                cut = len(old_base)
                self.positions.extend(((*new_base, *p[cut:]), q) for p, q in moved.get(old_base, ()))
                self.key_positions.extend(((*new_base, *p[cut:]), q) for p, q in key_moved.get(old_base, ()))

    def scalar(self, event: Any) -> None:
        pos = _pos(event.start_mark)
        path = self._child_path()
        if path is None:  # a mapping key
            top = self.stack[-1]
            key = event.value
            if event.tag not in (None, "!", _TAG + "str", _TAG + "merge"):
                self.error(pos, f"unsupported tag {event.tag} on a key; keys are plain strings")
            # Only a plain `<<` is the merge key; a quoted one is an ordinary key.
            top.is_merge = key == "<<" and not event.style and event.tag in (None, _TAG + "merge")
            top.key = key
            top.key_pos = pos
            self.key_positions.append(((*top.path, top.key), pos))
            if event.anchor:
                self.anchors[event.anchor] = _Anchor(top.key, 1, [], [])
            return
        self._count(1, pos)
        value = self._scalar_value(event, pos)
        self.positions.append((path, pos))
        if event.anchor:
            self.anchors[event.anchor] = _Anchor(value, 1, [((), pos)], [])
        self._add(value, pos)

    def _scalar_value(self, event: Any, pos: Pos) -> Any:
        text: str = event.value
        tag = event.tag
        if tag is None or tag == "!":
            if event.implicit[0] and not event.style and tag is None:
                return resolve_plain_scalar(text)
            return text
        if not tag.startswith(_TAG):
            self.error(pos, f"unsupported YAML tag {shown(tag)}; manifests use plain values only")
            return text
        kind = tag[len(_TAG) :]
        try:
            if kind == "str":
                return text
            if kind in ("int", "float"):
                # Explicitly tagged numbers: the same text the model reads for any number, no YAML 1.1
                # extras (underscores, `0x`, `.inf`), which ARM would not read either.
                if len(text) > MAX_NUMBER_TEXT or not _PLAIN_NUMBER.match(text.strip()):
                    raise ValueError(text)
                value = int(text) if kind == "int" else float(text)
                if isinstance(value, float) and not math.isfinite(value):
                    raise ValueError(text)
                return value
            if kind == "bool":
                return _YAML11_BOOLS[text]
            if kind == "null":
                if text not in _NULLS:
                    raise ValueError(text)
                return None
        except (ValueError, KeyError):
            self.error(pos, f"{shown(text)} is not a valid !!{kind}")
            return text
        self.error(pos, f"unsupported YAML tag '!!{kind}'; manifests use plain values only")
        return text

    def start(self, event: Any, is_mapping: bool) -> None:
        pos = _pos(event.start_mark)
        path = self._child_path()
        if path is None:
            self.error(pos, "a mapping key must be a plain string, not a mapping or a list")
            raise _Abort
        if len(self.stack) >= MAX_DEPTH:
            self.error(pos, f"nested more than {MAX_DEPTH} levels deep")
            raise _Abort
        allowed = _MAP_TAGS if is_mapping else _SEQ_TAGS
        if event.tag not in allowed:
            self.error(pos, f"unsupported YAML tag {shown(event.tag)}; manifests use plain values only")
        self._count(1, pos)
        self.positions.append((path, pos))
        if event.anchor:
            self.anchors[event.anchor] = None
        frame = _Frame(
            {} if is_mapping else [],
            path,
            event.anchor,
            pos_mark=len(self.positions) - 1,
            key_mark=len(self.key_positions),
            count=self.size,
        )
        self.stack.append(frame)

    def end(self, event: Any) -> None:
        frame = self.stack.pop()
        key_mark = frame.key_mark
        if frame.merges:
            self._apply_merges(frame)
        pos = self.positions[frame.pos_mark][1]
        if frame.anchor:
            n = len(frame.path)
            self.anchors[frame.anchor] = _Anchor(
                frame.value,
                self.size - frame.count + 1,
                [(p[n:], q) for p, q in self.positions[frame.pos_mark :]],
                [(p[n:], q) for p, q in self.key_positions[key_mark:]],
            )
        self._add(frame.value, pos)
        del event

    def alias(self, event: Any) -> None:
        pos = _pos(event.start_mark)
        name = event.anchor
        path = self._child_path()
        if name not in self.anchors:
            self.error(pos, f"unknown alias *{plain(name)}; define it with &{plain(name)} before using it")
            if path is None:
                self.stack[-1].key = f"*{name}"
                self.stack[-1].key_pos = pos
            else:
                self._add(None, pos)
            return
        anchor = self.anchors[name]
        if anchor is None:
            self.error(pos, f"alias *{plain(name)} refers to a value that contains it (recursive alias)")
            raise _Abort
        if path is None:  # an aliased key
            if not isinstance(anchor.value, str):
                self.error(pos, "a mapping key must be a plain string, not a mapping or a list")
                raise _Abort
            top = self.stack[-1]
            top.key = anchor.value
            top.key_pos = pos
            self.key_positions.append(((*top.path, anchor.value), pos))
            return
        self._count(anchor.size, pos)
        self.positions.append((path, pos))
        self.positions.extend(((*path, *p), q) for p, q in anchor.positions if p)
        self.key_positions.extend(((*path, *p), q) for p, q in anchor.key_positions)
        self._add(_copy(anchor.value), pos)

    def finish(self) -> None:
        self.doc.located = dict(self.positions)
        self.doc.key_located = dict(self.key_positions)


def _copy(value: Any) -> Any:
    """A deep copy of plain values (aliases must not share mutable structure with their anchors)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _error_pos(text: str, exc: yaml.YAMLError) -> Pos:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        return _pos(mark)
    position = getattr(exc, "position", None)
    if isinstance(position, int):
        return offset_to_pos(text, position)
    return FILE_START


def offset_to_pos(text: str, offset: int) -> Pos:
    """1-based (line, column) of a character offset in `text`."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return (line, column)


def _describe(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    if problem:
        context = getattr(exc, "context", None)
        context_mark = getattr(exc, "context_mark", None)
        where = ""
        if context and context_mark is not None:
            where = f" ({context} started at line {context_mark.line + 1}, column {context_mark.column + 1})"
        elif context:
            where = f" ({context})"
        return f"invalid YAML: {problem}{where}"
    reason = getattr(exc, "reason", None)
    if reason:
        return f"invalid YAML: {reason}"
    return "invalid YAML: " + str(exc).splitlines()[0]


def parse_documents(text: str, path: Path) -> tuple[list[ParsedDocument], list[SourceError]]:
    """All documents of `text`, and the file-level errors (syntax) that cut the file short.

    Never raises for any input: every problem is a `SourceError` naming `path` and a position. Documents
    before a syntax error are complete and usable; the one it interrupts is marked incomplete.

    Plain text (what nearly every manifest is) is read without positions, about twice as fast; where each
    part was written is worked out on first use (`ParsedDocument.positions`). Anything else, and every
    text with a problem, is read by the positioned builder at once, which reports it.
    """
    fast = _fast_documents(text)
    if fast is None:
        return _positioned_documents(text, path)
    source = _Source(text, path)
    return [
        ParsedDocument(index=i, start=start, value=value, source=source)
        for i, (start, value) in enumerate(fast)
    ], []


class _NoKey:
    """The mapping at the top of the fast path's stack waits for a key."""


_NO_KEY = _NoKey()

# Short texts (names, images, env var names, ports, regions) repeat across a fleet's files and are kept as
# long as the manifests are: the fast path makes each value one object (`shared_text`). Keys are not
# shared: the models keep their own field names (sharing them cost a tenth of a load).
_MAX_SHARED_TEXT = 64


def _fast_documents(text: str) -> list[tuple[Pos, Any]] | None:
    """Every document's start and value, or None when the text needs the positioned builder: an anchor,
    an alias, a tag, a merge key, a key that is not a plain string, a duplicate key (also one that differs
    only in case), more than `MAX_DEPTH` levels or `MAX_DOCUMENT_NODES` values, or a syntax error.
    Whatever it returns, the positioned builder returns the same values for (a property test holds it).

    The common shape of a manifest is read line by line (`_line_documents`); the rest from libyaml's
    events (`_event_documents`)."""
    lines = _line_documents(text)
    return lines if lines is not None else _event_documents(text)


def _event_documents(text: str) -> list[tuple[Pos, Any]] | None:
    """`_fast_documents` from libyaml's events: any YAML, for about twice the CPU of the line reader."""
    docs: list[tuple[Pos, Any]] = []
    stack: list[Any] = []  # the open mappings and lists
    keys: list[Any] = []  # per open collection, the key its next value goes under (`_NO_KEY`: none yet)
    start: Pos = FILE_START
    value: Any = None
    size = 0
    scalar_event, mapping_start, sequence_start = (
        yaml.ScalarEvent,
        yaml.MappingStartEvent,
        yaml.SequenceStartEvent,
    )
    mapping_end, sequence_end = yaml.MappingEndEvent, yaml.SequenceEndEvent
    parser: Any = None
    try:
        parser = _Loader(text)
        get_event = parser.get_event
        while True:
            event = get_event()
            kind = type(event)
            if kind is scalar_event:
                if event.anchor is not None:
                    return None
                tag = event.tag
                if keys and keys[-1] is _NO_KEY and type(stack[-1]) is dict:
                    key = event.value
                    if tag is not None or key == "<<" or key in stack[-1]:
                        return None
                    keys[-1] = key
                    continue
                if tag is None:
                    done = (
                        resolve_plain_scalar(event.value)
                        if event.implicit[0] and not event.style
                        else event.value
                    )
                elif tag == "!":
                    done = event.value
                else:
                    return None
                if type(done) is str:
                    done = shared_text(done, _MAX_SHARED_TEXT)
                size += 1
            elif kind is mapping_start or kind is sequence_start:
                if event.anchor is not None or event.tag is not None or len(stack) >= MAX_DEPTH:
                    return None
                if keys and keys[-1] is _NO_KEY and type(stack[-1]) is dict:
                    return None  # a mapping or a list as a key
                size += 1
                stack.append({} if kind is mapping_start else [])
                keys.append(_NO_KEY)
                continue
            elif kind is mapping_end or kind is sequence_end:
                done = stack.pop()
                keys.pop()
                if type(done) is dict and len(done) > 1 and len({k.casefold() for k in done}) != len(done):
                    return None
            elif kind is yaml.DocumentStartEvent:
                start, value, size = _pos(event.start_mark), None, 0
                continue
            elif kind is yaml.DocumentEndEvent:
                docs.append((start, value))
                continue
            elif kind is yaml.StreamEndEvent:
                return docs
            elif kind is yaml.StreamStartEvent:
                continue
            else:  # an alias
                return None
            if size > MAX_DOCUMENT_NODES:
                return None
            if not stack:
                value = done
            elif keys[-1] is _NO_KEY:
                stack[-1].append(done)
            else:
                stack[-1][keys[-1]] = done
                keys[-1] = _NO_KEY
    except yaml.YAMLError:
        return None
    finally:
        if parser is not None:
            parser.dispose()


# The line reader takes block YAML of printable ASCII whose keys are plain words, whose values fit on their
# line (plain, quoted without escapes, or flow collections of those) and whose lines are not continued:
# what nearly every manifest is, in about half the CPU of libyaml's events (which are Python objects, several
# a line). Anything else it hands to libyaml (`_Bail`) before reading any of it differently: the property
# tests in tests/source/test_yamlread.py compare the two on generated and edited manifests.
_NOT_LINE_READ = re.compile(r"[^\n -~]")  # tabs, CR, control characters, anything not ASCII
# Any line: its indentation, a list entry's dash, a plain key, and the rest (a value, a comment, or both).
_LINE = re.compile(r"( *)(- +|-\Z)?(?:([A-Za-z0-9_][A-Za-z0-9_./-]*):(?: +|\Z))?(.*)")
_FLOW_KEY = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_./-]*): +")
_FLOW_PLAIN = re.compile(r"[A-Za-z0-9_./+=$^()~-][A-Za-z0-9_./+=$^()~@-]*(?: +[A-Za-z0-9_./+=$^()~@-]+)*")
_SINGLE_QUOTED = re.compile(r"'((?:[^']|'')*)'")
# A plain scalar does not start with an indicator; `-` followed by a non-space does (`-1`, `--port`).
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")


class _Bail(Exception):
    """The line reader met something it does not read: libyaml's events read the text instead."""


def _line_documents(text: str) -> list[tuple[Pos, Any]] | None:
    """`_fast_documents` for the common shape of a manifest (see `_NOT_LINE_READ` above), or None."""
    if _NOT_LINE_READ.search(text):
        return None
    try:
        return _LineReader().read(text)
    except _Bail:
        return None


class _LineReader:
    """One text's documents, line by line. The open mappings and lists are two stacks: the column of each
    one's entries, and the container itself."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values = 0  # the current document's values on lines (`MAX_DOCUMENT_NODES`)

    def read(self, text: str) -> list[tuple[Pos, Any]]:
        docs: list[tuple[Pos, Any]] = []
        indents: list[int] = []
        containers: list[Any] = []
        start: Pos | None = None  # the current document's start (None: no document open)
        root: Any = None
        waiting: str | None = None  # the innermost mapping's last key, whose value is on the next lines
        size = 0
        line_match = _LINE.match
        for number, line in enumerate(text.split("\n"), 1):
            spaces, dash, name, rest = line_match(line).groups()  # type: ignore[union-attr]  # matches any line
            if dash is None and name is None:
                if not rest or rest[0] == "#":
                    continue
                if spaces or not rest.startswith("---") or (len(rest) > 3 and rest[3] != " "):
                    raise _Bail  # a scalar on a line of its own, `...`, a directive: libyaml reads it
                after = rest[3:].lstrip(" ")
                if after and after[0] != "#":
                    raise _Bail
                if start is not None:
                    docs.append((start, self._close(indents, containers, root, size + (waiting is not None))))
                start, root, waiting, size, self.values = (number, 1), None, None, 0, 0
                indents, containers = [], []
                continue
            indent = len(spaces)
            if start is None:
                start = (number, indent + 1)
            if waiting is not None:
                size += 1
                if indent > indents[-1] or (indent == indents[-1] and dash):
                    child: Any = [] if dash else {}
                    containers[-1][waiting] = child
                    self._push(indents, containers, indent, child)
                waiting = None
            while indents and (
                indents[-1] > indent or (indents[-1] == indent and not dash and type(containers[-1]) is list)
            ):
                indents.pop()
                _check_folded(containers.pop())
            if not indents:
                if root is not None:
                    raise _Bail  # a second value at the top of one document
                root = [] if dash else {}
                size += 1
                self._push(indents, containers, indent, root)
            elif indents[-1] != indent:
                raise _Bail  # deeper than its siblings after a value: a continued scalar, or an error
            container = containers[-1]
            if dash:
                if type(container) is not list:
                    raise _Bail
                if name is None:
                    if not rest or rest[0] == "#" or (rest[0] == "-" and (len(rest) == 1 or rest[1] == " ")):
                        raise _Bail  # `-` alone (its value on the next lines), or `- - x`
                    container.append(self._value(rest, len(indents)))
                    continue
                child = {}
                container.append(child)
                size += 1
                self._push(indents, containers, indent + len(dash), child)
                container = child
            elif type(container) is not dict:
                raise _Bail
            if name in container:
                raise _Bail  # a duplicate: the positioned builder reports it
            if not rest or rest[0] == "#":
                container[name] = None
                waiting = name
            else:
                container[name] = self._value(rest, len(indents))
        if start is not None:
            docs.append((start, self._close(indents, containers, root, size + (waiting is not None))))
        return docs

    @staticmethod
    def _push(indents: list[int], containers: list[Any], indent: int, container: Any) -> None:
        if len(indents) >= MAX_DEPTH:
            raise _Bail
        indents.append(indent)
        containers.append(container)

    def _close(self, indents: list[int], containers: list[Any], root: Any, size: int) -> Any:
        if size + self.values > MAX_DOCUMENT_NODES:
            raise _Bail
        for container in containers:
            _check_folded(container)
        return root

    def _value(self, text: str, depth: int) -> Any:
        """The value that `text` (the rest of a line, from its first character) holds, inside `depth` open
        collections."""
        first = text[0]
        if first in {"[", "{", '"', "'"}:
            value, end = self._flow(text, 0, depth)  # a flow collection, or a quoted scalar
        else:
            if first in _INDICATORS and (first != "-" or len(text) < 2 or text[1] == " "):
                raise _Bail
            cut = text.find(" #")
            if cut >= 0:
                text = text[:cut]
            text = text.rstrip(" ")
            if ": " in text or text[-1] == ":":
                raise _Bail  # a mapping where a value is due: an error libyaml describes
            self.values += 1
            value = resolve_plain_scalar(text)
            return shared_text(value, _MAX_SHARED_TEXT) if type(value) is str else value
        tail = text[end:]
        if tail:
            after = tail.lstrip(" ")
            if after and (after[0] != "#" or after is tail):
                raise _Bail
        return value

    def _quoted(self, text: str, at: int) -> tuple[str, int]:
        if text[at] == '"':
            end = text.find('"', at + 1)
            if end < 0 or "\\" in text[at + 1 : end]:
                raise _Bail  # continued on the next line, or escapes
            value = text[at + 1 : end]
            end += 1
        else:
            match = _SINGLE_QUOTED.match(text, at)
            if match is None:
                raise _Bail
            value, end = match.group(1).replace("''", "'"), match.end()
        self.values += 1
        return shared_text(value, _MAX_SHARED_TEXT), end

    def _flow(self, text: str, at: int, depth: int) -> tuple[Any, int]:
        """The flow collection or scalar at `text[at]`, inside `depth` open collections, and where it
        ends."""
        first = text[at] if at < len(text) else ""
        if first in {'"', "'"}:
            return self._quoted(text, at)
        self.values += 1
        if first not in {"[", "{"}:
            match = _FLOW_PLAIN.match(text, at)
            if match is None:
                raise _Bail
            plain = match.group()
            if plain[0] == "-" and (len(plain) == 1 or plain[1] == " "):
                raise _Bail
            value = resolve_plain_scalar(plain)
            return (shared_text(value, _MAX_SHARED_TEXT) if type(value) is str else value), match.end()
        if depth >= MAX_DEPTH:
            raise _Bail
        closing = "]" if first == "[" else "}"
        items: Any = [] if first == "[" else {}
        at += 1
        end = len(text)
        while True:
            while at < end and text[at] == " ":
                at += 1
            if at < end and text[at] == closing and not items:
                return items, at + 1
            if first == "[":
                value, at = self._flow(text, at, depth + 1)
                items.append(value)
            else:
                key = _FLOW_KEY.match(text, at)
                if key is None or key.group(1) in items:
                    raise _Bail
                value, at = self._flow(text, key.end(), depth + 1)
                items[key.group(1)] = value
            while at < end and text[at] == " ":
                at += 1
            if at >= end:
                raise _Bail  # continued on the next line
            if text[at] == closing:
                _check_folded(items)
                return items, at + 1
            if text[at] != ",":
                raise _Bail
            at += 1


def _check_folded(container: Any) -> None:
    """Keys of one mapping that differ only in case are reported by the positioned builder. (The line
    reader reads ASCII only, where `str.lower` folds as `str.casefold` does, and `map` keeps it in C.)"""
    if (
        type(container) is dict
        and len(container) > 1
        and len(set(map(str.lower, container))) != len(container)
    ):
        raise _Bail


def _positioned_documents(text: str, path: Path) -> tuple[list[ParsedDocument], list[SourceError]]:
    """`parse_documents` with every value's and key's position, and every problem reported."""
    docs: list[ParsedDocument] = []
    file_errors: list[SourceError] = []
    builder: _DocumentBuilder | None = None
    parser: Any = None
    try:
        parser = _Loader(text)  # the pure-Python reader checks the characters here already
        while True:
            # The parser's own get_event (C with libyaml) rather than `yaml.parse`, whose Python generator
            # costs more than the parsing itself on small files.
            event = parser.get_event()
            kind = type(event)
            if kind is yaml.StreamEndEvent:
                break
            if kind is yaml.ScalarEvent:
                assert builder is not None
                builder.scalar(event)
            elif kind is yaml.MappingStartEvent:
                assert builder is not None
                builder.start(event, True)
            elif kind is yaml.SequenceStartEvent:
                assert builder is not None
                builder.start(event, False)
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                assert builder is not None
                builder.end(event)
            elif kind is yaml.AliasEvent:
                assert builder is not None
                builder.alias(event)
            elif kind is yaml.DocumentStartEvent:
                doc = ParsedDocument(index=len(docs), start=_pos(event.start_mark))
                docs.append(doc)
                builder = _DocumentBuilder(path, doc)
            elif kind is yaml.DocumentEndEvent:
                assert builder is not None
                builder.finish()
                builder = None
    except _Abort:
        if builder is not None:
            builder.finish()
            builder.doc.complete = False
    except yaml.YAMLError as exc:
        if builder is not None:
            builder.finish()
            builder.doc.complete = False
        file_errors.append(SourceError.at(path, _error_pos(text, exc), _describe(exc)))
    except RecursionError:  # pragma: no cover - MAX_DEPTH keeps the builder shallow
        file_errors.append(SourceError.at(path, FILE_START, f"nested more than {MAX_DEPTH} levels deep"))
    finally:
        if parser is not None:
            parser.dispose()
    return docs, file_errors
