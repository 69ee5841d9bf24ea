"""The desired container group: the manifest format of DESIGN.md section 3 as pydantic v2 models.

CONTRACT (names and signatures everyone relies on):

- `GroupManifest`: one validated manifest document. Attributes `name`, `resource_group`, `location`,
  `tags: dict[str, str]`, `policy: ReconcilePolicy` (key `reconcile`), `zones`, `identity`, `properties`
  (`reconciler.model.aci` sub-models), `api_version` and `type_` (accepted, never sent).
- `GroupManifest.to_arm_body(*, reveal_secrets: bool) -> dict[str, Any]`: the ARM request body (camelCase,
  canonical enum case, numbers as JSON numbers): `location`, `tags`, `zones`, `identity`, `properties`.
  With `reveal_secrets=False` every secret field is left out, exactly as a GET leaves it out; with
  `reveal_secrets=True` it is the PUT body (raises `UnresolvedSecretError` while a reference is unresolved).
- `GroupManifest.secret_values() -> dict[str, str]`: resolved secret values keyed by the JSON Pointer of the
  field in the ARM body (keyed lists addressed by key, see `reconciler.model.plan.FieldChange`).
- `GroupManifest.secret_refs() -> list[tuple[str, SecretRef]]`,
  `GroupManifest.resolve_secrets(resolver: Callable[[SecretRef], str]) -> GroupManifest`,
  `GroupManifest.unresolved_secrets() -> list[str]` and `GroupManifest.literal_secrets() -> list[str]`
  (pointers of secrets written into the manifest, which the loader warns about).
- `GroupManifest.from_arm(body, *, resource_group, name) -> GroupManifest`: lenient parse of a live group
  (for `reconcile export`); `GroupManifest.to_manifest_dict() -> dict[str, Any]`: the manifest document.
- `parse_manifest(data: Mapping[str, Any]) -> GroupManifest`: validates one document; raises
  `pydantic.ValidationError` whose `loc` tuples are paths into `data` (keys as written there), so the loader
  can map them to lines, and whose messages say what is wrong and how to fix it.

Called by the source loader (which builds it), planning (which diffs it), execution (which PUTs it) and the
CLI (`reconcile export`, `reconcile schema`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from reconciler.model import pointer
from reconciler.model.aci import (
    GROUP_NAME_RE,
    ApiVersion,
    ArmModel,
    ConfidentialComputeProperties,
    Container,
    ContainerProperties,
    Diagnostics,
    DnsConfiguration,
    EncryptionProperties,
    EnvironmentVariable,
    Extension,
    Identity,
    ImageRegistryCredential,
    InitContainer,
    IpAddress,
    NonEmpty,
    OsType,
    Priority,
    ResourceLimits,
    ResourceRequests,
    ResourceType,
    RestartPolicy,
    SecretRef,
    Sku,
    SubnetId,
    Text,
    UnknownKey,
    Volume,
    azure_code,
    each,
    fail,
)
from reconciler.model.compact import updated
from reconciler.model.job import JobPolicy
from reconciler.model.text import shown

__all__ = [
    "GroupManifest",
    "GroupProperties",
    "ReconcilePolicy",
    "SecretRef",
    "UnresolvedSecretError",
    "parse_manifest",
]

# Azure's limits for one container group ("Resource availability & quota limits for ACI", default quotas:
# containers per container group 60, volumes per container group 20).
MAX_CONTAINERS = 60
MAX_VOLUMES = 20
# Tags ("Use tags to organize your Azure resources", limitations): at most 50 per resource, names up to 512
# characters, values up to 256, and names without < > % & \ ? / (and ':' '*' '+' for some resource types).
MAX_TAGS = 50
TAG_NAME_FORBIDDEN = set("<>%&\\?/*+:")
# Resource group names: 1-90 characters, letters, digits, '_', '-', '.', '(' and ')' (Unicode letters too),
# not ending with '.' (Azure naming rules, Microsoft.Resources/resourcegroups).
RESOURCE_GROUP_RE = re.compile(r"^[-\w._()]{1,90}\Z")

SECRET_KEYS = frozenset(
    {"securevalue", "password", "storageaccountkey", "workspacekey", "secret", "protectedsettings"}
)


# (JSON Pointer, owning model, value field, reference field or None) of one secret slot of a manifest.
SecretSlot = tuple[str, ArmModel, str, str | None]
# The two kinds of container whose environment may hold secret references.
_C = TypeVar("_C", Container, InitContainer)
_T = TypeVar("_T")


def _each(items: tuple[_T, ...] | None, fn: Callable[[_T], _T]) -> tuple[_T, ...] | None:
    """`items` with `fn` applied to each; `items` itself (None too) when `fn` gave every one back as it was:
    a copy is made only on the way to what changed (`GroupManifest.resolve_secrets`)."""
    if not items:
        return items
    out = tuple(map(fn, items))
    return items if all(a is b for a, b in zip(out, items, strict=True)) else out


class UnresolvedSecretError(ValueError):
    """A secret reference has no value yet: the loader must resolve it before the body is sent."""

    def __init__(self, pointers: list[str]) -> None:
        self.pointers = pointers
        super().__init__(
            "secret references not resolved (resolve them with GroupManifest.resolve_secrets): "
            + ", ".join(pointers)
        )


def _tags(value: Any) -> Any:
    # `tags: null` is what ARM returns for a group without tags, and what exports contain.
    return {} if value is None else value


def _check_ignore_pointer(p: str) -> str:
    if p == "":
        raise fail("ignore_pointer", "an empty pointer would ignore the whole group: use 'suspend: true'")
    try:
        pointer.check(p)
    except pointer.PointerSyntaxError as exc:
        raise fail("ignore_pointer", str(exc)) from None
    return p


class ReconcilePolicy(ArmModel):
    """Ours: the `reconcile:` block, this reconciler's policy for the group."""

    model_config = ConfigDict(title="ReconcilePolicy")

    fail_if_exists: bool = True
    """When a group of this name exists and this reconciler does not manage it: true reports a conflict and
    touches nothing (as Airflow's fail_if_exists); false adopts it."""
    recreate: Annotated[
        Literal["auto", "never"], BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)
    ] = "auto"
    """auto: replace (delete, create) when a field changed that ACI cannot update in place; never: report
    the replacement and leave the group as it is."""
    prune: bool = True
    """May this group be deleted when its manifest goes away."""
    suspend: bool = False
    """Plan but never change this group."""
    ignore: tuple[Annotated[str, AfterValidator(_check_ignore_pointer)], ...] = ()
    """JSON Pointers into the ARM body whose live value is never diffed, keyed lists addressed by key, e.g.
    /properties/containers/web/properties/image."""
    job: JobPolicy | None = None
    """Makes the group a job template (restartPolicy Never or OnFailure): plain applies never start it;
    `reconcile run` and the daemon's schedule, runOnChange and history do (DESIGN.md section 12)."""


