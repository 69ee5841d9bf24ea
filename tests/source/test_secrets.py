"""Secret references from env and files; literal secrets warned about; values never in any message."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from reconciler.source import LoadResult
from tests.source.conftest import Loader, Writer, manifest, messages, warning_messages

SECRET = "s3cr3t-VALUE-never-shown"

ENV_LINES = """\
      environmentVariables:
      - {name: MODE, value: prod}
      - name: DB_PASSWORD
        secureValueFrom: {%s}
"""


def with_env(ref: str) -> str:
    """A manifest whose container has a secret env var; the reference is on line 14, column 26."""
    return manifest() + ENV_LINES % ref


def assert_secret_hidden(result: LoadResult) -> None:
    for item in (*result.errors, *result.warnings):
        assert SECRET not in str(item)


def secret_of(result: LoadResult) -> str:
    values = result.groups[0].manifest.secret_values()
    (value,) = values.values()
    return value


def test_env_reference_resolves_from_environ(write: Writer, load: Loader) -> None:
    write("a.yaml", with_env("env: DB_PASSWORD"))
    result = load(environ={"DB_PASSWORD": SECRET})
    assert result.errors == ()
    assert result.warnings == ()
    assert secret_of(result) == SECRET
    assert SECRET not in str(result.groups[0].manifest.to_arm_body(reveal_secrets=False))


def test_missing_env_variable_is_a_positioned_error(root: Path, write: Writer, load: Loader) -> None:
    write("a.yaml", with_env("env: DB_PASSWORD"))
    result = load(environ={"OTHER": SECRET})
    assert messages(result, root) == [
        "a.yaml:14:32: properties.containers[0].properties.environmentVariables[1].secureValueFrom.env: "
        "environment variable DB_PASSWORD is not set"
    ]
    assert result.failed_keys == (("rg", "web"),)


def test_file_reference_resolves_relative_to_the_manifest(root: Path, write: Writer, load: Loader) -> None:
    write("apps/a.yaml", with_env("file: secrets/db"))
    write("apps/secrets/db", SECRET + "\n")
    result = load()
    assert messages(result, root) == []
    assert secret_of(result) == SECRET


def test_only_one_trailing_newline_is_stripped(write: Writer, load: Loader) -> None:
    write("a.yaml", with_env("file: db"))
    write("db", "line1\nline2\n\n")
    assert secret_of(load()) == "line1\nline2\n"


def test_missing_secret_file_is_a_positioned_error(root: Path, write: Writer, load: Loader) -> None:
    write("a.yaml", with_env("file: nope.txt"))
    result = load()
    assert messages(result, root) == [
        "a.yaml:14:33: properties.containers[0].properties.environmentVariables[1].secureValueFrom.file: "
        f"secret file 'nope.txt' does not exist (looked in {root})"
    ]


def test_secret_file_may_not_escape_the_root(tmp_path: Path, root: Path, write: Writer, load: Loader) -> None:
    (tmp_path / "outside").write_text(SECRET)
    write("a.yaml", with_env("file: ../outside"))
    write("b.yaml", with_env("file: /etc/hostname").replace("name: web", "name: web-b"))
    os.symlink(tmp_path / "outside", root / "link")
    write("c.yaml", with_env("file: link").replace("name: web", "name: web-c"))
    result = load()
    assert messages(result, root) == [
        "a.yaml:14:33: properties.containers[0].properties.environmentVariables[1].secureValueFrom.file: "
        "secret file '../outside' is outside the manifest root; use secureValueFrom: {env: NAME} instead",
        "b.yaml:14:33: properties.containers[0].properties.environmentVariables[1].secureValueFrom.file: "
        "secret file '/etc/hostname' must be relative to the manifest's directory and inside the manifest "
        "root",
        "c.yaml:14:33: properties.containers[0].properties.environmentVariables[1].secureValueFrom.file: "
        "secret file 'link' is a symlink that leads outside the manifest root",
    ]
    assert_secret_hidden(result)


def test_secret_file_that_is_not_utf8(root: Path, write: Writer, load: Loader) -> None:
    write("a.yaml", with_env("file: db"))
    write("db", b"\xff\xfe" + SECRET.encode())
    result = load()
    assert messages(result, root) == [
        "a.yaml:14:33: properties.containers[0].properties.environmentVariables[1].secureValueFrom.file: "
        "secret file 'db' is not UTF-8 text"
    ]
    assert_secret_hidden(result)


def test_resolved_secrets_are_not_substituted(write: Writer, load: Loader) -> None:
    write("a.yaml", with_env("env: DB_PASSWORD"))
    result = load(environ={"DB_PASSWORD": "${NOT_A_VAR}"})
    assert result.errors == ()
    assert secret_of(result) == "${NOT_A_VAR}"


def test_literal_secrets_warn_without_their_value(root: Path, write: Writer, load: Loader) -> None:
    text = (
        manifest()
        + "      environmentVariables:\n"
        + f"      - {{name: DB, secureValue: {SECRET}}}\n"
        + "      - {name: FROM_ENV, secureValue: '${ACI_DB_PASSWORD}'}\n"
        + "  imageRegistryCredentials:\n"
        + f"  - {{server: r.azurecr.io, username: u, password: {SECRET}}}\n"
    )
    write("a.yaml", text)
    result = load(environ={"ACI_DB_PASSWORD": SECRET})
    assert messages(result, root) == []
    assert warning_messages(result, root) == [
        "a.yaml:12:20: properties.containers[0].properties.environmentVariables[0].secureValue: a literal "
        "secret "
        "in the manifest; keep it out of the file with secureValueFrom: {env: NAME} or "
        "secureValueFrom: {file: PATH}",
        "a.yaml:15:41: properties.imageRegistryCredentials[0].password: a literal secret in the manifest; "
        "keep "
        "it out of the file with passwordFrom: {env: NAME} or passwordFrom: {file: PATH}",
    ]
    assert_secret_hidden(result)
    assert len(result.groups) == 1


def test_secret_values_never_appear_in_validation_errors(write: Writer, load: Loader) -> None:
    text = manifest().replace("cpu: 1", "cpu: lots") + (
        f"      environmentVariables:\n      - {{name: DB, secureValue: {SECRET}, value: {SECRET}}}\n"
    )
    write("a.yaml", text)
    result = load()
    assert result.errors
    assert_secret_hidden(result)


def test_a_single_file_root_reads_secret_files_next_to_it(write: Writer, load: Loader) -> None:
    path = write("apps/a.yaml", with_env("file: db"))
    write("apps/db", SECRET)
    result = load(at=path)
    assert result.errors == ()
    assert secret_of(result) == SECRET


def test_validation_without_secrets_checks_the_form_but_resolves_nothing(
    root: Path, write: Writer, load: Loader
) -> None:
    from reconciler.source import Defaults, load_manifests

    write("a.yaml", with_env("file: missing.txt"))
    write("b.yaml", with_env("env: 1BAD").replace("name: web", "name: web-b"))
    result = load_manifests(root, defaults=Defaults(), environ={}, resolve_secrets=False)
    assert [e.path.name for e in result.errors] == ["b.yaml"]
    (group,) = result.groups
    assert group.manifest.unresolved_secrets() == [
        "/properties/containers/app/properties/environmentVariables/DB_PASSWORD/secureValue"
    ]


def test_literal_secret_volumes_are_warned_about(root: Path, write: Writer, load: Loader) -> None:
    text = manifest() + (
        f"  volumes:\n  - {{name: certs, secret: {{tls.key: {SECRET}, from-env: '${{ACI_TLS_CRT}}'}}}}\n"
    )
    write("a.yaml", text)
    result = load(environ={"ACI_TLS_CRT": "Y3J0"})
    assert warning_messages(result, root) == [
        "a.yaml:12:19: properties.volumes[0].secret: literal secrets in the manifest; keep them out of the "
        "file with ${VAR} substitutions from the environment"
    ]
    assert_secret_hidden(result)


SECRET_VOLUME = """\
  volumes:
  - name: certs
    secretFrom:
      tls.crt: {env: TLS_CRT}
      Key.PEM: {file: key.pem}
