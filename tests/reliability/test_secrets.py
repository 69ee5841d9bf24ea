"""Reliability of secret handling: canary secret values, in manifests (a literal `secureValue`, a secret
volume) and in the environment and files they reference (`secureValueFrom` env and file, a registry
`passwordFrom`, a storage key), plus the reconciler's own secrets in its environment (the hash key, the
webhook secret, an Azure client secret), never appear in stdout, stderr, logs, plans (text, JSON, markdown),
tags, `/status`, `/metrics`, exception messages, state files or the emulator's request log. Only the PUT body
carries them, and a positive control proves they got there.

The CLI and the daemon run in subprocesses against the emulator process; errors are provoked on purpose
(injected 500s and a rejected update) so the error paths are searched too. A hypothesis property checks the
engine in process: whatever the secret values, no rendered plan, issue or outcome message holds one.

Manifests that try to read the reconciler's own credentials (`AZURE_CLIENT_SECRET`, `RECONCILER_SECRET_KEY`,
`RECONCILER_WEBHOOK_SECRET`) through `${VAR}` in tags, command and env values, `${VAR:-default}`, and every
`...From: {env: ...}` form get nothing: not in any CLI output, daemon log, `/status`, `/metrics`, state, tag,
or any body the emulator received, even with `--env-allow '*'`.
"""

from __future__ import annotations

import base64
import json
import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.emulator.limits import FaultSettings
from reconciler.engine.reconcile import plan_pass
from reconciler.render import (
    render_apply_json,
    render_apply_markdown,
    render_apply_text,
    render_plan_json,
    render_plan_markdown,
    render_plan_text,
)
from tests.e2e.harness import DaemonProcess, EmulatorProcess, run_cli
from tests.inprocess import engine_settings, in_process
from tests.reliability.support import daemon_args, daemon_env, no_sleep, one_pass, pass_finished, run

RG = "rg-secrets"
CANARIES = {
    "env": "CANARYenv8d1f0a77",
    "env_rotated": "CANARYrot3b9e44c2",
    "file": "CANARYfile5c2e9b10",
    "file_rotated": "CANARYfrot77aa01bd",
    "literal": "CANARYlit6a0d3f2e",
    "registry": "CANARYreg2f8c1d93",
    "storage": "CANARYsto9e4b7c05",
    "volume": "CANARYvol1d7f3a66",
    "hash_key": "CANARYkey4c8a2e1f",
    "webhook": "CANARYhook0b5d9e3c",
    "client_secret": "CANARYcli7e2a6b48",
    "invalid": "CANARYbad5f1e0c3a",
}
VOLUME_B64 = base64.b64encode(CANARIES["volume"].encode()).decode()

MANIFEST = f"""\
name: vault
resourceGroup: {RG}
location: westeurope
tags: {{team: security}}
properties:
  osType: Linux
  imageRegistryCredentials:
  - server: registry.example.io
    username: puller
    passwordFrom: {{env: CANARY_REGISTRY_PASSWORD}}
  containers:
  - name: app
    properties:
      image: registry.example.io/app:1
      command: ["/app/run"]
      environmentVariables:
      - {{name: MODE, value: prod}}
      - {{name: FROM_ENV, secureValueFrom: {{env: CANARY_ENV}}}}
      - {{name: FROM_FILE, secureValueFrom: {{file: token.txt}}}}
      - {{name: LITERAL, secureValue: {CANARIES["literal"]}}}
      resources: {{requests: {{cpu: 1, memoryInGB: 1}}}}
      volumeMounts:
      - {{name: certs, mountPath: /certs}}
      - {{name: share, mountPath: /share}}
  volumes:
  - name: certs
    secret: {{tls.key: {VOLUME_B64}}}
  - name: share
    azureFile: {{shareName: s, storageAccountName: acct, storageAccountKeyFrom: {{env: CANARY_STORAGE_KEY}}}}
"""

# A broken manifest next to the secrets: the source's error paths run with the secrets loaded.
BROKEN = f"""\
name: broken
resourceGroup: rg-secrets
location: westeurope
properties:
  osType: Linux
  containers:
  - name: app
    properties:
      image: nginx
      environmentVariables:
      - {{name: X, secureValueFrom: {{env: CANARY_MISSING_VARIABLE}}}}
      - {{name: Y, secureValue: [{CANARIES["invalid"]}]}}
      - {{name: Z, secureValue: {CANARIES["invalid"]}, value: {CANARIES["invalid"]}}}
      resources: {{requests: {{cpu: lots, memoryInGB: 1}}}}
      volumeMounts: [{{name: s, mountPath: /s}}]
  volumes:
  - name: s
    secret: {{k: "not base64 {CANARIES["invalid"]}"}}
"""


