"""Validate ARM request and response bodies against Microsoft's OpenAPI spec for ACI (api-version 2023-05-01).

Called by the emulator's server (`reconciler/emulator/server.py`) on every PUT and PATCH body, and by the
fidelity tests (`tests/emulator/test_fidelity_*.py`), which check that the emulator's responses fit the spec.
It reads `data/containerInstance.json` (Microsoft's spec, shipped as package data), compiles each definition
once into a small tree of nodes and walks bodies against it. Stdlib only; nothing else from `reconciler/`.

Public API:

* `validate(definition, body)` -> violations of a *request* body, judged as ARM and the ACI resource
  provider judge it (below).
* `response_violations(definition, body, allow_unknown=True)` -> violations of a *response* body: read-only
  fields are welcome, secrets must be absent, property names and enum values must be spelled as the spec
  spells them.
* `normalize(definition, body)` -> the request body as the resource provider stores it: canonical property
  names and enum spellings, numbers as numbers, nulls, unknown and read-only properties dropped.
* `shape(definition, body)` -> the fields of a body and their JSON types, values left out, for comparing
  the emulator's answers with Azure's.
* `definitions()` -> the definition names the spec provides.

How requests are judged, and why. The ACI resource provider is a .NET service that reads the body with
Json.NET (Newtonsoft) into typed models, then runs its own checks; Azure's own error texts show it ("The
request content was invalid and could not be deserialized: 'Required property 'properties' not found in
JSON. Path '', line 1, position 22.'"). The rules below follow from that, from Microsoft's examples and
recordings in `../shared/azure/`, and from Azure's published error messages. Where the material is silent
the rule is a decision, and says so.

* Unknown properties are ignored, not rejected (Json.NET's default `MissingMemberHandling.Ignore`). The
  material never shows a body rejected for an unknown field, while Azure's answers carry fields the spec
  does not describe (`provisioningTimeoutInSeconds`, `isCustomProvisioningTimeout`, and newer ones such as
  `configMap` in 2024 recordings): the service's model is wider than this spec, so a field this spec does
  not know is not evidence of a bad request. Decision: ignore it, as the deserializer does; `normalize`
  then drops it, so the emulator does not echo what Azure at 2023-05-01 would not keep. A typo in a
  property name is therefore silently dropped, by Azure and by the emulator alike.
* Property names match case-insensitively (Json.NET's default contract resolver): `memoryInGb` is
  `memoryInGB`. Enum values match case-insensitively (`StringEnumConverter` parses ignoring case): `tcp` is
  `TCP`, `linux` is `Linux`; for the identity type the spaces around the comma do not matter either.
* Scalars convert as Json.NET converts them: a string holding a number is a number (`"port": "80"`), a number
  or boolean given for a string becomes that string, `"true"`/`"false"` are booleans. An integer must be
  integral and fit in int32. (Json.NET would round `80.5` to a port; we reject it, as a reconciler should
  never send it.) Objects and arrays never convert to scalars or back: that is ARM's `InvalidRequestContent`.
* `null` is the same as leaving the property out.
* Read-only properties (`id`, `type`, `provisioningState`, `instanceView`, `fqdn`...) are ignored in requests,
  as ARM ignores them, so a body copied from a GET is accepted.
* `required` is enforced as the spec states it (read-only ones excepted). Where Azure's own error code for a
  missing or invalid value is known from its messages, the violation carries it (`InvalidOsType`,
  `ResourceRequestsNotSpecified`, `MissingIpAddressPorts`); otherwise the code is `InvalidRequestContent`.
* `x-ms-client-flatten` only shapes the SDK's models; on the wire the `properties` bags stay nested, and
  that is what is validated.
* Checks that are not in the spec (location required by ARM, tag limits, name rules, quotas, the cross-field
  rules of the resource provider) belong to the server, not here.

Messages never quote a value the caller sent (only property names and the spec's own enum values), so a
violation can be logged or returned to a client without leaking a secret.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

__all__ = ["Violation", "definitions", "normalize", "response_violations", "shape", "validate"]

API_VERSION: Final = "2023-05-01"

_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1

# Properties Azure never returns although the spec does not mark them x-ms-secret. Evidence: the spec's own
# examples (ContainerGroupsCreateOrUpdate: storageAccountKey and secret-volume values vanish from the
# response; ContainerGroupExtensions: protectedSettings vanishes) and the recorded CLI traffic
# (test_container_create: `"secret": {}`).
_EXTRA_SECRETS: Final = frozenset(
    {
        ("AzureFileVolume", "storageAccountKey"),
        ("DeploymentExtensionSpec.properties", "protectedSettings"),
    }
)
# Maps whose values are secret: the keys stay in the response, the values do not (Azure returns `{}`).
_SECRET_MAPS: Final = frozenset({"SecretVolume"})

# Azure's error codes for the few required fields whose rejection has a documented code of its own.
_REQUIRED_CODES: Final = {
    ("ContainerGroupProperties.properties", "osType"): "InvalidOsType",
    ("ListResultContainerGroupProperties.properties", "osType"): "InvalidOsType",
    ("ResourceRequirements", "requests"): "ResourceRequestsNotSpecified",
    ("ContainerProperties", "resources"): "ResourceRequestsNotSpecified",
    ("IpAddress", "ports"): "MissingIpAddressPorts",
    ("ResourceRequests", "memoryInGB"): "ResourceSomeRequestsNotSpecified",
    ("ResourceRequests", "cpu"): "ResourceSomeRequestsNotSpecified",
}
_ENUM_CODES: Final = {"OperatingSystemTypes": "InvalidOsType"}

_DATE_TIME: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})?$"
)
_INT_TEXT: Final = re.compile(r"^\s*[+-]?\d+\s*$")
_FLOAT_TEXT: Final = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")

_OBJECT: Final = 0
_ARRAY: Final = 1
_STRING: Final = 2
_NUMBER: Final = 3
_INTEGER: Final = 4
_BOOLEAN: Final = 5
_ANY: Final = 6


@dataclass(frozen=True, slots=True)
class Violation:
    """One way a body breaks the spec: where (a JSON pointer into the body as sent) and why.

    `code` is the ARM error code Azure answers this kind of violation with, for the server's error body.
    """

    path: str
    message: str
    code: str = "InvalidRequestContent"


class _Prop:
    __slots__ = ("name", "node", "read_only", "required_code", "secret")

    def __init__(self, name: str, node: _Node, read_only: bool, secret: bool, required_code: str) -> None:
        self.name = name
        self.node = node
        self.read_only = read_only
        self.secret = secret
        self.required_code = required_code


class _Node:
    """A compiled schema: one kind, and for objects their properties keyed exactly and by lower case."""

    __slots__ = (
        "additional",
        "enum",
        "enum_code",
        "enum_name",
        "fmt",
        "items",
        "kind",
        "lower",
        "props",
        "read_only",
        "required",
        "secret_values",
        "title",
    )

    def __init__(self, title: str) -> None:
        self.title = title
        self.kind = _ANY
        self.props: dict[str, _Prop] = {}
        self.lower: dict[str, _Prop] = {}
        self.required: tuple[str, ...] = ()
        self.additional: _Node | None = None
        self.items: _Node | None = None
        self.enum: dict[str, str] | None = None
        self.enum_name = ""
        self.enum_code = "InvalidRequestContent"
        self.fmt = ""
        self.read_only = False
        self.secret_values = False


def _enum_key(value: str) -> str:
    # `SystemAssigned, UserAssigned` is a flags enum in .NET: spacing around the comma is not significant.
    if "," not in value:
        return value.strip().lower()
    return ",".join(part.strip() for part in value.split(",")).lower()


class _Compiler:
    def __init__(self, spec: dict[str, Any]) -> None:
        self._defs: dict[str, Any] = spec["definitions"]
        self._done: dict[str, _Node] = {}

    def definition(self, name: str) -> _Node:
        node = self._done.get(name)
        if node is None:
            if name not in self._defs:
                raise KeyError(f"the spec has no definition {name!r}; known: {', '.join(sorted(self._defs))}")
            node = _Node(name)
            # Registered before it is filled, so recursive definitions (CloudErrorBody.details) terminate.
            self._done[name] = node
            self._fill(node, self._defs[name])
        return node

    def _ref(self, schema: dict[str, Any]) -> _Node:
        ref: str = schema["$ref"]
        if not ref.startswith("#/definitions/"):
            raise ValueError(f"unsupported $ref {ref!r}: only local definitions are used by this spec")
        return self.definition(ref.removeprefix("#/definitions/"))

    def schema(self, schema: dict[str, Any], title: str) -> _Node:
        if "$ref" in schema:
            return self._ref(schema)
        node = _Node(title)
        self._fill(node, schema)
        return node

    def _fill(self, node: _Node, schema: dict[str, Any]) -> None:
        node.read_only = bool(schema.get("readOnly", False))
        node.secret_values = node.title in _SECRET_MAPS
        kind = schema.get("type")
        if kind is None and ("properties" in schema or "allOf" in schema or "additionalProperties" in schema):
            kind = "object"
        required: list[str] = []
        for part in schema.get("allOf", ()):
            base = self._ref(part) if "$ref" in part else self.schema(part, node.title)
            node.props.update(base.props)
            required.extend(base.required)
            if base.additional is not None:
                node.additional = base.additional
        if kind == "object":
            node.kind = _OBJECT
            for name, sub in schema.get("properties", {}).items():
                child = self.schema(sub, f"{node.title}.{name}")
                read_only = bool(sub.get("readOnly", False)) or child.read_only
                secret = bool(sub.get("x-ms-secret", False)) or (node.title, name) in _EXTRA_SECRETS
                code = _REQUIRED_CODES.get((node.title, name), "InvalidRequestContent")
                node.props[name] = _Prop(name, child, read_only, secret, code)
            required.extend(schema.get("required", ()))
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                node.additional = self.schema(extra, f"{node.title}.*")
        elif kind == "array":
            node.kind = _ARRAY
            node.items = self.schema(schema.get("items", {}), f"{node.title}[]")
        elif kind == "string":
            node.kind = _STRING
            node.fmt = str(schema.get("format", ""))
            if "enum" in schema:
                node.enum = {_enum_key(str(v)): str(v) for v in schema["enum"]}
                node.enum_name = str(schema.get("x-ms-enum", {}).get("name", node.title))
                node.enum_code = _ENUM_CODES.get(node.enum_name, "InvalidRequestContent")
        elif kind == "number":
            node.kind = _NUMBER
        elif kind == "integer":
            node.kind = _INTEGER
            node.fmt = str(schema.get("format", ""))
        elif kind == "boolean":
            node.kind = _BOOLEAN
        node.lower = {name.lower(): prop for name, prop in node.props.items()}
        node.required = tuple(dict.fromkeys(required))


@cache
def _compiler() -> _Compiler:
    text = (
        resources.files(__name__.rpartition(".")[0])
        .joinpath("data/containerInstance.json")
        .read_text("utf-8")
    )
    spec: dict[str, Any] = json.loads(text)
    return _Compiler(spec)


@cache
def _root(definition: str) -> _Node:
    return _compiler().definition(definition)


def definitions() -> frozenset[str]:
    """The names of the spec's definitions, for `validate` and `response_violations`."""
    return frozenset(_compiler()._defs)