def _check_group_name(name: str) -> str:
    if not GROUP_NAME_RE.match(name):
        raise fail(
            "group_name",
            f"container group name {shown(name)} is invalid: use 1-63 letters, digits and '-', "
            "not starting or ending with '-' and without '--' (for example 'web-prod')",
        )
    return name


def _check_resource_group(rg: str) -> str:
    if not RESOURCE_GROUP_RE.match(rg) or rg.endswith("."):
        raise fail(
            "resource_group_name",
            f"resource group name {shown(rg)} is invalid: use 1-90 letters, digits, '_', '-', '.', '(' "
            "or ')', not ending with '.'",
        )
    return rg


class GroupProperties(ArmModel):
    """The container group's properties (ARM `properties`)."""

    _readonly: ClassVar[frozenset[str]] = frozenset(
        {"provisioningstate", "instanceview", "isCustomProvisioningTimeout".lower()}
    )

    containers: Annotated[tuple[Container, ...], *NonEmpty]
    """The containers of the group (at least one, at most 60)."""
    init_containers: tuple[InitContainer, ...] | None = None
    """Containers that run to completion, in order, before the containers start."""
    image_registry_credentials: tuple[ImageRegistryCredential, ...] | None = None
    """Credentials for private registries."""
    restart_policy: RestartPolicy | None = None
    """Always (the default), OnFailure or Never."""
    ip_address: IpAddress | None = None
    """The group's IP address and exposed ports."""
    os_type: OsType
    """Linux or Windows."""
    volumes: tuple[Volume, ...] | None = None
    """Volumes the containers can mount."""
    diagnostics: Diagnostics | None = None
    """Log Analytics settings."""
    subnet_ids: tuple[SubnetId, ...] | None = None
    """Subnets (of a virtual network) the group joins."""
    dns_config: DnsConfiguration | None = None
    """DNS settings."""
    sku: Sku | None = None
    """Standard (the default), Dedicated or Confidential."""
    encryption_properties: EncryptionProperties | None = None
    """Customer-managed key encryption."""
    extensions: tuple[Extension, ...] | None = None
    """Extension sidecars used by virtual kubelet."""
    confidential_compute_properties: ConfidentialComputeProperties | None = None
    """Confidential group settings (sku: Confidential)."""
    priority: Priority | None = None
    """Regular or Spot."""


