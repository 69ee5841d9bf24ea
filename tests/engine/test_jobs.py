"""The job runner (`reconciler.engine.jobs`) on the in-memory FakeGateway and a scripted watcher.

How a run brings its group up (create, start, replace; the calls are counted), concurrency, keep, timeout,
cancellation, exit codes and secret masking. The watcher's own polling is tested in
tests/execution/test_watch.py; the whole thing through the CLI and the emulator in tests/e2e/test_cli_run.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from reconciler.cloud.retry import RetryPolicy
from reconciler.engine.jobs import JobContext, JobRunner, container_exits, job_exit_code
from reconciler.engine.reconcile import EngineSettings
from reconciler.execution import ApplyOptions
from reconciler.model.jobrun import ContainerExit, JobRequest, RunResult
from reconciler.model.observed import ObservedGroup
from reconciler.planning.ownership import JOB_TAG
from tests.fakes.gateway import FakeGateway

JOB = """\
name: {name}
resourceGroup: rg-jobs
location: westeurope
properties:
  osType: Linux
  restartPolicy: {policy}
  containers:
  - name: first
    properties:
      image: {image}
      environmentVariables:
      - name: TOKEN
        secureValueFrom: {{env: JOB_TOKEN}}
      resources: {{requests: {{cpu: 1, memoryInGB: 1}}}}
  - name: second
    properties:
      image: busybox:1
      resources: {{requests: {{cpu: 1, memoryInGB: 1}}}}
{extra}"""

TOKEN = "s3cret-token-value"
ENVIRON = {"JOB_TOKEN": TOKEN}


def write_job(root: Path, *, image: str = "busybox:1", policy: str = "Never", extra: str = "") -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "job.yaml").write_text(JOB.format(name="job", image=image, policy=policy, extra=extra))


def settings(root: Path) -> EngineSettings:
    return EngineSettings(
        manifests=root,
        secret_key=b"k" * 32,
        apply=ApplyOptions(backoff_base=0.0, backoff_cap=0.0),
        retry=RetryPolicy(max_attempts=3, backoff_base=0.0, backoff_cap=0.0),
    )


def ended(group: ObservedGroup, codes: dict[str, int | None], state: str) -> ObservedGroup:
    body = dict(group.body)
    props = dict(body["properties"])
    containers = []
    for container in props.get("containers") or ():
        code = codes.get(container["name"])
        current: dict[str, Any] = {"state": "Terminated" if code is not None else "Waiting"}
        if code is not None:
            current["exitCode"] = code
        containers.append(
            {
                **container,
                "properties": {**container["properties"], "instanceView": {"currentState": current}},
            }
        )
    props["containers"] = containers
    props["instanceView"] = {"state": state}
    body["properties"] = props
    return group.model_copy(update={"body": body, "instance_state": state})


class ScriptedWatcher:
    """Plays a run: delivers `logs`, then ends the group with `codes` (or never, with `hang`)."""

    def __init__(self, gateway: FakeGateway) -> None:
        self.gateway = gateway
        self.codes: dict[str, int | None] = {"first": 0, "second": 0}
        self.logs: list[tuple[str, str]] = []
        self.hang = False
        self.watched: list[str] = []
        self.started = asyncio.Event()
        self.refreshed = asyncio.Event()

    def watch(
        self,
        resource_group: str,
        name: str,
        containers: Sequence[str],
        *,
        on_log: Callable[[str, str], None] | None,
        logs: bool = True,
        timestamps: bool = False,
    ) -> Any:
        self.watched.append(name)
        watcher = self

        class _Watch:
            async def result(self) -> ObservedGroup | None:
                watcher.started.set()
                for container, text in watcher.logs:
                    if on_log is not None and logs:
                        on_log(container, text)
                if watcher.hang:
                    await watcher.refreshed.wait()
                key = (resource_group.lower(), name.lower())
                group = watcher.gateway.groups[key]
                codes = watcher.codes
                state = "Succeeded" if all(c == 0 for c in codes.values()) else "Failed"
                watcher.gateway.groups[key] = ended(group, codes, state)
                return watcher.gateway.groups[key]

            def refresh(self) -> None:
                watcher.refreshed.set()

            def cancel(self) -> None:
                pass

        return _Watch()


def runner(root: Path, gateway: FakeGateway, watcher: ScriptedWatcher, **kw: Any) -> tuple[JobRunner, list]:
    printed: list[tuple[str, str]] = []
    context = JobContext(
        settings=settings(root),
        gateway=gateway,
        watcher=watcher,
        environ=ENVIRON,
        on_log=lambda c, t: printed.append((c, t)),
        suffix=lambda: "a1b2c3",
        **kw,
    )
    return JobRunner(context), printed


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


async def test_a_missing_job_is_created_run_and_deleted_with_the_first_non_zero_exit_code(
    tmp_path: Path, gateway: FakeGateway
) -> None:
    write_job(tmp_path)
    watcher = ScriptedWatcher(gateway)
    watcher.codes = {"first": 0, "second": 3}
    run, _ = runner(tmp_path, gateway, watcher)
    result = await run.run(JobRequest(name="job"))
    assert (result.result, result.exit_code, result.launched_by) == (RunResult.FAILED, 3, "create")
    assert [c.exit_code for c in result.containers] == [0, 3]
    assert gateway.ops() == ["get", "put", "delete"]
    assert not gateway.exists("rg-jobs", "job")


async def test_a_rerun_of_an_unchanged_terminated_job_uses_start_not_delete_and_create(
    tmp_path: Path, gateway: FakeGateway
) -> None:
    write_job(tmp_path)
    watcher = ScriptedWatcher(gateway)
    run, _ = runner(tmp_path, gateway, watcher)
    first = await run.run(JobRequest(name="job", keep="always"))
    assert first.launched_by == "create"
    assert first.kept
    gateway.calls.clear()
    second = await run.run(JobRequest(name="job", keep="always"))
    assert second.launched_by == "start"
    assert gateway.ops() == ["get", "start", "get"]


async def test_a_changed_terminated_job_is_replaced(tmp_path: Path, gateway: FakeGateway) -> None:
    write_job(tmp_path)
    watcher = ScriptedWatcher(gateway)
    run, _ = runner(tmp_path, gateway, watcher)
    await run.run(JobRequest(name="job", keep="always"))
    write_job(tmp_path, image="busybox:2")
    gateway.calls.clear()
    result = await run.run(JobRequest(name="job", keep="always"))
    assert result.launched_by == "replace"
    assert gateway.count("delete") == 1
    assert gateway.count("put") == 1


@pytest.mark.parametrize(
    ("keep", "codes", "kept"),
    [
        ("on-failure", {"first": 0, "second": 0}, False),
        ("on-failure", {"first": 1, "second": 0}, True),
        ("never", {"first": 1, "second": 0}, False),
        ("always", {"first": 0, "second": 0}, True),
    ],
)
async def test_keep_decides_whether_the_group_stays_after_the_run(
    tmp_path: Path, gateway: FakeGateway, keep: str, codes: dict[str, int], kept: bool
) -> None:
    write_job(tmp_path)
    watcher = ScriptedWatcher(gateway)
    watcher.codes = dict(codes)
    run, _ = runner(tmp_path, gateway, watcher)
    result = await run.run(JobRequest(name="job", keep=keep))  # type: ignore[arg-type]
    assert result.kept is kept
    assert gateway.exists("rg-jobs", "job") is kept


async def test_the_manifests_keep_applies_when_the_request_names_none(
    tmp_path: Path, gateway: FakeGateway
) -> None:
    write_job(tmp_path, extra="reconcile:\n  job: {keep: always}\n")
    run, _ = runner(tmp_path, gateway, ScriptedWatcher(gateway))
    assert (await run.run(JobRequest(name="job"))).kept


async def test_a_timeout_stops_and_deletes_the_group_and_exits_124(
    tmp_path: Path, gateway: FakeGateway
) -> None:
    write_job(tmp_path)
    watcher = ScriptedWatcher(gateway)
    watcher.hang = True
    run, _ = runner(tmp_path, gateway, watcher)
    result = await run.run(JobRequest(name="job", timeout_s=0.01))
    assert (result.result, result.exit_code) == (RunResult.TIMED_OUT, 124)
    assert gateway.ops()[-2:] == ["stop", "delete"]
    assert not gateway.exists("rg-jobs", "job")


@pytest.mark.parametrize(
    ("keep", "last_ops", "stays"), [(None, ["stop", "delete"], False), ("always", ["stop"], True)]
)
async def test_cancelling_a_run_stops_its_group_deletes_it_unless_kept_then_lets_the_cancellation_through(
    tmp_path: Path, gateway: FakeGateway, keep: Any, last_ops: list[str], stays: bool
) -> None:
    write_job(tmp_path)
    watcher = ScriptedWatcher(gateway)
    watcher.hang = True
    run, _ = runner(tmp_path, gateway, watcher)
    task = asyncio.create_task(run.run(JobRequest(name="job", keep=keep)))
    await watcher.started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert gateway.ops()[-len(last_ops) :] == last_ops
    assert gateway.exists("rg-jobs", "job") is stays


async def active_run(tmp_path: Path, gateway: FakeGateway) -> JobRunner:
    """A runner whose job has a run still active (its kept group shows Running); the call log is cleared."""
    write_job(tmp_path)
    run, _ = runner(tmp_path, gateway, ScriptedWatcher(gateway))
    await run.run(JobRequest(name="job", keep="always"))
    key = ("rg-jobs", "job")
    gateway.groups[key] = gateway.groups[key].model_copy(update={"instance_state": "Running"})
    gateway.calls.clear()
    return run


async def test_forbid_refuses_a_run_while_one_is_active(tmp_path: Path, gateway: FakeGateway) -> None:
    run = await active_run(tmp_path, gateway)
    result = await run.run(JobRequest(name="job"))
    assert (result.result, result.exit_code) == (RunResult.SKIPPED, 125)
    assert "still active" in result.message
    assert gateway.ops() == ["get"]


async def test_replace_stops_and_deletes_the_active_run_before_creating_the_new_one(
    tmp_path: Path, gateway: FakeGateway
) -> None:
    run = await active_run(tmp_path, gateway)
    result = await run.run(JobRequest(name="job", concurrency="Replace"))
    assert result.launched_by == "create"
    assert gateway.ops() == ["get", "stop", "delete", "put", "delete"]


async def test_allow_runs_beside_the_active_run_in_a_suffixed_group_tagged_with_its_template(
    tmp_path: Path, gateway: FakeGateway
) -> None:
    run = await active_run(tmp_path, gateway)
    result = await run.run(JobRequest(name="job", concurrency="Allow", keep="always"))
    assert result.group_name == "job-a1b2c3"
    assert gateway.groups[("rg-jobs", "job-a1b2c3")].tags[JOB_TAG] == "job"
    assert gateway.exists("rg-jobs", "job")


async def test_a_group_we_do_not_manage_is_a_conflict_and_is_left_alone(
    tmp_path: Path, gateway: FakeGateway
) -> None:
    write_job(tmp_path)
    gateway.add("rg-jobs", "job", body={"location": "westeurope", "properties": {"containers": []}})
    run, _ = runner(tmp_path, gateway, ScriptedWatcher(gateway))
    result = await run.run(JobRequest(name="job"))
    assert (result.result, result.exit_code) == (RunResult.ERROR, 125)
    assert "failIfExists" in result.message
    assert gateway.ops() == ["get"]


async def test_a_group_that_restarts_for_ever_is_not_a_job(tmp_path: Path, gateway: FakeGateway) -> None:
    write_job(tmp_path, policy="Always")
    run, _ = runner(tmp_path, gateway, ScriptedWatcher(gateway))
    result = await run.run(JobRequest(name="job"))
    assert result.exit_code == 125
    assert "restartPolicy" in result.message
    assert gateway.calls == []


async def test_an_unknown_job_name_is_an_error_naming_it(tmp_path: Path, gateway: FakeGateway) -> None:
    write_job(tmp_path)
    run, _ = runner(tmp_path, gateway, ScriptedWatcher(gateway))
    result = await run.run(JobRequest(name="nope"))
    assert result.exit_code == 125
    assert "nope" in result.message


async def test_secrets_the_job_was_given_are_masked_in_the_streamed_log_and_the_tail(
    tmp_path: Path, gateway: FakeGateway
) -> None:
    write_job(tmp_path)
    watcher = ScriptedWatcher(gateway)
    watcher.logs = [("first", f"token is {TOKEN}\n"), ("second", "done\n")]
    run, printed = runner(tmp_path, gateway, watcher)
    result = await run.run(JobRequest(name="job"))
    assert printed == [("first", "token is ***\n"), ("second", "done\n")]
    assert result.log_tail == ("first | token is ***", "second | done")
    assert TOKEN not in repr(result)


def test_the_exit_code_is_zero_only_when_every_container_exited_zero() -> None:
    def exits(*codes: int | None) -> list[ContainerExit]:
        return [ContainerExit(name=f"c{i}", exit_code=c) for i, c in enumerate(codes)]

    assert job_exit_code(exits(0, 0)) == 0
    assert job_exit_code(exits(0, 2, 1)) == 2
    assert job_exit_code(exits(0, None)) is None
    assert job_exit_code(exits()) == 0


def test_container_exits_follow_the_manifest_order_with_init_containers_first() -> None:
    body = {
        "properties": {
            "initContainers": [
                {
                    "name": "init",
                    "properties": {"instanceView": {"currentState": {"state": "Terminated", "exitCode": 0}}},
                }
            ],
            "containers": [
                {
                    "name": "b",
                    "properties": {
                        "instanceView": {
                            "restartCount": 2,
                            "currentState": {"state": "Terminated", "exitCode": 7},
                        }
                    },
                },
                {"name": "a", "properties": {"instanceView": {"currentState": {"state": "Running"}}}},
            ],
        }
    }
    group = ObservedGroup(resource_group="rg", name="g", body=body)
    out = container_exits(group, ["init", "a", "b"])
    assert [(c.name, c.exit_code) for c in out] == [("init", 0), ("a", None), ("b", 7)]
    assert out[2].restart_count == 2


class TaskTerminated(BaseException):
    """What Airflow's SIGTERM handler raises inside the task's code."""


async def test_an_exception_raised_into_a_run_stops_and_deletes_its_group_before_it_goes_on(
    tmp_path: Path, gateway: FakeGateway
) -> None:
    write_job(tmp_path)
    watcher = ScriptedWatcher(gateway)

    def interrupted(container: str, text: str) -> None:
        raise TaskTerminated

    watcher.logs = [("first", "working\n")]
    context = JobContext(
        settings=settings(tmp_path), gateway=gateway, watcher=watcher, environ=ENVIRON, on_log=interrupted
    )
    with pytest.raises(TaskTerminated):
        await JobRunner(context).run(JobRequest(name="job"))
    assert gateway.ops()[-2:] == ["stop", "delete"]
    assert not gateway.exists("rg-jobs", "job")
