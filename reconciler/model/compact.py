"""Sharing what every instance of a frozen model holds alike, so a large fleet's models take less memory.

pydantic keeps, per model instance, the set of the fields that were given (`__pydantic_fields_set__`): 216
to 728 bytes each, about half of a validated manifest (14 models for a one-container group). Frozen models
never change that set in place (assignment is refused before it would be touched, and `model_copy` copies
it first), so instances of one class with the same fields can share one. Called by every manifest model
as it is validated (`reconciler.model.aci.ArmModel`), by the adapter for the live groups it builds and by the
planner for its plan entries.
"""

from __future__ import annotations

from pydantic import BaseModel

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


def share_fields_set(model: BaseModel) -> None:
    """Make `model` itself (not what it holds) use the shared set of its fields, if it is frozen (a model
    that is not keeps its own: an assignment would add to it)."""
    if not model.model_config.get("frozen"):
        return
    fields = model.__pydantic_fields_set__
    shared = shared_fields_set(type(model), fields)
    if shared is not fields:
        object.__setattr__(model, "__pydantic_fields_set__", shared)