class GroupManifest(ArmModel):
    """A container group manifest: the ACI YAML of `az container create --file`, plus `resourceGroup` and
    `reconcile`. Keys are accepted in any case, as ARM accepts them."""

    model_config = ConfigDict(title="ACI container group manifest")

    _readonly: ClassVar[frozenset[str]] = frozenset({"id", "etag", "systemdata", "managedby"})
    _ours: ClassVar[frozenset[str]] = frozenset({"api_version", "type_", "name", "resource_group", "policy"})

    api_version: ApiVersion | None = None
    """The api-version the file was written for (accepted for compatibility; 2023-05-01 is always used)."""
    type_: ResourceType | None = Field(default=None, alias="type")
    """Microsoft.ContainerInstance/containerGroups (accepted for compatibility)."""
    name: Annotated[str, AfterValidator(_check_group_name)]
    """The group's name: 1-63 letters, digits and '-', no leading, trailing or double '-' (case-insensitive
    in Azure, sent as written)."""
    resource_group: Annotated[str, AfterValidator(_check_resource_group)]
    """Ours: the resource group (or set a directory default, or --resource-group)."""
    location: str = Field(min_length=1)
    """The Azure region, e.g. westeurope."""
    tags: Annotated[dict[str, Text], BeforeValidator(_tags)] = Field(default_factory=dict)
    """Tags of the group."""
    zones: tuple[Text, ...] | None = None
    """The availability zone (one), e.g. ['1']."""
    identity: Identity | None = None
    """Managed identities of the group."""
    properties: GroupProperties
    """The group's properties."""
    policy: ReconcilePolicy = Field(default_factory=ReconcilePolicy, alias="reconcile")
    """Ours: policy of this reconciler for this group."""

    # -- validation -----------------------------------------------------------------------------------------

    @model_validator(mode="after")
    def _rules(self) -> GroupManifest:
        issues = list(_issues(self))
        if issues:
            text = "; ".join(f"{'.'.join(str(p) for p in loc)}: {msg}" for loc, msg in issues)
            raise PydanticCustomError("manifest_rules", "{text}", {"text": text, "issues": tuple(issues)})
        return self

    # -- secrets --------------------------------------------------------------------------------------------

    def secret_slots(self) -> tuple[SecretSlot, ...]:
        """Every secret slot in use, to be kept with this very manifest and given back to `secret_values`
        (its owners are this manifest's own models): a daemon reads a kept group's values on every pass."""
        return tuple(self._secret_slots())

    def _secret_slots(self) -> Iterator[SecretSlot]:
        """(pointer, owner, value field, reference field or None) of every secret slot that is in use."""
        props = self.properties
        base = ("properties",)
        for kind, _, c in _all_containers(props):
            for env in c.properties.environment_variables or ():
                if env.secure_value is not None or env.secure_value_from is not None:
                    p = pointer.join(
                        (
                            *base,
                            kind,
                            c.name,
                            "properties",
                            "environmentVariables",
                            env.name,
                            "secureValue",
                        )
                    )
                    yield p, env, "secure_value", "secure_value_from"
        for cred in props.image_registry_credentials or ():
            if cred.password is not None or cred.password_from is not None:
                yield (
                    pointer.join((*base, "imageRegistryCredentials", cred.server, "password")),
                    cred,
                    "password",
                    ("password_from"),
                )
        for vol in props.volumes or ():
            af = vol.azure_file
            if af is not None and (
                af.storage_account_key is not None or af.storage_account_key_from is not None
            ):
                p = pointer.join((*base, "volumes", vol.name, "azureFile", "storageAccountKey"))
                yield p, af, "storage_account_key", "storage_account_key_from"
        la = props.diagnostics.log_analytics if props.diagnostics else None
        if la is not None:
            yield (
                pointer.join((*base, "diagnostics", "logAnalytics", "workspaceKey")),
                la,
                "workspace_key",
                ("workspace_key_from"),
            )

    def secret_refs(self) -> list[tuple[str, SecretRef]]:
        """Every `...From` reference, with the JSON Pointer of the secret it stands for."""
        out: list[tuple[str, SecretRef]] = []
        for p, owner, _, ref_field in self._secret_slots():
            ref = getattr(owner, ref_field) if ref_field else None
            if isinstance(ref, SecretRef):
                out.append((p, ref))
        for vol in self.properties.volumes or ():
            for file_name, file_ref in (vol.secret_from or {}).items():
                out.append((_secret_file_pointer(vol.name, file_name), file_ref))
        return out

    def unresolved_secrets(self) -> list[str]:
        """Pointers of references that have no value yet."""
        out = [p for p, owner, value_field, _ in self._secret_slots() if getattr(owner, value_field) is None]
        for vol in self.properties.volumes or ():
            out.extend(_secret_file_pointer(vol.name, f) for f in vol.unresolved_files())
        return out

    def literal_secrets(self) -> list[str]:
        """Pointers of secrets written into the manifest itself rather than referenced (`secureValue`,
        `password`, `storageAccountKey`, `workspaceKey`, secret volume files, protected settings): allowed,
        and what the loader warns about."""
        out = [
            p
            for p, owner, _, ref_field in self._secret_slots()
            if ref_field is not None and getattr(owner, ref_field) is None
        ]
        props = self.properties
        for vol in props.volumes or ():
            out.extend(
                pointer.join(("properties", "volumes", vol.name, "secret", f)) for f in vol.secret or {}
            )
        for ext in props.extensions or ():
            if ext.properties.protected_settings is not None:
                out.append(
                    pointer.join(("properties", "extensions", ext.name, "properties", "protectedSettings"))
                )
        return out

    def resolve_secrets(self, resolver: Callable[[SecretRef], str]) -> GroupManifest:
        """A copy in which every reference has its value (from `resolver`); the reference is kept, so that
        `to_manifest_dict()` still writes the reference and never the value. `self` when it has none. Only
        the models on the way to a reference are copied: a daemon does this for each group on every pass."""
        props = self.properties

        def env(e: EnvironmentVariable) -> EnvironmentVariable:
            if e.secure_value_from is None:
                return e
            return updated(e, {"secure_value": SecretStr(resolver(e.secure_value_from))})

        def container(c: _C) -> _C:
            envs = c.properties.environment_variables
            resolved = _each(envs, env)
            if resolved is envs:
                return c
            return updated(c, {"properties": updated(c.properties, {"environment_variables": resolved})})

        def credential(c: ImageRegistryCredential) -> ImageRegistryCredential:
            if c.password_from is None:
                return c
            return updated(c, {"password": SecretStr(resolver(c.password_from))})

        def volume(v: Volume) -> Volume:
            af = v.azure_file
            if af is not None and af.storage_account_key_from is not None:
                key = SecretStr(resolver(af.storage_account_key_from))
                v = updated(v, {"azure_file": updated(af, {"storage_account_key": key})})
            if v.secret_from:
                v = v.with_resolved({f: resolver(ref) for f, ref in v.secret_from.items()})
            return v

        update: dict[str, Any] = {}
        for name, was, now in (
            ("containers", props.containers, _each(props.containers, container)),
            ("init_containers", props.init_containers, _each(props.init_containers, container)),
            (
                "image_registry_credentials",
                props.image_registry_credentials,
                _each(props.image_registry_credentials, credential),
            ),
            ("volumes", props.volumes, _each(props.volumes, volume)),
        ):
            if now is not was:
                update[name] = now
        diagnostics = props.diagnostics
        la = diagnostics.log_analytics if diagnostics else None
        if diagnostics is not None and la is not None and la.workspace_key_from is not None:
            update["diagnostics"] = updated(
                diagnostics,
                {"log_analytics": updated(la, {"workspace_key": SecretStr(resolver(la.workspace_key_from))})},
            )
        if not update:
            return self
        return updated(self, {"properties": updated(props, update)})

    def secret_values(
        self,
        resolver: Callable[[SecretRef], str] | None = None,
        *,
        slots: tuple[SecretSlot, ...] | None = None,
    ) -> dict[str, str]:
        """Resolved secret values keyed by the JSON Pointer of the field in the ARM body: secure environment
        values, registry passwords, storage account keys, secret volume files, the workspace key (and the
        write-only workspace resource ID) and extensions' protected settings (as canonical JSON).

        With `resolver`, a reference without its value takes the resolver's: what
        `resolve_secrets(resolver).secret_values()` gives, without the copy (a daemon reads the values of
        the groups it keeps on every pass, and copies only those it writes); `slots`: this manifest's
        `secret_slots()`, when kept."""
        out: dict[str, str] = {}
        for p, owner, value_field, ref_field in self._secret_slots() if slots is None else slots:
            value = getattr(owner, value_field)
            if value is not None:
                out[p] = value.get_secret_value()
            elif resolver is not None and ref_field is not None and getattr(owner, ref_field) is not None:
                out[p] = resolver(getattr(owner, ref_field))
            else:  # a reference without its value yet
                raise UnresolvedSecretError(self.unresolved_secrets())
        props = self.properties
        for vol in props.volumes or ():
            if resolver is None and vol.secret_from and vol.unresolved_files():
                raise UnresolvedSecretError(self.unresolved_secrets())
            for file_name, content in vol.resolved_files(resolver).items():
                out[_secret_file_pointer(vol.name, file_name)] = content
        la = props.diagnostics.log_analytics if props.diagnostics else None
        if la is not None and la.workspace_resource_id is not None:
            out[pointer.join(("properties", "diagnostics", "logAnalytics", "workspaceResourceId"))] = (
                la.workspace_resource_id
            )
        for ext in props.extensions or ():
            ps = ext.properties.protected_settings
            if ps is not None:
                out[
                    pointer.join(("properties", "extensions", ext.name, "properties", "protectedSettings"))
                ] = json.dumps(ps.get_secret_value(), sort_keys=True, separators=(",", ":"))
        return out

    # -- output ---------------------------------------------------------------------------------------------

    def to_arm_body(self, *, reveal_secrets: bool) -> dict[str, Any]:
        """The ARM body of a PUT (`reveal_secrets=True`) or as a GET shows it (`reveal_secrets=False`)."""
        if reveal_secrets:
            unresolved = self.unresolved_secrets()
            if unresolved:
                raise UnresolvedSecretError(unresolved)
        body = self.arm(reveal_secrets=reveal_secrets)
        body.setdefault("tags", {})
        return body

    def to_manifest_dict(self) -> dict[str, Any]:
        """The manifest document of this group: `parse_manifest(m.to_manifest_dict()) == m` for a manifest
        whose references are unresolved. References are written as references; a literal secret (one that was
        written into the manifest) is written back as it was."""
        return self.manifest()

    @classmethod
    def from_arm(cls, body: Mapping[str, Any], *, resource_group: str, name: str) -> GroupManifest:
        """A manifest of a live group (GET or list body). Read-only and unknown fields are dropped; secrets,
        which a GET never returns, become `{env: ...}` references named after their place, for the user to
        provide; a secret volume, whose file names a GET does not return either, becomes `secretFrom: {}`,
        which fails validation until its files are named."""
        data = _with_placeholders(body)
        data["name"] = name
        data["resourceGroup"] = resource_group
        data.pop("type", None)
        return cls.model_validate(data, context={"lenient": True})


