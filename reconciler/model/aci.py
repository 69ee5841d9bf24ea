"""The ARM sub-models of a container group (api-version 2023-05-01), as pydantic v2 models.

`reconciler.model.manifest.GroupManifest` is built from these; nothing else should need them directly except
planning and tests that inspect a parsed manifest. The reference is Microsoft's OpenAPI spec
(`specification/containerinstance/.../stable/2023-05-01/containerInstance.json`); where a rule is stricter
than the spec, a comment says where it comes from.

Every model derives from `ArmModel`, which makes real-world YAML acceptable: keys in any case (ARM treats
property names case-insensitively), read-only fields of a GET or `az container export` dropped, and
unknown keys reported with a "did you mean" suggestion. Secret fields are `pydantic.SecretStr` (or
`pydantic.Secret`), so repr, str, logging and `model_dump()` never show them; `ArmModel.arm()` is the only
way out, and it reveals secrets only when asked to.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import difflib
import functools
import math
import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Secret,
    SecretStr,
    ValidationInfo,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from reconciler.model.compact import share_fields_set
from reconciler.model.text import shown

API_VERSION = "2023-05-01"
RESOURCE_TYPE = "Microsoft.ContainerInstance/containerGroups"

# Keys that later api-versions added. A manifest written for them is not silently half-applied: it is an error
# that says which version the key needs.
FUTURE_KEYS: dict[str, str] = {
    "configmap": "2024-05-01-preview",
    "containergroupprofile": "2024-05-01-preview",
    "standbypoolprofile": "2024-05-01-preview",
    "iscreatedfromstandbypool": "2024-05-01-preview",
    "provisioningtimeoutinseconds": "2024-11-01-preview",
    "identityacls": "2024-10-01-preview",
    "secretreferences": "2024-10-01-preview",
}


def fail(kind: str, message: str) -> PydanticCustomError:
    """A validation error without pydantic's "Value error, " prefix. Without a context, pydantic-core does not
    format the message, so braces in it (`{env: NAME}`) are literal."""
    return PydanticCustomError(kind, message)


def azure_code(code: str) -> str:
    """How a message names the error code Azure answers the same mistake with, `(Azure: <Code>)`: the rule is
    Azure's own, checked here so that it fails before any call, and the code lets a reader find Azure's
    documentation and the reports of it. Only codes seen in public records of Azure's answers are named."""
    return f"(Azure: {code})"


class UnknownKey:
    """Stands in for the value of a key no model knows, so that pydantic reports it (as `extra_forbidden`)
    at its exact place; `reconciler.model.manifest` turns that into `message`. Holds no input value, which
    may be a mistyped secret."""

    __slots__ = ("key", "message")

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message

    def __repr__(self) -> str:
        return f"<unknown key {shown(self.key)}>"


# ---------------------------------------------------------------------------------------------------------
# Shared base


class ArmModel(BaseModel):
    """Base of every manifest model: case-insensitive keys, read-only keys dropped, unknown keys reported."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        frozen=True,
        alias_generator=to_camel,
        use_attribute_docstrings=True,
    )

    # Lower-cased key (alias or field name) -> alias; computed once per class.
    _keys: ClassVar[dict[str, str]] = {}
    # Lower-cased keys that a GET or an export contains and a request must not: accepted and dropped.
    _readonly: ClassVar[frozenset[str]] = frozenset()
    # Field name -> field name of the `...From` reference that may stand for it.
    _secret_pairs: ClassVar[dict[str, str]] = {}
    # Fields that a GET never returns (secrets, write-only); `arm(reveal_secrets=False)` leaves them out.
    _hidden: ClassVar[frozenset[str]] = frozenset()
    # Fields of ours that are never part of an ARM body.
    _ours: ClassVar[frozenset[str]] = frozenset()
    # (field name, alias) in declaration order.
    _fields: ClassVar[tuple[tuple[str, str], ...]] = ()
    # The canonical keys (aliases).
    _aliases: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        keys: dict[str, str] = {}
        fields: list[tuple[str, str]] = []
        for name, info in cls.model_fields.items():
            alias = info.alias or name
            keys[name.lower()] = alias
            keys[alias.lower()] = alias
            fields.append((name, alias))
        cls._keys = keys
        cls._aliases = frozenset(alias for _, alias in fields)
        cls._fields = tuple(fields)

    @model_validator(mode="after")
    def _share_fields_set(self) -> Self:
        # As each model is made: a fleet's manifests are most of what a daemon keeps (`compact`).
        share_fields_set(self)
        return self

    @model_validator(mode="before")
    @classmethod
    def _canonical_keys(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        # The common case, every key already canonical, costs one set operation in C.
        if cls._aliases.issuperset(data.keys()):
            return data
        lenient = bool(info.context and info.context.get("lenient"))
        out: dict[Any, Any] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                out[key] = UnknownKey(str(key), f"key {shown(key)} is not a string; quote it or remove it")
                continue
            lower = key.lower()
            alias = cls._keys.get(lower)
            if alias is not None:
                if alias in out:
                    out[key] = UnknownKey(
                        key,
                        f"{shown(key)} repeats {shown(alias)} (ARM keys are case-insensitive): "
                        "keep only one of them",
                    )
                else:
                    out[alias] = value
            elif lower in cls._readonly or lenient:
                continue
            else:
                out[key] = UnknownKey(key, cls._unknown_message(key))
        return out

    @classmethod
    def _unknown_message(cls, key: str) -> str:
        where = cls.__name__
        since = FUTURE_KEYS.get(key.lower())
        if since is not None:
            return (
                f"{shown(key)} is not part of api-version {API_VERSION} (it came with {since}); "
                "this reconciler speaks 2023-05-01: remove it"
            )
        known = sorted(set(cls._keys.values()))
        close = difflib.get_close_matches(key.lower(), [k.lower() for k in known], n=1, cutoff=0.6)
        if close:
            suggestion = next(k for k in known if k.lower() == close[0])
            return f"unknown key {shown(key)} in {where}: did you mean {shown(suggestion)}?"
        return f"unknown key {shown(key)} in {where}; allowed keys: {', '.join(known)}"

    # -- output ---------------------------------------------------------------------------------------------

    def arm(self, *, reveal_secrets: bool) -> dict[str, Any]:
        """This object as ARM JSON: canonical camelCase keys, omitted fields omitted, ours left out, secrets
        included only when `reveal_secrets` (unresolved references are the caller's concern)."""
        out: dict[str, Any] = {}
        fields = self.__dict__
        for name, alias, hidden in _arm_fields(type(self)):
            value = fields[name]
            if value is None:
                continue
            if hidden and not reveal_secrets:
                # A GET returns a secret volume as an empty map: keep the volume's type visible.
                if isinstance(value, dict):
                    out[alias] = {}
                continue
            out[alias] = _arm_value(value, reveal_secrets)
        return out

    def manifest(self) -> dict[str, Any]:
        """This object as a manifest document: like `arm(reveal_secrets=True)`, but references stay
        references (a resolved value is not written back) and our keys are included."""
        out: dict[str, Any] = {}
        refs = self._secret_pairs
        for name, alias in self._fields:
            value = getattr(self, name)
            if value is None:
                continue
            ref_name = refs.get(name)
            if ref_name is not None and getattr(self, ref_name) is not None:
                continue
            out[alias] = _manifest_value(value)
        return out


@functools.cache
def _arm_fields(cls: type[ArmModel]) -> tuple[tuple[str, str, bool], ...]:
    """(field name, alias, hidden) of each field of `cls` that an ARM body has, in declaration order."""
    refs = set(cls._secret_pairs.values())
    return tuple(
        (name, alias, name in cls._hidden)
        for name, alias in cls._fields
        if name not in cls._ours and name not in refs
    )


_PLAIN_TYPES = frozenset({str, int, float, bool})


def _arm_value(value: Any, reveal: bool) -> Any:
    kind = type(value)
    if kind in _PLAIN_TYPES:
        return value
    # Exact types first: a model's lists are tuples, and the checks below are slower (a union, an ABC).
    if kind is tuple or kind is list:
        return [_arm_value(v, reveal) for v in value]
    if kind is dict:
        return {k: _arm_value(v, reveal) for k, v in value.items()}
    if isinstance(value, ArmModel):
        return value.arm(reveal_secrets=reveal)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Secret):
        return _plain(value.get_secret_value())
    if isinstance(value, tuple | list):
        return [_arm_value(v, reveal) for v in value]
    if isinstance(value, dict):
        return {k: _arm_value(v, reveal) for k, v in value.items()}
    return value


