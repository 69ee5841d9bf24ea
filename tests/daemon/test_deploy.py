"""deploy/: the definitions parse, probe the endpoints the daemon serves, and run without privileges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from reconciler.daemon.http import build_app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def served_paths() -> set[str]:
    from tests.daemon.test_http import Harness

    app = build_app(Harness().view)
    return {r.resource.canonical for r in app.router.routes() if r.resource is not None}


def k8s(kind: str) -> dict[str, Any]:
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc.get("kind") == kind:
                return dict(doc)
    raise AssertionError(f"no {kind} in deploy/kubernetes")


def test_every_deploy_yaml_and_json_parses() -> None:
    files = [*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.json")]
    assert len(files) >= 8
    for path in files:
        if path.suffix == ".json":
            json.loads(path.read_text())
        else:
            assert list(yaml.safe_load_all(path.read_text())), path


def test_kubernetes_runs_two_coordinated_replicas_that_a_rollout_or_a_drain_never_takes_both_down() -> None:
    spec = k8s("Deployment")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    config = k8s("ConfigMap")["data"]
    assert config["RECONCILER_COORDINATION"].startswith("https://")
    assert config["RECONCILER_COORDINATION"].endswith(".blob.core.windows.net/aci-reconciler")
    (container,) = spec["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["RECONCILER_REPLICA_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    anti = spec["template"]["spec"]["affinity"]["podAntiAffinity"]
    (term,) = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    budget = k8s("PodDisruptionBudget")["spec"]
    assert budget["minAvailable"] == 1
    assert budget["selector"] == spec["selector"]


def test_the_kits_coordination_urls_name_a_container_once_the_account_is_filled_in() -> None:
    import pytest

    from reconciler.cloud.blobstore import split_container_url
    from reconciler.cloud.coordination import StoreConfigError

    aci = yaml.safe_load((DEPLOY / "aci" / "reconciler.yaml").read_text())
    aci_env = {
        e["name"]: e.get("value")
        for e in aci["properties"]["containers"][0]["properties"]["environmentVariables"]
    }
    for url in (k8s("ConfigMap")["data"]["RECONCILER_COORDINATION"], aci_env["RECONCILER_COORDINATION"]):
        with pytest.raises(StoreConfigError, match=r"replace the <\.\.\.> placeholder"):
            split_container_url(url)
        filled = url.replace("<storage-account>", "prodreconciler")
        assert split_container_url(filled)[:2] == (
            "https://prodreconciler.blob.core.windows.net",
            "aci-reconciler",
        )


def test_kubernetes_probes_hit_the_daemons_endpoints() -> None:
    deployment = k8s("Deployment")
    spec = deployment["spec"]
    (container,) = spec["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"/healthz", "/readyz", "/metrics", "/status", "/hook"} <= served_paths()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    grace = spec["template"]["spec"]["terminationGracePeriodSeconds"]
    args = container["args"]
    assert grace > 60
    assert args[args.index("--grace-period") + 1] == "60s"
    assert k8s("Service")["spec"]["ports"][0]["port"] == 9440
    env = {e["name"]: e for e in container["env"]}
    assert env["RECONCILER_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "aci-reconciler"
    assert "azure.workload.identity/client-id" in k8s("ServiceAccount")["metadata"]["annotations"]


def test_image_runs_as_non_root_with_a_healthcheck() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert "USER 10001" in text
    assert "HEALTHCHECK" in text
    assert "/healthz" in text
    assert "python:3.11-slim" in text


def test_systemd_unit_is_hardened() -> None:
    text = (DEPLOY / "systemd" / "aci-reconciler.service").read_text()
    for setting in (
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
    ):
        assert setting in text


def test_aci_yaml_runs_the_daemon_with_a_user_assigned_identity_and_probes() -> None:
    group = yaml.safe_load((DEPLOY / "aci" / "reconciler.yaml").read_text())
    assert group["identity"]["type"] == "UserAssigned"
    assert str(group["apiVersion"]) == "2023-05-01"
    (container,) = group["properties"]["containers"]
    props = container["properties"]
    assert props["command"][2:4] == ["reconcile", "daemon"]
    assert props["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert props["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "ipAddress" not in group["properties"], "no public /status"


def test_role_covers_what_the_reconciler_does_and_no_more() -> None:
    role = json.loads((DEPLOY / "azure" / "role.json").read_text())
    actions = set(role["Actions"])
    for verb in ("read", "write", "delete", "start/action", "stop/action", "containers/logs/read"):
        assert f"Microsoft.ContainerInstance/containerGroups/{verb}" in actions
    assert not any(a.endswith("/*") or a == "*" for a in actions)
    assert all(
        scope.startswith("/subscriptions/") and "/resourceGroups/" in scope
        for scope in role["AssignableScopes"]
    )


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    import shutil
    import subprocess

    import pytest

    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    text = (DEPLOY / "systemd" / "aci-reconciler.service").read_text()
    # The daemon is not installed here; verify the unit with a binary that exists.
    unit = tmp_path / "aci-reconciler.service"
    unit.write_text(text.replace("/opt/aci-reconciler/bin/reconcile", "/bin/true"))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], check=False, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr, result.stderr


def test_kustomize_renders_the_kubernetes_manifests() -> None:
    import shutil
    import subprocess

    import pytest

    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / "kubernetes")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(result.stdout) if doc]
    # No Secret: it is created from generated values first (deploy/README.md), never shipped with a value.
    assert sorted(kinds) == [
        "ConfigMap",
        "Deployment",
        "Namespace",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]


def test_no_deploy_kit_ships_a_secret_key_the_reconciler_would_accept() -> None:
    import re

    import pytest

    from reconciler.engine.keys import SecretKeyError, check_key

    literal = re.compile(r"RECONCILER_SECRET_KEY\b[\s\"',:=]*(?:secureValue:\s*|value:\s*)?([^\s\"',}]*)")
    found = 0
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix != ".md"):
        for match in literal.finditer(path.read_text(errors="ignore")):
            value = match.group(1)
            if not value or value.startswith(("#", "{", "${{")) or value == "valueFrom:":
                # unset (the systemd env file), or a reference (Kubernetes' secretKeyRef, GitHub's secrets)
                continue
            found += 1
            with pytest.raises(SecretKeyError):
                check_key(value.encode(), source=f"{path.name}")
    assert found == 1, "the ACI template's placeholder is the one literal value"
    assert not (DEPLOY / "kubernetes" / "secret.yaml").exists()


def test_aci_yaml_is_a_container_group_arm_accepts() -> None:
    from reconciler.emulator.spec import validate

    text = (DEPLOY / "aci" / "reconciler.yaml").read_text()
    for placeholder, value in {
        "<subscription-id>": "00000000-0000-0000-0000-000000000000",
        "<client-id-of-the-identity>": "11111111-1111-1111-1111-111111111111",
        "<registry>": "example",
        "<64-hex-characters>": "ab" * 32,
        "<base64 of the webhook secret>": "c2VjcmV0",
        "<storage-account>": "example",
    }.items():
        text = text.replace(placeholder, value)
    document = yaml.safe_load(text)
    assert "<" not in json.dumps(document), "every placeholder is replaced above"
    body = {k: v for k, v in document.items() if k not in ("name", "apiVersion", "type")}
    assert validate("ContainerGroup", body) == []