def _secret_file_pointer(volume: str, file_name: str) -> str:
    return pointer.join(("properties", "volumes", volume, "secret", file_name))


# ---------------------------------------------------------------------------------------------------------
# Rules that span several objects. Each issue carries its loc relative to the document.

Loc = tuple[str | int, ...]


def _issues(m: GroupManifest) -> Iterator[tuple[Loc, str]]:
    yield from _tag_issues(m.tags)
    if m.zones is not None and len(m.zones) > 1:
        yield ("zones",), "ACI places a container group in one availability zone: list at most one zone"

    props = m.properties
    P: Loc = ("properties",)
    if m.policy.job is not None and (props.restart_policy or "Always") == "Always":
        yield (
            ("reconcile", "job"),
            "a job runs to completion: set properties.restartPolicy to Never (run once) or OnFailure "
            "(restart a failing container), not Always",
        )
    if len(props.containers) > MAX_CONTAINERS:
        yield (
            (*P, "containers"),
            f"{len(props.containers)} containers: ACI allows at most {MAX_CONTAINERS} per group",
        )
    if props.volumes is not None and len(props.volumes) > MAX_VOLUMES:
        yield (*P, "volumes"), f"{len(props.volumes)} volumes: ACI allows at most {MAX_VOLUMES} per group"

    # Names of containers and init containers share one namespace (both are addressed by name in the API).
    seen: dict[str, Loc] = {}
    for kind, i, c in _all_containers(props):
        loc = (*P, kind, i, "name")
        if c.name in seen:
            yield (
                loc,
                f"container name {shown(c.name)} is used twice (first at {_dotted(seen[c.name])}): "
                "rename one",
            )
        else:
            seen[c.name] = loc

    volumes = {v.name for v in props.volumes or ()}
    # "error code \"DuplicateVolumes\": Duplicate volumes 'kube-api-access-sndws' are found."
    # (virtual-kubelet/azure-aci#303, kubeflow/pipelines#8318).
    yield from _duplicates(
        (*P, "volumes"), [v.name for v in props.volumes or ()], "volume name", code="DuplicateVolumes"
    )
    yield from _duplicates(
        (*P, "imageRegistryCredentials"),
        [c.server for c in props.image_registry_credentials or ()],
        "registry server",
        key="server",
    )
    yield from _duplicates((*P, "extensions"), [e.name for e in props.extensions or ()], "extension name")

    totals = _total_requests(props.containers)
    has_gpu = False
    for kind, i, c in _all_containers(props):
        cp = c.properties
        base: Loc = (*P, kind, i, "properties")
        yield from _duplicates(
            (*base, "environmentVariables"),
            [e.name for e in cp.environment_variables or ()],
            "environment variable",
        )
        yield from _duplicates(
            (*base, "volumeMounts"), [v.name for v in cp.volume_mounts or ()], "volume mount"
        )
        yield from _duplicates(
            (*base, "volumeMounts"),
            [v.mount_path for v in cp.volume_mounts or ()],
            "mount path",
            key="mountPath",
        )
        for j, vm in each(cp.volume_mounts):
            if vm.name not in volumes:
                declared = ", ".join(sorted(volumes)) or "none"
                yield (
                    (*base, "volumeMounts", j, "name"),
                    (
                        f"volume mount {shown(vm.name)} refers to no volume of the group: declare it under "
                        f"properties.volumes (declared: {declared})"
                    ),
                )
        if isinstance(cp, ContainerProperties):
            req = cp.resources.requests
            lim = cp.resources.limits
            if req.gpu is not None or (lim is not None and lim.gpu is not None):
                has_gpu = True
            if lim is not None:
                yield from _limit_issues((*base, "resources", "limits"), req, lim, totals)

    # GPU deployments "are only available for Linux container groups" ("Resource availability & quota limits
    # for ACI"). The same page says they are not supported in a virtual network, but Microsoft's own
    # ContainerGroupsCreateOrUpdate example combines GPUs with subnetIds, so that is left to Azure to judge.
    if has_gpu and props.os_type != "Linux":
        yield (*P, "osType"), "GPU resources are available only to Linux container groups: set osType: Linux"
    # "Multi-container groups currently support only Linux containers" ("Container groups in ACI").
    if props.os_type == "Windows" and len(props.containers) > 1:
        yield (
            (*P, "containers"),
            ("a Windows container group has exactly one container (multi-container groups are Linux only)"),
        )
    if props.os_type == "Windows" and props.sku == "Confidential":
        yield (*P, "sku"), "confidential container groups are Linux only: set osType: Linux or another sku"
    ccp = props.confidential_compute_properties
    if ccp is not None and ccp.cce_policy and props.sku != "Confidential":
        yield (*P, "confidentialComputeProperties"), "a ccePolicy needs sku: Confidential"

    ip = props.ip_address
    if ip is not None:
        if ip.type_ == "Private" and not props.subnet_ids:
            yield (
                (*P, "ipAddress", "type"),
                ("a private IP address lives in a virtual network: add subnetIds, or use type: Public"),
            )
        seen_ports: dict[tuple[int, str], int] = {}
        for j, port in enumerate(ip.ports):
            key = (port.port, port.protocol or "TCP")
            if key in seen_ports:
                yield (*P, "ipAddress", "ports", j, "port"), f"port {port.port}/{key[1]} is listed twice"
            seen_ports[key] = j
        yield from _unreferenced_ports(props, ip)

    ident = m.identity
    for i, cred in each(props.image_registry_credentials):
        # A user-assigned identity that pulls images must be one of the group's identities.
        if cred.identity is not None and cred.identity.lower().startswith("/subscriptions/"):
            known = {k.lower() for k in (ident.user_assigned_identities or {})} if ident else set()
            if cred.identity.lower() not in known:
                yield (
                    (*P, "imageRegistryCredentials", i, "identity"),
                    (
                        f"registry identity {shown(cred.identity)} is not one of the group's user-assigned "
                        "identities: add it under identity.userAssignedIdentities"
                    ),
                )