def _manifest_value(value: Any) -> Any:
    if isinstance(value, ArmModel):
        return value.manifest()
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Secret):
        return _plain(value.get_secret_value())
    if isinstance(value, tuple | list):
        return [_manifest_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _manifest_value(v) for k, v in value.items()}
    return value


def _plain(value: Any) -> Any:
    """A deep copy of free-form JSON, so callers cannot mutate a frozen model through it."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------------------
# Scalar types


def _case_insensitive(*canonical: str) -> Callable[[Any], Any]:
    table = {c.lower(): c for c in canonical}

    def convert(value: Any) -> Any:
        if isinstance(value, str):
            return table.get(value.strip().lower(), value)
        return value

    return convert


def _identity_type(value: Any) -> Any:
    # "SystemAssigned,UserAssigned" and "systemassigned, userassigned" are what people type.
    if isinstance(value, str):
        squashed = value.replace(" ", "").lower()
        return {
            "systemassigned": "SystemAssigned",
            "userassigned": "UserAssigned",
            "systemassigned,userassigned": "SystemAssigned, UserAssigned",
            "none": "None",
        }.get(squashed, value)
    return value


def _text(value: Any) -> Any:
    """YAML turns `value: 8080` into a number; ARM's deserializer takes a JSON number for a string, so do we.
    A boolean is refused: YAML 1.1 reads `yes`, `on` and `true` as booleans; the intended text is unclear."""
    if isinstance(value, bool):
        raise fail("bool_not_text", "a boolean is not text here: quote the value (for example 'true')")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    return value


def _api_version(value: Any) -> Any:
    # A YAML 1.1 loader reads `apiVersion: 2018-10-01` as a date.
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def _resource_type(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() == RESOURCE_TYPE.lower():
        return RESOURCE_TYPE
    if isinstance(value, str):
        raise fail(
            "resource_type",
            f"type {shown(value)} is not a container group: use {shown(RESOURCE_TYPE)} or leave 'type' out",
        )
    return value


OsType = Annotated[Literal["Linux", "Windows"], BeforeValidator(_case_insensitive("Linux", "Windows"))]
RestartPolicy = Annotated[
    Literal["Always", "OnFailure", "Never"],
    BeforeValidator(_case_insensitive("Always", "OnFailure", "Never")),
]
Protocol = Annotated[Literal["TCP", "UDP"], BeforeValidator(_case_insensitive("TCP", "UDP"))]
IpAddressType = Annotated[
    Literal["Public", "Private"], BeforeValidator(_case_insensitive("Public", "Private"))
]
DnsNameLabelScope = Annotated[
    Literal["Unsecure", "TenantReuse", "SubscriptionReuse", "ResourceGroupReuse", "Noreuse"],
    BeforeValidator(
        _case_insensitive("Unsecure", "TenantReuse", "SubscriptionReuse", "ResourceGroupReuse", "Noreuse")
    ),
]
GpuSku = Annotated[Literal["K80", "P100", "V100"], BeforeValidator(_case_insensitive("K80", "P100", "V100"))]
Scheme = Annotated[Literal["http", "https"], BeforeValidator(_case_insensitive("http", "https"))]
Sku = Annotated[
    Literal["Standard", "Dedicated", "Confidential"],
    BeforeValidator(_case_insensitive("Standard", "Dedicated", "Confidential")),
]
Priority = Annotated[Literal["Regular", "Spot"], BeforeValidator(_case_insensitive("Regular", "Spot"))]
LogType = Annotated[
    Literal["ContainerInsights", "ContainerInstanceLogs"],
    BeforeValidator(_case_insensitive("ContainerInsights", "ContainerInstanceLogs")),
]
IdentityType = Annotated[
    Literal["SystemAssigned", "UserAssigned", "SystemAssigned, UserAssigned", "None"],
    BeforeValidator(_identity_type),
]
Text = Annotated[str, BeforeValidator(_text)]
ApiVersion = Annotated[str, BeforeValidator(_api_version), Field(pattern=r"^\d{4}-\d{2}-\d{2}(-preview)?$")]
ResourceType = Annotated[str, BeforeValidator(_resource_type)]


# ---------------------------------------------------------------------------------------------------------
# Numbers: one rule for every numeric field

# Longest numeric text accepted. No value Azure takes needs more (the longest is an int32, or a decimal with
# two places); longer text is refused before it is converted, so no input reaches Python's 4300-digit
# limit of `int(str)` or an overflow of `float`.
MAX_NUMBER_TEXT = 32
# JSON's number grammar with an optional sign and a bare fraction (`.5`), as a JSON reader and .NET's
# `double.Parse` take it (`az container create --file` sends numeric strings on and ARM parses them). No
# underscores (YAML 1.1 `1_0`), hexadecimal, `inf`/`Infinity`/`nan`: ARM reads none of them as a number.
NUMBER_TEXT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
INT32_MAX = 2**31 - 1


def to_decimal(value: Any) -> Decimal:
    """The exact decimal value of a JSON number or numeric string, or a `fail()` saying why it is not one.

    The single entry point for numbers in the model, used by every numeric field through `number`."""
    if isinstance(value, bool):
        raise fail("number_bool", "a boolean is not a number: write the number (for example 1)")
    if isinstance(value, int):
        # A YAML or JSON reader never produces an int longer than MAX_NUMBER_TEXT digits from our loader;
        # a caller that passes one directly gets the same refusal without converting it to text.
        if value.bit_length() > 4 * MAX_NUMBER_TEXT:
            raise fail("number_size", f"the number has more than {MAX_NUMBER_TEXT} digits")
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise fail("number_finite", "the number is not finite (inf or nan): write a finite number")
        return Decimal(repr(value))
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_NUMBER_TEXT:
            raise fail("number_size", f"the number has more than {MAX_NUMBER_TEXT} characters")
        if not NUMBER_TEXT_RE.match(text):
            raise fail(
                "number_text",
                f"{shown(text)} is not a number Azure accepts: write digits with an optional '.' and "
                "exponent (no underscores, hexadecimal, inf or nan)",
            )
        try:
            return Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only what Decimal parses
            raise fail("number_text", f"{shown(text)} is not a number") from None
    raise fail("number_type", "expected a number")


def _number_rule(
    what: str, *, integer: bool, minimum: Decimal, maximum: Decimal, step: Decimal | None
) -> Callable[[Any], int | float]:
    def convert(value: Any) -> int | float:
        d = to_decimal(value)
        if not minimum <= d <= maximum:
            # `:g` keeps a huge exponent short (1e+400), never a 400-digit line.
            raise fail("number_range", f"{what} {d:g} is outside what Azure accepts: {minimum}-{maximum}")
        if integer:
            if d != d.to_integral_value():
                raise fail("number_integer", f"{what} {d:g} must be a whole number")
            return int(d)
        if step is not None and d % step != 0:
            lower = (d // step) * step
            raise fail(
                "number_step",
                f"{what} {d:g} is not a multiple of {step} (Azure keeps no finer value): "
                f"use {lower} or {lower + step}",
            )
        return float(d)

    return convert


def number(
    what: str,
    *,
    integer: bool,
    minimum: str | int,
    maximum: str | int,
    step: str | None = None,
) -> list[Any]:
    """The metadata of a numeric field type, `Annotated[int, *number(...)]`: JSON number or numeric string in,
    int (or float) out, every rule of `to_decimal` and the field's own range and step applied. Every numeric
    field of the model is declared with it."""
    lo, hi = Decimal(minimum), Decimal(maximum)
    rule = _number_rule(what, integer=integer, minimum=lo, maximum=hi, step=Decimal(step) if step else None)
    kind = "integer" if integer else "number"
    number_schema: dict[str, Any] = {"type": kind, "minimum": int(lo) if integer else float(lo)}
    number_schema["maximum"] = int(hi) if integer else float(hi)
    if step:
        number_schema["multipleOf"] = float(step)
    text_schema = {"type": "string", "pattern": "^" + NUMBER_TEXT_RE.pattern[:-2] + "$"}
    schema = {"anyOf": [number_schema, text_schema]}
    return [BeforeValidator(rule), WithJsonSchema(schema, mode="validation")]


# Ports: 1-65535 (the spec's int32 narrowed to TCP/UDP port numbers).
Port = Annotated[int, *number("port", integer=True, minimum=1, maximum=65535)]
# CPU cores. Step 0.01: virtual-kubelet's ACI provider sends requests rounded to hundredths of a core
# (millicores / 10 / 100) and ACI keeps them; nothing finer is kept. Upper bound 32: the largest ACI
# offers (the "big container" SKUs, up to 31-32 vCPU per group; standard regions stop at 4, which Azure
# judges per region, so it is left to Azure).
Cpu = Annotated[float, *number("cpu", integer=False, minimum="0.01", maximum=32, step="0.01")]
# Memory in GB, in steps of 0.1: "The memory requirement should be times of 0.1 GB" (ACI's message,
# Azure/azure-cli#7355). Upper bound 256: the largest ACI offers (big container SKUs; per region, 16 is
# common, which Azure judges).
Memory = Annotated[float, *number("memoryInGB", integer=False, minimum="0.1", maximum=256, step="0.1")]
# GPU count: int32 in the spec; ACI offers 1, 2 or 4 (checked by GpuResource).
GpuCount = Annotated[int, *number("GPU count", integer=True, minimum=1, maximum=4)]
# Probe timings: int32 in the spec; the lower bounds as Kubernetes defines them (ACI's probes mirror it).
ProbeSecondsFrom0 = Annotated[int, *number("initialDelaySeconds", integer=True, minimum=0, maximum=INT32_MAX)]
ProbeCount = Annotated[int, *number("probe setting", integer=True, minimum=1, maximum=INT32_MAX)]
# runAsUser / runAsGroup: int32 in the spec, not negative.
Id32 = Annotated[int, *number("user or group id", integer=True, minimum=0, maximum=INT32_MAX)]


def _non_empty(value: tuple[Any, ...]) -> tuple[Any, ...]:
    if not value:
        raise fail("too_short", "the list is empty: give at least one item")
    return value


# An after-validator rather than `min_length`: pydantic checks a length constraint even when items failed,
# which adds a misleading "at least 1 item, not 0" to every error inside the list.
NonEmpty = [AfterValidator(_non_empty), Field(json_schema_extra={"minItems": 1})]

# Container group and container names. Group: 1-63 characters, letters, digits and '-', not starting or
# ending with '-', no '--' (Azure "naming rules and restrictions" for
# Microsoft.ContainerInstance/containerGroups). Upper case is accepted: ARM resource names are
# case-insensitive and case-preserving, and Microsoft's ARM template and YAML tutorials ("Deploy a
# multi-container group") deploy `myContainerGroup` (the naming-rules page's "lowercase" is contradicted by
# them; the one recording of that name, azure-sdk-for-python test_cli_mgmt_containerinstance, failed on
# provider registration before any name check, so it proves nothing either way). Containers keep Azure's
# rule: 1-63 lowercase letters, digits and '-' (MicrosoftDocs/azure-docs#57266); '--' is allowed inside a
# container name (ACI accepted 'single--container--aci' in docker-archive/compose-cli#357).
GROUP_NAME_RE = re.compile(r"^(?!-)(?!.*--)[A-Za-z0-9-]{1,63}(?<!-)\Z")
CONTAINER_NAME_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
# DNS name label: ACI's own message says "only lowercase letters, numbers and hyphens. The first
# character must be a letter. The last character must be a letter or number. The value must be between 5
# and 63 characters long" (quoted in derekbekoe/vscode-spot#37).
DNS_LABEL_RE = re.compile(r"^[a-z][a-z0-9-]{3,61}[a-z0-9]\Z")
# Environment variable names, of the container and of our `{env: NAME}` references alike: a letter or '_',
# then letters, digits and '_', ASCII only. For a container this is ACI's rule: it refuses any other name
# with InvalidContainerEnvironmentVariable, "A valid environment variable name must start with alphabetic
# character or '_', followed by a string of alphanumeric characters or '_' (e.g. 'my_name',  or 'MY_NAME',
# or 'MyName')" (a '-' in Azure/azure-cli#21047, a '.' in JetBrains/teamcity-azure-agent#96, a multi-line
# name in Azure/aci-deploy#29). That sentence, down to its double spaces, is Kubernetes' message for a C
# identifier (k8s.io/apimachinery validation.IsCIdentifier), whose regular expression is exactly this one,
# so ASCII is the reading that matches what Azure does; no record shows ACI accepting any other name.
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_container_name(value: str, what: str) -> str:
    if not CONTAINER_NAME_RE.match(value):
        raise fail(
            "container_name",
            f"{what} name {shown(value)} is invalid: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (for example 'web')",
        )
    return value


def check_env_name(name: str) -> str:
    if not ENV_NAME_RE.match(name):
        suggestion = re.sub(r"[^A-Za-z0-9_]", "_", name)
        if suggestion[:1].isdigit():
            suggestion = "_" + suggestion
        raise fail(
            "env_name",
            f"environment variable name {shown(name)} is refused by ACI: use a letter or '_' followed by "
            f"letters, digits and '_' (for example {shown(suggestion)}) "
            + azure_code("InvalidContainerEnvironmentVariable"),
        )
    return name


# ---------------------------------------------------------------------------------------------------------
# Secrets


class SecretRef(ArmModel):
    """Ours: where a secret comes from, resolved when the manifest is loaded. Exactly one of `env`, `file`."""

    model_config = ConfigDict(title="SecretRef")

    env: str | None = None
    """Name of an environment variable of the reconciler's process that holds the value."""
    file: str | None = None
    """Path of a file that holds the value (relative to the manifest's directory)."""

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise fail(
                "secret_ref",
                "a secret reference needs exactly one of 'env' or 'file', e.g. {env: DB_PASSWORD}",
            )
        if self.env is not None and not ENV_NAME_RE.match(self.env):
            raise fail(
                "secret_ref",
                f"{shown(self.env)} is not an environment variable name: use letters, digits and '_', "
                "not starting with a digit",
            )
        if self.file is not None and not self.file.strip():
            raise fail("secret_ref", "'file' of a secret reference is empty: give the path of the file")
        return self

    def describe(self) -> str:
        """For messages: `env DB_PASSWORD` or `file ./secrets/db`; never the value."""
        return f"env {self.env}" if self.env is not None else f"file {self.file}"


