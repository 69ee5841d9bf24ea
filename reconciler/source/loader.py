"""Load a manifest directory: every group, every problem (with file:line:col), and the revision.

Called by the engine at the start of each reconcile pass and by `reconcile validate`; the entry point is
`load_manifests(root, defaults=..., environ=...) -> LoadResult`. It never raises for bad input: one bad file
or document becomes errors in the result, and every other file is still loaded.

A document goes through these steps, each of which can point an error at its place (a plain document is read
without positions, and its file is read again with them when a step has something to report):
read (size limit, UTF-8) -> YAML events -> plain values (`yamlread`) -> `${VAR}` substitution (`substitute`)
-> secret references resolved (`secrets`) -> directory and CLI defaults filled in (`defaults`) -> the manifest
model (`reconciler.model.manifest.parse_manifest`) -> secrets set on the model. Then `(resourceGroup, name)`
must be unique across the tree (case-insensitive, as Azure names are).

`LoadResult.complete` is False when any file or document failed: the engine must then not prune, because a
group whose manifest failed to parse must never be deleted. `LoadResult.failed_keys` names the groups of
failed documents whose name could still be read, so they can be shown as stalled rather than forgotten.

Several roots (directories or single files: `-f` repeats) load as one tree: duplicates are found across them,
a file reached from two roots is read once. Secret files are never manifests: every file that a
`secureValueFrom: {file: ...}` (or another `...From: {file: ...}`) names, and every file under a secrets
directory (`secrets/` at each root, or what a `_defaults.yaml` names with `secretsDir:`), is left out of the
walk before anything is parsed or reported, so neither its parse errors (which would quote it) nor its
failure (which would stop pruning) can happen. Files are therefore read and parsed first, their references
collected, and only then loaded.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from reconciler.model.manifest import GroupManifest, SecretRef, SecretSlot, parse_manifest
from reconciler.model.text import plain, shown
from reconciler.source.defaults import Defaults, Layer, apply_layer, parse_layer, secrets_dir
from reconciler.source.envpolicy import read_env
from reconciler.source.errors import FILE_START, Pos, SourceError, SourceLocation
from reconciler.source.revision import content_digest, git_revision
from reconciler.source.secrets import (
    LITERAL_SECRET_KEYS,
    FoundReference,
    find_references,
    literal_secret_warnings,
    resolve_references,
)
from reconciler.source.substitute import substitute
from reconciler.source.walk import Stamp, WalkItem, walk
from reconciler.source.yamlread import MAX_FILE_BYTES, DocPath, ParsedDocument, parse_documents

# A top-level key the Azure CLI's YAML serializer writes (`az container export`, Microsoft's GPU tutorial).
SERIALIZER_LEFTOVER = "additional_properties"
# Problems (errors, and separately warnings) reported per file; the rest are counted in one last line.
MAX_PROBLEMS_PER_FILE = 50
# Where secret files live unless a `_defaults.yaml` says otherwise: relative to each root directory.
DEFAULT_SECRETS_DIR = "secrets"
# The longest path of keys (`properties.containers[0]...`) a message repeats.
MAX_DISPLAY_CHARS = 200


@dataclass(frozen=True, slots=True, eq=False)
class LoadedGroup:
    """One valid manifest document: the group (secrets resolved) and where it was written.

    A group of a file that the load cache kept comes with this pass's values of its secret references
    (`values`) but without them put into its manifest: `manifest` makes that copy when first asked, and a
    daemon's plan memo serves a group that did not change without asking (`declared`, `secret_values`)."""

    # The manifest as far as everything but secret values goes (names, policy, tags, shape): with `values`,
    # the one validated before they were put in (`unresolved`, then), which is read without making a copy.
    declared: GroupManifest
    source: SourceLocation
    file_digest: str  # sha256 hex of the whole file's bytes
    document: int = 0  # 0-based index of the document in its file
    # The manifest as validated before its secret references were given their values (None: it has none):
    # what the load cache keeps of it, the same object pass after pass.
    unresolved: GroupManifest | None = field(default=None, repr=False)
    # This pass's values of the references of its file, by kind and name: read, not yet put in. Held for
    # the pass only, as the manifest with the values in would be.
    values: Mapping[tuple[str, str], str] | None = field(default=None, repr=False, kw_only=True)
    # With `values`: the secret slots of `declared`, as the load cache keeps them with it.
    slots: tuple[SecretSlot, ...] | None = field(default=None, repr=False, kw_only=True)
    # `str(source)` and the key in lower case, made once: a group the load cache keeps is used every pass
    # (and the copy it hands out with a pass's values takes them from it, `with_values`).
    where: str = field(default="", repr=False, kw_only=True)
    folded_key: tuple[str, str] = field(default=("", ""), repr=False, kw_only=True)
    _resolved: GroupManifest | None = field(init=False, default=None, repr=False)
    _read: dict[str, str] | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.where:
            object.__setattr__(self, "where", str(self.source))
            folded = (self.declared.resource_group.lower(), self.declared.name.lower())
            object.__setattr__(self, "folded_key", folded)

    def with_values(
        self, values: Mapping[tuple[str, str], str], slots: tuple[SecretSlot, ...]
    ) -> LoadedGroup:
        """This kept group (validated before its values were put in) with a pass's `values` of its file's
        references, and its manifest's secret `slots`."""
        return LoadedGroup(
            self.declared,
            self.source,
            self.file_digest,
            self.document,
            self.declared,
            values=values,
            slots=slots,
            where=self.where,
            folded_key=self.folded_key,
        )

    @property
    def manifest(self) -> GroupManifest:
        """The group with its secret values in."""
        if self.values is None:
            return self.declared
        found = self._resolved
        if found is None:
            found = self.declared.resolve_secrets(_resolver(self.values))
            object.__setattr__(self, "_resolved", found)
        return found

    def secret_values(self) -> dict[str, str]:
        """`manifest.secret_values()`, without putting the values into a copy (worked out once: the plan
        memo and the daemon's log redactor both ask)."""
        if self.values is None:
            return self.declared.secret_values()
        found = self._read
        if found is None:
            found = self.declared.secret_values(_resolver(self.values), slots=self.slots)
            object.__setattr__(self, "_read", found)
        return dict(found)

    @property
    def key(self) -> tuple[str, str]:
        return (self.declared.resource_group, self.declared.name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LoadedGroup):
            return NotImplemented
        return (self.manifest, self.source, self.file_digest, self.document) == (
            other.manifest,
            other.source,
            other.file_digest,
            other.document,
        )

    __hash__ = None  # type: ignore[assignment]  # equal by content, like the dataclass it was: not hashable


