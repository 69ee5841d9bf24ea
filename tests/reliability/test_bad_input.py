"""Reliability against bad input: the corpus under `bad_manifests/` plus cases made at test time (a 50 MB
file, symlink loops and links out of the directory, an empty directory, a directory that vanishes mid-pass, a
manifest directory that is gone).

Each case breaks the manifest of a live group (`victim`) in a directory that also holds good manifests, then
runs one pass of the engine against the in-process emulator. Each must give an error naming the file, never
a crash; the good groups are still reconciled (an image update and a create), and no live group is deleted.
The last test runs the real CLI on the whole corpus at once.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.engine.observe import Scope
from reconciler.model.plan import Action
from reconciler.source import loader as source_loader
from reconciler.source.loader import MAX_PROBLEMS_PER_FILE
from reconciler.source.walk import WalkItem
from tests.e2e.harness import DaemonProcess, EmulatorProcess, run_cli
from tests.inprocess import engine_settings, in_process
from tests.reliability.support import (
    Spec,
    daemon_args,
    daemon_env,
    live_spec,
    one_pass,
    pass_finished,
    run,
    settled,
    write_specs,
)

CORPUS = Path(__file__).parent / "bad_manifests"
RG = "rg-bad"
GOOD_BEFORE = [Spec(name="good-a", rg=RG), Spec(name="good-b", rg=RG)]
GOOD_AFTER = [
    Spec(name="good-a", rg=RG, image="nginx:1.27"),
    Spec(name="good-b", rg=RG),
    Spec(name="good-c", rg=RG),
]
VICTIM = Spec(name="victim", rg=RG, image="nginx:victim")

# A case breaks the directory (given the manifest directory and a scratch directory outside it) and names
# the path its error must mention.
Breaker = Callable[[Path, Path], str]


def corpus_case(file_name: str) -> Breaker:
    def apply(manifests: Path, _: Path) -> str:
        shutil.copyfile(CORPUS / file_name, manifests / "victim.yaml")
        return "victim.yaml"

    return apply


def huge_file(manifests: Path, _: Path) -> str:
    target = manifests / "victim.yaml"
    with target.open("wb") as handle:
        handle.write(b"name: victim\nresourceGroup: rg-bad\n")
        chunk = b"# " + b"x" * (1024 * 1024 - 3) + b"\n"
        for _i in range(50):
            handle.write(chunk)
    assert target.stat().st_size >= 50 * 1024 * 1024
    return "victim.yaml"


def symlink_loop(manifests: Path, _: Path) -> str:
    (manifests / "victim.yaml").unlink()
    os.symlink("loop-b.yaml", manifests / "victim.yaml")
    os.symlink("victim.yaml", manifests / "loop-b.yaml")
    return "victim.yaml"


def link_out_of_the_directory(manifests: Path, scratch: Path) -> str:
    # A perfectly valid manifest outside the directory, reached through a link: never followed.
    write_specs(scratch / "outside.yaml", [Spec(name="victim", rg=RG, image="evil:latest", cpu=4)])
    (manifests / "victim.yaml").unlink()
    os.symlink(scratch / "outside.yaml", manifests / "victim.yaml")
    return "victim.yaml"


def directory_link_out(manifests: Path, scratch: Path) -> str:
    (scratch / "elsewhere").mkdir()
    write_specs(scratch / "elsewhere" / "x.yaml", [Spec(name="stranger", rg=RG)])
    os.symlink(scratch / "elsewhere", manifests / "linked")
    (manifests / "victim.yaml").unlink()  # the victim's manifest is gone too: pruning must be off this pass
    return "linked"


def broken_defaults(manifests: Path, _: Path) -> str:
    # The victim moves into a team directory whose defaults file is broken: none of its groups can load.
    (manifests / "victim.yaml").unlink()
    write_specs(manifests / "team" / "victim.yaml", [VICTIM])
    (manifests / "team" / "_defaults.yaml").write_text("resourceGroup: [not, a, name]\nlocaton: westeurope\n")
    return "_defaults.yaml"


def newline_in_file_name(manifests: Path, _: Path) -> str:
    # The victim's file is renamed to one whose name would forge an `error:` line if printed raw.
    (manifests / "victim.yaml").rename(manifests / "victim\nerror: forged.yaml")
    (manifests / "victim\nerror: forged.yaml").write_text("name: [\n")
    return "victim\\nerror: forged.yaml"  # as every message shows it: escaped, on one line


def four_megabyte_group_name(manifests: Path, _: Path) -> str:
    text = (manifests / "victim.yaml").read_text().replace("name: victim", "name: " + "v" * 4_000_000, 1)
    (manifests / "victim.yaml").write_text(text)
    return "victim.yaml"


def fifo(manifests: Path, _: Path) -> str:
    # Opening a FIFO for reading blocks until a writer comes: a loader that tried would hang the pass.
    (manifests / "victim.yaml").unlink()
    os.mkfifo(manifests / "victim.yaml")
    return "victim.yaml"


def duplicate_across_files(manifests: Path, _: Path) -> str:
    # The victim's own file is fine; a second file claims the same group with another spec.
    write_specs(manifests / "zz-copy.yaml", [Spec(name="victim", rg=RG, image="evil:latest", cpu=4)])
    return "zz-copy.yaml"


CASES: dict[str, Breaker] = {
    **{p.stem: corpus_case(p.name) for p in sorted(CORPUS.glob("*.yaml"))},
    "fifty_megabytes": huge_file,
    "symlink_loop": symlink_loop,
    "link_out_of_the_directory": link_out_of_the_directory,
    "directory_link_out": directory_link_out,
    "duplicate_across_files": duplicate_across_files,
    "fifo": fifo,
    "broken_defaults": broken_defaults,
    "newline_in_file_name": newline_in_file_name,
    "four_megabyte_group_name": four_megabyte_group_name,
}


def test_the_corpus_is_complete() -> None:
    assert set(CASES) >= {
        "invalid_yaml",
        "wrong_types",
        "unknown_fields",
        "alias_bomb",
        "non_utf8",
        "duplicate_names",
        "numbers_non_finite",
        "numbers_huge",
        "numbers_bool_underscore",
        "numbers_out_of_range",
        "names_invalid",
        "fifty_megabytes",
        "symlink_loop",
        "link_out_of_the_directory",
        "env_own_credentials",
        "secret_ref_own_credentials",
        "env_not_allowed",
        "control_characters",
        "newline_in_file_name",
        "four_megabyte_group_name",
    }


def _setup(manifests: Path) -> None:
    write_specs(manifests / "good.yaml", GOOD_BEFORE)
    write_specs(manifests / "victim.yaml", [VICTIM])


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_manifest_is_reported_by_file_and_nothing_is_deleted(
    case: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    manifests = tmp_path / "manifests"
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    async def body() -> None:
        async with in_process(tmp_path_factory.getbasetemp() / "tls") as (emu, gateway):
            settings = engine_settings(manifests)
            _setup(manifests)
            assert settled(await one_pass(settings, gateway)) is False  # it created three groups
            assert settled(await one_pass(settings, gateway))
            victim_before = emu.get_group(RG, "victim")
            mark = len(emu.request_log)

            write_specs(manifests / "good.yaml", GOOD_AFTER)
            named = CASES[case](manifests, scratch)
            outcome = await one_pass(settings, gateway)

            errors = outcome.plan.errors
            assert errors, f"{case}: no error reported"
            # Every message is one bounded line, whatever the input quoted in it.
            for e in errors:
                assert "\n" not in e.message + (e.source or ""), e
                assert len(e.message) < 5_000, (case, len(e.message))
            assert any(named in (e.source or "") or named in e.message for e in errors), [
                (e.source, e.message) for e in errors
            ]
            assert outcome.failed, "a pass with bad input exits non-zero"
            log = list(emu.request_log)[mark:]
            assert [r.path for r in log if r.method == "DELETE"] == [], "nothing deleted"
            # The victim is left exactly as it was: its manifest could not be read (or not trusted).
            assert [r.path for r in log if r.path.endswith("/victim") and r.method != "GET"] == []
            assert emu.get_group(RG, "victim") == victim_before
            # Every other group is still reconciled.
            for spec in GOOD_AFTER:
                group = emu.get_group(RG, spec.name)
                assert group is not None, spec.name
                assert live_spec(group) == (spec.image, spec.cpu, spec.memory), spec.name
            assert emu.get_group(RG, "stranger") is None
            ours = {c.name: c.action for c in outcome.plan.changes}
            assert ours.get("good-a") is Action.UPDATE
            assert ours.get("good-c") is Action.CREATE

    run(body)


@pytest.mark.parametrize("which", ["subdirectory", "root"])
def test_directory_vanishing_mid_pass_is_an_error_and_prunes_nothing(
    which: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk has listed the directory; it disappears (a git checkout, an rsync, a volume remount) while
    the pass reads it: `team/` before it is entered, or the whole manifest directory after `good.yaml`."""
    manifests = tmp_path / "manifests"
    doomed = manifests / "team" if which == "subdirectory" else manifests
    named = "team" if which == "subdirectory" else "victim.yaml"

    async def body() -> None:
        async with in_process(tmp_path_factory.getbasetemp() / "tls") as (emu, gateway):
            settings = engine_settings(manifests)
            write_specs(manifests / "good.yaml", GOOD_BEFORE)
            write_specs(doomed / "victim.yaml", [VICTIM])
            await one_pass(settings, gateway)
            assert settled(await one_pass(settings, gateway))
            mark = len(emu.request_log)

            write_specs(manifests / "good.yaml", GOOD_AFTER)
            real_read = source_loader._read_parsed
            vanished: list[Path] = []

            def read_file_then_remove_the_directory(item: WalkItem, *rest: Any) -> source_loader._Read:
                read = real_read(item, *rest)
                if item.path.name == "good.yaml" and not vanished:
                    shutil.rmtree(doomed)
                    vanished.append(item.path)
                return read

            # The loader reads (and parses) every file while it walks, before loading any: the directory
            # goes away between two reads.
            monkeypatch.setattr(source_loader, "_read_parsed", read_file_then_remove_the_directory)
            outcome = await one_pass(settings, gateway)
            assert vanished, "the directory was removed during the load"
            assert any(named in (e.source or "") and "vanished" in e.message for e in outcome.plan.errors), [
                (e.source, e.message) for e in outcome.plan.errors
            ]
            log = list(emu.request_log)[mark:]
            assert [r.path for r in log if r.method == "DELETE"] == []
            assert emu.get_group(RG, "victim") is not None
            good_a = emu.get_group(RG, "good-a")
            assert good_a is not None
            assert live_spec(good_a)[0] == "nginx:1.27", "what was read before it vanished is applied"
            assert emu.get_group(RG, "good-c") is not None

    run(body)