def _pointer(path: str, key: str) -> str:
    return f"{path}/{key.replace('~', '~0').replace('/', '~1')}"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _Walker:
    """One walk over one body. `request` selects request rules (lenient, as ARM) or response rules (exact)."""

    __slots__ = ("allow_unknown", "out", "request")

    def __init__(self, request: bool, allow_unknown: bool) -> None:
        self.request = request
        self.allow_unknown = allow_unknown
        self.out: list[Violation] = []

    def bad(self, path: str, message: str, code: str = "InvalidRequestContent") -> None:
        self.out.append(Violation(path, message, code))

    def walk(self, node: _Node, value: object, path: str) -> None:
        kind = node.kind
        if kind == _OBJECT:
            self.obj(node, value, path)
        elif kind == _ARRAY:
            if not isinstance(value, list):
                self.bad(path, f"expected an array, got {_json_type(value)}")
                return
            items = node.items
            assert items is not None
            for index, item in enumerate(value):
                where = f"{path}/{index}"
                if item is None:
                    self.bad(where, "array elements must not be null")
                else:
                    self.walk(items, item, where)
        elif kind == _STRING:
            self.string(node, value, path)
        elif kind == _NUMBER:
            self.number(value, path)
        elif kind == _INTEGER:
            self.integer(value, path)
        elif kind == _BOOLEAN:
            self.boolean(value, path)

    def obj(self, node: _Node, value: object, path: str) -> None:
        if not isinstance(value, dict):
            self.bad(path, f"expected an object, got {_json_type(value)}")
            return
        props = node.props
        present: set[str] = set()
        for raw_key, item in value.items():
            key = str(raw_key)
            prop = props.get(key)
            if prop is None:
                prop = node.lower.get(key.lower())
                if prop is not None and not self.request:
                    self.bad(_pointer(path, key), f"Azure spells this property {prop.name!r}")
                    continue
            if prop is None:
                if node.additional is not None:
                    if item is None:
                        continue
                    if node.secret_values and not self.request:
                        self.bad(_pointer(path, key), "secret value returned (Azure never returns it)")
                        continue
                    self.walk(node.additional, item, _pointer(path, key))
                elif not self.request and not self.allow_unknown and props:
                    self.bad(_pointer(path, key), f"property not in the spec's {node.title}")
                continue
            if item is None:
                continue
            present.add(prop.name)
            if prop.read_only and self.request:
                continue
            if prop.secret and not self.request:
                self.bad(_pointer(path, key), "secret returned (Azure never returns it)")
                continue
            self.walk(prop.node, item, _pointer(path, key))
        for name in node.required:
            if name in present:
                continue
            prop = props[name]
            if (self.request and prop.read_only) or (not self.request and prop.secret):
                continue
            self.bad(_pointer(path, name), f"required property {name!r} is missing", prop.required_code)

    def string(self, node: _Node, value: object, path: str) -> None:
        if isinstance(value, str):
            enum = node.enum
            if enum is not None:
                canonical = enum.get(_enum_key(value))
                if canonical is None:
                    allowed = ", ".join(repr(v) for v in enum.values())
                    self.bad(path, f"the value must be one of {allowed}", node.enum_code)
                elif not self.request and canonical != value:
                    self.bad(path, f"Azure spells this value {canonical!r}")
            elif node.fmt == "date-time" and not self.request and not _DATE_TIME.match(value):
                self.bad(path, "expected an ISO 8601 date-time")
            return
        if self.request and node.enum is None and isinstance(value, int | float) and _finite(value):
            return  # Json.NET reads a number or boolean given for a string as its text
        self.bad(path, f"expected a string, got {_json_type(value)}", node.enum_code)

    def number(self, value: object, path: str) -> None:
        if isinstance(value, bool):
            self.bad(path, "expected a number, got a boolean")
        elif isinstance(value, int | float):
            if not _finite(value):
                self.bad(path, "expected a finite number")
        elif isinstance(value, str) and self.request:
            if not _FLOAT_TEXT.match(value):
                self.bad(path, "expected a number, got a string that is not a number")
        else:
            self.bad(path, f"expected a number, got {_json_type(value)}")

    def integer(self, value: object, path: str) -> None:
        if isinstance(value, bool):
            self.bad(path, "expected an integer, got a boolean")
            return
        number: int
        if isinstance(value, int):
            number = value
        elif isinstance(value, float):
            if not _finite(value) or not value.is_integer():
                self.bad(path, "expected an integer, got a number with a fraction")
                return
            number = int(value)
        elif isinstance(value, str) and self.request:
            if not _INT_TEXT.match(value):
                self.bad(path, "expected an integer, got a string that is not an integer")
                return
            number = int(value)
        else:
            self.bad(path, f"expected an integer, got {_json_type(value)}")
            return
        if not _INT32_MIN <= number <= _INT32_MAX:
            self.bad(path, "integer out of the int32 range")

    def boolean(self, value: object, path: str) -> None:
        if isinstance(value, bool):
            return
        if self.request and isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return
        self.bad(path, f"expected a boolean, got {_json_type(value)}")


