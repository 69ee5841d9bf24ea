"""Shared field sets of frozen models: manifests parsed apart share one set per class and fields, a copy with
changes gets its own, and nothing a model says (its dump, its fields set, equality) changes."""

from __future__ import annotations

import sys

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.model import compact
from reconciler.model.compact import share_fields_set, shared_fields_set
from tests.planning.support import base_properties, manifest


def test_manifests_parsed_apart_share_their_field_sets_and_read_the_same() -> None:
    one, two = manifest(name="one"), manifest(name="two")
    assert one.__pydantic_fields_set__ is two.__pydantic_fields_set__
    first = one.properties.containers[0]
    assert first.__pydantic_fields_set__ is two.properties.containers[0].__pydantic_fields_set__
    assert one.model_dump(exclude={"name"}) == two.model_dump(exclude={"name"})
    assert one.model_fields_set == {"name", "resource_group", "location", "tags", "properties"}


def test_a_copy_with_changes_gets_a_set_of_its_own_and_leaves_the_shared_one_alone() -> None:
    one, two = manifest(name="one"), manifest(name="two", tags={"team": "a"})
    before = set(one.__pydantic_fields_set__)
    copied = one.model_copy(update={"policy": two.policy})
    assert copied.__pydantic_fields_set__ is not one.__pydantic_fields_set__
    assert "policy" in copied.model_fields_set
    assert set(one.__pydantic_fields_set__) == before, "the shared set was not touched"
    assert set(two.__pydantic_fields_set__) == before


def test_a_frozen_model_still_refuses_assignment_so_no_shared_set_grows() -> None:
    one = manifest(name="one")
    shared = one.__pydantic_fields_set__
    size = len(shared)
    with pytest.raises(ValidationError):
        one.name = "other"  # type: ignore[misc]  # frozen: the point of the test
    assert len(shared) == size


def test_models_that_are_not_frozen_keep_their_own_set() -> None:
    class Loose(BaseModel):
        a: int = 0

    class Tight(BaseModel):
        model_config = ConfigDict(frozen=True)
        loose: Loose

    x, y = Tight(loose=Loose(a=1)), Tight(loose=Loose(a=2))
    for model in (x, y, x.loose, y.loose):
        share_fields_set(model)
    assert x.__pydantic_fields_set__ is y.__pydantic_fields_set__
    assert x.loose.__pydantic_fields_set__ is not y.loose.__pydantic_fields_set__
    x.loose.a = 3
    assert y.loose.model_fields_set == {"a"}


def test_the_shared_sets_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compact, "_SHARED", {})
    monkeypatch.setattr(compact, "_MAX_SHARED", 2)

    class M(BaseModel):
        model_config = ConfigDict(frozen=True)

    for n in range(5):
        shared_fields_set(M, {f"f{n}"})
    assert len(compact._SHARED) == 2
    assert shared_fields_set(M, {"f9"}) == {"f9"}


def test_a_manifest_with_secrets_keeps_its_secret_values_after_sharing() -> None:
    props = base_properties()
    props["containers"][0]["properties"]["environmentVariables"] = [{"name": "T", "secureValue": "v4lue"}]
    m = manifest(name="s", properties=props)
    assert m.secret_values() == {
        "/properties/containers/web/properties/environmentVariables/T/secureValue": "v4lue"
    }


def test_a_plan_entry_takes_its_manifest_as_validated_without_checking_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from reconciler.model import manifest as manifest_module
    from reconciler.model.plan import Action, Change

    desired = manifest(name="one")
    checks: list[object] = []
    monkeypatch.setattr(manifest_module, "_issues", lambda m: checks.append(m) or iter(()))
    change = Change(resource_group="rg", name="one", action=Action.CREATE, desired=desired)
    assert change.desired is desired
    assert checks == [], "the manifest's rules ran again"
    with pytest.raises(ValidationError):
        Change(resource_group="rg", name="one", action=Action.CREATE, desired={"name": "one"})


def _models(model: BaseModel) -> list[BaseModel]:
    """`model` and every model it holds, however deep."""
    found = [model]
    for value in model.__dict__.values():
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, BaseModel):
                found += _models(item)
    return found


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="key-sharing dicts are CPython's")
def test_every_model_of_a_validated_manifest_keeps_its_values_over_its_classs_shared_keys() -> None:
    props = base_properties()
    props["containers"][0]["properties"]["environmentVariables"] = [{"name": "A", "value": "1"}]
    models = _models(manifest(name="one", properties=props))
    assert len(models) > 5
    for model in models:
        ordinary = dict(model.__dict__)
        assert model.__dict__ == ordinary
        assert sys.getsizeof(model.__dict__) < sys.getsizeof(ordinary), type(model).__name__


def test_a_model_over_shared_keys_reads_compares_and_copies_as_an_ordinary_one() -> None:
    one, again = manifest(name="one"), manifest(name="one")
    ordinary = type(one).model_construct(_fields_set=set(one.model_fields_set), **dict(one.__dict__))
    assert one == again == ordinary
    assert one.model_dump() == ordinary.model_dump()
    assert one.model_dump_json() == ordinary.model_dump_json()
    renamed = one.model_copy(update={"name": "two"})
    assert (renamed.name, one.name, again.name) == ("two", "one", "one")
    assert renamed != one


def test_a_model_whose_dict_holds_more_than_its_fields_keeps_it_as_it_is() -> None:
    class Cached(BaseModel):
        model_config = ConfigDict(frozen=True)
        a: int = 0

    model = Cached(a=1)
    model.__dict__["extra"] = 2  # what a cached property would leave
    held = model.__dict__
    share_fields_set(model)
    assert model.__dict__ is held
    assert held == {"a": 1, "extra": 2}


def test_updated_gives_what_model_copy_gives_and_keeps_a_set_that_names_the_fields_already() -> None:
    one = manifest(name="one")
    props = one.properties
    other = (*manifest(name="other").properties.containers,)
    by_copy = props.model_copy(update={"containers": other})
    by_updated = compact.updated(props, {"containers": other})
    assert by_updated == by_copy
    assert by_updated.model_dump() == by_copy.model_dump()
    assert by_updated.model_fields_set == by_copy.model_fields_set
    assert by_updated.__pydantic_fields_set__ is props.__pydantic_fields_set__, "names its fields already"
    assert by_updated is not props
    assert by_updated.containers is other


def test_updated_grows_a_set_of_its_own_for_a_field_not_given_and_leaves_the_shared_one_alone() -> None:
    one = manifest(name="one")
    shared = one.__pydantic_fields_set__
    before = set(shared)
    copied = compact.updated(one, {"zones": ("1",)})
    assert copied.zones == ("1",)
    assert one.zones is None
    assert copied.model_fields_set == before | {"zones"}
    assert set(shared) == before


def test_updated_copies_private_attributes_and_falls_back_to_model_copy_when_not_frozen() -> None:
    class Loose(BaseModel):
        a: int = 0

    loose = Loose(a=1)
    copied = compact.updated(loose, {"a": 2})
    assert copied.a == 2
    assert loose.a == 1
    copied.a = 3  # a model that is not frozen stays assignable, with a set of its own
    assert loose.model_fields_set == {"a"}