def _amounts(
    req: ResourceRequests, lim: ResourceLimits
) -> Iterator[tuple[str, Loc, float | None, float | None]]:
    """(what, key under `limits`, the container's request, its limit) for cpu, memoryInGB and GPU count."""
    yield "cpu", ("cpu",), req.cpu, lim.cpu
    yield "memoryInGB", ("memoryInGB",), req.memory_in_gb, lim.memory_in_gb
    yield (
        "GPU count",
        ("gpu", "count"),
        None if req.gpu is None else req.gpu.count,
        None if lim.gpu is None else lim.gpu.count,
    )


def _total_requests(containers: tuple[Container, ...]) -> dict[str, float]:
    """The group's total request of each amount: what ACI sizes the group by. Rounded to the amounts' steps
    (0.01 cpu, 0.1 GB), so that a sum of floats compares exactly with a limit written with the same step."""
    reqs = [c.properties.resources.requests for c in containers]
    return {
        "cpu": round(sum(r.cpu for r in reqs), 2),
        "memoryInGB": round(sum(r.memory_in_gb for r in reqs), 1),
        "GPU count": float(sum(r.gpu.count for r in reqs if r.gpu is not None)),
    }


def _limit_issues(
    base: Loc, req: ResourceRequests, lim: ResourceLimits, totals: dict[str, float]
) -> Iterator[tuple[Loc, str]]:
    """A limit lies between the container's own request and the group's total request. Both bounds are ACI's
    rules: "The 'Cpu' limit value must be greater than or equal to the request value"
    (ResourceLimitsLessThanRequests, virtual-kubelet/virtual-kubelet#143 and docker-archive/compose-cli#357
    for 'MemoryInGB'), and "The 'Cpu' limit '2' in container 'nontls' is greater than the total request '1'
    of container group" (ContainerLimitGreaterThanContainerGroupTotalRequest, MicrosoftDocs/azure-docs#29780,
    docker-archive/compose-cli#357), as "Container groups in ACI" puts it: "The maximum resource limit you
    can set is the total resources allocated to the group". A GPU limit is held to the same two bounds as
    the other amounts: that page states them for every resource."""
    for what, key, request, limit in _amounts(req, lim):
        if limit is None:
            continue
        total = totals[what]
        if request is not None and limit < request:
            yield (
                (*base, *key),
                (
                    f"{what} limit {limit:g} is below the request {request:g} of this container: raise the "
                    f"limit to at least {request:g} or lower the request "
                    + azure_code("ResourceLimitsLessThanRequests")
                ),
            )
        elif limit > total:
            fix = (
                f"lower the limit to at most {total:g} or raise a request"
                if total
                else "remove the limit or give a container a GPU request"
            )
            yield (
                (*base, *key),
                (
                    f"{what} limit {limit:g} exceeds the group's total {what} request {total:g} (the sum of "
                    f"its containers' requests): {fix} "
                    + azure_code("ContainerLimitGreaterThanContainerGroupTotalRequest")
                ),
            )