def leaks(text: str) -> list[str]:
    """The canaries (or their base64 forms) found in `text`."""
    found = []
    for name, value in CANARIES.items():
        forms = {value, base64.b64encode(value.encode()).decode()}
        if any(form in text for form in forms):
            found.append(name)
    return found


def secret_env(rotated: bool = False) -> dict[str, str]:
    return {
        "CANARY_ENV": CANARIES["env_rotated" if rotated else "env"],
        "CANARY_REGISTRY_PASSWORD": CANARIES["registry"],
        "CANARY_STORAGE_KEY": CANARIES["storage"],
        "RECONCILER_SECRET_KEY": CANARIES["hash_key"],
        "RECONCILER_WEBHOOK_SECRET": CANARIES["webhook"],
        "AZURE_CLIENT_SECRET": CANARIES["client_secret"],
    }


def all_text_under(path: Path) -> str:
    out = []
    for file in sorted(path.rglob("*")):
        if file.is_file() and not file.is_symlink():
            out.append(f"--- {file}\n{file.read_bytes().decode('utf-8', 'replace')}")
    return "\n".join(out)


@pytest.mark.e2e
@pytest.mark.timeout(170)
def test_canary_secrets_never_leave_the_put_body(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "vault.yaml").write_text(MANIFEST)
    (manifests / "token.txt").write_text(CANARIES["file"] + "\n")
    emulator = EmulatorProcess(tmp_path, "--no-throttling")
    outputs: dict[str, str] = {}
    try:
        env = secret_env()
        for fmt in ("text", "json", "markdown"):
            r = run_cli(
                emulator, "plan", "-f", str(manifests), "-o", fmt, "--show-noop", cwd=tmp_path, env=env
            )
            assert r.code == 0, r
            outputs[f"plan {fmt} (create)"] = str(r)
        r = run_cli(emulator, "-f", str(manifests), cwd=tmp_path, env=env)
        assert r.code == 0, r
        outputs["apply (create)"] = str(r)
        created = emulator.get(RG, "vault")
        assert created is not None

        # Rotate the environment and the file secret: the plan must show an update, with values hidden.
        env = secret_env(rotated=True)
        (manifests / "token.txt").write_text(CANARIES["file_rotated"] + "\n")
        for fmt in ("text", "json", "markdown"):
            r = run_cli(
                emulator,
                "plan",
                "-f",
                str(manifests),
                "-o",
                fmt,
                "--detailed-exitcode",
                cwd=tmp_path,
                env=env,
            )
            assert r.code == 2, r
            outputs[f"plan {fmt} (rotation)"] = str(r)
        assert "(sensitive)" in outputs["plan text (rotation)"]

        # Error paths: a broken manifest joins in, the update's PUT answers 500 once (retried), then its
        # deployment fails (the group fails, exit 1).
        (manifests / "broken.yaml").write_text(BROKEN)
        for fmt in ("text", "json"):
            emulator.control(
                "PUT",
                "faults",
                {"rate": 1.0, "kinds": ["500", "provision_fail"], "methods": ["PUT"], "count": 2},
            )
            r = run_cli(
                emulator, "-f", str(manifests), "-o", fmt, "--lro-timeout", "20", cwd=tmp_path, env=env
            )
            assert r.code == 1, r
            outputs[f"apply {fmt} (errors)"] = str(r)
        emulator.control("DELETE", "faults")
        (manifests / "broken.yaml").unlink()
        r = run_cli(emulator, "-f", str(manifests), "-o", "json", cwd=tmp_path, env=env)
        assert r.code == 0, r
        outputs["apply json (rotation)"] = str(r)
        r = run_cli(emulator, "status", "-f", str(manifests), "-o", "json", cwd=tmp_path, env=env)
        outputs["status"] = str(r)
        r = run_cli(emulator, "export", "vault", "--resource-group", RG, cwd=tmp_path, env=env)
        assert r.code == 0, r
        outputs["export"] = str(r)
        r = run_cli(emulator, "validate", "-f", str(manifests), cwd=tmp_path, env=env)
        outputs["validate"] = str(r)

        # The daemon: debug logs, a rotation picked up by the file watcher, an injected error, its endpoints.
        state_dir = tmp_path / "daemon-state"
        daemon = DaemonProcess(
            daemon_args(
                emulator.endpoint,
                emulator.ca_cert,
                manifests,
                state_dir,
                "--interval",
                "0",
                "--debounce",
                "0.1s",
                "--backoff-max",
                "1s",
                "--log-level",
                "debug",
            ),
            daemon_env({**env, "CANARY_ENV": CANARIES["env"]}, home=tmp_path),
        )
        try:
            daemon.wait_for(pass_finished)
            emulator.control("PUT", "faults", {"rate": 1.0, "kinds": ["500"], "methods": ["PUT"], "count": 2})
            (manifests / "token.txt").write_text(CANARIES["file"] + "\n")
            daemon.wait_for(lambda e: e.get("event") == "group done" and e.get("name") == "vault", timeout=30)
            for path in ("/status", "/metrics", "/healthz", "/readyz"):
                code, body = daemon.get(path)
                assert code == 200, (path, body)
                outputs[f"daemon {path}"] = body
            assert json.loads(outputs["daemon /status"])["groups"], "the status lists the group"
        finally:
            assert daemon.finish() == 0, daemon.log_tail()
        outputs["daemon stderr"] = "".join(daemon.raw)
        outputs["daemon stdout"] = daemon.stdout
        errors_logged = [e for e in daemon.events if e.get("level") in ("warning", "error")]
        assert errors_logged, "the daemon's error paths ran"
        outputs["daemon state files"] = all_text_under(state_dir)

        # Azure's side: tags, what GET answers, the request log (paths only) and the emulator's state file.
        final = emulator.get(RG, "vault")
        assert final is not None
        outputs["tags and GET"] = json.dumps(final)
        outputs["emulator request log"] = json.dumps(emulator.control("GET", "requests?offset=0"))
        emulator.proc.terminate()
        out, err = emulator.proc.communicate(timeout=20)
        outputs["emulator stdout and stderr"] = out + err
        outputs["emulator state"] = (tmp_path / "state.json").read_text()
    finally:
        emulator.stop()

    assert (
        "(sensitive)" in outputs["plan markdown (rotation)"] or "sensitive" in outputs["plan json (rotation)"]
    )
    leaked = {where: leaks(text) for where, text in outputs.items() if leaks(text)}
    assert leaked == {}, f"secrets leaked: {leaked}"
    # The outputs did say something: the test would catch a leak in them.
    assert "vault" in outputs["plan text (create)"]
    assert "broken.yaml" in outputs["apply text (errors)"], "the broken manifest's errors were printed"
    assert "base64" in outputs["apply text (errors)"]
    assert (
        "FROM_ENV" in outputs["plan text (rotation)"]
        or "environmentVariables" in outputs["plan text (rotation)"]
    )


