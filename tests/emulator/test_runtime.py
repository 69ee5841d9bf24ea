"""Job containers run a simulation of their command: the grammar (pure), the life cycle in the store on a fake
clock (logs that grow, exit codes, OnFailure restarts with back-off, init containers, stop and start, the
control surface winning), and the same through the real SDK and the logs API."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import pytest
from azure.mgmt.containerinstance import models
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.emulator.runtime import Program, go_duration, simulate
from reconciler.emulator.server import Emulator, EmulatorConfig
from reconciler.emulator.store import DefaultJobSettings, GroupRecord, Store, backoff
from tests.emulator.conftest import RG, ClientFactory, FakeClock, group_model

T0 = 1_700_000_000.0


def run(command: list[str] | None, **kwargs: Any) -> Program:
    return simulate(command, image="alpine:3", env={"NAME": "world", "EMPTY": ""}, **kwargs)


def text(program: Program) -> str:
    return "".join(chunk.text for chunk in program.chunks)


def sh(script: str, *args: str) -> list[str]:
    return ["/bin/sh", "-c", script, *args]


# -- the grammar -------------------------------------------------------------------------------------------

GRAMMAR: list[tuple[str, list[str] | None, str, int, float]] = [
    # (what, command, output, exit code, duration)
    ("echo", ["echo", "a", "b"], "a b\n", 0, 0),
    ("echo -n", ["echo", "-n", "a"], "a", 0, 0),
    ("echo -e escapes", ["echo", "-e", r"a\tb\nc"], "a\tb\nc\n", 0, 0),
    ("echo without -e keeps backslashes", ["echo", r"a\nb"], "a\\nb\n", 0, 0),
    ("echo -e \\c stops the output", ["echo", "-e", r"ab\cde", "f"], "ab", 0, 0),
    ("an absolute path to a utility", ["/bin/echo", "hi"], "hi\n", 0, 0),
    ("printf %s %d and escapes", ["printf", r"%s=%d\t%%\n", "x", "42"], "x=42\t%\n", 0, 0),
    ("printf reuses its format", ["printf", r"<%s>\n", "a", "b", "c"], "<a>\n<b>\n<c>\n", 0, 0),
    (
        "printf width, precision, hex",
        ["printf", r"%5.1f|%-3s|%x|%03d", "2.25", "a", "255", "7"],
        "  2.2|a  |ff|007",
        0,
        0,
    ),
    ("printf of a bad number", ["printf", r"%d\n", "x"], "printf: x: invalid number\n0\n", 1, 0),
    ("printf without a format", ["printf"], "printf: usage: printf format [arguments]\n", 2, 0),
    ("sleep in seconds", ["sleep", "2"], "", 0, 2),
    ("sleep with suffixes and fractions", ["sleep", "1.5m", "2s", ".5"], "", 0, 92.5),
    ("sleep in hours", ["sleep", "1h"], "", 0, 3600),
    ("sleep inf never ends", ["sleep", "infinity"], "", 0, math.inf),
    ("sleep with a bad interval", ["sleep", "soon"], "sleep: invalid time interval 'soon'\n", 1, 0),
    ("true", ["true"], "", 0, 0),
    ("false", ["false"], "", 1, 0),
    ("exit", ["exit", "3"], "", 3, 0),
    ("exit wraps at 256", ["exit", "257"], "", 1, 0),
    ("the issue's example", sh("echo a; sleep 2; echo b; exit 3"), "a\nb\n", 3, 2),
    ("bash -c", ["bash", "-c", "echo one && echo two"], "one\ntwo\n", 0, 0),
    ("newlines separate commands", sh("echo a\nsleep 1\necho b"), "a\nb\n", 0, 1),
    ("the last command's status", sh("echo a; false"), "a\n", 1, 0),
    ("&& skips after a failure", sh("false && echo no; echo $?"), "1\n", 0, 0),
    ("|| runs after a failure", sh("false || echo yes"), "yes\n", 0, 0),
    ("and-or lists are left-associative", sh("true || echo no && echo yes"), "yes\n", 0, 0),
    ("|| exit gives the code", sh("false || exit 7; echo never"), "", 7, 0),
    ("exit without a number keeps the status", sh("false; exit"), "", 1, 0),
    ("exit stops the script", sh("echo a; exit 0; echo b"), "a\n", 0, 0),
    ("quoting", sh("echo 'a  b' \"c  d\" e\\ f ''"), "a  b c  d e f \n", 0, 0),
    ("variables from the environment", sh('echo "hello $NAME" ${NAME}!'), "hello world world!\n", 0, 0),
    ("unquoted expansions are split", sh('X="a   b"; echo $X; echo "$X"'), "a b\na   b\n", 0, 0),
    ("positional parameters", sh("echo $0 $1 $2 $#", "me", "x", "y"), "me x y 2\n", 0, 0),
    ("$? after each command", sh("false; echo $?; true; echo $?"), "1\n0\n", 0, 0),
    ("export", sh("export A=1; echo $A"), "1\n", 0, 0),
    ("redirections to stderr stay in the log", sh("echo a >&2; echo b 1>&2; echo c 2>&1"), "a\nb\nc\n", 0, 0),
    ("a redirection to a file leaves the log", sh("echo a > /tmp/x; echo b >/dev/null; echo c"), "c\n", 0, 0),
    ("errors to /dev/null", sh("sleep x 2>/dev/null; echo $?"), "1\n", 0, 0),
    ("a digit before a space is an argument", sh("echo 1 >&2"), "1\n", 0, 0),
    ("set -e stops at a failure", sh("set -e; echo a; false; echo b"), "a\n", 1, 0),
    ("sh -e, not after a non-final && part", ["sh", "-ec", "false && true; echo b"], "b\n", 0, 0),
    ("sh -x traces", ["sh", "-xc", "echo a"], "+ echo a\na\n", 0, 0),
    ("comments", sh("echo a # not this\n# nor this\necho b"), "a\nb\n", 0, 0),
    ("line continuation", sh("echo a \\\nb"), "a b\n", 0, 0),
    ("a nested shell", sh("sh -c 'echo in; exit 4'; echo $?"), "in\n4\n", 0, 0),
    ("exec", sh("exec echo hi; echo never"), "hi\n", 0, 0),
    (
        "a syntax error, as the recorded attach test",
        sh("echo hello; sleep 15; done"),
        'sh: syntax error: unexpected "done"\n',
        2,
        0,
    ),
    ("`in` alone is a command, not a syntax error", sh("in x"), "in x\n", 0, 1),
    ("an unterminated quote", sh("echo 'oops"), "sh: syntax error: unterminated quoted string\n", 2, 0),
    ("exit with a bad number", sh("exit x"), "sh: exit: Illegal number: x\n", 2, 0),
    # Anything else: the command line, the job run time, exit 0.
    ("another program", ["python", "-m", "job", "--x=1 2"], "python -m job '--x=1 2'\n", 0, 1),
    ("no command: the image", None, "alpine:3\n", 0, 1),
    ("an empty command: the image", [], "alpine:3\n", 0, 1),
    ("another program inside a script", sh("echo a; python x.py; echo b"), "a\npython x.py\nb\n", 0, 1),
    ("a pipe makes the script opaque", sh("echo a | tr a b"), "/bin/sh -c 'echo a | tr a b'\n", 0, 1),
    ("if makes it opaque", sh("if true; then echo a; fi"), "/bin/sh -c 'if true; then echo a; fi'\n", 0, 1),
    ("$(...) makes it opaque", sh("echo $(date)"), "/bin/sh -c 'echo $(date)'\n", 0, 1),
    ("a shell running a file is opaque", ["sh", "run.sh"], "sh run.sh\n", 0, 1),
]


@pytest.mark.parametrize(
    ("command", "output", "code", "duration"), [g[1:] for g in GRAMMAR], ids=[g[0] for g in GRAMMAR]
)
def test_the_grammar_gives_the_output_exit_code_and_duration_of_sh(
    command: list[str] | None, output: str, code: int, duration: float
) -> None:
    program = run(command)
    assert (text(program), program.exit_code, program.duration) == (output, code, duration)


def test_output_is_stamped_with_the_simulated_time_it_was_written() -> None:
    program = run(sh("echo a; sleep 2; printf 'b'; sleep 1; echo c; sleep 0.5; exit 3"))
    assert [(c.at, c.text) for c in program.chunks] == [(0, "a\n"), (2, "b"), (3, "c\n")]
    assert (program.exit_code, program.duration) == (3, 3.5)
    # A line is stamped when its last piece is written; so far-written lines only.
    assert [(line.at - 10, line.text) for line in program.lines(10, 11.9)] == [(0, "a\n")]
    assert [(line.at - 10, line.text) for line in program.lines(10, 12)] == [(0, "a\n"), (2, "b")]
    assert [(line.at - 10, line.text) for line in program.lines(10, 20)] == [(0, "a\n"), (3, "bc\n")]


def test_the_run_time_of_other_programs_is_configurable() -> None:
    assert run(["python", "x.py"], run_time=7.5).duration == 7.5
    assert run(sh("a; b"), run_time=2).duration == 4


def test_back_off_comes_at_once_then_doubles_from_its_base_up_to_thirty_times_it() -> None:
    assert [backoff(10, n) for n in range(1, 9)] == [0, 10, 20, 40, 80, 160, 300, 300]
    assert [go_duration(backoff(10, n)) for n in (2, 5, 7)] == ["10s", "1m20s", "5m0s"]
    assert backoff(0, 3) > 0  # a back-off of 0 still moves time on


WORDS = [
    "echo",
    "printf",
    "sleep",
    "exit",
    "true",
    "false",
    "sh",
    "-c",
    "-e",
    "-n",
    "bash",
    "set",
    "exec",
    "export",
    "a",
    "1",
    "-1",
    "2.5",
    "inf",
    "%s",
    "%d",
    "%5.2f",
    "%b",
    "%",
    "\\n",
    "\\c",
    "\\0",
    "$X",
    "${X}",
    "$?",
    "$1",
    "${",
    "}",
    "'",
    '"',
    "\\",
    ";",
    "&&",
    "||",
    "&",
    "|",
    "\n",
    ">&2",
    "2>&1",
    ">",
    "<",
    "<<",
    "(",
    ")",
    "#",
    "done",
    "if",
    "X=1",
    "$(",
    "`",
    "99999999999999999999",
    "%99999999999d",
    "1e309",
    "nan",
]
script = st.lists(st.sampled_from(WORDS), max_size=12).flatmap(
    lambda words: st.sampled_from([" ", ""]).map(lambda sep: sep.join(words))
)
argv = st.one_of(
    st.lists(st.text(max_size=12), max_size=6),
    st.lists(st.sampled_from(WORDS), max_size=8),
    script.map(lambda s: ["sh", "-c", s]),
    st.tuples(st.sampled_from(["sh", "bash", "/bin/sh"]), st.lists(st.sampled_from(WORDS), max_size=8)).map(
        lambda t: [t[0], *t[1]]
    ),
)


@settings(max_examples=400, deadline=None)
@given(command=argv, run_time=st.floats(min_value=0, max_value=10))
def test_any_command_list_is_simulated_without_crashing(command: list[str], run_time: float) -> None:
    program = simulate(command, image="img", env={"X": "a b"}, run_time=run_time)
    assert 0 <= program.exit_code <= 255
    assert program.duration >= 0
    times = [c.at for c in program.chunks]
    assert times == sorted(times)
    assert all(t <= program.duration for t in times)
    assert program.lines(0, math.inf) is not None


# -- the store on a fake clock -----------------------------------------------------------------------------


def job(
    *commands: list[str] | None, policy: str = "Never", inits: tuple[list[str], ...] = ()
) -> dict[str, Any]:
    def container(name: str, command: list[str] | None) -> dict[str, Any]:
        props: dict[str, Any] = {"image": "alpine:3"}
        if command is not None:
            props["command"] = command
        return {"name": name, "properties": props}

    return {
        "location": "westeurope",
        "properties": {
            "osType": "Linux",
            "restartPolicy": policy,
            "containers": [container(f"c{i}", c) for i, c in enumerate(commands)],
            "initContainers": [container(f"init{i}", c) for i, c in enumerate(inits)],
        },
    }


class Jobs:
    """A store with one group, read at chosen times."""

    def __init__(self, spec: dict[str, Any], **knobs: float) -> None:
        self.store = Store(settings=DefaultJobSettings(**knobs))
        rec = GroupRecord("sub", RG, "job", spec, created=T0)
        self.store.insert(rec)
        self.store.begin(rec, "create", T0, 0)

    def at(self, seconds: float) -> GroupRecord:
        rec = self.store.get("sub", RG, "job", T0 + seconds)
        assert rec is not None
        return rec

    def log(self, seconds: float, container: str = "c0") -> list[tuple[float, str]]:
        lines = self.at(seconds).log(container, T0 + seconds)
        assert lines is not None
        return [(line.at - T0, line.text) for line in lines]

    def view(self, seconds: float, container: str = "c0", section: str = "containers") -> Any:
        props = self.at(seconds).render(T0 + seconds)["properties"]
        found = next(c for c in props[section] if c["name"] == container)
        return found["properties"].get("instanceView")


def test_a_job_log_grows_while_it_runs_and_the_group_fails_with_its_exit_code() -> None:
    jobs = Jobs(job(sh("echo a; sleep 2; echo b; exit 3")))
    assert jobs.log(0) == [(0, "a\n")]
    assert jobs.at(1.9).group_state == "Running"
    assert jobs.log(1.9) == [(0, "a\n")]
    assert jobs.log(2) == [(0, "a\n"), (2, "b\n")]
    rec = jobs.at(2)
    assert rec.group_state == "Failed"
    view = jobs.view(2)
    assert view["currentState"] == {
        "state": "Terminated",
        "startTime": "2023-11-14T22:13:20.000Z",
        "exitCode": 3,
        "finishTime": "2023-11-14T22:13:22.000Z",
        "detailStatus": "Error",
    }
    assert [e["name"] for e in view["events"]] == ["Pulling", "Pulled", "Started", "Killing"]
    assert view["events"][-1]["firstTimestamp"] == "2023-11-14T22:13:22Z"  # killed when it ended, as recorded


def test_a_group_succeeds_when_every_container_exits_zero_and_fails_when_one_does_not() -> None:
    jobs = Jobs(job(["sleep", "1"], ["sleep", "5"]))
    assert jobs.at(1).group_state == "Running"  # one still runs
    assert jobs.view(1)["currentState"]["detailStatus"] == "Completed"
    assert jobs.at(5).group_state == "Succeeded"
    assert Jobs(job(["true"], ["false"])).at(0).group_state == "Failed"


def test_a_program_the_simulator_does_not_model_prints_its_command_line_and_runs_for_the_knob() -> None:
    jobs = Jobs(job(["python", "main.py"]), job_run_time=30)
    assert jobs.log(0) == [(0, "python main.py\n")]
    assert jobs.at(29).group_state == "Running"
    assert jobs.at(30).group_state == "Succeeded"


def test_servers_keep_running_whatever_their_command() -> None:
    jobs = Jobs(job(sh("echo a; exit 3"), policy="Always"))
    rec = jobs.at(3600)
    assert (rec.group_state, rec.containers["c0"].state) == ("Running", "Running")
    assert jobs.log(3600) == []


def test_on_failure_restarts_at_once_then_after_a_back_off_showing_the_failed_run() -> None:
    jobs = Jobs(job(sh("echo try; sleep 1; exit 1"), policy="OnFailure"))
    assert jobs.view(0.5)["restartCount"] == 0
    first = jobs.view(1)  # failed at 1 s, restarted at once
    assert first["restartCount"] == 1
    assert first["currentState"] == {
        "state": "Running",
        "startTime": "2023-11-14T22:13:21.000Z",
        "detailStatus": "",
    }
    assert first["previousState"]["exitCode"] == 1
    assert first["previousState"]["detailStatus"] == "Error"
    assert jobs.log(1.5) == [(1, "try\n")]  # the current run's log only
    waiting = jobs.view(2)  # the second failure waits 10 s
    assert waiting["restartCount"] == 1
    assert waiting["currentState"] == {
        "state": "Waiting",
        "detailStatus": "CrashLoopBackOff: Back-off 10s restarting failed",
    }
    assert waiting["previousState"]["finishTime"] == "2023-11-14T22:13:22.000Z"
    assert jobs.log(5) == [(1, "try\n")]  # while waiting, the failed run's
    assert jobs.at(5).group_state == "Running"
    assert jobs.view(12)["restartCount"] == 2
    assert jobs.log(12) == [(12, "try\n")]
    events = {e["name"]: (e["count"], e["type"]) for e in jobs.view(12)["events"]}
    assert events == {
        "Pulling": (3, "Normal"),
        "Pulled": (3, "Normal"),
        "Started": (3, "Normal"),
        "Killing": (2, "Normal"),
        "BackOff": (1, "Warning"),
    }


def test_on_failure_stops_restarting_once_the_program_exits_zero() -> None:
    jobs = Jobs(job(sh("sleep 1; exit 0"), policy="OnFailure"))
    rec = jobs.at(100)
    assert rec.group_state == "Succeeded"
    assert rec.containers["c0"].restart_count == 0


def test_reading_often_or_once_gives_the_same_group_hours_later() -> None:
    for command in (sh("echo x; sleep 1.5; exit 2"), ["false"]):
        often, once = Jobs(job(command, policy="OnFailure")), Jobs(job(command, policy="OnFailure"))
        for second in range(0, 7200, 13):
            often.at(second)
        assert often.at(7200).render(T0 + 7200) == once.at(7200).render(T0 + 7200)
        assert once.at(7200).containers["c0"].restart_count > 20


def test_init_containers_run_in_order_before_the_containers() -> None:
    jobs = Jobs(job(["echo", "main"], inits=(sh("echo one; sleep 2"), sh("sleep 3; echo two"))))
    assert jobs.at(1).group_state == "Pending"
    assert jobs.view(1, "init1", "initContainers") is None  # not started yet
    assert jobs.view(1)["currentState"]["state"] == "Waiting"
    assert jobs.log(1, "init0") == [(0, "one\n")]
    assert jobs.view(2, "init1", "initContainers")["currentState"]["state"] == "Running"
    assert jobs.log(5, "init1") == [(5, "two\n")]
    assert jobs.log(5) == [(5, "main\n")]
    assert jobs.view(5)["currentState"]["startTime"] == "2023-11-14T22:13:25.000Z"
    assert jobs.at(5).group_state == "Succeeded"
    init = jobs.view(5, "init0", "initContainers")
    assert init == {
        "restartCount": 0,
        "currentState": {
            "state": "Terminated",
            "startTime": "2023-11-14T22:13:20.000Z",
            "exitCode": 0,
            "finishTime": "2023-11-14T22:13:22.000Z",
            "detailStatus": "Completed",
        },
    }


def test_a_failing_init_container_fails_a_never_group_and_its_containers_never_start() -> None:
    jobs = Jobs(job(["echo", "main"], inits=(sh("echo bad; exit 5"),)))
    rec = jobs.at(60)
    assert rec.group_state == "Failed"
    assert jobs.view(60, "init0", "initContainers")["currentState"]["exitCode"] == 5
    assert rec.containers["c0"].state == "Waiting"
    assert jobs.log(60) == []
    assert jobs.log(60, "init0") == [(0, "bad\n")]


def test_a_failing_init_container_of_an_on_failure_group_is_retried() -> None:
    jobs = Jobs(job(["echo", "main"], policy="OnFailure", inits=(["false"],)))
    assert jobs.at(0).group_state == "Pending"
    assert jobs.view(60, "init0", "initContainers")["restartCount"] >= 3
    assert jobs.at(60).containers["c0"].state == "Waiting"


def test_stop_cuts_the_program_short_and_start_runs_it_again_with_a_fresh_log() -> None:
    jobs = Jobs(job(sh("echo a; sleep 5; echo b")))
    rec = jobs.at(2)
    jobs.store.stop(rec, T0 + 2)
    assert jobs.at(100).group_state == "Stopped"
    assert jobs.log(100) == [(0, "a\n")]
    assert jobs.view(100)["currentState"]["detailStatus"] == "Container stopped per client request"
    jobs.store.begin(jobs.at(200), "start", T0 + 200, 0)
    assert jobs.at(200).group_state == "Running"
    assert jobs.log(203) == [(200, "a\n")]
    assert jobs.at(205).group_state == "Succeeded"
    assert jobs.log(205) == [(200, "a\n"), (205, "b\n")]


def test_a_scripted_exit_wins_over_the_program_and_cuts_its_log() -> None:
    jobs = Jobs(job(sh("echo a; sleep 5; echo b; exit 0")))
    assert jobs.store.terminate(jobs.at(1), 9, T0 + 1, None) == "Failed"
    assert jobs.log(10) == [(0, "a\n")]
    assert jobs.view(10)["currentState"]["exitCode"] == 9


def test_a_scripted_failure_under_on_failure_restarts_the_program() -> None:
    jobs = Jobs(job(sh("echo a; sleep inf"), policy="OnFailure"))
    assert jobs.store.terminate(jobs.at(1), 1, T0 + 1, None) == "Running"
    assert jobs.view(1)["restartCount"] == 1
    assert jobs.log(2) == [(1, "a\n")]


def test_scripted_logs_win_over_the_simulated_output() -> None:
    jobs = Jobs(job(sh("echo a")))
    jobs.at(0).containers["c0"].logs = "scripted\n"
    jobs.at(0).containers["c0"].scripted_logs = True
    assert [text for _, text in jobs.log(5)] == ["scripted\n"]


def test_the_state_round_trips_mid_run_and_carries_on_as_if_never_saved() -> None:
    spec = job(sh("echo a; sleep 2; exit 1"), policy="OnFailure", inits=(sh("echo i; sleep 1"),))
    saved, kept = Jobs(spec), Jobs(spec)
    saved.at(4)
    kept.at(4)
    restored = Store(settings=DefaultJobSettings())
    restored.load_json(json.loads(json.dumps(saved.store.to_json())))
    saved.store = restored
    for later in (4, 5, 20, 400):
        assert saved.at(later).render(T0 + later) == kept.at(later).render(T0 + later)
        assert saved.log(later) == kept.log(later)


# -- through the real SDK and the logs API -----------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def emulator_config(clock: FakeClock) -> EmulatorConfig:
    return EmulatorConfig(clock=clock)


async def test_sdk_job_prints_its_lines_at_their_times_and_fails_with_exit_code_3(
    emulator: Emulator, aci_client: ClientFactory, clock: FakeClock
) -> None:
    client = await aci_client(emulator)
    group = group_model(restart_policy="Never", command=["/bin/sh", "-c", "echo a; sleep 2; echo b; exit 3"])
    await (
        await client.container_groups.begin_create_or_update(RG, "job", group, polling_interval=0)
    ).result()
    clock.advance(1)
    running = await client.container_groups.get(RG, "job")
    assert running.instance_view.state == "Running"
    assert (await client.containers.list_logs(RG, "job", "app")).content == "a\n"
    clock.advance(1)
    stamped = await client.containers.list_logs(RG, "job", "app", timestamps=True)
    assert stamped.content == "2023-11-14T22:13:20.0000000Z a\n2023-11-14T22:13:22.0000000Z b\n"
    assert (await client.containers.list_logs(RG, "job", "app", tail=1)).content == "b\n"
    done = await client.container_groups.get(RG, "job")
    assert done.instance_view.state == "Failed"
    state = done.containers[0].instance_view.current_state
    assert (state.state, state.exit_code, state.detail_status) == ("Terminated", 3, "Error")
    assert state.finish_time.timestamp() == T0 + 2


async def test_sdk_on_failure_group_counts_restarts_and_succeeds_once_the_program_does(
    emulator: Emulator, aci_client: ClientFactory, clock: FakeClock
) -> None:
    client = await aci_client(emulator)
    group = group_model(restart_policy="OnFailure", command=["sh", "-c", "sleep 1; exit 1"])
    await (
        await client.container_groups.begin_create_or_update(RG, "job", group, polling_interval=0)
    ).result()
    clock.advance(2.5)  # failed at 1 s, restarted at once, failed at 2 s: waiting 10 s
    got = await client.container_groups.get(RG, "job")
    view = got.containers[0].instance_view
    assert (view.restart_count, view.current_state.state, view.previous_state.exit_code) == (1, "Waiting", 1)
    assert got.instance_view.state == "Running"
    emulator.terminate(RG, "job", exit_code=0)  # the control surface still decides
    assert (await client.container_groups.get(RG, "job")).instance_view.state == "Succeeded"


async def test_sdk_init_container_logs_come_back_through_the_logs_api(
    emulator: Emulator, aci_client: ClientFactory, clock: FakeClock
) -> None:
    client = await aci_client(emulator)
    group = group_model(restart_policy="Never", command=["echo", "main"])
    group.init_containers = [
        models.InitContainerDefinition(
            name="setup", image="busybox", command=["sh", "-c", "echo migrating; sleep 3"]
        )
    ]
    await (
        await client.container_groups.begin_create_or_update(RG, "job", group, polling_interval=0)
    ).result()
    clock.advance(1)
    assert (await client.containers.list_logs(RG, "job", "setup")).content == "migrating\n"
    assert (await client.container_groups.get(RG, "job")).instance_view.state == "Pending"
    clock.advance(2)
    got = await client.container_groups.get(RG, "job")
    assert got.instance_view.state == "Succeeded"
    assert got.init_containers[0].instance_view.current_state.exit_code == 0
    assert (await client.containers.list_logs(RG, "job", "app")).content == "main\n"


async def test_sdk_stop_and_start_run_the_job_again_with_a_fresh_log(
    emulator: Emulator, aci_client: ClientFactory, clock: FakeClock
) -> None:
    client = await aci_client(emulator)
    group = group_model(restart_policy="Never", command=["sh", "-c", "echo $GREETING; sleep 10; exit 4"])
    group.containers[0].environment_variables = [
        models.EnvironmentVariable(name="GREETING", secure_value="hi")
    ]
    await (
        await client.container_groups.begin_create_or_update(RG, "job", group, polling_interval=0)
    ).result()
    clock.advance(5)
    await client.container_groups.stop(RG, "job")
    assert (await client.container_groups.get(RG, "job")).instance_view.state == "Stopped"
    clock.advance(5)
    await (await client.container_groups.begin_start(RG, "job", polling_interval=0)).result()
    stamped = await client.containers.list_logs(RG, "job", "app", timestamps=True)
    assert stamped.content == "2023-11-14T22:13:30.0000000Z hi\n"
    clock.advance(10)
    got = await client.container_groups.get(RG, "job")
    assert (got.instance_view.state, got.containers[0].instance_view.current_state.exit_code) == ("Failed", 4)


async def test_the_job_knobs_are_run_time_control_knobs(
    emulator: Emulator, aci_client: ClientFactory, clock: FakeClock
) -> None:
    from tests.emulator.conftest import https_session

    async with https_session(emulator) as session:
        async with session.patch("/_emulator/config", json={"job_run_time": 60, "restart_backoff": 1}) as r:
            assert r.status == 200
            assert (await r.json())["job_run_time"] == 60
        async with session.patch("/_emulator/config", json={"job_run_time": -1}) as r:
            assert r.status == 400
    client = await aci_client(emulator)
    group = group_model(restart_policy="Never", command=["python", "train.py"])
    await (
        await client.container_groups.begin_create_or_update(RG, "job", group, polling_interval=0)
    ).result()
    clock.advance(59)
    assert (await client.container_groups.get(RG, "job")).instance_view.state == "Running"
    clock.advance(1)
    assert (await client.container_groups.get(RG, "job")).instance_view.state == "Succeeded"
    assert re.fullmatch(
        r"python train\.py\n", (await client.containers.list_logs(RG, "job", "app")).content or ""
    )


def test_the_cli_takes_the_job_knobs() -> None:
    import argparse

    from reconciler.emulator.cli import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(parser.parse_args(["--job-run-time", "0.2", "--restart-backoff", "0.5"]))
    assert (config.job_run_time, config.restart_backoff) == (0.2, 0.5)
    default = config_from_args(parser.parse_args([]))
    assert (default.job_run_time, default.restart_backoff) == (1.0, 10.0)


async def test_sdk_start_while_init_containers_run_changes_nothing(
    emulator: Emulator, aci_client: ClientFactory, clock: FakeClock
) -> None:
    client = await aci_client(emulator)
    group = group_model(restart_policy="Never", command=["echo", "main"])
    group.init_containers = [
        models.InitContainerDefinition(name="setup", image="busybox", command=["sleep", "5"])
    ]
    await (
        await client.container_groups.begin_create_or_update(RG, "job", group, polling_interval=0)
    ).result()
    clock.advance(2)
    await (await client.container_groups.begin_start(RG, "job", polling_interval=0)).result()
    clock.advance(3)
    got = await client.container_groups.get(RG, "job")
    assert got.init_containers[0].instance_view.current_state.finish_time.timestamp() == T0 + 5
    assert got.instance_view.state == "Succeeded"
