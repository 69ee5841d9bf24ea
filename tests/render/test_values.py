"""Value formatting, sensitive-path detection and redaction shared by all renderers."""

from __future__ import annotations

from decimal import Decimal

import pytest

from reconciler.render import format_value, is_sensitive_path, redact
from reconciler.render.values import escape_unsafe


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "null"),
        (True, "true"),
        (False, "false"),
        (1, "1"),
        (1.5, "1.5"),
        (2.0, "2.0"),
        ("nginx:1.25", '"nginx:1.25"'),
        ('say "hi"', '"say \\"hi\\""'),
        ([], "[]"),
        ({}, "{}"),
        (["a", "b"], '["a", "b"]'),
        ((80, 443), "[80, 443]"),
        ({"protocol": "TCP", "port": 80}, '{"port": 80, "protocol": "TCP"}'),
        (Decimal("1.5"), "1.5"),
        (Decimal("2"), "2"),
        (float("nan"), '"nan"'),
    ],
)
def test_format_value_renders_compact_json(value: object, expected: str) -> None:
    assert format_value(value) == expected


def test_format_value_folds_long_containers_into_indented_json() -> None:
    command = ["/bin/sh", "-c", "while true; do echo hello from the container; sleep 30; done"]
    assert format_value(command) == (
        '[\n  "/bin/sh",\n  "-c",\n  "while true; do echo hello from the container; sleep 30; done"\n]'
    )


def test_format_value_keeps_long_strings_whole_so_the_difference_is_visible() -> None:
    long = "x" * 200
    assert format_value(long) == f'"{long}"'


def test_format_value_escapes_terminal_control_and_bidi_characters() -> None:
    assert format_value("a\x1b[31mb") == '"a\\u001b[31mb"'
    assert format_value("a\x9bb\u202ec") == '"a\\u009bb\\u202ec"'
    assert escape_unsafe("line\nbreak", keep_newlines=True) == "line\nbreak"


def test_format_value_redacts_secret_keys_nested_in_values() -> None:
    value = {"name": "DB", "secureValue": "hunter2"}
    assert format_value(value) == '{"name": "DB", "secureValue": "(sensitive)"}'


@pytest.mark.parametrize(
    "path",
    [
        "/properties/containers/web/properties/environmentVariables/DB/secureValue",
        "/properties/imageRegistryCredentials/myregistry.azurecr.io/password",
        "/properties/volumes/share/azureFile/storageAccountKey",
        "/properties/volumes/certs/secret",
        "/properties/volumes/certs/secret/tls.key",
        "/properties/diagnostics/logAnalytics/workspaceKey",
        "/properties/extensions/kube/properties/protectedSettings/token",
        "/properties/containers/web/properties/environmentVariables/DB/SecureValue",
    ],
)
def test_secret_fields_are_sensitive_paths(path: str) -> None:
    assert is_sensitive_path(path)


@pytest.mark.parametrize(
    "path",
    [
        "/properties/containers/secret/properties/image",
        "/properties/volumes/secret/emptyDir",
        "/properties/containers/web/properties/environmentVariables/password/value",
        "/tags/password",
        "/properties/imageRegistryCredentials/myregistry.azurecr.io/username",
        "/location",
        "",
    ],
)
def test_keys_named_like_secrets_are_not_sensitive_paths(path: str) -> None:
    assert not is_sensitive_path(path)


def test_redact_masks_secret_keys_at_any_depth_and_keeps_the_rest() -> None:
    value = {
        "containers": [
            {
                "name": "web",
                "properties": {"environmentVariables": [{"name": "A", "secureValue": "s1"}]},
            }
        ],
        "imageRegistryCredentials": [{"server": "r.io", "username": "u", "PASSWORD": "s2"}],
        "volumes": [{"name": "v", "secret": {"key": "czM="}}],
    }
    assert redact(value) == {
        "containers": [
            {
                "name": "web",
                "properties": {"environmentVariables": [{"name": "A", "secureValue": "(sensitive)"}]},
            }
        ],
        "imageRegistryCredentials": [{"server": "r.io", "username": "u", "PASSWORD": "(sensitive)"}],
        "volumes": [{"name": "v", "secret": "(sensitive)"}],
    }