# ---------------------------------------------------------------------------------------------------------
# Property: the engine in process, any secret values

# A distinctive prefix: a generated value like "000000000000" would match the subscription id, not a leak.
secret_values = st.text(
    alphabet=string.ascii_letters + string.digits + "+/=_-.", min_size=8, max_size=32
).map(lambda s: "qZx~" + s)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=secret_values, second=secret_values, literal=secret_values)
def test_no_plan_render_issue_or_outcome_message_holds_a_secret(
    tmp_path_factory: pytest.TempPathFactory, first: str, second: str, literal: str
) -> None:
    work = tmp_path_factory.mktemp("prop")
    manifests = work / "manifests"
    manifests.mkdir()
    doc = MANIFEST.replace(CANARIES["literal"], json.dumps(literal))
    (manifests / "vault.yaml").write_text(doc)
    (manifests / "token.txt").write_text("file-" + first + "\n")
    env = {
        "CANARY_ENV": first,
        "CANARY_REGISTRY_PASSWORD": "reg-" + second,
        "CANARY_STORAGE_KEY": "key-" + second,
    }
    secrets_ = [first, "file-" + first, "reg-" + second, "key-" + second, literal]

    async def body() -> None:
        async with in_process(tmp_path_factory.getbasetemp() / "tls") as (emu, gateway):
            s = engine_settings(manifests)
            texts: list[str] = []
            outcome = await one_pass(s, gateway, env)
            submitted = json.dumps(emu.submitted_body(RG, "vault"))
            assert first in submitted, "positive control: the secret reached the PUT body"
            rotated = {**env, "CANARY_ENV": second + "-rotated"}
            secrets_.append(second + "-rotated")
            # The rotation's PUT fails: the failure message is searched too.
            emu.faults.set(FaultSettings(rate=1.0, kinds=("500",), methods=("PUT",)))
            failed = await one_pass(s, gateway, rotated)
            emu.faults.clear()
            planned = await plan_pass(s, gateway, environ=rotated, sleep=no_sleep)
            for o in (outcome, failed):
                assert o.applied is not None
                texts.append(repr(o.applied))
                texts.append(repr(o.plan.issues))
                texts.append(render_apply_text(o.applied, show_noop=True))
                texts.append(render_apply_markdown(o.applied))
                texts.append(render_apply_json(o.applied))
            for plan in (outcome.plan, failed.plan, planned.plan):
                texts.append(render_plan_text(plan, show_noop=True))
                texts.append(render_plan_markdown(plan))
                texts.append(render_plan_json(plan))
                texts.append(repr([c.write_tags for c in plan.changes]))
            live = emu.get_group(RG, "vault")
            texts.append(json.dumps(live))
            texts.extend(f"{r.method} {r.path} {r.fault}" for r in emu.request_log)
            everything = "\n".join(texts)
            assert "vault" in everything
            for secret in secrets_:
                assert secret not in everything
            assert failed.applied is not None
            assert not failed.applied.ok, "the error path ran"

    run(body)


