"""Properties of every valid manifest (hypothesis): it survives its own manifest document unchanged, the body
a GET would show holds no secret value, the PUT body holds them all, and key case does not matter."""

from __future__ import annotations

import base64
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from reconciler.model import pointer
from reconciler.model.manifest import SecretRef, parse_manifest

segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
dns_name = st.lists(segment, min_size=1, max_size=3).map("-".join).filter(lambda s: len(s) <= 63)
env_name = st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True)
# Secret values are recognisable, so that the test can look for them in any output.
secret = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=8, max_size=12).map(
    lambda s: f"zz-secret-{s}"
)
ref = st.one_of(
    env_name.map(lambda n: {"env": n}),
    st.from_regex(r"\./[a-z]{1,8}", fullmatch=True).map(lambda f: {"file": f}),
)
plain = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 .-", max_size=12)


@st.composite
def env_vars(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(st.lists(env_name, max_size=4, unique=True))
    out = []
    for n in names:
        kind = draw(st.sampled_from(["value", "secureValue", "secureValueFrom"]))
        value = draw(plain if kind == "value" else secret if kind == "secureValue" else ref)
        out.append({"name": n, kind: value})
    return out


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = []
    for i in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["emptyDir", "secret", "azureFile", "gitRepo"]))
        if kind == "emptyDir":
            volumes.append({"name": f"vol{i}", "emptyDir": {}})
        elif kind == "secret":
            files = draw(
                st.dictionaries(
                    st.from_regex(r"[a-z]{1,6}\.[a-z]{2,3}", fullmatch=True), secret, min_size=1, max_size=2
                )
            )
            volumes.append(
                {
                    "name": f"vol{i}",
                    "secret": {k: base64.b64encode(v.encode()).decode() for k, v in files.items()},
                }
            )
        elif kind == "azureFile":
            key = draw(
                st.one_of(
                    secret.map(lambda s: {"storageAccountKey": s}),
                    ref.map(lambda r: {"storageAccountKeyFrom": r}),
                )
            )
            volumes.append(
                {"name": f"vol{i}", "azureFile": {"shareName": "share", "storageAccountName": "acct", **key}}
            )
        else:
            volumes.append({"name": f"vol{i}", "gitRepo": {"repository": "https://example.com/r.git"}})

    names = draw(st.lists(dns_name, min_size=1, max_size=3, unique=True))
    containers = []
    for n in names:
        props: dict[str, Any] = {
            "image": draw(st.sampled_from(["nginx:1.27", "busybox", "myregistry.azurecr.io/app:1.0"])),
            "resources": {
                "requests": {
                    "cpu": draw(st.sampled_from([0.5, 1, 1.5, 2])),
                    "memoryInGB": draw(st.integers(1, 40)) / 10,
                }
            },
        }
        if draw(st.booleans()):
            props["environmentVariables"] = draw(env_vars())
        if draw(st.booleans()):
            props["ports"] = [
                {"port": p} for p in draw(st.lists(st.integers(1, 65535), max_size=2, unique=True))
            ]
        if draw(st.booleans()):
            props["command"] = draw(st.lists(plain, max_size=3))
        if draw(st.booleans()) and volumes:
            chosen = draw(st.lists(st.sampled_from([v["name"] for v in volumes]), min_size=1, unique=True))
            props["volumeMounts"] = [{"name": v, "mountPath": f"/mnt/{v}"} for v in chosen]
        if draw(st.booleans()):
            props["livenessProbe"] = {"httpGet": {"port": 80, "path": "/healthz"}, "periodSeconds": 10}
        containers.append({"name": n, "properties": props})

    properties: dict[str, Any] = {"osType": "Linux", "containers": containers}
    if volumes:
        properties["volumes"] = volumes
    if draw(st.booleans()):
        properties["restartPolicy"] = draw(st.sampled_from(["Always", "OnFailure", "Never"]))
    if draw(st.booleans()):
        ip: dict[str, Any] = {"type": "Public", "ports": [{"port": 80, "protocol": "TCP"}]}
        if draw(st.booleans()):
            ip["dnsNameLabel"] = "lbl-" + draw(dns_name)
        properties["ipAddress"] = ip
        # Every port of the group's address is a container's port (Azure: UnreferencedIpAddressPorts).
        first = containers[0]["properties"].setdefault("ports", [])
        if all(p["port"] != 80 for p in first):
            first.append({"port": 80})
    if draw(st.booleans()):
        pw = draw(st.one_of(secret.map(lambda s: {"password": s}), ref.map(lambda r: {"passwordFrom": r})))
        properties["imageRegistryCredentials"] = [{"server": "myregistry.azurecr.io", "username": "u", **pw}]
    if draw(st.booleans()):
        key = draw(
            st.one_of(secret.map(lambda s: {"workspaceKey": s}), ref.map(lambda r: {"workspaceKeyFrom": r}))
        )
        properties["diagnostics"] = {"logAnalytics": {"workspaceId": "ws", **key}}

    doc: dict[str, Any] = {
        "name": draw(dns_name),
        "resourceGroup": draw(st.from_regex(r"[A-Za-z0-9_.()-]{0,20}[A-Za-z0-9_()-]", fullmatch=True)),
        "location": draw(st.sampled_from(["westeurope", "eastus", "west us"])),
        "tags": draw(st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True), plain, max_size=3)),
        "properties": properties,
    }
    if draw(st.booleans()):
        doc["reconcile"] = {
            "failIfExists": draw(st.booleans()),
            "recreate": draw(st.sampled_from(["auto", "never"])),
            "prune": draw(st.booleans()),
            "suspend": draw(st.booleans()),
            "ignore": draw(
                st.lists(st.sampled_from(["/tags/team", "/properties/containers/web/properties/image"]))
            ),
        }
    return doc