def _one_source(model: ArmModel, value_field: str, ref_field: str, label: str, ref_alias: str) -> None:
    if getattr(model, value_field) is not None and getattr(model, ref_field) is not None:
        raise fail("secret_twice", f"set either {shown(label)} or {shown(ref_alias)}, not both")


# ---------------------------------------------------------------------------------------------------------
# Containers


class ContainerPort(ArmModel):
    """A port the container exposes within the group."""

    port: Port
    """The port number (1-65535)."""
    protocol: Protocol | None = None
    """TCP (the default) or UDP."""


class EnvironmentVariable(ArmModel):
    """An environment variable: exactly one of `value`, `secureValue` or `secureValueFrom`."""

    _secret_pairs: ClassVar[dict[str, str]] = {"secure_value": "secure_value_from"}
    _hidden: ClassVar[frozenset[str]] = frozenset({"secure_value"})

    name: Annotated[str, AfterValidator(check_env_name)] = Field(
        min_length=1, json_schema_extra={"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"}
    )
    """The name of the environment variable: a letter or '_', then letters, digits and '_'."""
    value: Text | None = None
    """The value, in plain text (shown in plans and in the portal)."""
    secure_value: SecretStr | None = None
    """A secret value written into the manifest (allowed, warned about): prefer `secureValueFrom`."""
    secure_value_from: SecretRef | None = None
    """Ours: where the secret value comes from, `{env: NAME}` or `{file: PATH}`."""

    @model_validator(mode="after")
    def _one_value(self) -> EnvironmentVariable:
        given = [self.value is not None, self.secure_value is not None, self.secure_value_from is not None]
        if sum(given) > 1:
            raise fail(
                "env_value",
                f"environment variable {shown(self.name)} has more than one of 'value', 'secureValue' and "
                "'secureValueFrom': keep one",
            )
        if not any(given):
            raise fail(
                "env_value",
                f"environment variable {shown(self.name)} has no value: set 'value', or 'secureValueFrom: "
                "{env: NAME}' for a secret (an exported group lists secure variables without their value)",
            )
        return self