def _unreferenced_ports(props: GroupProperties, ip: IpAddress) -> Iterator[tuple[Loc, str]]:
    """Every port of the group's IP address is a port of one of its containers. Azure: code
    UnreferencedIpAddressPorts, "Following ports '443,80' in the 'ipAddress' are not used by any container in
    container group 'atlantis-container-group'." (hashicorp/terraform-provider-azurerm#5091; reported again
    in 2024 on #11102). Azure's message names port numbers only, so a port counts as used when any container
    lists its number, whatever the protocol: nothing is refused here that the record does not show refused."""
    used = {p.port for c in props.containers for p in c.properties.ports or ()}
    for j, port in enumerate(ip.ports):
        if port.port not in used:
            yield (
                ("properties", "ipAddress", "ports", j, "port"),
                (
                    f"port {port.port} of the group's IP address is not a port of any container: add "
                    f"{{port: {port.port}}} to the ports of the container that listens on it, or remove it "
                    "here " + azure_code("UnreferencedIpAddressPorts")
                ),
            )


def _all_containers(props: GroupProperties) -> Iterator[tuple[str, int, Container | InitContainer]]:
    for i, c in enumerate(props.containers):
        yield "containers", i, c
    for i, ic in enumerate(props.init_containers or ()):
        yield "initContainers", i, ic


