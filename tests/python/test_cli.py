"""The ``hms`` command and ``python -m hms_cffi.demo``, run in subprocesses."""

from __future__ import annotations

import json
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