class GpuResource(ArmModel):
    """A GPU request or limit."""

    # ACI offers 1, 2 or 4 GPUs of one SKU per container (Azure docs "Deploy container instances that use GPU
    # resources": K80, P100 and V100 in counts of 1, 2 and 4).
    count: GpuCount
    """The number of GPUs: 1, 2 or 4."""
    sku: GpuSku
    """The GPU SKU: K80, P100 or V100."""

    @model_validator(mode="after")
    def _count(self) -> GpuResource:
        if self.count not in (1, 2, 4):
            raise fail("gpu_count", f"GPU count {self.count} is not offered by ACI: use 1, 2 or 4")
        return self


class ResourceRequests(ArmModel):
    """What the container needs; the group is sized by the sum of its containers' requests."""

    memory_in_gb: Memory = Field(alias="memoryInGB")
    """Memory in GB, in steps of 0.1 (1.5 is fine, 1.25 is not)."""
    cpu: Cpu
    """CPU cores in steps of 0.01 (e.g. 0.5)."""
    gpu: GpuResource | None = None
    """GPUs (Linux groups outside a virtual network only)."""


class ResourceLimits(ArmModel):
    """Upper bounds for one container; at least its request and at most the group's total request."""

    memory_in_gb: Memory | None = Field(default=None, alias="memoryInGB")
    """Memory limit in GB, in steps of 0.1."""
    cpu: Cpu | None = None
    """CPU limit in cores."""
    gpu: GpuResource | None = None
    """GPU limit."""