def _tag_issues(tags: dict[str, str]) -> Iterator[tuple[Loc, str]]:
    if len(tags) > MAX_TAGS:
        yield ("tags",), f"{len(tags)} tags: Azure allows at most {MAX_TAGS} per resource"
    for k, v in tags.items():
        if not k or len(k) > 512 or TAG_NAME_FORBIDDEN & set(k):
            yield (
                ("tags", k),
                (f"tag name {shown(k)} is invalid: use 1-512 characters without < > % & \\ ? / * + :"),
            )
        if len(v) > 256:
            yield ("tags", k), f"tag {shown(k)} has a value of {len(v)} characters: Azure allows at most 256"


def _duplicates(
    base: Loc, names: list[str], what: str, key: str = "name", code: str | None = None
) -> Iterator[tuple[Loc, str]]:
    first: dict[str, int] = {}
    for i, n in enumerate(names):
        if n in first:
            coded = f" {azure_code(code)}" if code else ""
            yield (
                (*base, i, key),
                f"{what} {shown(n)} is used twice (also at index {first[n]}): each must be unique{coded}",
            )
        else:
            first[n] = i


def _dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc)


# ---------------------------------------------------------------------------------------------------------
# Export: placeholders for the secrets a GET leaves out


def _env_name(*parts: str) -> str:
    name = "_".join(re.sub(r"[^A-Za-z0-9]+", "_", p).strip("_") for p in parts if p).upper()
    return name if not name[:1].isdigit() else "_" + name


