"""`${VAR}` substitution from the environment in the string values of a manifest document.

Called by `reconciler.source.loader` on every document (and `_defaults.yaml`) before validation.

Syntax, in any string value (never in keys):

- `${NAME}`: the value of environment variable NAME; an error when NAME is not set (strict, so a typo never
  deploys an empty value).
- `${NAME:-default}`: the value of NAME, or `default` when NAME is unset or empty (as in the shell). The
  default is literal text up to the closing `}`.
- `$${`: a literal `${` (so `$${HOME}` stays `${HOME}`).
- a `$` not followed by `{` is left alone (`$HOME`, `price: 5$`).

NAME is `[A-Za-z_][A-Za-z0-9_]*`, and it must be a variable manifests may read (`reconciler.source.envpolicy`:
an allowlist, `ACI_*` by default, and never the reconciler's own credentials). A refused NAME is an error even
with a `:-default`: silently using the default would hide that the manifest asked for something it may not
read. Secret values resolved from `secureValueFrom` are never substituted: they
are resolved after this step and do not pass through it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.model.text import plain, shown
from reconciler.source.envpolicy import EnvPolicy, read_env
from reconciler.source.yamlread import DocPath

_PATTERN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# (path of the scalar, message) for each problem found.
Problem = tuple[DocPath, str]


def substitute_text(
    text: str, environ: Mapping[str, str], policy: EnvPolicy | None = None, used: list[str] | None = None
) -> tuple[str, list[str]]:
    """`text` with its `${...}` references replaced, and a message for each one that failed; `used` gets
    the name of each variable whose value went into the text."""
    if "$" not in text:
        return text, []
    rule = EnvPolicy() if policy is None else policy
    problems: list[str] = []

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$${":
            return "${"
        body = match.group(1)
        if body is None:
            problems.append("unterminated '${' (write '$${' for a literal '${')")
            return whole
        name, sep, default = body.partition(":-")
        if not _NAME.match(name):
            problems.append(
                f"invalid substitution {shown('${' + body + '}')}: use ${{NAME}} or ${{NAME:-default}} "
                "(write '$${' for a literal '${')"
            )
            return whole
        if "${" in default:
            problems.append(
                f"nested substitution in {shown('${' + body + '}')} is not supported; give a literal default"
            )
            return whole
        value, refused = read_env(name, environ, policy=rule)
        if refused is not None:
            problems.append(f"${{{plain(name)}}} refused: {refused}")
            return whole
        if sep and not value:
            return default
        if value is None:
            problems.append(
                f"environment variable {name} is not set (use ${{{name}:-default}} to give it a default)"
            )
            return whole
        if used is not None:
            used.append(name)
        return value

    return _PATTERN.sub(replace, text), problems


def substitute(
    value: Any,
    environ: Mapping[str, str],
    policy: EnvPolicy | None = None,
    *,
    skip: Callable[[DocPath], bool] | None = None,
    path: DocPath = (),
    used: list[tuple[DocPath, str]] | None = None,
) -> tuple[Any, list[Problem]]:
    """A copy of `value` with every string substituted, and the problems with the path of their scalar;
    `used` gets the path and name of each variable whose value went into a string (the loader refuses one
    that the same manifest reads as a secret: its value would sit in a plain field, which plans, tags and
    Azure's GET show)."""
    problems: list[Problem] = []

    def walk(node: Any, here: DocPath) -> Any:
        if isinstance(node, str):
            if "$" not in node or (skip is not None and skip(here)):
                return node
            names: list[str] = []
            text, found = substitute_text(node, environ, policy, names)
            problems.extend((here, message) for message in found)
            if used is not None:
                used.extend((here, name) for name in names)
            return text
        if isinstance(node, dict):
            return {k: walk(v, (*here, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*here, i)) for i, v in enumerate(node)]
        return node

    return walk(value, path), problems