class ResourceRequirements(ArmModel):
    """Resource requests (required) and limits of a container."""

    requests: ResourceRequests
    """What the container needs: cpu and memoryInGB (and optionally gpu)."""
    limits: ResourceLimits | None = None
    """Optional limits."""

    # The limits are checked with the group's rules (`reconciler.model.manifest`), not here: one of their
    # bounds is the group's total request, and both bounds report at the limit itself.


class VolumeMount(ArmModel):
    """Mounts one of the group's volumes into the container."""

    name: str = Field(min_length=1)
    """The name of a volume declared in `properties.volumes`."""
    mount_path: str = Field(min_length=1)
    """Where the volume appears in the container; must not contain ':'."""
    read_only: bool | None = None
    """Mount read-only."""

    @model_validator(mode="after")
    def _path(self) -> VolumeMount:
        # The spec: "Must not contain colon (:)".
        if ":" in self.mount_path:
            raise fail(
                "mount_path", f"mountPath {shown(self.mount_path)} contains ':', which ACI does not allow"
            )
        return self


class ContainerExec(ArmModel):
    """A command run in the container by a probe."""

    command: Annotated[tuple[str, ...], *NonEmpty]
    """The command in exec form, e.g. [cat, /tmp/healthy]."""


class HttpHeader(ArmModel):
    """An HTTP header sent by an httpGet probe."""

    name: str | None = None
    """The header's name."""
    value: Text | None = None
    """The header's value."""


class ContainerHttpGet(ArmModel):
    """An HTTP GET made by a probe."""

    path: str | None = None
    """The path to request, e.g. /healthz."""
    port: Port
    """The port to request."""
    scheme: Scheme | None = None
    """http or https."""
    http_headers: tuple[HttpHeader, ...] | None = None
    """Extra headers."""


class ContainerProbe(ArmModel):
    """A liveness or readiness probe: exactly one of `exec` or `httpGet`."""

    exec_: ContainerExec | None = Field(default=None, alias="exec")
    """Run a command; success is exit code 0."""
    http_get: ContainerHttpGet | None = None
    """Make an HTTP GET; success is a 2xx/3xx status."""
    # Ranges as Kubernetes defines them; ACI's probes mirror Kubernetes' and refuse what it refuses.
    initial_delay_seconds: ProbeSecondsFrom0 | None = None
    """Seconds after start before the first probe."""
    period_seconds: ProbeCount | None = None
    """Seconds between probes."""
    failure_threshold: ProbeCount | None = None
    """Failures in a row that count as failed."""
    success_threshold: ProbeCount | None = None
    """Successes in a row that count as passed."""
    timeout_seconds: ProbeCount | None = None
    """Seconds before a probe times out."""

    @model_validator(mode="after")
    def _one_action(self) -> ContainerProbe:
        if (self.exec_ is None) == (self.http_get is None):
            raise fail("probe_action", "a probe needs exactly one of 'exec' or 'httpGet'")
        return self


class SecurityContextCapabilities(ArmModel):
    """Linux capabilities to add to or drop from the container."""

    add: tuple[str, ...] | None = None
    """Capabilities to add, e.g. [NET_ADMIN]."""
    drop: tuple[str, ...] | None = None
    """Capabilities to drop."""


class SecurityContext(ArmModel):
    """The container's security settings."""

    privileged: bool | None = None
    """Run the container privileged (confidential SKU)."""
    allow_privilege_escalation: bool | None = None
    """Whether the init process may gain privileges."""
    capabilities: SecurityContextCapabilities | None = None
    """Linux capabilities to add or drop."""
    run_as_group: Id32 | None = None
    """GID the container runs as."""
    run_as_user: Id32 | None = None
    """UID the container runs as."""
    seccomp_profile: str | None = None
    """Base64 of a seccomp profile in JSON."""