def _finite(value: float) -> bool:
    return not isinstance(value, float) or math.isfinite(value)


def validate(definition: str, body: object) -> list[Violation]:
    """Violations of a request body against the spec's `definition` (`"ContainerGroup"` for PUT,
    `"Resource"` for PATCH), judged as ARM judges requests (see the module docstring). Empty means accepted.

    Raises KeyError for a definition the spec does not have (a programming error, not bad input).
    """
    walker = _Walker(request=True, allow_unknown=True)
    walker.walk(_root(definition), body, "")
    return walker.out


def response_violations(definition: str, body: object, *, allow_unknown: bool = True) -> list[Violation]:
    """Violations of a response body against `definition`: types, formats and spellings exactly as the spec
    states them, read-only fields allowed, secrets absent. Azure adds fields the spec does not describe, so
    unknown properties pass unless `allow_unknown` is false.
    """
    walker = _Walker(request=False, allow_unknown=allow_unknown)
    walker.walk(_root(definition), body, "")
    return walker.out


def shape(definition: str, body: object) -> dict[str, tuple[str, bool]]:
    """The shape of a body, for comparing two bodies field by field without their values: every JSON path
    present, with array indices and map keys (tags, identities, secret-volume files) collapsed to `*`,
    mapped to (its JSON type, whether the spec's `definition` describes that path). JSON types are
    `object`, `array`, `string`, `number` (integers and floats alike), `boolean` and `null`.

    Used by the fidelity tests to compare the emulator's answers with Microsoft's examples and recordings.
    """
    out: dict[str, tuple[str, bool]] = {}
    _shape(_root(definition), body, "", out)
    return out