@dataclass(frozen=True, slots=True)
class LoadResult:
    """Everything one load of the manifest tree found."""

    groups: tuple[LoadedGroup, ...]
    errors: tuple[SourceError, ...]
    warnings: tuple[SourceError, ...]
    revision: str
    # (resource group, name) of documents that failed but whose name (and resource group) could be read.
    failed_keys: tuple[tuple[str, str], ...] = ()
    files: int = 0  # manifest and defaults files read
    # The manifest files parsed afresh by this load (not taken from a `LoadCache`), with their size and
    # mtime (ns) as the walk saw them before reading: what the daemon checks for a file written meanwhile.
    fresh: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when nothing failed; only then may the engine prune."""
        return not self.errors


@dataclass(slots=True)
class _Pass:
    root: Path
    environ: Mapping[str, str]
    resolve_secrets: bool = True
    prefix: str = ""
    groups: list[LoadedGroup] = field(default_factory=list)
    errors: list[SourceError] = field(default_factory=list)
    warnings: list[SourceError] = field(default_factory=list)
    # (resource group, name) of failed documents, and where the document starts.
    failed: list[tuple[tuple[str, str], SourceLocation]] = field(default_factory=list)
    # (relative path, sha256 of the bytes) of every file read: the revision when there is no git.
    contents: list[tuple[str, bytes]] = field(default_factory=list)
    fresh: dict[str, tuple[int, int]] = field(default_factory=dict)
    # Worked out once a pass: a kept file with secret references asks for it on every pass.
    _secret_root: Path | None = None

    @property
    def secret_root(self) -> Path:
        """Secret files must stay inside this directory: the root, or the directory of a single-file root."""
        if self._secret_root is None:
            self._secret_root = self.root.parent if self.root.is_file() else self.root
        return self._secret_root

    def relative(self, path: Path) -> str:
        try:
            return self.prefix + path.relative_to(self.root).as_posix()
        except ValueError:
            return self.prefix + path.name


@dataclass(slots=True)
class _Read:
    """A file read, decoded and split into documents once (before we know whether it is a secret).

    A file whose bytes a `LoadCache` already knows is not parsed up front (`cached`): if its layer matches
    too, its groups are taken from the cache, else `parse` is called when it is loaded. A file the cache
    trusts by its stat (`LoadCache.trusts`) is not even read (`data` None, `unread`) until `parse` needs
    it."""

    data: bytes | None
    error: SourceError | None
    text: str | None = None
    docs: list[ParsedDocument] = field(default_factory=list)
    file_errors: list[SourceError] = field(default_factory=list)
    digest: str = ""
    cached: _Cached | None = None
    unread: bool = False
    read_at: int = 0  # `clock()` just before the bytes were read
    clock: Callable[[], int] = time.time_ns

    def parse(self, path: Path) -> None:
        if self.unread:
            self.unread, self.cached = False, None
            self.read_at = self.clock()
            self.data, self.error = _read(path)
            if self.data is not None:
                self.digest = hashlib.sha256(self.data).hexdigest()
        if self.data is None or self.text is not None or self.error is not None:
            return
        text, error = _decode(path, self.data)
        if text is None:
            self.error = error
            return
        self.text = text
        self.docs, self.file_errors = parse_documents(text, path)


@dataclass(frozen=True, slots=True)
class _Cached:
    """What loading one file gave, and what it depended on."""

    digest: str
    relative: str
    layer: Layer
    resolve_secrets: bool
    # The walk's stat of the file when it was last read, and when (time.time_ns() before the read).
    stamp: Stamp | None
    read_at: int
    groups: tuple[LoadedGroup, ...]
    errors: tuple[SourceError, ...]
    warnings: tuple[SourceError, ...]
    failed: tuple[tuple[tuple[str, str], SourceLocation], ...]
    # The file's directory: where the relative names of its secret files start (the walk's object, shared
    # by the entries of its files).
    directory: Path
    # Each variable its `${VAR}` substitutions read, with the value read (None: unset).
    env: tuple[tuple[str, str | None], ...] = ()
    # Its secret references (what they name, never a value): resolved again every pass, and the groups
    # above are kept as they were before their values were put in.
    refs: tuple[FoundReference, ...] = ()
    # The secret files its documents name, as written: marked as secrets when the file is not read again.
    noted: tuple[str, ...] = ()
    # Per group with secret references (kept without their values): the secret slots of its manifest,
    # worked out once (`GroupManifest.secret_slots`); None for a group without.
    slots: tuple[tuple[SecretSlot, ...] | None, ...] = ()

    def same_env(self, environ: Mapping[str, str]) -> bool:
        return all(environ.get(name) == value for name, value in self.env)


class _EnvReads(Mapping[str, str]):
    """The environment as one file's substitutions see it, noting every variable they read (by key: all
    that `envpolicy.read_env` does), so that the load cache can keep the file with what it depended on. A
    walk over the whole environment (`whole`) is a dependency on all of it: such a file is not kept."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self.read: dict[str, str | None] = {}
        self.whole = False

    def __getitem__(self, key: str) -> str:
        value = self._environ.get(key)
        self.read[key] = value
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        self.whole = True
        return iter(self._environ)

    def __len__(self) -> int:
        self.whole = True
        return len(self._environ)


