"""Properties that always hold: loading never raises, whatever the bytes; secret values never leak."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.source import Defaults, load_manifests
from reconciler.source.yamlread import parse_documents
from tests.source.conftest import manifest

YAML_ALPHABET = st.sampled_from(
    [*list("ab:-[]{}&*!|>'\"#%@`,?~ \n\t\\$01"), "---\n", "<<: ", "${ACI_X}", "\x00", "é"]
)


def load_bytes(name: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / name).write_bytes(data)
        (root / "ok.yaml").write_text(manifest("ok"))
        result = load_manifests(root, defaults=Defaults(), environ={"ACI_X": "1"})
        # The good file always loads, whatever the bad one holds.
        assert "ok" in [g.manifest.name for g in result.groups]
        for error in result.errors:
            assert error.line >= 1
            assert error.column >= 1
            assert str(error).startswith(str(root))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_loading_arbitrary_bytes_never_raises(data: bytes) -> None:
    load_bytes("a.yaml", data)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(YAML_ALPHABET, max_size=200).map("".join))
def test_loading_yaml_like_noise_never_raises(text: str) -> None:
    load_bytes("a.yaml", text.encode("utf-8", "surrogatepass"))


@given(st.lists(YAML_ALPHABET, max_size=300).map("".join))
def test_parser_reports_positions_inside_the_text(text: str) -> None:
    docs, errors = parse_documents(text, Path("f.yaml"))
    lines = text.count("\n") + 2
    for error in [*errors, *(e for d in docs for e in d.errors)]:
        assert 1 <= error.line <= lines


# `$` would start a substitution; the prefix keeps a short secret from matching ordinary message text.
SECRETS = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="'\\$"),
    max_size=40,
).map(lambda s: f"S3cr3t{s}")


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(secret=SECRETS, broken=st.booleans())
def test_secret_values_never_appear_in_errors_or_warnings(secret: str, broken: bool) -> None:
    text = manifest() + (
        "      environmentVariables:\n"
        f"      - {{name: A, secureValue: '{secret}'}}\n"
        "      - name: B\n"
        "        secureValueFrom: {env: B_SECRET}\n"
        "      - name: C\n"
        "        secureValueFrom: {file: c.txt}\n"
    )
    if broken:
        # A secret where a type error or an unknown key makes the model complain about it.
        text = text.replace(f"secureValue: '{secret}'", f"secureValue: ['{secret}'], passwrd: '{secret}'")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "a.yaml").write_text(text)
        (root / "c.txt").write_text(secret)
        result = load_manifests(root, defaults=Defaults(), environ={"B_SECRET": secret})
        for item in (*result.errors, *result.warnings):
            assert secret not in str(item)
        assert bool(result.errors) == broken
