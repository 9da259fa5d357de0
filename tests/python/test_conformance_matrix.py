"""The judgement of the conformance matrix's remote mode
(tests/conformance/run_matrix.py --remote): which scenarios go over NATS,
and the cells it fails. The whole mode runs in scripts/test.sh
(scripts/conformance.sh --remote)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))

import run_matrix

HOST = "conformance.v1.Host"


def call(method: str) -> dict[str, Any]:
    return {"op": "call", "method": method, "format": "json", "request": "{}"}


def scenario(sid: str, expect: str, *steps: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"id": sid, "expect": expect, "steps": list(steps), **more}


def test_remote_scenarios_are_those_that_only_call_exported_services() -> None:
    doc = {
        "services": {HOST: {"methods": {}}},
        "scenarios": [
            scenario("host", "OK", call(f"{HOST}/Echo")),
            scenario("domain", "NOT_FOUND", call("hms.agent.v1.AgentService/GetAgent")),
            scenario("system", "OK", call("hms.sys.v1.System/Echo")),
            scenario("own_config", "OK", call(f"{HOST}/Echo"), runtime_config="{}"),
            scenario("closes", "INVALID_HANDLE", {"op": "close_runtime"}, call(f"{HOST}/Echo")),
        ],
    }
    assert run_matrix.remote_scenarios(doc) == ["host", "domain"]


def report(**fields: Any) -> str:
    return json.dumps({"lang": "go", "scenario": "deny", "step": 0, **fields})


DENY = scenario("deny", "PERMISSION_DENIED", call(f"{HOST}/Deny"), services=[HOST])
DENIED = {"code": "PERMISSION_DENIED", "error": "hms.ErrPermissionDenied", "message": "no"}


def test_a_remote_error_must_name_the_server_as_origin() -> None:
    wrong = run_matrix.Result("go")
    run_matrix.judge(
        "go",
        report(**DENIED, origin="conformance.v1.Host/Deny"),
        [DENY],
        wrong,
        frozenset({"deny"}),
    )
    assert wrong.cells["deny"] == (
        False,
        f"FAIL: origin 'conformance.v1.Host/Deny', not {run_matrix.SERVER_NAME}",
    )
    right = run_matrix.Result("go")
    stdout = report(**DENIED, origin=run_matrix.SERVER_NAME)
    run_matrix.judge("go", stdout, [DENY], right, frozenset({"deny"}))
    assert right.cells["deny"] == (True, "hms.ErrPermissionDenied")


def test_a_local_cell_is_not_asked_for_an_origin() -> None:
    result = run_matrix.Result("go")
    run_matrix.judge("go", report(**DENIED), [DENY], result)
    assert result.cells["deny"][0]


@pytest.mark.parametrize(
    ("expect", "remote", "fails"),
    [
        ("PERMISSION_DENIED", {"s"}, True),
        ("DEADLINE_EXCEEDED", set(), True),
        ("DEADLINE_EXCEEDED", {"s"}, False),
    ],
)
def test_messages_are_the_local_runs_but_for_a_deadline_over_nats(
    expect: str, remote: set[str], fails: bool
) -> None:
    go, local = run_matrix.Result("go"), run_matrix.Result("python (local)")
    go.cells["s"], go.messages["s"] = (True, "x"), "worded by the exporter"
    local.cells["s"], local.messages["s"] = (True, "x"), "worded by the caller"
    run_matrix.compare_messages([scenario("s", expect)], [go], local, frozenset(remote))
    assert go.cells["s"][0] is not fails
    assert bool(go.problems) is fails


def test_a_server_that_exits_before_ready_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-scenarios.json"
    with (
        pytest.raises(RuntimeError, match=r"serve_python\.py exited with status 1"),
        run_matrix.serving("nats://127.0.0.1:1", missing),
    ):
        pass


def test_remote_mode_without_a_remote_scenario_fails(tmp_path: Path) -> None:
    doc = {"services": {}, "scenarios": [scenario("system", "OK", call("hms.sys.v1.System/Echo"))]}
    (tmp_path / "scenarios.json").write_text(json.dumps(doc))
    done = subprocess.run(
        [
            sys.executable,
            run_matrix.__file__,
            "--remote",
            "--scenarios",
            tmp_path / "scenarios.json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "no scenario can run remotely" in done.stdout