@dataclass
class LoadCache:
    """Per manifest file, what loading it gave, kept across the daemon's passes so that an unchanged file is
    not parsed and validated again (`load_manifests(cache=...)`).

    A file is kept with what its result depends on: its bytes, its path, the defaults in force and the
    variables its `${VAR}` substitutions read. A file with secret references (`...From:`) is kept as
    validated before their values were put in, with the references (what they name) and the secret files it
    names: each pass reads the values again and hands each group out with them (`LoadedGroup.values`), to
    be put into a copy of its manifest only when one is asked for; a reference that no longer resolves
    loads the file afresh, so that its error names the line. No value is kept; a file with a
    literal secret field, or a load of one with references that had errors, is not kept at all. An entry is
    used only when the file's sha256, its place in the tree, the defaults layer in force, the secrets mode
    and the value of each variable it read (or its absence) are all the same (keyed by the path as walked);
    files that are gone are forgotten at the end of each load.

    A file is not even read when its stat (device, inode, size, mtime and ctime, all in ns) is the one
    recorded when it was last read and that mtime and ctime were already `RACY_NS` old then: git's rule for
    a racily clean index entry. A write after the read changes ctime (which no tool can set back), and a
    write so soon after an earlier one that a coarse file system clock gives both the same times is ruled
    out by the age. Anything else is read and compared by its sha256."""

    entries: dict[str, _Cached] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0
    clock: Callable[[], int] = time.time_ns

    # Twice the coarsest timestamp granularity of a file system one might mount manifests from (FAT: 2 s),
    # plus a second for the kernel's coarse clock.
    RACY_NS = 5_000_000_000

    def trusts(self, entry: _Cached, stamp: Stamp | None) -> bool:
        if stamp is None or entry.stamp != stamp:
            return False
        _, _, _, mtime_ns, ctime_ns = stamp
        return max(mtime_ns, ctime_ns) < entry.read_at - self.RACY_NS


def _read_parsed(item: WalkItem, cache: LoadCache | None = None) -> _Read:
    """The file the walk found at `item`: taken from `cache` when it trusts the walk's stat of it, else read
    (not parsed: see `_Read`)."""
    key, stamp = item.text, item.stamp
    entry = cache.entries.get(key) if cache is not None else None
    if cache is not None and entry is not None and cache.trusts(entry, stamp):
        return _Read(None, None, digest=entry.digest, cached=entry, unread=True, clock=cache.clock)
    read_at = cache.clock() if cache is not None else 0
    data, error = _read(item.path)
    if data is None:
        return _Read(None, error)
    digest = hashlib.sha256(data).hexdigest()
    if cache is not None and entry is not None and entry.digest == digest:
        # The same bytes under a new stat (touched, or checked out again): remember the stat it has now. The
        # bytes are let go (a whole checkout's would be held until each file's turn): the entry has what
        # they gave (its secret values are read again, from their sources), and a file whose defaults or
        # variables changed meanwhile, or whose references no longer resolve, is read again when loaded.
        entry = cache.entries[key] = replace(entry, stamp=stamp, read_at=read_at)
        return _Read(None, None, digest=digest, cached=entry, unread=True, read_at=read_at, clock=cache.clock)
    # Parsed when loaded, one file at a time, and released then: the whole tree's parse trees (with their
    # positions) never live at once.
    return _Read(data, None, digest=digest, read_at=read_at)


