"""``hms serve`` in one process, ``hms call --nats`` and ``hms services
--nats`` in others, through a real nats-server (the ``nats_server`` fixture)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats_server import NatsServer, free_port

pytestmark = pytest.mark.remote

HMS = [sys.executable, "-m", "hms_cffi.cli"]
ECHO = "hms.sys.v1.System/Echo"


def hms(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HMS, *args], capture_output=True, text=True, timeout=60, check=False)


def ok_json(*args: str) -> object:
    done = hms(*args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def status_of(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    """The status a failed command printed; it exits 1 without a traceback."""
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    status: dict[str, object] = json.loads(done.stderr)
    return status


class Serve:
    """An ``hms serve`` process, started and waited for until it serves."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [*HMS, "serve", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.ready = self.process.stdout.readline()
        if "serving" not in self.ready:
            self.process.kill()
            _, err = self.process.communicate()
            raise AssertionError(f"hms serve did not start: {self.ready!r} {err}")

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str, str]:
        self.process.send_signal(signum)
        out, err = self.process.communicate(timeout=30)
        return self.process.returncode, out, err


@pytest.fixture
def served(nats_server: NatsServer, tmp_path: Path) -> Iterator[Serve]:
    """``hms serve`` exporting System and the agents of a data dir."""
    serve = Serve(
        "--nats",
        nats_server.url,
        "--export",
        "hms.sys.v1.System",
        "--export",
        "hms.agent.v1.AgentService",
        "--name",
        "worker-a",
        "--data-dir",
        str(tmp_path / "data"),
    )
    yield serve
    if serve.process.poll() is None:
        serve.stop()


def test_call_reaches_the_serving_process(nats_server: NatsServer, served: Serve) -> None:
    assert "worker-a serving hms.sys.v1.System, hms.agent.v1.AgentService" in served.ready
    url = nats_server.url
    assert ok_json("call", "--nats", url, ECHO, '{"text": "hi"}') == {"text": "hi"}
    agent = ok_json(
        "call", "--nats", url, "hms.agent.v1.AgentService/CreateAgent", '{"agent": {"name": "r"}}'
    )
    assert isinstance(agent, dict)
    # Another process, another call: the agent lives in the serving one.
    got = ok_json(
        "call", "--nats", url, "hms.agent.v1.AgentService/GetAgent", json.dumps({"id": agent["id"]})
    )
    assert isinstance(got, dict)
    assert got["name"] == "r"
    # Without --nats the same call runs in the caller's own empty runtime.
    missing = status_of(hms("call", "hms.agent.v1.AgentService/GetAgent", json.dumps(got)))
    assert missing["status"] == "NOT_FOUND"


def test_remote_error_names_the_runtime_that_answered(
    nats_server: NatsServer, served: Serve
) -> None:
    done = hms(
        "call", "--nats", nats_server.url, "hms.agent.v1.AgentService/GetAgent", '{"id": "nope"}'
    )
    status = status_of(done)
    assert status["status"] == "NOT_FOUND"
    assert status["origin"] == "worker-a"


def test_services_lists_what_other_processes_serve(nats_server: NatsServer, served: Serve) -> None:
    lines = hms("services", "--nats", nats_server.url).stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        "hms.agent.v1.AgentService",
        "hms.sys.v1.System",
    ]
    assert all("(served by worker-a)" in line for line in lines)
    listed = ok_json("services", "--nats", nats_server.url, "--json", "--prefix", "hms.sys.")
    assert isinstance(listed, list)
    assert [(s["name"], s["served_by"]) for s in listed] == [("hms.sys.v1.System", ["worker-a"])]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_a_signal(
    nats_server: NatsServer, served: Serve, signum: int
) -> None:
    assert ok_json("call", "--nats", nats_server.url, ECHO, '{"text": "x"}') == {"text": "x"}
    code, out, err = served.stop(signum)
    assert code == 0, err
    assert out.splitlines()[-1] == "hms serve: stopped cleanly"
    assert err == ""
    # Gone: nobody serves System any more, and the caller says so at once.
    status = status_of(hms("call", "--nats", nats_server.url, ECHO, "{}"))
    assert status["status"] == "UNAVAILABLE"


def test_serve_takes_the_rest_from_a_config_file(nats_server: NatsServer, tmp_path: Path) -> None:
    config = tmp_path / "runtime.json"
    config.write_text(
        json.dumps({"name": "from-file", "nats": {"export_services": ["hms.sys.v1.System"]}})
    )
    serve = Serve("--config", str(config), "--nats", nats_server.url)
    try:
        assert "from-file serving hms.sys.v1.System" in serve.ready
        assert ok_json("call", "--nats", nats_server.url, ECHO, '{"text": "f"}') == {"text": "f"}
    finally:
        assert serve.stop()[0] == 0


def test_call_nats_with_nobody_serving_is_unavailable(nats_server: NatsServer) -> None:
    status = status_of(hms("call", "--nats", nats_server.url, "demo.v1.Nobody/Echo", "{}"))
    assert status["status"] == "UNAVAILABLE"


def test_call_nats_with_no_server_is_unavailable() -> None:
    status = status_of(hms("call", "--nats", f"nats://127.0.0.1:{free_port()}", ECHO, "{}"))
    assert status["status"] == "UNAVAILABLE"


def test_serve_refuses_what_it_cannot_serve(nats_server: NatsServer, tmp_path: Path) -> None:
    url = nats_server.url
    no_server = status_of(hms("serve", "--export", "hms.sys.v1.System"))
    assert no_server["status"] == "INVALID_ARGUMENT"
    assert "--nats" in str(no_server["message"])
    nothing = status_of(hms("serve", "--nats", url))
    assert nothing["status"] == "INVALID_ARGUMENT"
    assert "--export" in str(nothing["message"])
    unknown = status_of(hms("serve", "--nats", url, "--export", "demo.v1.Nobody"))
    assert unknown["status"] == "NOT_FOUND"
    assert "hms.sys.v1.System" in str(unknown["message"])  # the services there are
    bad_name = status_of(hms("serve", "--nats", url, "--export", "not a name"))
    assert bad_name["status"] == "INVALID_ARGUMENT"
    unreachable = status_of(
        hms("serve", "--nats", f"nats://127.0.0.1:{free_port()}", "--export", "hms.sys.v1.System")
    )
    assert unreachable["status"] == "UNAVAILABLE"


def test_serve_refuses_a_bad_config_file(nats_server: NatsServer, tmp_path: Path) -> None:
    args = ["serve", "--nats", nats_server.url, "--export", "hms.sys.v1.System", "--config"]
    missing = status_of(hms(*args, str(tmp_path / "missing.json")))
    assert missing["status"] == "FAILED_PRECONDITION"
    for text, problem in (
        ("{not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"nats": 5}', "nats is not a JSON object"),
    ):
        path = tmp_path / "config.json"
        path.write_text(text)
        status = status_of(hms(*args, str(path)))
        assert status["status"] == "INVALID_ARGUMENT"
        assert problem in str(status["message"])
    # A field of the wrong type is the core's to refuse.
    path = tmp_path / "config.json"
    path.write_text('{"nats": {"servers": "nats://127.0.0.1:4222"}}')
    wrong_type = status_of(hms(*args, str(path)))
    assert wrong_type["status"] == "DECODE_ERROR"
    assert "servers" in str(wrong_type["message"])