"""


def test_secret_volume_files_resolve_from_env_and_file_and_are_sent_base64(
    root: Path, write: Writer, load: Loader
) -> None:
    write("a.yaml", manifest() + SECRET_VOLUME)
    write("key.pem", SECRET + "-key\n")
    result = load(environ={"TLS_CRT": SECRET})
    assert result.errors == ()
    m = result.groups[0].manifest
    (volume,) = m.to_arm_body(reveal_secrets=True)["properties"]["volumes"]
    assert volume == {
        "name": "certs",
        "secret": {
            "tls.crt": base64.b64encode(SECRET.encode()).decode(),
            "Key.PEM": base64.b64encode(f"{SECRET}-key".encode()).decode(),
        },
    }
    # As a GET shows it, and as the manifest document writes it: no value.
    assert m.to_arm_body(reveal_secrets=False)["properties"]["volumes"] == [{"name": "certs", "secret": {}}]
    assert SECRET not in str(m.to_manifest_dict())
    assert m.to_manifest_dict()["properties"]["volumes"][0]["secretFrom"]["tls.crt"] == {"env": "TLS_CRT"}
    assert set(m.secret_values()) == {
        "/properties/volumes/certs/secret/tls.crt",
        "/properties/volumes/certs/secret/Key.PEM",
    }
    assert_secret_hidden(result)


def test_secret_volume_file_from_an_unset_variable_is_a_positioned_error(
    root: Path, write: Writer, load: Loader
) -> None:
    write("a.yaml", manifest() + SECRET_VOLUME)
    write("key.pem", SECRET)
    result = load(environ={})
    assert not result.groups
    assert messages(result, root) == [
        "a.yaml:14:22: properties.volumes[0].secretFrom.tls.crt.env: environment variable TLS_CRT is not set"
    ]


def test_an_empty_secret_volume_is_an_error_naming_secret_from(
    root: Path, write: Writer, load: Loader
) -> None:
    for empty in ("secret: {}", "secretFrom: {}"):
        write("a.yaml", manifest() + f"  volumes:\n  - name: certs\n    {empty}\n")
        result = load(environ={})
        assert not result.groups
        (message,) = messages(result, root)
        assert "secret volume 'certs' has no files" in message
        assert "secretFrom" in message


# A variable the manifest reads as a secret, substituted into a plain field too: every place it could go.
_PLAIN_FIELDS = [
    ("image: nginx", "image: nginx:${ACI_DB_PASSWORD}"),
    ("tags:\n  team: web", "tags:\n  team: x${ACI_DB_PASSWORD:-none}"),
    ("dnsNameLabel: web", "dnsNameLabel: ${ACI_DB_PASSWORD}"),
]


def test_a_secret_variable_substituted_into_a_plain_field_is_refused_and_never_shown(
    root: Path, write: Writer, load: Loader
) -> None:
    for i, (_, plain_use) in enumerate(_PLAIN_FIELDS):
        text = manifest(f"web{i}") + ENV_LINES % "env: ACI_DB_PASSWORD"
        if plain_use.startswith("image"):
            text = text.replace("image: nginx", plain_use)
        elif plain_use.startswith("tags"):
            text += plain_use + "\n"
        else:
            text += "  ipAddress:\n    type: Public\n    ports: [{port: 80}]\n    " + plain_use + "\n"
        write(f"m{i}.yaml", text)
    result = load(environ={"ACI_DB_PASSWORD": SECRET})
    assert result.groups == ()
    assert len(result.failed_keys) == len(_PLAIN_FIELDS)
    found = messages(result, root)
    assert (
        len([m for m in found if "substitutes ACI_DB_PASSWORD, which this manifest reads as a secret" in m])
        == 3
    )
    assert all(SECRET not in m for m in found), found
    assert_secret_hidden(result)


def test_a_secret_variable_alone_and_another_variable_substituted_load(write: Writer, load: Loader) -> None:
    text = manifest() + ENV_LINES % "env: ACI_DB_PASSWORD"
    write("a.yaml", text.replace("image: nginx", "image: nginx:${ACI_TAG}"))
    result = load(environ={"ACI_DB_PASSWORD": SECRET, "ACI_TAG": "1.27"})
    assert result.errors == ()
    assert secret_of(result) == SECRET


def test_an_empty_secret_from_env_or_file_is_a_positioned_error_never_a_value(
    root: Path, write: Writer, load: Loader
) -> None:
    write("a.yaml", with_env("env: DB_PASSWORD"))
    write("b/b.yaml", with_env("file: secrets/db").replace("name: web", "name: web2"))
    write("b/secrets/db", " \n")
    for empty in ("", "  ", "\n"):
        result = load(environ={"DB_PASSWORD": empty})
        assert result.groups == ()
        assert messages(result, root) == [
            "a.yaml:14:32: properties.containers[0].properties.environmentVariables[1].secureValueFrom.env: "
            "environment variable DB_PASSWORD is empty; a secret value is never empty",
            "b/b.yaml:14:33: properties.containers[0].properties.environmentVariables[1]"
            ".secureValueFrom.file: secret file secrets/db is empty; a secret value is never empty",
        ]