def _read(path: Path) -> tuple[bytes | None, SourceError | None]:
    """The bytes of a manifest file, or the error that prevents reading it (never reads a huge file)."""
    too_big = (
        f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB (the limit for one manifest file); "
        "split it into several files"
    )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None, SourceError.at(path, FILE_START, "vanished while loading")
    except OSError as exc:
        return None, SourceError.at(path, FILE_START, f"cannot be read: {exc.strerror or exc}")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, SourceError.at(path, FILE_START, "not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            return None, SourceError.at(path, FILE_START, too_big)
        data = _read_all(fd, st.st_size)
    except OSError as exc:
        return None, SourceError.at(path, FILE_START, f"cannot be read: {exc.strerror or exc}")
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:  # it grew while we looked
        return None, SourceError.at(path, FILE_START, too_big)
    return data, None


def _read_all(fd: int, size: int) -> bytes:
    """Up to `MAX_FILE_BYTES + 1` bytes of `fd`, by plain reads (a buffered file object per manifest cost
    more than the read): one for a file of the size its stat said, one more to see the end."""
    chunks: list[bytes] = []
    left = MAX_FILE_BYTES + 1
    while left > 0:
        chunk = os.read(fd, min(left, size + 1 if not chunks else 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def _decode(path: Path, data: bytes) -> tuple[str | None, SourceError | None]:
    for bom, name in _BOMS:
        if data.startswith(bom):
            return None, SourceError.at(path, FILE_START, f"file is {name}; save it as UTF-8")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = exc.start
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        return None, SourceError(
            path, line, column, f"not UTF-8 text (byte 0x{data[start]:02x}); save the file as UTF-8"
        )
    return text.removeprefix("\ufeff"), None


def _display(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return plain(out, limit=MAX_DISPLAY_CHARS)


def _normal(key: str) -> str:
    return key.replace("_", "").replace("-", "").casefold()


def _locate(value: Any, loc: tuple[Any, ...]) -> tuple[DocPath, tuple[Any, ...]]:
    """The longest path into `value` that `loc` names (keys matched case-insensitively, list items by index
    or by name), and the segments of `loc` that matched nothing (e.g. a missing key)."""
    node = value
    matched: list[str | int] = []
    rest: list[Any] = []
    for seg in loc:
        if isinstance(node, dict) and isinstance(seg, str):
            key = seg if seg in node else None
            if key is None:
                want = _normal(seg)
                key = next((k for k in node if _normal(k) == want), None)
            if key is not None:
                matched.append(key)
                node = node[key]
                continue
        elif isinstance(node, list) and isinstance(seg, int) and not isinstance(seg, bool):
            if 0 <= seg < len(node):
                matched.append(seg)
                node = node[seg]
                continue
        elif isinstance(node, list) and isinstance(seg, str):
            for i, item in enumerate(node):
                if isinstance(item, dict) and any(
                    k.casefold() == "name" and isinstance(v, str) and v.casefold() == seg.casefold()
                    for k, v in item.items()
                ):
                    matched.append(i)
                    node = item
                    break
            else:
                rest.append(seg)
            continue
        rest.append(seg)
    return tuple(matched), tuple(rest)


def _is_internal(seg: Any) -> bool:
    """pydantic's union/validator tags in a loc (`function-after[...]`, `list[...]`) are not input keys."""
    return isinstance(seg, str) and ("[" in seg or "(" in seg)


def _find_key(document: dict[str, Any], name: str) -> Any:
    folded = name.casefold()
    for k, v in document.items():
        if k.casefold() == folded:
            return v
    return None


@dataclass(frozen=True, slots=True)
class _Hints:
    """What a file's text can contain at all; lets most files skip the walks that find nothing (speed)."""

    dollar: bool  # a `${` substitution (or a `$${` escape)
    references: bool  # a `...From:` secret reference
    secrets: bool  # a literal secret field (or a reference, whose key holds one's: `secureValueFrom`)

    @classmethod
    def of(cls, text: str) -> _Hints:
        if "\\" in text:
            # An escape in a quoted key or value can spell any name or `${`: nothing is ruled out.
            return cls(dollar=True, references=True, secrets=True)
        # Case-folded as the walks fold keys (a long s, U+017F, folds to an s for them).
        folded = text.casefold()
        return cls(
            dollar="${" in text,
            references="from" in folded,
            secrets=any(key in folded for key in LITERAL_SECRET_KEYS),
        )


class _Document:
    """One document of one file on its way to a `LoadedGroup`."""

    def __init__(
        self,
        run: _Pass,
        path: Path,
        doc: ParsedDocument,
        layer: Layer,
        digest: str,
        *,
        hints: _Hints,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.run = run
        self.hints = hints
        # What `${VAR}` substitutions read (the load cache's record of them, or the pass's environment).
        self.environ = run.environ if environ is None else environ
        self.refs: list[FoundReference] = []  # its secret references, once substituted
        self.path = path
        self.doc = doc
        self.layer = layer
        self.digest = digest
        self.origins: dict[DocPath, SourceLocation | None] = {}
        self.failed = False
        # Paths already reported (a failed substitution): the model's complaint about them would repeat it.
        self.reported: set[DocPath] = set()

    def place(self, at: DocPath, *, key: bool = False) -> SourceLocation:
        if at in self.origins:
            origin = self.origins[at]
            if origin is not None:
                return origin
            line, column = self.doc.start  # a CLI default: the document is where it applies
            return SourceLocation(self.path, line, column)
        pos: Pos | None = self.doc.key_positions.get(at) if key else None
        line, column = pos or self.doc.position(at)
        return SourceLocation(self.path, line, column)

    def error(self, at: DocPath, message: str, *, key: bool = False) -> None:
        where = self.place(at, key=key)
        self.run.errors.append(SourceError(where.path, where.line, where.column, message))
        self.failed = True

    def load(self) -> None:
        doc = self.doc
        raw = doc.value
        if raw is None and doc.ok:
            return  # an empty document (a trailing `---`, a file of comments)
        if doc.errors:
            # Duplicate keys, bad tags: reported, and the rest of the document is still checked below so
            # that every problem shows at once (the document is failed either way).
            self.run.errors.extend(doc.errors)
            self.failed = True
        if not doc.complete:  # cut short by a syntax error: what is missing is not a problem of its own
            self.failed = True
            self._note_failed(raw)
            return
        if not isinstance(raw, dict):
            kind = "a list" if isinstance(raw, list) else "a single value"
            self.error((), f"a manifest is a mapping (name:, location:, properties: ...), not {kind}")
            return
        schema = raw.get("$schema")
        if schema is not None:
            if isinstance(schema, str) and "json-schema.org" in schema:
                return  # a JSON Schema (ours, next to the manifests for editors), not a manifest
            # `"$schema": "./schema.json"` in a JSON manifest points editors at the schema; not a field.
            raw = {k: v for k, v in raw.items() if k != "$schema"}
        raw = self._drop_serializer_leftovers(raw)
        hints = self.hints
        if hints.secrets:
            for at, message in literal_secret_warnings(raw):
                where = self.place(at, key=True)
                self.run.warnings.append(SourceError(where.path, where.line, where.column, message))
        value = raw
        used: list[tuple[DocPath, str]] = []
        if hints.dollar:
            value, problems = substitute(raw, self.environ, self.layer.policy, used=used)
            for at, message in problems:
                self.error(at, f"{_display(at)}: {message}" if at else message)
                self.reported.add(at)
        resolved: dict[tuple[str, str], str] = {}
        if hints.references:
            refs = self.refs = find_references(value)
            secret_env = {ref.name for ref in refs if ref.kind == "env"}
            clashes = [(at, name) for at, name in used if name in secret_env]
            if clashes:
                value = raw  # nothing below may show the substituted secret (a validation message would)
            for at, name in clashes:
                if at in self.reported:
                    continue  # the place's failed substitution is reported already
                self.error(
                    at,
                    f"{_display(at)}: ${{{name}}} substitutes {name}, which this manifest reads as a "
                    "secret (secureValueFrom/...From env): its value would be shown in plans and tags "
                    "and by Azure; give this field another variable",
                )
            if self.run.resolve_secrets:
                resolved, problems = resolve_references(
                    refs, environ=self.run.environ, base_dir=self.path.parent, root=self.run.secret_root
                )
            else:
                # Values are not read, but the deny rule holds for every environment reference.
                problems = []
                for ref in refs:
                    refused = read_env(ref.name, {}, policy=None)[1] if ref.kind == "env" else None
                    if refused is not None:
                        problems.append((ref.path, f"refused: {refused}"))
            for at, message in problems:
                self.error(at, f"{_display(at)}: {message}")
        self.origins = apply_layer(value, self.layer)
        try:
            manifest = parse_manifest(value)
        except ValidationError as exc:
            self._validation_errors(value, exc)
            manifest = None
        except (ValueError, TypeError) as exc:  # a model bug must not take the other files down
            self.error((), f"manifest could not be validated: {type(exc).__name__}")
            manifest = None
        unresolved = manifest
        if manifest is not None and not self.failed and self.run.resolve_secrets:
            manifest = self._resolve(manifest, resolved)
        if manifest is None or self.failed:
            self._note_failed(value)
            return
        line, column = doc.start
        self.run.groups.append(
            LoadedGroup(
                declared=manifest,
                source=SourceLocation(self.path, line, column),
                file_digest=self.digest,
                document=doc.index,
                unresolved=None if unresolved is manifest else unresolved,
            )
        )

    def _drop_serializer_leftovers(self, raw: dict[str, Any]) -> dict[str, Any]:
        """`additional_properties: {}` is what the Azure CLI's serializer leaves in YAML it writes
        (Microsoft's GPU tutorial carries it) and `az container create --file` ignores: dropped with a
        warning. With content it would hold keys nobody meant to lose, so it stays for the model to report."""
        found = [k for k, v in raw.items() if k.casefold() == SERIALIZER_LEFTOVER and v in ({}, None)]
        for key in found:
            where = self.place((key,), key=True)
            self.run.warnings.append(
                SourceError(
                    where.path,
                    where.line,
                    where.column,
                    f"{key}: an empty leftover of the Azure CLI's serializer, not an ARM key; ignored "
                    "(remove it)",
                )
            )
        return {k: v for k, v in raw.items() if k not in found} if found else raw

    def _resolve(self, manifest: GroupManifest, resolved: dict[tuple[str, str], str]) -> GroupManifest | None:
        try:
            return manifest.resolve_secrets(_resolver(resolved))
        except KeyError:  # a reference we did not see in the document: a mismatch with the model
            self.error((), "a secret reference could not be resolved")
            return None

    def _validation_errors(self, value: dict[str, Any], exc: ValidationError) -> None:
        start = len(self.run.errors)
        self._each_validation_error(value, exc)
        # In the order of the file, as a reader goes through it (the model reports in field order).
        self.run.errors[start:] = sorted(self.run.errors[start:], key=lambda e: (e.line, e.column))

    def _each_validation_error(self, value: dict[str, Any], exc: ValidationError) -> None:
        for err in exc.errors(include_url=False, include_input=False, include_context=False):
            loc = tuple(err["loc"])
            kind = err["type"]
            matched, rest = _locate(value, loc)
            if any(matched[: len(p)] == p for p in self.reported):
                continue
            rest = tuple(seg for seg in rest if not _is_internal(seg))
            unknown_key = kind in ("extra_forbidden", "unknown_key") and not rest
            shown = matched if kind == "missing" else (*matched, *rest)
            text = _display(shown)
            message = f"{text}: {err['msg']}" if text else str(err["msg"])
            self.error(matched, message, key=unknown_key)

    def _note_failed(self, value: Any) -> None:
        """Remember the group of a failed document when its name can be read, for per-group status."""
        if not isinstance(value, dict):
            return
        name = _find_key(value, "name")
        group = _find_key(value, "resourceGroup")
        if group is None and self.layer.resource_group is not None:
            group = self.layer.resource_group.value
        if isinstance(name, str) and isinstance(group, str) and "${" not in name + group:
            line, column = self.doc.start
            self.run.failed.append(((group, name), SourceLocation(self.path, line, column)))


def _check_duplicates(run: _Pass) -> None:
    first: dict[tuple[str, str], LoadedGroup] = {}
    dropped: set[int] = set()
    for group in run.groups:
        key = (group.declared.resource_group.casefold(), group.declared.name.casefold())
        earlier = first.get(key)
        if earlier is None:
            first[key] = group
            continue
        src = group.source
        run.errors.append(
            SourceError(
                src.path,
                src.line,
                src.column,
                f"container group {shown(group.declared.name)} in resource group "
                f"{shown(group.declared.resource_group)} is also defined at {earlier.source}; "
                "names are unique per resource group (case-insensitive)",
            )
        )
        dropped.add(id(earlier))
        dropped.add(id(group))
    # A valid group whose name a failed document also claims: which one the user meant is unknown as well.
    for (rg, name), where in list(run.failed):
        same = first.get((rg.casefold(), name.casefold()))
        if same is not None and id(same) not in dropped:
            src = same.source
            run.errors.append(
                SourceError(
                    src.path,
                    src.line,
                    src.column,
                    f"container group {shown(name)} in resource group {shown(rg)} is also defined at {where} "
                    "(which has errors); names are unique per resource group (case-insensitive)",
                )
            )
            dropped.add(id(same))
    if dropped:
        # No copy is applied: which one the user meant is a guess, and a guess could replace a group.
        for group in run.groups:
            if id(group) in dropped:
                run.failed.append((group.key, group.source))
        run.groups = [g for g in run.groups if id(g) not in dropped]


def _resolver(resolved: Mapping[tuple[str, str], str]) -> Callable[[SecretRef], str]:
    """The value of a reference among `resolved` (by kind and name); KeyError when it is not there."""

    def resolver(ref: SecretRef) -> str:
        return resolved[("env", ref.env) if ref.env is not None else ("file", ref.file or "")]

    return resolver


def _resolved_again(run: _Pass, entry: _Cached) -> tuple[LoadedGroup, ...] | None:
    """The kept groups of a file with secret references, each with this pass's values (read again now, and
    kept nowhere), which its manifest takes when first asked; None when one does not resolve, so that the
    file is loaded afresh and the error names its place."""
    if not entry.refs or not run.resolve_secrets:
        return entry.groups
    resolved, problems = resolve_references(
        list(entry.refs), environ=run.environ, base_dir=entry.directory, root=run.secret_root
    )
    if problems:
        return None
    # Every reference of the file resolved, and the groups' references are among them: the file loaded
    # without error from these very references when it was kept.
    return tuple(
        g if slots is None else g.with_values(resolved, slots)
        for g, slots in zip(entry.groups, entry.slots, strict=True)
    )


def _kept(group: LoadedGroup) -> LoadedGroup:
    """`group` as the load cache keeps it: as validated, before its secret references were resolved."""
    if group.unresolved is None:
        return group
    return LoadedGroup(group.unresolved, group.source, group.file_digest, group.document)


def _load_file(run: _Pass, item: WalkItem, layer: Layer, read: _Read, cache: LoadCache | None = None) -> None:
    """The manifest file the walk found at `item` (its relative path and stat): its groups from `cache`
    when nothing they depend on changed, else loaded from `read`."""
    relative = run.prefix + item.relative if item.relative else run.relative(item.path)
    stamp = item.stamp
    entry = read.cached
    if (
        cache is not None
        and entry is not None
        and entry.relative == relative
        and entry.resolve_secrets == run.resolve_secrets
        and entry.layer == layer
        and entry.same_env(run.environ)
    ):
        kept = _resolved_again(run, entry)
        if kept is not None:
            cache.hits += 1
            run.contents.append((relative, read.digest.encode()))
            run.groups.extend(kept)
            run.errors.extend(entry.errors)
            run.warnings.extend(entry.warnings)
            run.failed.extend(entry.failed)
            return
    path = item.path
    read.parse(path)
    if read.data is None or read.text is None:
        assert read.error is not None
        run.errors.append(read.error)
        return
    run.contents.append((relative, read.digest.encode()))
    if stamp is not None:
        run.fresh[item.text] = (stamp[2], stamp[3])
    if not read.text.strip():
        # Truncated by a failed write or a stray `>`, a file would read as "every group it declared is
        # gone", and pruning would delete them; an error skips pruning. (A file of comments is kept as a
        # deliberate placeholder.)
        run.errors.append(
            SourceError.at(
                path,
                FILE_START,
                "the file is empty: write its manifest again, or delete the file to remove its groups "
                "(pruning is skipped while it is empty)",
            )
        )
        return
    hints = _Hints.of(read.text)
    reads = _EnvReads(run.environ) if cache is not None and hints.dollar else None
    marks = (len(run.groups), len(run.errors), len(run.warnings), len(run.failed))
    refs: list[FoundReference] = []
    for doc in read.docs:
        document = _Document(run, path, doc, layer, read.digest, hints=hints, environ=reads)
        document.load()
        refs += document.refs
    run.errors.extend(read.file_errors)
    if len(run.groups) > marks[0] and (read.file_errors or not all(doc.complete for doc in read.docs)):
        # A file that is not valid YAML holds all its groups: it is mid-edit (a group split in two, a
        # rename), and its documents before the error must not be applied alone. (An invalid document of
        # valid YAML holds only its own group.)
        run.failed.extend((g.key, g.source) for g in run.groups[marks[0] :])
        del run.groups[marks[0] :]
    if cache is not None:
        cache.misses += 1
        loaded = run.groups[marks[0] :]
        keeping = tuple(_kept(g) for g in loaded)
        failed = len(run.errors) > marks[1]
        # Kept: a file with substitutions, with what they read; one with secret references, as validated
        # before their values were put in (read again every pass), and only from a load without errors (one
        # that failed to resolve may not fail next pass). Never a file with a literal secret, nor one that
        # may hold one (its text names a secret field) and had errors.
        literal = hints.secrets and (failed or any(g.declared.literal_secrets() for g in keeping))
        if (refs and failed) or literal or (reads is not None and reads.whole):
            cache.entries.pop(item.text, None)
            return
        cache.entries[item.text] = _Cached(
            digest=read.digest,
            relative=relative,
            layer=layer,
            resolve_secrets=run.resolve_secrets,
            # The walk's stat predates the bytes read: a write in between changes the stat seen next pass.
            stamp=stamp,
            read_at=read.read_at,
            groups=keeping,
            errors=tuple(run.errors[marks[1] :]),
            warnings=tuple(run.warnings[marks[2] :]),
            failed=tuple(run.failed[marks[3] :]),
            directory=item.directory or path.parent,
            env=tuple(reads.read.items()) if reads is not None else (),
            refs=tuple(refs),
            # From the bytes loaded here: a file read again after the walk may have changed since.
            noted=_file_references(read.docs) if hints.references else (),
            # Only for a file with references (`_resolved_again` returns the others' groups as they are).
            slots=tuple(None if g.unresolved is None else g.unresolved.secret_slots() for g in loaded)
            if refs
            else (),
        )


def _note_unloaded(run: _Pass, path: Path, read: _Read) -> None:
    """A manifest file that is not loaded because its defaults are broken: count it into the revision and
    remember the groups whose name and resource group it states."""
    read.parse(path)
    if read.data is None:
        return
    run.contents.append((run.relative(path), read.digest.encode()))
    for doc in read.docs:
        if isinstance(doc.value, dict):
            name = _find_key(doc.value, "name")
            group = _find_key(doc.value, "resourceGroup")
            if isinstance(name, str) and isinstance(group, str) and "${" not in name + group:
                line, column = doc.start
                run.failed.append(((group, name), SourceLocation(path, line, column)))


def _load_defaults(run: _Pass, path: Path, read: _Read, outer: Layer) -> Layer | None:
    """The layer of a defaults file, or None (after recording errors) when it is unusable."""
    read.parse(path)
    if read.data is not None:
        run.contents.append((run.relative(path), read.digest.encode()))
    if read.data is None or read.text is None:
        assert read.error is not None
        run.errors.append(read.error)
        return None
    docs = read.docs
    errors = list(read.file_errors)
    for doc in docs:
        errors.extend(doc.errors)
    real = [d for d in docs if d.value is not None]
    if len(real) > 1:
        line, column = real[1].start
        errors.append(SourceError(path, line, column, "a defaults file has one document"))
    layer = Layer()
    if real and not errors:
        doc = real[0]
        value, problems = substitute(doc.value, run.environ, outer.policy)
        for at, message in problems:
            errors.append(SourceError.at(path, doc.position(at), f"{_display(at)}: {message}"))
        layer, layer_errors = parse_layer(path, doc, value)
        errors.extend(layer_errors)
    if errors:
        run.errors.extend(errors)
        return None
    return layer


def _cap_per_file(problems: list[SourceError], what: str) -> list[SourceError]:
    """At most `MAX_PROBLEMS_PER_FILE` problems per file, in their order, then one line saying how many more.

    A generated file of thousands of broken documents would otherwise flood the terminal, the daemon's log
    (every pass) and its status page: 200,000 empty documents made 800,000 errors.
    """
    totals = Counter(p.path for p in problems)
    if all(n <= MAX_PROBLEMS_PER_FILE for n in totals.values()):
        return problems
    shown: Counter[Path] = Counter()
    kept: list[SourceError] = []
    for problem in problems:
        shown[problem.path] += 1
        if shown[problem.path] <= MAX_PROBLEMS_PER_FILE:
            kept.append(problem)
        elif shown[problem.path] == MAX_PROBLEMS_PER_FILE + 1:
            more = totals[problem.path] - MAX_PROBLEMS_PER_FILE
            message = f"... and {more} more {what} in this file, not shown; fix the ones above first"
            kept.append(replace(problem, message=message))
    return kept


def _under(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


@dataclass(slots=True)
class _Secrets:
    """The files that are secrets, not manifests: named by a file reference, or under a secrets directory."""

    files: set[str] = field(default_factory=set)  # real paths
    dirs: list[str] = field(default_factory=list)  # real paths

    def covers(self, path: str, real: str = "") -> bool:
        """`real`: the path with its links resolved, when the caller knows it."""
        real = real or os.path.realpath(path)
        return real in self.files or any(_under(real, d) for d in self.dirs)

    def note_references(self, item: WalkItem, read: _Read) -> None:
        """Marks the secret files that the manifest file the walk found at `item` names."""
        if read.data is None:
            # Not read again (the load cache has its bytes): the names it noted when it was.
            names = read.cached.noted if read.cached is not None else ()
        else:
            # Only UTF-8 is read, so the bytes tell as well as the text would whether "from" appears at all
            # (no letter outside ASCII folds to one of its letters), unless an escape spells it.
            if b"from" not in read.data.lower() and b"\\" not in read.data:
                return
            read.parse(item.path)
            names = _file_references(read.docs)
        for name in names:
            self.files.add(os.path.realpath(item.path.parent / name))


def _file_references(docs: Sequence[ParsedDocument]) -> tuple[str, ...]:
    """The secret files that documents name (relative to their file), as written."""
    return tuple(
        ref.name
        for doc in docs
        for ref in find_references(doc.value)
        if ref.kind == "file" and not os.path.isabs(ref.name)
    )


def _revision(roots: Sequence[Path], contents: list[tuple[str, bytes]]) -> str:
    """git when every root is in one commit's checkout (`-dirty` when any is), else the content digest."""
    revisions = [git_revision(root) for root in roots]
    commits = {r.removesuffix("-dirty") for r in revisions if r is not None}
    if None not in revisions and len(commits) == 1:
        (commit,) = commits
        return f"{commit}-dirty" if any(r is not None and r.endswith("-dirty") for r in revisions) else commit
    return content_digest(contents)


def load_manifests(
    root: Path | Sequence[Path],
    *,
    defaults: Defaults | None = None,
    environ: Mapping[str, str] | None = None,
    resolve_secrets: bool = True,
    cache: LoadCache | None = None,
) -> LoadResult:
    """Load every manifest under `root` (a directory or one file, or several). Never raises for bad input.

    `cache` (the daemon's, kept across passes) lets unchanged files skip parsing and validation; the result
    is the same as without it (`LoadCache`).

    With `resolve_secrets=False` (`reconcile validate --no-secrets` in CI, where the secrets are not
    available) secret references are checked for their form by the model and for the deny rule, but not
    resolved: a missing variable or secret file is then no error, and the manifests keep their references
    unresolved (they cannot be applied).
    """
    roots = [root] if isinstance(root, Path) else list(root)
    first = roots[0] if roots else Path(".")
    run = _Pass(
        root=first, environ=os.environ if environ is None else environ, resolve_secrets=resolve_secrets
    )
    base = Layer.from_cli(defaults or Defaults())
    # Walk every root, then read and parse each file once: what the files reference decides which are secrets.
    walked: list[tuple[Path, WalkItem]] = []
    reads: dict[str, _Read] = {}  # by the path's text
    secrets = _Secrets()
    seen: set[str] = set()
    for top in roots:
        if top.is_dir():
            secrets.dirs.append(os.path.realpath(top / DEFAULT_SECRETS_DIR))
        for item in walk(top):
            if item.kind in ("defaults", "manifest"):
                real = item.real or os.path.realpath(item.text)
                if real in seen:
                    continue  # reached from two roots (`-f dir -f dir/a.yaml`): read once
                seen.add(real)
                # Defaults files are always parsed: their layer is what the cache compares.
                read = _read_parsed(item, cache if item.kind == "manifest" else None)
                reads[item.text] = read
                if item.kind == "defaults":
                    read.parse(item.path)
                    value = read.docs[0].value if read.docs else None
                    named = secrets_dir(item.path, value)
                    if named is not None:
                        secrets.dirs.append(os.path.realpath(named))
                else:
                    secrets.note_references(item, read)
            walked.append((top, item))
    kept = set(reads)
    # The layer in force per open directory; None where a defaults file is broken (its scope is skipped).
    layers: list[Layer | None] = [base]
    files = 0
    for top, item in walked:
        run.root = top
        # Paths relative to different roots could collide in the digest: the root's position keeps them apart.
        run.prefix = f"{roots.index(top)}:" if len(roots) > 1 else ""
        if item.kind == "enter":
            layers.append(layers[-1])
        elif item.kind == "leave":
            layers.pop()
        elif item.kind in ("defaults", "manifest", "error") and secrets.covers(item.text, item.real):
            continue  # a secret file (or something under a secrets directory): never a manifest
        elif item.kind == "error":
            run.errors.append(SourceError.at(item.path, FILE_START, item.message))
        elif item.text not in reads:
            continue  # the second path to a file already read
        elif item.kind == "defaults":
            files += 1
            outer = layers[-1]
            own = _load_defaults(run, item.path, reads.pop(item.text), outer or base)
            layers[-1] = None if own is None or outer is None else outer.under(own)
        else:
            files += 1
            layer = layers[-1]
            if layer is None:
                # Covered by the defaults file's own errors: nothing here is applied (or pruned), but the
                # groups that name their own resource group are known, for their status.
                _note_unloaded(run, item.path, reads.pop(item.text))
                continue
            # Popped: each file's bytes and parse tree are freed once it is loaded, and a second path to
            # the same file finds it gone.
            _load_file(run, item, layer, reads.pop(item.text), cache)
    if cache is not None:
        for gone in [k for k in cache.entries if k not in kept]:
            del cache.entries[gone]
    _check_duplicates(run)
    return LoadResult(
        groups=tuple(run.groups),
        errors=tuple(_cap_per_file(run.errors, "errors")),
        warnings=tuple(_cap_per_file(run.warnings, "warnings")),
        revision=_revision(roots, run.contents),
        failed_keys=tuple(dict.fromkeys(key for key, _ in run.failed)),
        files=files,
        fresh=run.fresh,
    )