# ---------------------------------------------------------------------------------------------------------
# Manifests that try to read the reconciler's own credentials (issue 10, finding 1)

OWN_CREDENTIALS = ("AZURE_CLIENT_SECRET", "RECONCILER_SECRET_KEY", "RECONCILER_WEBHOOK_SECRET")


def thief_manifest(name: str, variable: str) -> str:
    """Every way a manifest can name an environment variable, all aimed at `variable`."""
    return f"""\
name: {name}
resourceGroup: {RG}
location: westeurope
tags: {{build: "${{{variable}}}", fallback: "${{{variable}:-none}}"}}
properties:
  osType: Linux
  imageRegistryCredentials:
  - {{server: registry.example.io, username: puller, passwordFrom: {{env: {variable}}}}}
  containers:
  - name: app
    properties:
      image: registry.example.io/app:1
      command: ["/bin/sh", "-c", "echo ${{{variable}}}"]
      environmentVariables:
      - {{name: PLAIN, value: "${{{variable}}}"}}
      - {{name: COPY, secureValueFrom: {{env: {variable}}}}}
      - {{name: LITERAL, secureValue: "${{{variable}}}"}}
      resources: {{requests: {{cpu: 1, memoryInGB: 1}}}}
      volumeMounts: [{{name: share, mountPath: /share}}]
  volumes:
  - name: share
    azureFile: {{shareName: s, storageAccountName: acct, storageAccountKeyFrom: {{env: {variable}}}}}
  diagnostics:
    logAnalytics: {{workspaceId: w, workspaceKeyFrom: {{env: {variable}}}}}
"""


HONEST = f"""\
name: honest
resourceGroup: {RG}
location: westeurope
tags: {{build: "${{ACI_BUILD}}"}}
properties:
  osType: Linux
  containers:
  - name: app
    properties:
      image: nginx:1.25
      command: ["/bin/sh", "-c", "echo ${{ACI_BUILD}}"]
      environmentVariables:
      - {{name: FROM_ENV, secureValueFrom: {{env: CANARY_ENV}}}}
      resources: {{requests: {{cpu: 1, memoryInGB: 1}}}}
"""


def thief_tree(manifests: Path) -> None:
    manifests.mkdir(parents=True, exist_ok=True)
    for i, variable in enumerate(OWN_CREDENTIALS):
        (manifests / f"thief-{i}.yaml").write_text(thief_manifest(f"thief-{i}", variable))
    (manifests / "honest.yaml").write_text(HONEST)