class ContainerProperties(ArmModel):
    """What runs in a container and with which resources."""

    _readonly: ClassVar[frozenset[str]] = frozenset({"instanceview"})

    image: str = Field(min_length=1)
    """The image, e.g. mcr.microsoft.com/azuredocs/aci-helloworld:latest."""
    command: tuple[str, ...] | None = None
    """The command in exec form (a list), replacing the image's entrypoint."""
    ports: tuple[ContainerPort, ...] | None = None
    """Ports the container exposes within the group."""
    environment_variables: tuple[EnvironmentVariable, ...] | None = None
    """Environment variables."""
    resources: ResourceRequirements
    """CPU, memory and GPU requests and limits."""
    volume_mounts: tuple[VolumeMount, ...] | None = None
    """Volumes of the group mounted into this container."""
    liveness_probe: ContainerProbe | None = None
    """Restart the container when this probe fails."""
    readiness_probe: ContainerProbe | None = None
    """Hold traffic until this probe passes."""
    security_context: SecurityContext | None = None
    """Security settings."""


class Container(ArmModel):
    """A container of the group."""

    name: Annotated[str, AfterValidator(lambda v: check_container_name(v, "container"))]
    """The container's name: 1-63 lowercase letters, digits and '-'."""
    properties: ContainerProperties
    """Image, command, resources, ports, environment, mounts and probes of the container."""


class InitContainerProperties(ArmModel):
    """An init container runs to completion before the containers start."""

    _readonly: ClassVar[frozenset[str]] = frozenset({"instanceview"})

    image: str = Field(min_length=1)
    """The image of the init container."""
    command: tuple[str, ...] | None = None
    """The command in exec form."""
    environment_variables: tuple[EnvironmentVariable, ...] | None = None
    """Environment variables."""
    volume_mounts: tuple[VolumeMount, ...] | None = None
    """Volumes mounted into the init container."""
    security_context: SecurityContext | None = None
    """Security settings."""


class InitContainer(ArmModel):
    """An init container of the group."""

    name: Annotated[str, AfterValidator(lambda v: check_container_name(v, "init container"))]
    """The init container's name: 1-63 lowercase letters, digits and '-'."""
    properties: InitContainerProperties
    """Image, command, environment and mounts of the init container."""


# ---------------------------------------------------------------------------------------------------------
# Volumes


class AzureFileVolume(ArmModel):
    """An Azure Files share mounted as a volume."""

    _secret_pairs: ClassVar[dict[str, str]] = {"storage_account_key": "storage_account_key_from"}
    _hidden: ClassVar[frozenset[str]] = frozenset({"storage_account_key"})

    share_name: str = Field(min_length=1)
    """The name of the file share."""
    read_only: bool | None = None
    """Mount the share read-only."""
    storage_account_name: str = Field(min_length=1)
    """The storage account that holds the share."""
    storage_account_key: SecretStr | None = None
    """The storage account key, literally (prefer `storageAccountKeyFrom`)."""
    storage_account_key_from: SecretRef | None = None
    """Ours: where the storage account key comes from, `{env: NAME}` or `{file: PATH}`."""

    @model_validator(mode="after")
    def _key(self, info: ValidationInfo) -> AzureFileVolume:
        _one_source(
            self,
            "storage_account_key",
            "storage_account_key_from",
            "storageAccountKey",
            "storageAccountKeyFrom",
        )
        # Write-only: a PUT without it mounts nothing (DESIGN section 8). A lenient parse (an export) gets a
        # placeholder reference from `from_arm` instead.
        lenient = bool(info.context and info.context.get("lenient"))
        if self.storage_account_key is None and self.storage_account_key_from is None and not lenient:
            raise fail(
                "storage_account_key",
                f"azureFile share {self.share_name!r} needs 'storageAccountKey' or "
                "'storageAccountKeyFrom: {env: NAME}' (Azure never returns it: the manifest must supply it)",
            )
        return self


class EmptyDirVolume(ArmModel):
    """A scratch directory that lives as long as the group."""


class GitRepoVolume(ArmModel):
    """A volume populated with a clone of a git repository."""

    directory: str | None = None
    """Target directory; must not contain or start with '..'. '.' puts the repository at the volume's root."""
    repository: str = Field(min_length=1)
    """The repository URL."""
    revision: str | None = None
    """The commit hash to check out."""

    @model_validator(mode="after")
    def _directory(self) -> GitRepoVolume:
        # The spec: "Must not contain or start with '..'".
        if self.directory is not None and ".." in self.directory:
            raise fail("git_directory", f"gitRepo directory {shown(self.directory)} must not contain '..'")
        return self


def _secret_file(value: Any) -> Any:
    # Secret volume files are base64 (the spec's example says "SecretValue1InBase64"); wrapped output of
    # `base64` is accepted, since the line breaks carry no data.
    if isinstance(value, str):
        try:
            base64.b64decode("".join(value.split()), validate=True)
        except (binascii.Error, ValueError):
            raise fail(
                "secret_base64", "a secret volume file must be base64: encode it (e.g. `base64 -w0 FILE`)"
            ) from None
    return value


SecretFile = Annotated[SecretStr, BeforeValidator(_secret_file)]


