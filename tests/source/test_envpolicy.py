"""Which variables a manifest may read: `${VAR}` only from the allowlist, and never, in any form (`${VAR}`,
`${VAR:-default}`, `secureValueFrom`, `passwordFrom`, `storageAccountKeyFrom`, `workspaceKeyFrom`), the
reconciler's own credentials and settings, whatever the allowlist says."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.identity._constants import EnvironmentVariables  # what azure-identity reads
from hypothesis import given
from hypothesis import strategies as st

from reconciler.source import Defaults
from reconciler.source.envpolicy import DENIED_PREFIXES, EnvPolicy, denied_reason, read_env
from tests.source.conftest import Loader, Writer, manifest, messages

CANARY = "CANARY-credential-value-4d1e"

OWN_VARIABLES = [
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_PASSWORD",
    "RECONCILER_SECRET_KEY",
    "RECONCILER_WEBHOOK_SECRET",
    "RECONCILER_CREDENTIAL",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IMDS_ENDPOINT",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "HTTPS_PROXY",
    "https_proxy",
    "azure_client_secret",
]


def azure_identity_variables() -> list[str]:
    return sorted(
        value
        for name, value in vars(EnvironmentVariables).items()
        if name.isupper() and isinstance(value, str)
    )


def test_every_variable_azure_identity_reads_is_denied() -> None:
    names = azure_identity_variables()
    assert "AZURE_CLIENT_SECRET" in names
    assert "IDENTITY_HEADER" in names
    assert [n for n in names if denied_reason(n) is None] == []


@pytest.mark.parametrize("name", OWN_VARIABLES)
def test_own_variables_are_denied_even_when_the_allowlist_matches_everything(name: str) -> None:
    value, refused = read_env(name, {name: CANARY}, policy=EnvPolicy(allow=("*",)))
    assert value is None
    assert refused is not None
    assert "never read" in refused
    assert CANARY not in refused
    assert read_env(name, {name: CANARY}, policy=None)[1] is not None  # secret references too


@given(st.sampled_from(DENIED_PREFIXES), st.from_regex(r"[A-Za-z0-9_]{0,12}", fullmatch=True))
def test_any_name_under_a_denied_prefix_is_denied_in_any_case(prefix: str, rest: str) -> None:
    for name in (prefix + rest, (prefix + rest).lower()):
        assert denied_reason(name) is not None


@pytest.mark.parametrize(
    ("allow", "name", "allowed"),
    [
        (("ACI_*",), "ACI_TAG", True),
        (("ACI_*",), "aci_tag", False),  # case-sensitive, as Linux names are
        (("ACI_*",), "HOME", False),
        (("BUILD_ID",), "BUILD_ID", True),
        (("BUILD_ID",), "BUILD_ID_2", False),
        (("TEAM_?",), "TEAM_A", True),
        ((), "ACI_TAG", False),
    ],
)
def test_allowlist_patterns_are_globs_over_the_whole_name(
    allow: tuple[str, ...], name: str, allowed: bool
) -> None:
    assert (EnvPolicy(allow=allow).refusal(name) is None) is allowed


REFUSED_FORMS = [
    ('tags: {build: "${AZURE_CLIENT_SECRET}"}', "tags.build", "AZURE_CLIENT_SECRET"),
    ('tags: {build: "${AZURE_CLIENT_SECRET:-none}"}', "tags.build", "AZURE_CLIENT_SECRET"),
    ('tags: {home: "${HOME}"}', "tags.home", "HOME"),
    ('tags: {home: "${HOME:-/root}"}', "tags.home", "HOME"),
]


@pytest.mark.parametrize("case", REFUSED_FORMS)
def test_a_refused_substitution_is_an_error_at_its_scalar_even_with_a_default(
    root: Path, write: Writer, load: Loader, case: tuple[str, str, str]
) -> None:
    line, where, name = case
    write("a.yaml", line + "\n" + manifest())
    result = load(environ={name: CANARY}, defaults=Defaults(env_allow=("*",) if "AZURE" in name else None))
    (error,) = messages(result, root)
    prefix = f"{where}: ${{{name}}} refused: "
    assert error.startswith((f"a.yaml:1:15: {prefix}", f"a.yaml:1:14: {prefix}")), error
    assert CANARY not in error
    assert result.groups == ()
    assert not result.complete  # nothing is pruned on the strength of this load
    # The rule and the fix are named.
    assert ("--env-allow" in error) or ("never read" in error and "ACI_" in error)


SECRET_FORMS = [
    "  containers:\n  - name: app\n    properties:\n      image: nginx\n"
    "      resources: {requests: {cpu: 1, memoryInGB: 1}}\n"
    "      environmentVariables:\n      - {name: X, secureValueFrom: {env: %s}}\n",
    "  imageRegistryCredentials:\n  - {server: r.io, username: u, passwordFrom: {env: %s}}\n"
    "  containers:\n  - name: app\n    properties:\n      image: nginx\n"
    "      resources: {requests: {cpu: 1, memoryInGB: 1}}\n",
    "  containers:\n  - name: app\n    properties:\n      image: nginx\n"
    "      resources: {requests: {cpu: 1, memoryInGB: 1}}\n"
    "      volumeMounts: [{name: s, mountPath: /s}]\n"
    "  volumes:\n  - name: s\n    azureFile: {shareName: s, storageAccountName: a, "
    "storageAccountKeyFrom: {env: %s}}\n",
    "  containers:\n  - name: app\n    properties:\n      image: nginx\n"
    "      resources: {requests: {cpu: 1, memoryInGB: 1}}\n"
    "  diagnostics:\n    logAnalytics: {workspaceId: w, workspaceKeyFrom: {env: %s}}\n",
]


@pytest.mark.parametrize("resolve", [True, False], ids=["plan", "validate --no-secrets"])
@pytest.mark.parametrize("form", range(len(SECRET_FORMS)))
@pytest.mark.parametrize("name", ["AZURE_CLIENT_SECRET", "RECONCILER_SECRET_KEY", "IDENTITY_HEADER"])
def test_every_secret_reference_form_refuses_the_reconcilers_own_variables(
    root: Path, write: Writer, form: int, name: str, resolve: bool
) -> None:
    from reconciler.source import load_manifests

    text = "name: web\nresourceGroup: rg\nlocation: westeurope\nproperties:\n  osType: Linux\n"
    write("a.yaml", text + SECRET_FORMS[form] % name)
    result = load_manifests(root, defaults=Defaults(), environ={name: CANARY}, resolve_secrets=resolve)
    errors = messages(result, root)
    assert len(errors) == 1, errors
    assert "refused" in errors[0]
    assert name in errors[0]
    assert "never read" in errors[0]
    assert errors[0].startswith("a.yaml:"), errors[0]
    assert CANARY not in errors[0]
    assert result.groups == ()


def test_secure_value_from_is_not_held_to_the_allowlist(root: Path, write: Writer, load: Loader) -> None:
    """The quick start's `secureValueFrom: {env: DEMO_SESSION_SECRET}`: naming it is the explicit choice."""
    write(
        "a.yaml",
        manifest() + "      environmentVariables:\n"
        "      - {name: S, secureValueFrom: {env: DEMO_SESSION_SECRET}}\n",
    )
    result = load(environ={"DEMO_SESSION_SECRET": CANARY})
    assert result.errors == ()
    assert list(result.groups[0].manifest.secret_values().values()) == [CANARY]