@pytest.mark.parametrize("how", ["empty", "gone"])
def test_empty_or_missing_manifest_directory_deletes_no_live_group(
    how: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    manifests = tmp_path / "manifests"

    async def body() -> None:
        async with in_process(tmp_path_factory.getbasetemp() / "tls") as (emu, gateway):
            settings = engine_settings(manifests, scope=Scope.parse([RG]))
            _setup(manifests)
            await one_pass(settings, gateway)
            assert settled(await one_pass(settings, gateway))
            mark = len(emu.request_log)
            if how == "empty":
                for path in manifests.iterdir():
                    path.unlink()
            else:
                shutil.rmtree(manifests)
            outcome = await one_pass(settings, gateway)
            assert outcome.failed
            assert outcome.plan.errors, "an empty or missing directory is reported"
            text = " ".join(f"{e.source} {e.message}" for e in outcome.plan.errors)
            assert "manifests" in text or "empty" in text, text
            log = list(emu.request_log)[mark:]
            assert [r.path for r in log if r.method in ("PUT", "PATCH", "DELETE")] == []
            assert {g.name for g in await gateway.list_groups(RG)} == {"good-a", "good-b", "victim"}

    run(body)


@pytest.mark.e2e
def test_cli_reports_every_bad_file_of_the_corpus_without_a_traceback(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    write_specs(manifests / "good.yaml", GOOD_AFTER)
    for path in CORPUS.glob("*.yaml"):
        shutil.copyfile(path, manifests / path.name)
    symlink_loop_dir = manifests / "links"
    symlink_loop_dir.mkdir()
    os.symlink("b.yaml", symlink_loop_dir / "a.yaml")
    os.symlink("a.yaml", symlink_loop_dir / "b.yaml")
    os.symlink(tmp_path, manifests / "out")
    huge_file(manifests, tmp_path)
    emulator = EmulatorProcess(tmp_path, "--no-throttling")
    try:
        result = run_cli(emulator, "-f", str(manifests), cwd=tmp_path)
        assert result.code == 1, result
        assert "Traceback" not in result.stderr + result.stdout, result
        for name in [p.name for p in CORPUS.glob("*.yaml")] + ["a.yaml", "b.yaml", "out", "victim.yaml"]:
            assert name in result.stderr + result.stdout, f"{name} is named:\n{result}"
        # The good groups were applied all the same; nothing else exists.
        assert [i.rsplit("/", 1)[1] for i in emulator.group_ids()] == ["good-a", "good-b", "good-c"]
    finally:
        emulator.stop()


def _watching_daemon(tmp_path: Path, manifests: Path) -> tuple[EmulatorProcess, DaemonProcess]:
    """The good manifests, an emulator, and a daemon watching them with a short debounce and no resync."""
    _setup(manifests)
    emulator = EmulatorProcess(tmp_path, "--no-throttling")
    daemon = DaemonProcess(
        daemon_args(
            emulator.endpoint,
            emulator.ca_cert,
            manifests,
            tmp_path / "daemon-state",
            "--interval",
            "0",
            "--debounce",
            "0.2s",
        ),
        daemon_env(home=tmp_path),
    )
    return emulator, daemon


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_daemon_survives_bad_manifests_reports_them_and_recovers_when_they_are_fixed(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    emulator, daemon = _watching_daemon(tmp_path, manifests)
    try:
        assert daemon.wait_for(pass_finished)["result"] == "ok", daemon.log_tail()
        # One burst of changes: a good edit and a handful of bad files, each moved in whole.
        staging = tmp_path / "staging"
        staging.mkdir()
        write_specs(staging / "good.yaml", GOOD_AFTER)
        huge_file(staging, tmp_path)
        os.rename(staging / "victim.yaml", staging / "zz-huge.yaml")
        shutil.copyfile(CORPUS / "wrong_types.yaml", staging / "victim.yaml")
        shutil.copyfile(CORPUS / "invalid_yaml.yaml", staging / "zz-invalid.yaml")
        shutil.copyfile(CORPUS / "alias_bomb.yaml", staging / "zz-bomb.yaml")
        os.symlink("zz-loop.yaml", staging / "zz-loop.yaml")
        for path in sorted(staging.iterdir()):
            os.replace(path, manifests / path.name)

        event = daemon.wait_for(lambda e: pass_finished(e) and e.get("result") != "ok", timeout=30)
        assert event["result"] == "failed", daemon.log_tail()
        assert daemon.proc.poll() is None, "the daemon is still running"
        assert daemon.get("/healthz")[0] == 200
        code, text = daemon.get("/status")
        assert code == 200
        for name in ("victim.yaml", "zz-invalid.yaml", "zz-bomb.yaml", "zz-huge.yaml", "zz-loop.yaml"):
            assert name in text, f"/status names {name}"
        status = json.loads(text)
        victim = next(g for g in status["groups"] if g["name"] == "victim")
        assert victim["state"] == "Stalled", victim
        assert victim["last_error"], victim
        assert emulator.get(RG, "victim") is not None, "never pruned"
        good_a = emulator.get(RG, "good-a")
        assert good_a is not None
        assert live_spec(good_a)[0] == "nginx:1.27"
        assert emulator.get(RG, "good-c") is not None
        assert emulator.writes()["DELETE"] == 0

        # Fixed: the victim's manifest is valid again (a new image), the bad files are gone.
        for name in ("zz-invalid.yaml", "zz-bomb.yaml", "zz-huge.yaml", "zz-loop.yaml"):
            (manifests / name).unlink()
        write_specs(manifests / "victim.yaml", [Spec(name="victim", rg=RG, image="nginx:fixed")])
        daemon.wait_for(lambda e: e.get("event") == "group done" and e.get("name") == "victim", timeout=30)
        event = daemon.wait_for(pass_finished, timeout=30)
        assert event["result"] == "ok", daemon.log_tail()
        victim_live = emulator.get(RG, "victim")
        assert victim_live is not None
        assert live_spec(victim_live)[0] == "nginx:fixed"
        status = json.loads(daemon.get("/status")[1])
        assert {g["name"]: g["state"] for g in status["groups"]}["victim"] == "Ready"
    finally:
        assert daemon.finish() == 0, daemon.log_tail()
        emulator.stop()


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_daemon_keeps_watching_a_manifest_directory_that_vanished_and_came_back(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    emulator, daemon = _watching_daemon(tmp_path, manifests)
    try:
        assert daemon.wait_for(pass_finished)["result"] == "ok", daemon.log_tail()
        # The directory goes away (a pass may run and must delete nothing), then comes back changed.
        staging = tmp_path / "staging"
        shutil.copytree(manifests, staging)
        shutil.rmtree(manifests)
        os.rename(staging, manifests)
        # The removal is noticed: a pass over the directory as it is back (nothing to do).
        assert daemon.wait_for(pass_finished)["applied"] == 0
        write_specs(manifests / "good.yaml", GOOD_AFTER)
        daemon.wait_for(
            lambda e: (
                e.get("event") == "group done" and e.get("name") == "good-c" and e.get("action") == "create"
            ),
            timeout=10,
        )
        good_a = emulator.get(RG, "good-a")
        assert good_a is not None
        assert live_spec(good_a)[0] == "nginx:1.27"
        assert emulator.writes()["DELETE"] == 0
    finally:
        daemon.finish()
        emulator.stop()


def _victim_document() -> str:
    return "---\n" + yaml.safe_dump(VICTIM.manifest(), sort_keys=False)


@pytest.mark.parametrize(
    ("documents", "content"),
    [
        pytest.param(20_000, lambda: "---\n{}\n", id="empty-documents"),
        pytest.param(5_000, _victim_document, id="one-group-defined-5000-times"),
    ],
)
def test_a_file_of_countless_bad_documents_gets_a_bounded_report(
    documents: int, content: Callable[[], str], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Thousands of broken documents in one file: the first errors and a count of the rest, not one error
    per problem (200,000 empty documents used to give 800,000 errors, 89 MB of CLI output)."""
    manifests = tmp_path / "manifests"

    async def body() -> None:
        async with in_process(tmp_path_factory.getbasetemp() / "tls") as (emu, gateway):
            settings = engine_settings(manifests)
            _setup(manifests)
            await one_pass(settings, gateway)
            write_specs(manifests / "good.yaml", GOOD_AFTER)
            (manifests / "victim.yaml").write_text(content() * documents)
            outcome = await one_pass(settings, gateway)
            errors = outcome.plan.errors
            assert all("victim.yaml" in (e.source or "") for e in errors)
            assert 1 < len(errors) <= MAX_PROBLEMS_PER_FILE + 1, f"{len(errors)} errors for one file"
            assert "more errors in this file, not shown" in errors[-1].message
            assert emu.get_group(RG, "victim") is not None
            assert emu.get_group(RG, "good-c") is not None

    run(body)