class Volume(ArmModel):
    """A volume of the group: exactly one of `azureFile`, `emptyDir`, `secret` (or `secretFrom`) and
    `gitRepo`."""

    _hidden: ClassVar[frozenset[str]] = frozenset({"secret"})
    _ours: ClassVar[frozenset[str]] = frozenset({"secret_from"})
    # Files of `secretFrom` once resolved: file name -> base64 of the content (what a PUT sends). Never part
    # of `manifest()`, so a resolved value is never written back into a document.
    _resolved: dict[str, str] = PrivateAttr(default_factory=dict)

    name: str = Field(min_length=1)
    """The volume's name, referenced by volumeMounts."""
    azure_file: AzureFileVolume | None = None
    """An Azure Files share."""
    empty_dir: EmptyDirVolume | None = None
    """An empty directory."""
    secret: dict[str, SecretFile] | None = None
    """Files whose content is secret: file name -> base64 content (prefer `secretFrom`)."""
    secret_from: dict[str, SecretRef] | None = None
    """Ours: the files of a secret volume kept out of git: file name -> `{env: NAME}` or `{file: PATH}` whose
    content becomes the file (sent base64-encoded, as Azure takes it)."""
    git_repo: GitRepoVolume | None = None
    """A clone of a git repository."""

    @model_validator(mode="after")
    def _one_kind(self, info: ValidationInfo) -> Volume:
        kinds = [k for k in ("azure_file", "empty_dir", "secret", "git_repo") if getattr(self, k) is not None]
        if self.secret_from is not None and "secret" not in kinds:
            kinds.append("secret")
        if len(kinds) != 1:
            names = {
                "azure_file": "azureFile",
                "empty_dir": "emptyDir",
                "secret": "secret",
                "git_repo": "gitRepo",
            }
            got = ", ".join(names[k] for k in kinds) or "none"
            raise fail(
                "volume_kind",
                f"volume {shown(self.name)} needs exactly one of azureFile, emptyDir, secret or gitRepo "
                f"(got {got})",
            )
        if kinds == ["secret"]:
            self._check_secret_files(lenient=bool(info.context and info.context.get("lenient")))
        return self

    def _check_secret_files(self, *, lenient: bool) -> None:
        literal, referenced = set(self.secret or {}), set(self.secret_from or {})
        both = sorted(literal & referenced)
        if both:
            raise fail(
                "secret_twice", f"secret volume {self.name!r} gives file {both[0]!r} in secret and secretFrom"
            )
        # A GET returns a secret volume without its files; an export keeps that as `secretFrom: {}` (lenient)
        # which then fails here until filled in. Azure would mount an empty volume and lose the files.
        if not literal | referenced and not lenient:
            raise fail(
                "secret_volume_empty",
                f"secret volume {self.name!r} has no files (Azure never returns them): give each file as "
                "secretFrom: {FILE_NAME: {env: NAME}} or {file: PATH}, or secret: {FILE_NAME: BASE64}",
            )

    def unresolved_files(self) -> list[str]:
        """Names of `secretFrom` files that have no value yet."""
        return [f for f in self.secret_from or {} if f not in self._resolved]

    def with_resolved(self, values: dict[str, str]) -> Volume:
        """A copy whose `secretFrom` files have these values (file name -> content, not yet base64)."""
        copy = self.model_copy()
        copy._resolved = {f: _base64(v) for f, v in values.items()}
        return copy

    def resolved_files(self, resolver: Callable[[SecretRef], str] | None = None) -> dict[str, str]:
        """Every file as sent: literal ones and resolved `secretFrom` ones (file name -> base64); with
        `resolver`, a `secretFrom` file without its value takes the resolver's, as `with_resolved` would
        put it in."""
        files = {f: v.get_secret_value() for f, v in (self.secret or {}).items()}
        files.update(self._resolved)
        if resolver is not None:
            for name, ref in (self.secret_from or {}).items():
                if name not in self._resolved:
                    files[name] = _base64(resolver(ref))
        return files

    def arm(self, *, reveal_secrets: bool) -> dict[str, Any]:
        out = super().arm(reveal_secrets=reveal_secrets)
        if self.secret_from is not None:
            # Unresolved files are the caller's concern, as for every reference (`to_arm_body` refuses them).
            out["secret"] = self.resolved_files() if reveal_secrets else {}
        return out


def _base64(content: str) -> str:
    return base64.b64encode(content.encode()).decode("ascii")


# ---------------------------------------------------------------------------------------------------------
# Group-level settings


class ImageRegistryCredential(ArmModel):
    """How to pull from a private registry: username and password, or a managed identity."""

    _secret_pairs: ClassVar[dict[str, str]] = {"password": "password_from"}
    _hidden: ClassVar[frozenset[str]] = frozenset({"password"})

    server: str = Field(min_length=1)
    """The registry server without a scheme, e.g. myregistry.azurecr.io."""
    username: str | None = None
    """The user name."""
    password: SecretStr | None = None
    """The password, literally (prefer `passwordFrom`)."""
    password_from: SecretRef | None = None
    """Ours: where the password comes from, `{env: NAME}` or `{file: PATH}`."""
    identity: str | None = None
    """Resource ID of a managed identity of the group that may pull from the registry."""
    identity_url: str | None = None
    """The identity URL for the private registry."""

    @model_validator(mode="after")
    def _auth(self) -> ImageRegistryCredential:
        # The spec: "The Docker image registry server without a protocol such as http and https".
        if "://" in self.server:
            raise fail(
                "registry_server",
                f"registry server {shown(self.server)} must not include a scheme: "
                f"write {shown(self.server.split('://', 1)[1])}",
            )
        _one_source(self, "password", "password_from", "password", "passwordFrom")
        has_password = self.password is not None or self.password_from is not None
        if self.identity is None:
            if self.username is None or not has_password:
                raise fail(
                    "registry_auth",
                    f"registry {shown(self.server)} needs 'username' with 'password' (or 'passwordFrom'), "
                    "or 'identity' (a managed identity of the group)",
                )
        elif has_password and self.username is None:
            raise fail("registry_auth", f"registry {shown(self.server)} has a password but no 'username'")
        return self


class IpPort(ArmModel):
    """A port exposed on the group's IP address."""

    port: Port
    """The port number (1-65535)."""
    protocol: Protocol | None = None
    """TCP (the default) or UDP."""


def _check_dns_label(label: str) -> str:
    if not DNS_LABEL_RE.match(label):
        raise fail(
            "dns_name_label",
            f"DNS name label {shown(label)} is invalid: use 5-63 lowercase letters, digits and '-', "
            "starting with a letter and ending with a letter or digit",
        )
    return label


def _ip_ports(value: tuple[IpPort, ...]) -> tuple[IpPort, ...]:
    # Azure: code MissingIpAddressPorts, "The ports in the 'ipAddress' of container group 'xxx' cannot be
    # empty." (hashicorp/terraform-provider-azurerm#1697), for a private address too (#11102, #28759).
    if not value:
        raise fail(
            "too_short",
            "an IP address exposes at least one port: list it, e.g. [{port: 80}], or remove ipAddress "
            + azure_code("MissingIpAddressPorts"),
        )
    return value


