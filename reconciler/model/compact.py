"""Sharing what every instance of a frozen model holds alike, so a large fleet's models take less memory.

Two things each pydantic model instance holds are the same for all instances of its class:

- the set of the fields that were given (`__pydantic_fields_set__`): 216 to 728 bytes each, about half of a
  validated manifest (14 models for a one-container group). Frozen models never change that set in place
  (assignment is refused before it would be touched, and `model_copy` copies it first), so instances of
  one class with the same fields share one.
- the key table of the instance's `__dict__`: pydantic gives each instance a dict of its own (272 bytes for
  7 fields, 656 for 20), while CPython can keep the dicts of one class's instances as values over one
  shared table of keys (PEP 412: 128 bytes for 7 fields). The fields are always the class's, in the same
  order, so each instance's dict is remade as a copy of one such dict per class with its values put in.
  Measured: a 10,000-group daemon keeps about 2 KiB less per group. Where the interpreter does not share
  keys this way, the copy is an ordinary dict: the same values, just no saving.

Short texts that many models hold alike (image names, regions, tag names) are shared too (`shared_text`).

`updated` is `model_copy(update=...)` for frozen models without the generic copy machinery: a daemon that
puts secret values into the models it keeps copies a few of them per group on every pass.

Called by every manifest model as it is validated (`reconciler.model.aci.ArmModel`), by the adapter for the
live groups it builds and by the planner for its plan entries; `shared_text` by the YAML reader and the
adapter.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

M = TypeVar("M", bound=BaseModel)

_SHARED: dict[tuple[type[BaseModel], frozenset[str]], set[str]] = {}
# The distinct (class, fields) pairs are few (a schema's worth); a hostile tree cannot grow this beyond
# the model classes times the subsets they are given, and past this many the sets are simply not shared.
_MAX_SHARED = 4096


def shared_fields_set(cls: type[BaseModel], fields: set[str] | frozenset[str]) -> set[str]:
    """The one set object for instances of frozen `cls` given exactly `fields`."""
    key = (cls, frozenset(fields))
    found = _SHARED.get(key)
    if found is None:
        found = set(fields)
        if len(_SHARED) < _MAX_SHARED:
            _SHARED[key] = found
    return found


# Per frozen model class: a dict of its fields (values None) whose keys CPython keeps in a shared table, and
# how many fields it has (`model_fields` is a property that costs a third of the whole remake).
_KEYS: dict[type[BaseModel], tuple[dict[str, Any], int]] = {}


def _shared_keys(cls: type[BaseModel]) -> tuple[dict[str, Any], int]:
    # An instance given its attributes one by one, in field order, gets the class's shared key table; a
    # copy of its dict shares that table too.
    holder = cls.__new__(cls)
    fields = cls.model_fields
    for name in fields:
        object.__setattr__(holder, name, None)
    found = _KEYS[cls] = (holder.__dict__, len(fields))
    return found


def share_fields_set(model: BaseModel) -> None:
    """Make `model` itself (not what it holds) use the shared set of its fields and the shared key table of
    its class, if it is frozen (a model that is not keeps its own: an assignment would add to them)."""
    if not model.model_config.get("frozen"):
        return
    cls = type(model)
    fields = model.__pydantic_fields_set__
    shared = shared_fields_set(cls, fields)
    if shared is not fields:
        object.__setattr__(model, "__pydantic_fields_set__", shared)
    share_keys(model)


def share_keys(model: BaseModel) -> None:
    """Remake the `__dict__` of frozen `model` over the shared key table of its class (the same values)."""
    cls = type(model)
    template, count = _KEYS.get(cls) or _shared_keys(cls)
    values = model.__dict__
    if len(values) == count:
        # Only a dict of exactly the fields is remade: anything else in it (a cached property's value)
        # would not fit the shared keys and is kept as it is.
        compact = template.copy()
        compact.update(values)
        object.__setattr__(model, "__dict__", compact)


def updated(model: M, update: Mapping[str, Any]) -> M:
    """What `model.model_copy(update=update)` gives for a frozen `model` whose `update` names only its
    fields (no validation, as there): a new instance with those values, the fields set grown by their
    names, the same private attributes; cheaper: no `copy` dispatch, and a fields set that names them
    already (a shared one) is not copied."""
    if not model.model_config.get("frozen"):
        return model.model_copy(update=update)
    cls = type(model)
    new = cls.__new__(cls)
    values = model.__dict__.copy()
    values.update(update)
    object.__setattr__(new, "__dict__", values)
    extra = model.__pydantic_extra__
    object.__setattr__(new, "__pydantic_extra__", None if extra is None else dict(extra))
    given = model.__pydantic_fields_set__
    if not given.issuperset(update):
        given = given.union(update)  # the set of a kept model stays shared: it names the fields already
    object.__setattr__(new, "__pydantic_fields_set__", given)
    private = getattr(model, "__pydantic_private__", None)
    # As `BaseModel.__copy__`: a private attribute not set yet stays unset in the copy.
    object.__setattr__(
        new,
        "__pydantic_private__",
        None if private is None else {k: v for k, v in private.items() if v is not PydanticUndefined},
    )
    return new


def shared_text(text: str, limit: int) -> str:
    """`text` as the one object every equal text of at most `limit` characters is (`sys.intern`); a longer
    one (a hash, a proof: one holder's own) as it is. CPython frees an interned text as soon as nothing
    holds it, so a secret lives no longer for being shared."""
    return sys.intern(text) if len(text) <= limit else text