def _kind_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__


def _shape(node: _Node | None, value: object, path: str, out: dict[str, tuple[str, bool]]) -> None:
    out[path] = (_kind_name(value), node is not None)
    if isinstance(value, dict):
        if node is not None and node.kind == _OBJECT and not node.props and node.additional is None:
            return  # free-form (`settings`): its contents are opaque data, not fields
        for raw_key, item in value.items():
            key = str(raw_key)
            prop = None if node is None else node.props.get(key)
            if prop is not None:
                _shape(prop.node, item, _pointer(path, key), out)
            elif node is not None and node.additional is not None:
                _shape(node.additional, item, f"{path}/*", out)
            else:
                _shape(None, item, _pointer(path, key), out)
    elif isinstance(value, list):
        items = None if node is None else node.items
        for item in value:
            _shape(items, item, f"{path}/*", out)


def normalize(definition: str, body: object) -> object:
    """The request body as the resource provider keeps it after reading it: property names and enum values in
    the spec's spelling, numeric strings as numbers (doubles as float), scalars given for strings as text,
    `"true"`/`"false"` as booleans, and nulls, unknown and read-only properties dropped. Free-form objects
    (extension settings) are kept as sent. Values that do not validate are left as they are; call `validate`
    first.
    """
    return _normalize(_root(definition), body)