class IpAddress(ArmModel):
    """The group's IP address: public (optionally with a DNS name label) or private in a virtual network."""

    _readonly: ClassVar[frozenset[str]] = frozenset({"ip", "fqdn"})

    ports: Annotated[tuple[IpPort, ...], AfterValidator(_ip_ports), Field(json_schema_extra={"minItems": 1})]
    """Ports exposed on the IP address."""
    type_: IpAddressType = Field(alias="type")
    """Public or Private."""
    dns_name_label: Annotated[str, AfterValidator(_check_dns_label)] | None = None
    """Public only: the DNS label, giving <label>.<region>.azurecontainer.io."""
    auto_generated_domain_name_label_scope: DnsNameLabelScope | None = None
    """Who may reuse the DNS name label (Unsecure by default)."""

    @model_validator(mode="after")
    def _label(self) -> IpAddress:
        if self.dns_name_label is not None and self.type_ != "Public":
            raise fail(
                "dns_name_label",
                "a DNS name label needs a public IP address: set type: Public or remove dnsNameLabel",
            )
        return self


class LogAnalytics(ArmModel):
    """Send logs (and events) to a Log Analytics workspace."""

    _secret_pairs: ClassVar[dict[str, str]] = {"workspace_key": "workspace_key_from"}
    # The spec marks workspaceResourceId x-ms-secret: a GET does not return it.
    _hidden: ClassVar[frozenset[str]] = frozenset({"workspace_key", "workspace_resource_id"})

    workspace_id: str = Field(min_length=1)
    """The workspace ID."""
    workspace_key: SecretStr | None = None
    """The workspace key, literally (prefer `workspaceKeyFrom`)."""
    workspace_key_from: SecretRef | None = None
    """Ours: where the workspace key comes from, `{env: NAME}` or `{file: PATH}`."""
    log_type: LogType | None = None
    """ContainerInsights or ContainerInstanceLogs."""
    metadata: dict[str, Text] | None = None
    """Metadata for Log Analytics."""
    workspace_resource_id: str | None = None
    """The workspace's resource ID."""

    @model_validator(mode="after")
    def _key(self) -> LogAnalytics:
        _one_source(self, "workspace_key", "workspace_key_from", "workspaceKey", "workspaceKeyFrom")
        if self.workspace_key is None and self.workspace_key_from is None:
            raise fail(
                "workspace_key", "logAnalytics needs 'workspaceKey' or 'workspaceKeyFrom: {env: NAME}'"
            )
        return self


class Diagnostics(ArmModel):
    """Diagnostic settings of the group."""

    log_analytics: LogAnalytics | None = None
    """Log Analytics settings."""


class SubnetId(ArmModel):
    """A subnet the group joins (the subnet must be delegated to Microsoft.ContainerInstance)."""

    id: str = Field(min_length=1)
    """The subnet's resource ID."""
    name: str | None = None
    """A friendly name for the subnet."""


class DnsConfiguration(ArmModel):
    """DNS settings of the group."""

    name_servers: Annotated[tuple[str, ...], *NonEmpty]
    """DNS servers."""
    search_domains: str | None = None
    """Search domains, separated by spaces."""
    options: str | None = None
    """resolv.conf options, e.g. ndots:2."""


class EncryptionProperties(ArmModel):
    """Encrypt the group's deployment data with a customer-managed key."""

    vault_base_url: str = Field(min_length=1)
    """The key vault's URL."""
    key_name: str = Field(min_length=1)
    """The key's name."""
    key_version: str = Field(min_length=1)
    """The key's version."""
    identity: str | None = None
    """The managed identity that reads the key."""


class ExtensionProperties(ArmModel):
    """Settings of a virtual-kubelet extension."""

    _hidden: ClassVar[frozenset[str]] = frozenset({"protected_settings"})

    extension_type: str = Field(min_length=1)
    """The extension's type, e.g. kube-proxy."""
    version: Text = Field(min_length=1)
    """The extension's version."""
    settings: dict[str, Any] | None = None
    """Settings."""
    protected_settings: Secret[dict[str, Any]] | None = None
    """Secret settings (never returned by a GET)."""


class Extension(ArmModel):
    """An extension sidecar used by virtual kubelet."""

    name: str = Field(min_length=1)
    """The extension's name."""
    properties: ExtensionProperties
    """Type, version and settings of the extension."""


class ConfidentialComputeProperties(ArmModel):
    """Settings of a confidential group (sku: Confidential)."""

    cce_policy: str | None = None
    """Base64 of the confidential computing enforcement policy."""


class UserAssignedIdentity(ArmModel):
    """A user-assigned identity; its IDs are read-only."""

    _readonly: ClassVar[frozenset[str]] = frozenset({"principalid", "clientid"})


USER_IDENTITY_RE = re.compile(
    r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.managedidentity/userassignedidentities/[^/]+\Z",
    re.IGNORECASE,
)


class Identity(ArmModel):
    """Managed identities of the group."""

    _readonly: ClassVar[frozenset[str]] = frozenset({"principalid", "tenantid"})

    type_: IdentityType = Field(alias="type")
    """SystemAssigned, UserAssigned, 'SystemAssigned, UserAssigned' or None."""
    user_assigned_identities: dict[str, UserAssignedIdentity] | None = None
    """Resource IDs of user-assigned identities, each mapped to {}."""

    @model_validator(mode="after")
    def _ids(self) -> Identity:
        ids = self.user_assigned_identities or {}
        wants_user = "UserAssigned" in self.type_
        if wants_user and not ids:
            raise fail(
                "identity",
                f"identity type {shown(self.type_)} needs userAssignedIdentities: "
                "map each identity's resource ID to {}",
            )
        if not wants_user and ids:
            raise fail(
                "identity",
                f"identity type {shown(self.type_)} takes no userAssignedIdentities: use 'UserAssigned' or "
                "'SystemAssigned, UserAssigned', or remove them",
            )
        for rid in ids:
            if not USER_IDENTITY_RE.match(rid):
                raise fail(
                    "identity",
                    f"{shown(rid)} is not a user-assigned identity resource ID: use "
                    "/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>",
                )
        return self


def each(items: Iterable[Any] | None) -> Iterable[tuple[int, Any]]:
    return enumerate(items or ())
