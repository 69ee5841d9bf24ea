"""Secret references (`secureValueFrom`...) in a manifest document: find, resolve; warn on literal secrets.

Called by `reconciler.source.loader` for every document. A reference is a mapping with exactly one key:

- `secureValueFrom: {env: NAME}`: the value of environment variable NAME;
- `secretFrom: {FILE_NAME: {env: NAME} | {file: PATH}}` of a secret volume: one reference per file, resolved
  the same way (the model base64-encodes the value for Azure);
- `secureValueFrom: {file: PATH}`: the content of a file, PATH relative to the manifest's own directory. It
  must stay inside the manifest root (no `..` escape, no absolute path, no symlink out), is read as UTF-8, and
  one trailing newline is stripped (so `echo secret > file` works).

An `env:` reference goes through `reconciler.source.envpolicy.read_env`, the one environment read of every
manifest form: it never reads the reconciler's own credentials (`AZURE_*`, `RECONCILER_*`, ...). Errors name
the variable or the file, never a value. Literal secrets (`secureValue`, a registry `password`, a
`storageAccountKey`, a `workspaceKey`, the items of a `secret` volume or of an extension's
`protectedSettings`) are allowed but draw a warning, unless they came from a `${VAR}` substitution (then they
are not in the file either).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from reconciler.model.text import plain, shown
from reconciler.source.envpolicy import read_env
from reconciler.source.yamlread import DocPath

# A secret file larger than this is a mistake (a key file is a few KiB at most).
MAX_SECRET_FILE_BYTES = 1024 * 1024

# Secret field (case-folded) -> the key of the reference that can stand for it.
_REFERENCE_FOR = {
    "securevalue": "secureValueFrom",
    "password": "passwordFrom",
    "storageaccountkey": "storageAccountKeyFrom",
    "workspacekey": "workspaceKeyFrom",
}
REFERENCE_KEYS = frozenset(v.casefold() for v in _REFERENCE_FOR.values())
# The keys (case-folded) under which `literal_secret_warnings` finds a secret written out: a document whose
# text holds none of them holds no literal secret.
LITERAL_SECRET_KEYS = frozenset({*_REFERENCE_FOR, "secret", "protectedsettings"})
# `secretFrom` of a secret volume: a mapping of file name -> reference.
FILE_REFERENCES_KEY = "secretfrom"

Problem = tuple[DocPath, str]


@dataclass(frozen=True, slots=True)
class FoundReference:
    """One `secureValueFrom` in a document: where it is and what it names."""

    path: DocPath  # of the `env:`/`file:` value, for error positions
    kind: Literal["env", "file"]
    name: str


def _display(path: DocPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def find_references(value: Any) -> list[FoundReference]:
    """Every well-formed reference (`secureValueFrom`, `passwordFrom`, ...) in `value`.

    A malformed one (both or neither of env and file, a bad name) is left to the manifest model, which
    reports it with its position; resolving it here would only add a second, vaguer error.
    """
    found: list[FoundReference] = []

    def check(ref: Any, here: DocPath) -> None:
        if not isinstance(ref, dict) or len(ref) != 1:
            return
        ((key, name),) = ref.items()
        kind = key.casefold()
        if kind in ("env", "file") and isinstance(name, str) and name.strip():
            found.append(
                FoundReference(path=(*here, key), kind="env" if kind == "env" else "file", name=name)
            )

    def walk(node: Any, here: DocPath) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k.casefold() in REFERENCE_KEYS:
                    check(v, (*here, k))
                elif k.casefold() == FILE_REFERENCES_KEY and isinstance(v, dict):
                    for file_name, ref in v.items():
                        check(ref, (*here, k, file_name))
                else:
                    walk(v, (*here, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*here, i))

    walk(value, ())
    return found


def literal_secret_warnings(value: Any) -> list[Problem]:
    """A warning (path, message) for each secret written literally in the (unsubstituted) document."""
    warnings: list[Problem] = []

    def literal(v: Any) -> bool:
        return isinstance(v, str | int | float) and not isinstance(v, bool) and "${" not in str(v) and v != ""

    def walk(node: Any, here: DocPath) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                folded = k.casefold()
                if folded in _REFERENCE_FOR and literal(v):
                    ref = _REFERENCE_FOR[folded]
                    warnings.append(
                        (
                            (*here, k),
                            f"{_display((*here, k))}: a literal secret in the manifest; keep it out of the "
                            f"file with {ref}: {{env: NAME}} or {ref}: {{file: PATH}}",
                        )
                    )
                elif (
                    # A secret volume's items, an extension's protected settings: maps of secrets.
                    (
                        (folded == "secret" and len(here) >= 2 and str(here[-2]).casefold() == "volumes")
                        or folded == "protectedsettings"
                    )
                    and isinstance(v, dict)
                    and any(literal(item) for item in v.values())
                ):
                    warnings.append(
                        (
                            (*here, k),
                            f"{_display((*here, k))}: literal secrets in the manifest; keep them out of the "
                            "file with ${VAR} substitutions from the environment",
                        )
                    )
                else:
                    walk(v, (*here, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, (*here, i))

    walk(value, ())
    return warnings


def _inside(root_real: str, candidate: str) -> bool:
    return candidate == root_real or candidate.startswith(root_real.rstrip(os.sep) + os.sep)


def read_secret_file(name: str, *, base_dir: Path, root: Path) -> tuple[str | None, str | None]:
    """(value, None) or (None, message) for `secureValueFrom: {file: name}` of a manifest in `base_dir`."""
    label = f"secret file {shown(name)}"
    if os.path.isabs(name):
        return None, f"{label} must be relative to the manifest's directory and inside the manifest root"
    root_real = os.path.realpath(root)
    lexical = os.path.normpath(os.path.join(base_dir, name))
    if not _inside(os.path.normpath(os.path.abspath(root)), os.path.abspath(lexical)):
        return None, f"{label} is outside the manifest root; use secureValueFrom: {{env: NAME}} instead"
    real = os.path.realpath(lexical)
    if not _inside(root_real, real):
        return None, f"{label} is a symlink that leads outside the manifest root"
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return None, f"{label} does not exist (looked in {plain(base_dir)})"
    except PermissionError:
        return None, f"{label} cannot be read: permission denied"
    except OSError as exc:
        return None, f"{label} cannot be read: {exc.strerror}"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, f"{label} is not a regular file"
        if st.st_size > MAX_SECRET_FILE_BYTES:
            return None, f"{label} is larger than {MAX_SECRET_FILE_BYTES} bytes"
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        return None, f"{label} cannot be read: {exc.strerror}"
    finally:
        os.close(fd)
    if len(data) > MAX_SECRET_FILE_BYTES:
        return None, f"{label} is larger than {MAX_SECRET_FILE_BYTES} bytes"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, f"{label} is not UTF-8 text"
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    return text, None


def resolve_references(
    refs: list[FoundReference], *, environ: Mapping[str, str], base_dir: Path, root: Path
) -> tuple[dict[tuple[str, str], str], list[Problem]]:
    """Values of `refs` keyed by (kind, name), and a problem (naming, never revealing) for each failure."""
    values: dict[tuple[str, str], str] = {}
    problems: list[Problem] = []
    for ref in refs:
        key = (ref.kind, ref.name)
        if key in values:
            continue
        if ref.kind == "env":
            # The deny rule of every environment read: a manifest never copies the reconciler's credentials.
            value, refused = read_env(ref.name, environ, policy=None)
            if refused is not None:
                problems.append((ref.path, f"refused: {refused}"))
                continue
            if value is None:
                problems.append((ref.path, f"environment variable {plain(ref.name)} is not set"))
                continue
            what = f"environment variable {plain(ref.name)}"
        else:
            value, message = read_secret_file(ref.name, base_dir=base_dir, root=root)
            if value is None:
                problems.append((ref.path, message or "secret file cannot be read"))
                continue
            what = f"secret file {plain(ref.name)}"
        if not value.strip():
            # A CI secret that is not configured usually arrives as an empty variable: sending it would
            # restart the group with no secret (DESIGN 8: an empty value is an error, never a PUT).
            problems.append((ref.path, f"{what} is empty; a secret value is never empty"))
            continue
        values[key] = value
    return values, problems