def _normalize(node: _Node, value: object) -> object:
    kind = node.kind
    if kind == _OBJECT:
        if not isinstance(value, dict):
            return value
        if not node.props and node.additional is None:
            return value  # free-form (`settings`, `emptyDir`): Azure keeps what it was given
        result: dict[str, object] = {}
        for key, item in value.items():
            if item is None:
                continue
            prop = node.props.get(key) or node.lower.get(str(key).lower())
            if prop is None:
                if node.additional is not None:
                    result[key] = _normalize(node.additional, item)
                continue
            if prop.read_only:
                continue
            result[prop.name] = _normalize(prop.node, item)
        return result
    if kind == _ARRAY:
        if not isinstance(value, list) or node.items is None:
            return value
        items = node.items
        return [_normalize(items, item) for item in value]
    if kind == _STRING:
        if isinstance(value, str):
            if node.enum is not None:
                return node.enum.get(_enum_key(value), value)
            return value
        if isinstance(value, bool):
            return "True" if value else "False"  # .NET's Boolean.ToString()
        if isinstance(value, float) and value.is_integer():
            return str(int(value))  # .NET prints 1.0 as "1"
        if isinstance(value, int | float):
            return repr(value)
        return value
    if kind == _NUMBER:
        if isinstance(value, str) and _FLOAT_TEXT.match(value):
            return float(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    if kind == _INTEGER:
        if isinstance(value, str) and _INT_TEXT.match(value):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    if kind == _BOOLEAN:
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        return value
    return value