@pytest.mark.e2e
@pytest.mark.timeout(170)
def test_manifests_reading_the_reconcilers_own_credentials_get_nothing_anywhere(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    thief_tree(manifests)
    env = {**secret_env(), "ACI_BUILD": "build-77"}
    emulator = EmulatorProcess(tmp_path, "--no-throttling")
    outputs: dict[str, str] = {}
    try:
        for fmt in ("text", "json", "markdown"):
            r = run_cli(emulator, "plan", "-f", str(manifests), "-o", fmt, cwd=tmp_path, env=env)
            assert r.code == 1, r
            outputs[f"plan {fmt}"] = str(r)
        for fmt in ("text", "json"):
            r = run_cli(emulator, "-f", str(manifests), "-o", fmt, cwd=tmp_path, env=env)
            assert r.code == 1, r
            outputs[f"apply {fmt}"] = str(r)
        for extra in ((), ("--no-secrets",), ("--env-allow", "*")):
            r = run_cli(emulator, "validate", "-f", str(manifests), *extra, cwd=tmp_path, env=env)
            assert r.code == 1, r
            outputs[f"validate {extra}"] = str(r)
        r = run_cli(emulator, "status", "-f", str(manifests), "-o", "json", cwd=tmp_path, env=env)
        outputs["status"] = str(r)
        r = run_cli(emulator, "export", "honest", "--resource-group", RG, cwd=tmp_path, env=env)
        assert r.code == 0, r
        outputs["export"] = str(r)

        state_dir = tmp_path / "daemon-state"
        daemon = DaemonProcess(
            daemon_args(
                emulator.endpoint,
                emulator.ca_cert,
                manifests,
                state_dir,
                "--interval",
                "0",
                "--log-level",
                "debug",
                "--env-allow",
                "*",
            ),
            daemon_env(env, home=tmp_path),
        )
        try:
            daemon.wait_for(pass_finished)
            for path in ("/status", "/metrics", "/healthz", "/readyz"):
                code, body = daemon.get(path)
                assert code == 200, (path, body)
                outputs[f"daemon {path}"] = body
        finally:
            assert daemon.finish() == 0, daemon.log_tail()
        outputs["daemon stderr"] = "".join(daemon.raw)
        outputs["daemon stdout"] = daemon.stdout
        outputs["daemon state files"] = all_text_under(state_dir)

        # Azure's side: only the honest group exists, and nothing of ours is in its tags or GET.
        assert [i.rsplit("/", 1)[1] for i in emulator.group_ids()] == ["honest"]
        honest = emulator.get(RG, "honest")
        assert honest is not None
        assert honest["tags"]["build"] == "build-77", "positive control: an allowed variable is substituted"
        outputs["tags and GET"] = json.dumps(honest)
        outputs["emulator request log"] = json.dumps(emulator.control("GET", "requests?offset=0"))
        emulator.proc.terminate()
        out, err = emulator.proc.communicate(timeout=20)
        outputs["emulator stdout and stderr"] = out + err
        outputs["emulator state"] = (tmp_path / "state.json").read_text()
    finally:
        emulator.stop()

    leaked = {where: leaks(text) for where, text in outputs.items() if leaks(text)}
    assert leaked == {}, f"secrets leaked: {leaked}"
    # The outputs did say something: every thief file is refused by name, with the rule.
    for where in ("plan text", "apply text", "validate ()"):
        for i in range(len(OWN_CREDENTIALS)):
            assert f"thief-{i}.yaml:" in outputs[where], where
        assert "never read" in outputs[where]
    status = json.loads(outputs["daemon /status"])
    assert "refused" in json.dumps(status), "the daemon's status reports the refusal"


@pytest.mark.parametrize("variable", OWN_CREDENTIALS)
def test_no_request_body_plan_or_message_holds_an_own_credential(
    tmp_path_factory: pytest.TempPathFactory, variable: str
) -> None:
    """In process: every body the emulator received, every render of the plan and outcome."""
    work = tmp_path_factory.mktemp("own")
    manifests = work / "manifests"
    thief_tree(manifests)
    canary = CANARIES["client_secret"] + variable
    env = dict.fromkeys(OWN_CREDENTIALS, canary) | {"ACI_BUILD": "b1", "CANARY_ENV": "fine"}

    async def body() -> None:
        async with in_process(tmp_path_factory.getbasetemp() / "tls") as (emu, gateway):
            s = engine_settings(manifests, env_allow=("*",))
            outcome = await one_pass(s, gateway, env)
            assert outcome.applied is not None
            texts = [
                repr(outcome.plan.issues),
                render_plan_text(outcome.plan, show_noop=True),
                render_plan_json(outcome.plan),
                render_plan_markdown(outcome.plan),
                render_apply_text(outcome.applied, show_noop=True),
                render_apply_json(outcome.applied),
                repr([c.write_tags for c in outcome.plan.changes]),
            ]
            for name in ("honest", "thief-0", "thief-1", "thief-2"):
                texts.append(json.dumps(emu.submitted_body(RG, name)))
                texts.append(json.dumps(emu.get_group(RG, name)))
            everything = "\n".join(texts)
            assert canary not in everything
            assert emu.submitted_body(RG, "honest") is not None, "positive control: the honest group was PUT"
            assert "refused" in everything

    run(body)