def _secrets_of(doc: dict[str, Any]) -> set[str]:
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str) and "zz-secret-" in node:
            found.add(node)
        elif isinstance(node, str):
            try:
                decoded = base64.b64decode(node, validate=True).decode()
            except ValueError:
                return
            if decoded.startswith("zz-secret-"):
                found.add(node)

    walk(doc)
    return found


def _resolver(r: SecretRef) -> str:
    return f"zz-secret-resolved-{r.env or r.file}"


@given(documents())
def test_any_valid_manifest_survives_its_own_manifest_document_unchanged(doc: dict[str, Any]) -> None:
    m = parse_manifest(doc)
    assert parse_manifest(m.to_manifest_dict()) == m
    assert parse_manifest(json.loads(json.dumps(m.to_manifest_dict()))) == m


@given(documents())
def test_the_body_a_get_shows_contains_no_secret_value(doc: dict[str, Any]) -> None:
    m = parse_manifest(doc).resolve_secrets(_resolver)
    hidden = json.dumps(m.to_arm_body(reveal_secrets=False))
    values = m.secret_values()
    for value in values.values():
        assert value not in hidden
    assert "zz-secret-" not in hidden
    for s in _secrets_of(doc):
        assert s not in hidden
        assert s not in repr(m)
        assert s not in str(m.model_dump())


@given(documents())
def test_the_put_body_contains_every_secret_at_its_pointer(doc: dict[str, Any]) -> None:
    m = parse_manifest(doc).resolve_secrets(_resolver)
    body = m.to_arm_body(reveal_secrets=True)
    for ptr, value in m.secret_values().items():
        node: Any = body
        for token in pointer.split(ptr):
            if isinstance(node, list):
                # Keyed lists: by name, registry credentials by server.
                node = next(item for item in node if token in (item.get("name"), item.get("server")))
            else:
                node = node[token]
        assert node == value
    assert "From" not in json.dumps(body)


def _recase(node: Any, upper: bool) -> Any:
    # Keys only; `secret` volume file names and tag names are data, not property names.
    if isinstance(node, dict):
        return {
            (k.upper() if upper else k.lower()) if k not in DATA_KEYS_PARENTS else k: (
                v if k in DATA_KEYS_PARENTS else _recase(v, upper)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_recase(v, upper) for v in node]
    return node


DATA_KEYS_PARENTS = {"secret", "tags", "settings", "protectedSettings", "metadata", "userAssignedIdentities"}


@given(documents(), st.booleans())
def test_key_case_does_not_matter(doc: dict[str, Any], upper: bool) -> None:
    assert parse_manifest(_recase(doc, upper)) == parse_manifest(doc)


@given(documents())
def test_secret_values_read_through_a_resolver_are_those_of_the_copy_it_resolves(doc: dict[str, Any]) -> None:
    given_manifest = parse_manifest(doc)
    resolved = given_manifest.resolve_secrets(_resolver)
    through = given_manifest.secret_values(_resolver)
    assert through == resolved.secret_values()
    # What the daemon reads of a kept group without its values (`LoadedGroup.declared`: the job
    # templates' fingerprint) is what it would read of the copy with them.
    assert given_manifest.to_arm_body(reveal_secrets=False) == resolved.to_arm_body(reveal_secrets=False)
    slots = given_manifest.secret_slots()
    assert given_manifest.secret_values(_resolver, slots=slots) == through, "through its kept slots alike"