def _with_placeholders(body: Mapping[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = _copy(body)
    props = data.get("properties")
    if not isinstance(props, dict):
        return data
    for kind in ("containers", "initContainers"):
        for c in props.get(kind) or ():
            cprops = c.get("properties") if isinstance(c, dict) else None
            for env in (cprops or {}).get("environmentVariables") or ():
                if isinstance(env, dict) and "value" not in env and "secureValue" not in env:
                    env["secureValueFrom"] = {
                        "env": _env_name(str(c.get("name", "")), str(env.get("name", "")))
                    }
    for cred in props.get("imageRegistryCredentials") or ():
        if isinstance(cred, dict) and cred.get("username") and "password" not in cred:
            cred["passwordFrom"] = {"env": _env_name(str(cred.get("server", "")), "password")}
    for vol in props.get("volumes") or ():
        secret = vol.get("secret") if isinstance(vol, dict) else None
        if isinstance(secret, dict) and not any(secret.values()):
            # A GET returns a secret volume without its files (`secret: {}`, or names without values). An
            # empty `secretFrom` fails validation until each file is given: never a PUT of an empty volume.
            del vol["secret"]
            vol["secretFrom"] = {str(f): {"env": _env_name(str(vol.get("name", "")), str(f))} for f in secret}
        af = vol.get("azureFile") if isinstance(vol, dict) else None
        if isinstance(af, dict) and "storageAccountKey" not in af:
            af["storageAccountKeyFrom"] = {"env": _env_name(str(vol.get("name", "")), "storage_account_key")}
    diag = props.get("diagnostics")
    la = diag.get("logAnalytics") if isinstance(diag, dict) else None
    if isinstance(la, dict) and "workspaceKey" not in la:
        la["workspaceKeyFrom"] = {"env": "LOG_ANALYTICS_WORKSPACE_KEY"}
    return data


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------------------
# Parsing with errors that point into the input document

# What a missing key's message adds, by (the key that holds it, the key): the fix, and Azure's code where a
# public record shows the one Azure answers with. `None` as the holder matches any. The records:
# - InvalidOsType, "The 'osType' for container group '<null>' is invalid", and ResourceRequestsNotSpecified,
#   "The resource requests are not specified in container ... Both memory and CPU requests are required"
#   (MicrosoftLearning/mslearn-azure-developer#67, MicrosoftDocs/azure-compute-docs#438);
# - ResourceSomeRequestsNotSpecified, "The 'MemoryInGB' request is not specified in ... in container
#   'redirector'" (virtual-kubelet/virtual-kubelet#50);
# - MissingIpAddressPorts, "The ports in the 'ipAddress' of container group 'xxx' cannot be empty."
#   (hashicorp/terraform-provider-azurerm#1697, #11102).
MISSING_HINTS: dict[tuple[str | None, str], str] = {
    (None, "resourceGroup"): (
        ": set 'resourceGroup:' in the manifest, a directory default, or --resource-group"
    ),
    (None, "location"): ": set 'location:', e.g. westeurope",
    (None, "properties"): (
        ": a manifest is the ARM body of the group; put containers, osType... under 'properties:'"
    ),
    ("properties", "osType"): ": set 'osType: Linux' (or Windows) " + azure_code("InvalidOsType"),
    (None, "containers"): ": list at least one container under 'containers:'",
    ("properties", "resources"): (
        ": set requests with cpu and memoryInGB, e.g. {requests: {cpu: 1, memoryInGB: 1.5}} "
        + azure_code("ResourceRequestsNotSpecified")
    ),
    ("resources", "requests"): (
        ": set requests with cpu and memoryInGB, e.g. {cpu: 1, memoryInGB: 1.5} "
        + azure_code("ResourceRequestsNotSpecified")
    ),
    ("requests", "cpu"): (
        ": a container requests both cpu and memoryInGB, e.g. {cpu: 1, memoryInGB: 1.5} "
        + azure_code("ResourceSomeRequestsNotSpecified")
    ),
    ("requests", "memoryInGB"): (
        ": a container requests both cpu and memoryInGB, e.g. {cpu: 1, memoryInGB: 1.5} "
        + azure_code("ResourceSomeRequestsNotSpecified")
    ),
    (None, "image"): ": set the image, e.g. mcr.microsoft.com/azuredocs/aci-helloworld:latest",
    ("ipAddress", "ports"): (
        ": list the ports to expose, e.g. [{port: 80}] (or remove ipAddress) "
        + azure_code("MissingIpAddressPorts")
    ),
    ("ipAddress", "type"): ": set 'type: Public' or 'type: Private'",
    ("identity", "type"): ": set 'type: SystemAssigned', 'UserAssigned' or 'SystemAssigned, UserAssigned'",
}
# Azure's code for a value outside an enumeration, by the key that holds it (the evidence is InvalidOsType's
# message above: "The value must be one of 'Windows,Linux'").
LITERAL_CODES: dict[str, str] = {"osType": "InvalidOsType"}


def parse_manifest(data: Mapping[str, Any]) -> GroupManifest:
    """Validate one manifest document. Errors are a `pydantic.ValidationError` whose locs are paths into
    `data` (keys spelled as there) and whose messages say what is wrong and how to fix it."""
    try:
        # A Mapping that is not a dict (a loader's own node type) is copied; anything else (a list, a
        # scalar) is left for pydantic to reject as "not a mapping" at the document's root.
        document: Any = dict(data) if isinstance(data, Mapping) and not isinstance(data, dict) else data
        return GroupManifest.model_validate(document)
    except ValidationError as exc:
        raise _rewrite(exc, data) from None


def _rewrite(exc: ValidationError, data: Any) -> ValidationError:
    details: list[InitErrorDetails] = []
    for err in exc.errors(include_url=False):
        kind = err["type"]
        loc: Loc = tuple(err["loc"])
        value = err.get("input")
        ctx = err.get("ctx") or {}
        if kind == "manifest_rules" and "issues" in ctx:
            for issue_loc, msg in ctx["issues"]:
                details.append(_detail("manifest_rule", msg, _input_loc(data, (*loc, *issue_loc)), None))
            continue
        if kind == "extra_forbidden" and isinstance(value, UnknownKey):
            details.append(_detail("unknown_key", value.message, _input_loc(data, loc), None))
            continue
        msg = err["msg"]
        if kind == "missing" and loc:
            msg = f"{shown(loc[-1])} is required{_missing_hint(loc)}"
        elif kind == "extra_forbidden":
            msg = f"unknown key {shown(loc[-1])}: remove it"
        elif kind.startswith("literal_"):
            msg = f"{msg} (case does not matter)"
            code = LITERAL_CODES.get(str(loc[-1])) if loc else None
            if code is not None:
                msg = f"{msg} {azure_code(code)}"
        # Only scalars are echoed: a mapping or list may hold a secret beside the field that failed.
        scalar = value is None or isinstance(value, str | int | float | bool)
        echoed = value if scalar and not _secretish(loc) else None
        details.append(_detail(kind, msg, _input_loc(data, loc), echoed))
    return ValidationError.from_exception_data(title="GroupManifest", line_errors=details)


def _missing_hint(loc: Loc) -> str:
    key = str(loc[-1])
    # The key that holds it, skipping a list index (`containers[0]` is held by `containers`).
    holder = next((str(p) for p in reversed(loc[:-1]) if isinstance(p, str)), None)
    return MISSING_HINTS.get((holder, key)) or MISSING_HINTS.get((None, key), "")


def _detail(kind: str, msg: str, loc: Loc, value: Any) -> InitErrorDetails:
    return {
        "type": PydanticCustomError(kind, msg),
        "loc": loc,
        "input": value,
    }


def _secretish(loc: Loc) -> bool:
    return any(isinstance(p, str) and p.lower() in SECRET_KEYS for p in loc)


def _input_loc(data: Any, loc: Loc) -> Loc:
    """Map a loc in canonical keys back to the keys as the document spells them (`memoryInGb`)."""
    out: list[str | int] = []
    node = data
    for part in loc:
        if isinstance(node, Mapping) and isinstance(part, str):
            if part in node:
                key: str | int = part
            else:
                lower = part.lower()
                key = next((k for k in node if isinstance(k, str) and k.lower() == lower), part)
            out.append(key)
            node = node.get(key) if isinstance(key, str) else None
        elif isinstance(node, list | tuple) and isinstance(part, int):
            out.append(part)
            node = node[part] if 0 <= part < len(node) else None
        else:
            out.append(part)
            node = None
    return tuple(out)
