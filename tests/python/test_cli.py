"""The ``hms`` command and ``python -m hms_cffi.demo``, run in subprocesses."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cbor2
import pytest

import hms_cffi
from hms_cffi.proto.hms.sys.v1 import system_pb2

HMS = [sys.executable, "-m", "hms_cffi.cli"]


def hms(
    *args: str, stdin: bytes | str | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    done = subprocess.run([*HMS, *args], input=data, capture_output=True, timeout=60, check=False)
    if check:
        assert done.returncode == 0, done.stderr.decode()
    return done


def out_json(*args: str, stdin: str | None = None) -> object:
    return json.loads(hms(*args, stdin=stdin).stdout)


def test_console_script_is_installed() -> None:
    script = shutil.which("hms")
    if script is None:
        pytest.skip("the hms console script is not on PATH (package not installed)")
    done = subprocess.run([script, "version"], capture_output=True, check=True, timeout=60)
    assert json.loads(done.stdout)["library_version"] == hms_cffi.library_version()


def test_version() -> None:
    info = out_json("version")
    assert isinstance(info, dict)
    major, minor = hms_cffi.abi_version()
    assert info["library_version"] == hms_cffi.library_version()
    assert info["abi"] == f"{major}.{minor}"
    assert info["binding_abi"] == f"{hms_cffi.ABI_MAJOR}.{hms_cffi.ABI_MINOR}"


def test_services_and_describe() -> None:
    lines = hms("services").stdout.decode().splitlines()
    names = [line.split()[0] for line in lines]
    assert "hms.agent.v1.AgentService" in names
    assert "hms.agent.lifecycle.v1.LifecycleService" in names
    assert any("CreateAgent" in line for line in lines)
    only = out_json("services", "--prefix", "hms.agent.v1.", "--json")
    assert isinstance(only, list)
    assert sorted(s["name"] for s in only) == [
        "hms.agent.v1.AgentService",
        "hms.agent.v1.KnowledgeService",
        "hms.agent.v1.TaskService",
    ]
    described = out_json("describe", "hms.agent.v1.TaskService")
    assert isinstance(described, dict)
    methods = {m["name"]: m for m in described["service"]["methods"]}
    assert methods["SubmitTask"]["input_type"] == "hms.agent.v1.SubmitTaskRequest"
    assert methods["SubmitTask"]["output_type"] == "hms.agent.v1.Task"


def test_call_json_in_json_out() -> None:
    assert out_json("call", "hms.sys.v1.System/Echo", '{"text": "hi"}') == {"text": "hi"}
    assert out_json("call", "hms.sys.v1.System/Echo", "-", stdin='{"text": "in"}') == {"text": "in"}
    assert out_json("call", "hms.sys.v1.System/Echo") == {}
    agent = out_json("call", "hms.agent.v1.AgentService/CreateAgent", '{"agent": {"name": "x"}}')
    assert isinstance(agent, dict)
    assert agent["name"] == "x"
    assert agent["state"] == "INITIALIZED"
    assert agent["revision"] == "1"
    compact = hms("--compact", "call", "hms.sys.v1.System/Echo", '{"text":"a"}').stdout
    assert compact == b'{"text":"a"}\n'


def test_call_errors_are_json_on_stderr() -> None:
    done = hms("call", "hms.agent.v1.AgentService/GetAgent", '{"id": "nope"}', check=False)
    assert done.returncode == 1
    assert done.stdout == b""
    status = json.loads(done.stderr)
    assert status["status"] == "NOT_FOUND"
    assert status["code"] == 5
    assert status["details"] == {"kind": "agent", "id": "nope"}
    assert status["origin"] == "hms.agent.v1.AgentService/GetAgent"
    done = hms("call", "no.such.Service/Method", check=False)
    assert (done.returncode, json.loads(done.stderr)["status"]) == (1, "NOT_FOUND")
    done = hms("call", "hms.sys.v1.System/Echo", "{not json", check=False)
    assert (done.returncode, json.loads(done.stderr)["status"]) == (1, "INVALID_ARGUMENT")
    done = hms("call", "hms.sys.v1.System/Echo", '{"text": 5}', check=False)
    assert (done.returncode, json.loads(done.stderr)["status"]) == (1, "DECODE_ERROR")
    done = hms("frobnicate", check=False)
    assert done.returncode == 2  # usage


def test_data_dir_keeps_records_between_commands(tmp_path: Path) -> None:
    data = str(tmp_path / "state")
    agent = out_json(
        "--data-dir",
        data,
        "call",
        "hms.agent.v1.AgentService/CreateAgent",
        '{"agent":{"name":"p"}}',
    )
    assert isinstance(agent, dict)
    moved = out_json(
        "call",
        "--data-dir",
        data,
        "hms.agent.lifecycle.v1.LifecycleService/Transition",
        json.dumps({"agent_id": agent["id"], "target_state": "ACTIVE"}),
    )
    assert isinstance(moved, dict)
    assert moved["current_state"] == "ACTIVE"
    listed = out_json("--data-dir", data, "call", "hms.agent.v1.AgentService/ListAgents")
    assert isinstance(listed, dict)
    assert [(a["id"], a["state"]) for a in listed["agents"]] == [(agent["id"], "ACTIVE")]
    refused = hms(
        "--data-dir",
        data,
        "call",
        "hms.agent.lifecycle.v1.LifecycleService/Transition",
        json.dumps({"agent_id": agent["id"], "target_state": "RECOVERING"}),
        check=False,
    )
    assert refused.returncode == 1
    status = json.loads(refused.stderr)
    assert status["status"] == "FAILED_PRECONDITION"
    assert (status["details"]["from"], status["details"]["to"]) == ("ACTIVE", "RECOVERING")


def test_convert() -> None:
    request = system_pb2.EchoRequest(text="hi", payload=b"\x01\x02")
    as_json = '{"text": "hi", "payload": "AQI="}'
    pb = hms(
        "convert", "hms.sys.v1.EchoRequest", "--from", "json", "--to", "protobuf", stdin=as_json
    )
    assert system_pb2.EchoRequest.FromString(pb.stdout) == request
    cbor_hex = hms(
        "convert",
        "hms.sys.v1.EchoRequest",
        "--from",
        "protobuf",
        "--to",
        "cbor",
        "--hex",
        stdin=request.SerializeToString().hex(),
    ).stdout.decode()
    assert cbor2.loads(bytes.fromhex(cbor_hex)) == {"text": "hi", "payload": b"\x01\x02"}
    back = hms(
        "convert",
        "hms.sys.v1.EchoRequest",
        "--from",
        "cbor",
        "--to",
        "json",
        "--hex",
        stdin=cbor_hex,
    )
    assert json.loads(back.stdout) == {"payload": "AQI=", "text": "hi"}
    structural = hms("convert", "any", "--from", "json", "--to", "cbor", stdin='{"a": [1, 2]}')
    assert cbor2.loads(structural.stdout) == {"a": [1, 2]}
    bad = hms(
        "convert",
        "hms.sys.v1.EchoRequest",
        "--from",
        "json",
        "--to",
        "cbor",
        stdin="[",
        check=False,
    )
    assert (bad.returncode, json.loads(bad.stderr)["status"]) == (1, "DECODE_ERROR")
    unknown = hms("convert", "no.Such", "--from", "json", "--to", "cbor", stdin="{}", check=False)
    assert (unknown.returncode, json.loads(unknown.stderr)["status"]) == (1, "NOT_FOUND")


def test_events_with_the_demo() -> None:
    done = hms("events", "--run-demo")
    events = [json.loads(line) for line in done.stdout.decode().splitlines()]
    kinds = [e["kind"] for e in events]
    assert kinds.count("agent.created") == 2
    assert kinds.count("lifecycle.transition") == 3
    assert "task.succeeded" in kinds
    assert "task.failed" in kinds
    sequences = [int(e["sequence"]) for e in events]
    assert sequences == sorted(sequences)
    only = hms("events", "--run-demo", "--kinds", "task.*", "--count", "3").stdout
    assert [json.loads(line)["kind"] for line in only.decode().splitlines()] == [
        "task.submitted",
        "task.submitted",
        "task.assigned",
    ]
    paused = hms("events", "--run-demo", "--states", "PAUSED").stdout.decode().splitlines()
    assert [json.loads(line)["lifecycle"]["new_state"] for line in paused] == ["PAUSED"]


def test_events_alone_times_out_quietly() -> None:
    started = time.monotonic()
    done = hms("events", "--timeout", "0.2")
    assert done.stdout == b""
    assert time.monotonic() - started < 30


def test_demo_module() -> None:
    def run() -> tuple[str, float]:
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "hms_cffi.demo"], capture_output=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr.decode()
        assert done.stderr == b""
        return done.stdout.decode(), time.monotonic() - started

    first, seconds = run()
    second, _ = run()
    assert seconds < 5
    assert first == second  # deterministic: no ids, no times
    assert re.search(r"refused \(FAILED_PRECONDITION\): scout is running: find sources", first)
    assert "scout is PAUSED" in first
    assert "vetoed transitions: 1" in first
    assert "event #" in first
    assert "lifecycle.transition" in first


# -- hostile input: a status like the core's, never a traceback -------------------

ECHO = "hms.sys.v1.System/Echo"
DEEP_ARRAYS = "[" * 100_000 + "]" * 100_000
#: Over the core's 4 MiB message limit many times.
HUGE_REQUEST = '{"text": "' + "a" * 50_000_000 + '"}'


def refused(
    *args: str, stdin: bytes | str | None = None, status: str, origin: str | None = None
) -> dict[str, object]:
    """Runs ``hms *args``, which must fail like a refused call: exit 1,
    nothing on stdout, one status as JSON on stderr, no traceback."""
    done = hms(*args, stdin=stdin, check=False)
    stderr = done.stderr.decode()
    assert "Traceback" not in stderr, stderr
    assert done.returncode == 1, stderr
    assert done.stdout == b""
    reported = json.loads(stderr)
    assert isinstance(reported, dict)
    assert reported["status"] == status, reported
    assert reported["code"] == int(hms_cffi.StatusCode[status])
    if origin is not None:
        assert reported["origin"] == origin
    return reported


@pytest.mark.parametrize(
    ("args", "stdin", "status", "says"),
    [
        # the core's own limits, reached with no Python error in between
        (("call", ECHO, "-"), DEEP_ARRAYS, "RESOURCE_EXHAUSTED", "nesting depth"),
        (
            ("call", ECHO, "-"),
            '{"a":' * 100_000 + "1" + "}" * 100_000,
            "RESOURCE_EXHAUSTED",
            "depth",
        ),
        (("call", ECHO, "-"), HUGE_REQUEST, "RESOURCE_EXHAUSTED", "over the limit"),
        (
            ("convert", "any", "--from", "json", "--to", "cbor"),
            DEEP_ARRAYS,
            "RESOURCE_EXHAUSTED",
            "",
        ),
        (
            ("convert", "hms.sys.v1.EchoRequest", "--from", "json", "--to", "cbor"),
            HUGE_REQUEST,
            "RESOURCE_EXHAUSTED",
            "over the limit",
        ),
        # control characters in a method name: the core's INVALID_ARGUMENT
        (("call", "hms.sys.v1.System/Ec\x01ho"), None, "INVALID_ARGUMENT", "control character"),
        (("call", f"{ECHO}\n"), None, "INVALID_ARGUMENT", "control character"),
        (("call", f"{ECHO}\x7f"), None, "INVALID_ARGUMENT", "control character"),
    ],
)
def test_hostile_input_gets_the_cores_status(
    args: tuple[str, ...], stdin: str | None, status: str, says: str
) -> None:
    reported = refused(*args, stdin=stdin, status=status)
    assert says in str(reported["message"])


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (("call", ECHO, "{not json"), None, "not JSON"),
        (("call", ECHO, "-"), b'{"text": "\xff"}', "not UTF-8: byte 0xff at offset 10"),
        (("call", ECHO, "--timeout", "-1"), None, "--timeout: -1 is out of range"),
        (("call", ECHO, "--timeout", "nan"), None, "--timeout: nan is out of range"),
        (("call", ECHO, "--timeout", "inf"), None, "--timeout: inf is out of range"),
        # deadline_ms is a uint32 of milliseconds
        (("call", ECHO, "--timeout", "4294968"), None, "give 0 to 4294967.295 seconds"),
        (("call", ECHO, "--timeout", "soon"), None, "'soon' is not a number of seconds"),
        (("events", "--count", "-1"), None, "--count: -1 is negative"),
        (("events", "--count", "many"), None, "--count: 'many' is not a whole number"),
        (("events", "--timeout", "-0.5"), None, "--timeout: -0.5 is out of range"),
        (("events", "--states", "BOGUS"), None, "--states: 'BOGUS' is not one of"),
        (("events", "--transition-types", "SIDEWAYS"), None, "'SIDEWAYS' is not one of"),
        (("convert", "any", "--from", "xml", "--to", "json"), "{}", "--from: unknown format 'xml'"),
        (("convert", "any", "--from", "json", "--to", "yaml"), "{}", "--to: unknown format 'yaml'"),
        (
            ("convert", "hms.sys.v1.EchoRequest", "--from", "pb", "--to", "json", "--hex"),
            "0a0zz",
            "--hex: stdin is not hex digits",
        ),
        (
            ("convert", "hms.sys.v1.EchoRequest", "--from", "cbor", "--to", "json", "--hex"),
            b"a0\xff",
            "--hex: stdin is not hex digits",
        ),
    ],
)
def test_bad_values_are_invalid_argument(
    args: tuple[str, ...], stdin: bytes | str | None, says: str
) -> None:
    reported = refused(*args, stdin=stdin, status="INVALID_ARGUMENT", origin="hms")
    assert says in str(reported["message"])


def test_arguments_that_are_not_utf8_are_named(tmp_path: Path) -> None:
    # argv bytes that are not UTF-8 reach Python as surrogates; os.fsencode
    # gives them back, so the child sees the very bytes.
    bad = os.fsdecode(b"hms.sys.v1.System/Ech\xff")
    reported = refused("call", bad, status="INVALID_ARGUMENT", origin="hms")
    assert reported["message"] == "METHOD is not UTF-8: byte 0xff at offset 21"
    for args in (
        ("describe", bad),
        ("services", "--prefix", bad),
        ("events", "--kinds", bad, "--timeout", "0"),
        ("--data-dir", str(tmp_path / bad), "call", ECHO),
    ):
        refused(*args, status="INVALID_ARGUMENT", origin="hms")
    with open(os.devnull, "rb") as empty:
        done = subprocess.run(
            [*HMS, "convert", bad, "--from", "json", "--to", "cbor"],
            stdin=empty,
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert (done.returncode, json.loads(done.stderr)["status"]) == (1, "INVALID_ARGUMENT")


def test_unreadable_stdin_and_data_dir(tmp_path: Path) -> None:
    # stdin open for writing only: reading it fails with EBADF
    with open(tmp_path / "out", "wb") as write_only:
        done = subprocess.run(
            [*HMS, "call", ECHO, "-"],
            stdin=write_only,
            capture_output=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr.decode()
    status = json.loads(done.stderr)
    assert status["status"] == "FAILED_PRECONDITION"
    assert status["message"].startswith("cannot read stdin: ")
    assert status["details"]["errno"] == "EBADF"
    # a data dir that is a file: the core's own status for it
    (tmp_path / "file").write_text("")
    reported = refused(
        "--data-dir", str(tmp_path / "file"), "call", ECHO, status="FAILED_PRECONDITION"
    )
    assert "data_dir" in str(reported["message"])


def test_nul_in_a_method_name_and_an_argument_of_50_mb(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Arguments no exec can carry (a NUL byte, more than the kernel's 128 KiB
    per argument) reach ``main`` from Python callers: same statuses."""
    from hms_cffi import cli

    assert cli.main(["call", "hms.sys.v1.System/Ec\x00ho"]) == 1
    status = json.loads(capsys.readouterr().err)
    assert (status["status"], status["details"]["method"]) == (
        "INVALID_ARGUMENT",
        "hms.sys.v1.System/Ec\\u{0}ho",
    )
    assert cli.main(["call", ECHO, HUGE_REQUEST]) == 1
    assert json.loads(capsys.readouterr().err)["status"] == "RESOURCE_EXHAUSTED"
    assert cli.main(["call", ECHO, DEEP_ARRAYS]) == 1
    assert json.loads(capsys.readouterr().err)["status"] == "RESOURCE_EXHAUSTED"


def test_a_zero_timeout_and_count_are_allowed() -> None:
    assert out_json("call", ECHO, '{"text": "t"}', "--timeout", "4294967") == {"text": "t"}
    assert hms("events", "--count", "0").stdout == b""
    assert hms("events", "--timeout", "0").stdout == b""


def test_usage_errors_still_exit_2() -> None:
    for args in (("call",), ("convert", "any", "--from", "json"), ("events", "--bogus")):
        done = hms(*args, check=False)
        assert done.returncode == 2
        assert b"usage: hms" in done.stderr
        assert b"Traceback" not in done.stderr


def test_an_unforeseen_failure_is_an_internal_status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hms_cffi import cli

    def broken(args: object) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "cmd_version", broken)
    assert cli.main(["version"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    status = json.loads(captured.err)
    assert status["status"] == "INTERNAL"
    assert status["details"] == {"exception": "RuntimeError"}
    assert "unexpected RuntimeError in hms version: boom" in status["message"]
