"""Adopting a group with a secret volume from `reconcile export` never empties the volume (issue 9,
finding 3), end to end through the CLI process and the emulator process."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.harness import EmulatorProcess, run_cli, write
from tests.e2e.test_cli_apply import RG

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

CERT = "-----BEGIN CERT----- secret-volume-canary -----END CERT-----"
CERT_B64 = base64.b64encode(CERT.encode()).decode()
PATH = f"/resourceGroups/{RG}/providers/Microsoft.ContainerInstance/containerGroups/vault"


def _foreign_group(emulator: EmulatorProcess) -> None:
    """A group made by another tool (`az container create`), with a secret volume."""
    body: dict[str, Any] = {
        "location": "westeurope",
        "properties": {
            "osType": "Linux",
            "containers": [
                {
                    "name": "app",
                    "properties": {
                        "image": "nginx:1.27",
                        "resources": {"requests": {"cpu": 1, "memoryInGB": 1.5}},
                        "volumeMounts": [{"name": "certs", "mountPath": "/certs"}],
                    },
                }
            ],
            "volumes": [{"name": "certs", "secret": {"tls.crt": CERT_B64}}],
        },
    }
    status, answer = emulator.arm("PUT", PATH, body)
    assert status in (200, 201), answer


def _digests(emulator: EmulatorProcess) -> dict[str, Any]:
    (item,) = [g for g in emulator.control("GET", "secret-volumes")["value"] if g["id"].endswith("/vault")]
    return dict(item["volumes"])


def test_export_then_adopt_keeps_the_secret_volume_once_its_files_are_filled_in(
    emulator: EmulatorProcess, tmp_path: Path
) -> None:
    _foreign_group(emulator)
    original = _digests(emulator)
    assert original == {"certs": {"tls.crt": hashlib.sha256(CERT_B64.encode()).hexdigest()}}
    # A GET strips the files, as Azure does.
    live = emulator.get(RG, "vault")
    assert live is not None
    assert live["properties"]["volumes"] == [{"name": "certs", "secret": {}}]

    exported = run_cli(emulator, "export", "vault", "--resource-group", RG, cwd=tmp_path)
    assert exported.code == 0, str(exported)
    assert CERT_B64 not in exported.stdout
    doc = yaml.safe_load(exported.stdout)
    volume = doc["properties"]["volumes"][0]
    assert volume == {"name": "certs", "secretFrom": {}}  # never `secret: {}`
    doc["reconcile"] = {"failIfExists": False}

    # Unfilled: a validation error naming the field, and no write at all.
    write(tmp_path / "manifests/vault.yaml", yaml.safe_dump(doc, sort_keys=False))
    emulator.reset_counters()
    result = run_cli(emulator, "-f", "manifests", cwd=tmp_path)
    assert result.code == 1, str(result)
    output = result.stdout + result.stderr
    assert "manifests/vault.yaml:" in output
    assert "secret volume 'certs' has no files" in output
    assert "secretFrom" in output
    assert emulator.writes() == {"PUT": 0, "PATCH": 0, "DELETE": 0}
    assert _digests(emulator) == original

    # Filled from the environment: adopted, and the volume keeps its content.
    volume["secretFrom"] = {"tls.crt": {"env": "VAULT_TLS_CRT"}}
    write(tmp_path / "manifests/vault.yaml", yaml.safe_dump(doc, sort_keys=False))
    result = run_cli(emulator, "-f", "manifests", cwd=tmp_path, env={"VAULT_TLS_CRT": CERT})
    assert result.code == 0, str(result)
    assert CERT not in result.stdout + result.stderr
    assert _digests(emulator) == original
    live = emulator.get(RG, "vault")
    assert live is not None
    assert live["tags"].get("managed-by") == "aci-reconciler"