def test_env_allow_from_the_cli_replaces_the_default(root: Path, write: Writer, load: Loader) -> None:
    write("a.yaml", manifest().replace("nginx:1.27", "nginx:${BUILD_TAG}"))
    assert messages(load(environ={"BUILD_TAG": "1.28"}), root) != []
    result = load(environ={"BUILD_TAG": "1.28"}, defaults=Defaults(env_allow=("BUILD_*",)))
    assert result.errors == ()
    image = result.groups[0].manifest.model_dump(by_alias=True)["properties"]["containers"][0]
    assert "nginx:1.28" in str(image)


def test_env_allow_in_a_defaults_file_widens_its_directory_only(
    root: Path, write: Writer, load: Loader
) -> None:
    write("team/_defaults.yaml", "envAllow: [BUILD_*]\n")
    write("team/a.yaml", manifest("a").replace("nginx:1.27", "nginx:${BUILD_TAG}"))
    write("b.yaml", manifest("b").replace("nginx:1.27", "nginx:${BUILD_TAG}"))
    errors = messages(load(environ={"BUILD_TAG": "1.28"}), root)
    assert len(errors) == 1, errors
    assert errors[0].startswith("b.yaml:9:"), errors


def test_env_allow_in_a_defaults_file_cannot_open_the_deny_rule(
    root: Path, write: Writer, load: Loader
) -> None:
    write("_defaults.yaml", "envAllow: ['*', AZURE_CLIENT_SECRET]\n")
    write("a.yaml", 'tags: {x: "${AZURE_CLIENT_SECRET}"}\n' + manifest())
    errors = messages(load(environ={"AZURE_CLIENT_SECRET": CANARY}), root)
    assert len(errors) == 1
    assert "never read" in errors[0]
    assert CANARY not in errors[0]


def test_a_bad_env_allow_pattern_in_a_defaults_file_is_positioned(
    root: Path, write: Writer, load: Loader
) -> None:
    write("_defaults.yaml", "envAllow: [ok_*, 'no spaces']\n")
    write("a.yaml", manifest())
    assert messages(load(), root) == [
        "_defaults.yaml:1:18: envAllow: 'no spaces' is not a variable name pattern: use letters, digits, '_' "
        "and the wildcards '*' and '?', e.g. ACI_* or BUILD_ID"
    ]


def test_a_defaults_file_cannot_read_the_reconcilers_own_variables_either(
    root: Path, write: Writer, load: Loader
) -> None:
    write(
        "_defaults.yaml",
        'tags: {leak: "${RECONCILER_SECRET_KEY}"}\nreconcile: {prune: "${AZURE_PASSWORD}"}\n',
    )
    write("a.yaml", manifest())
    result = load(
        environ={"RECONCILER_SECRET_KEY": CANARY, "AZURE_PASSWORD": CANARY},
        defaults=Defaults(env_allow=("*",)),
    )
    errors = messages(result, root)
    assert [e.split(": ")[0] for e in errors] == ["_defaults.yaml:1:14", "_defaults.yaml:2:20"], errors
    assert all("never read" in e for e in errors)
    assert CANARY not in "".join(errors)
    assert result.groups == ()
