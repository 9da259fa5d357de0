"""Remote calls when things go wrong: a worker killed under load, the NATS
server restarting, deadlines, oversize payloads and a rogue NATS client.

Workers are separate processes (remote_worker.py) exporting
``faults.v1.Work``; the caller is a runtime in the test's process. Every
test uses a real nats-server of its own.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nats_server import NatsServer
from remote_worker import SERVICE, Worker

from hms_cffi import Runtime
from hms_cffi.errors import (
    DeadlineExceededError,
    DecodeError,
    HmsError,
    ResourceExhaustedError,
    UnavailableError,
)

pytestmark = [pytest.mark.slow, pytest.mark.remote]

ECHO = f"{SERVICE}/Echo"


def caller(url: str, **nats: Any) -> Runtime:
    return Runtime({"name": "caller", "nats": {"servers": [url], **nats}})


@pytest.fixture
def worker(nats_server: NatsServer, tmp_path: Path) -> Iterator[Worker]:
    one = Worker(nats_server.url, "worker-a", tmp_path)
    yield one
    if one.process.poll() is None:
        one.stop()


# -- kill -9 under load ---------------------------------------------------------


def test_kill_9_of_one_worker_fails_only_its_calls_in_flight(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    a = Worker(nats_server.url, "worker-a", tmp_path)
    b = Worker(nats_server.url, "worker-b", tmp_path)
    killed_at: list[float] = []
    results: list[tuple[float, float, str]] = []  # (started, ended, worker or error code)
    lock = threading.Lock()
    done = threading.Event()

    with caller(nats_server.url) as rt:

        def load(thread: int) -> None:
            n = 0
            while not done.is_set():
                n += 1
                started = time.monotonic()
                try:
                    reply = rt.call(
                        f"{SERVICE}/Sleep", {"id": f"{thread}-{n}", "ms": 20}, timeout=2
                    )
                    outcome = reply["worker"]
                except (UnavailableError, DeadlineExceededError) as failed:
                    outcome = failed.code.name
                with lock:
                    results.append((started, time.monotonic(), outcome))

        threads = [threading.Thread(target=load, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        a.kill()
        killed_at.append(time.monotonic())
        time.sleep(2.5)
        done.set()
        for thread in threads:
            thread.join(10)
    b.stop()

    kill = killed_at[0]
    # The server drops the dead worker's subscriptions once it reads the
    # closed socket: a call sent in between is lost like one in flight.
    noticed = kill + 0.5
    outcomes = Counter(outcome for _, _, outcome in results)
    assert outcomes["worker-a"] > 0, outcomes  # both took calls before the kill
    assert outcomes["worker-b"] > 0, outcomes
    failed = [(s, e, o) for s, e, o in results if not o.startswith("worker-")]
    # Only calls in flight at the kill fail (a failure takes the 2 s
    # deadline, so at most one per thread), each ending after the kill.
    assert len(failed) <= len(threads), failed
    assert all(started <= noticed and ended >= kill for started, ended, _ in failed), (
        kill,
        failed,
    )
    after = [o for s, _, o in results if s > noticed]
    assert after, "no call started after the kill"
    assert set(after) == {"worker-b"}


# -- the server restarting ------------------------------------------------------


def test_calls_fail_fast_while_the_server_is_down_and_recover(
    nats_server: NatsServer, worker: Worker
) -> None:
    with caller(nats_server.url) as rt:
        assert rt.call(ECHO, {"id": "before"})["worker"] == "worker-a"
        nats_server.stop()
        # Down: UNAVAILABLE at once (well before the 10 s deadline), every time.
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(UnavailableError):
                rt.call(ECHO, {"id": "down"}, timeout=10)
            assert time.monotonic() - started < 5
        nats_server.start()
        # Back: both sides reconnect (backoff up to 2 s) and the worker
        # subscribes again, with nobody doing anything.
        until = time.monotonic() + 20
        while True:
            try:
                reply = rt.call(ECHO, {"id": "after"}, timeout=2)
                break
            except (UnavailableError, DeadlineExceededError):
                assert time.monotonic() < until, "calls did not recover after the restart"
                time.sleep(0.2)
        assert reply == {"id": "after", "worker": "worker-a"}
    assert "after" in worker.stop()


# -- deadlines and sizes --------------------------------------------------------


def test_a_handler_that_never_answers_meets_the_deadline(
    nats_server: NatsServer, worker: Worker
) -> None:
    with caller(nats_server.url) as rt:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            rt.call(f"{SERVICE}/Hang", {}, timeout=0.3)
        assert time.monotonic() - started < 5
        # Without a deadline of its own the call gets request_timeout_ms.
    with caller(nats_server.url, request_timeout_ms=300) as rt:
        with pytest.raises(DeadlineExceededError):
            rt.call(f"{SERVICE}/Hang", {})
        assert rt.call(ECHO, {"id": "still"})["id"] == "still"


def test_oversize_payloads_are_resource_exhausted(nats_server: NatsServer, worker: Worker) -> None:
    max_payload = int(nats_server.monitor("varz")["max_payload"])
    with caller(nats_server.url) as rt:
        with pytest.raises(ResourceExhaustedError) as request_too_big:
            rt.call(ECHO, {"id": "x" * (max_payload + 1000)})
        assert str(max_payload) in request_too_big.value.message
        with pytest.raises(ResourceExhaustedError) as answer_too_big:
            rt.call(f"{SERVICE}/Big", {"n": max_payload + 1000})
        assert str(max_payload) in answer_too_big.value.message
        assert answer_too_big.value.origin == "worker-a"
        assert rt.call(ECHO, {"id": "small"})["id"] == "small"


# -- a rogue client ----------------------------------------------------------------


class RawNats:
    """A NATS client written against the protocol text, which does what no
    HMS runtime does: answers garbage, publishes floods."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        assert self.file.readline().startswith(b"INFO ")
        self.send(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\nPING\r\n')
        self.expect(b"PONG")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def expect(self, *words: bytes) -> bytes:
        while True:
            line = self.file.readline()
            if line.startswith(b"PING"):
                self.send(b"PONG\r\n")
                continue
            assert line.startswith(words), line
            return line

    def next_message(self) -> tuple[str | None, bytes, bytes]:
        """The next message: reply subject, headers, payload."""
        fields = self.expect(b"MSG ", b"HMSG ").split()
        with_headers = fields[0] == b"HMSG"
        has_reply = len(fields) == (6 if with_headers else 5)
        reply = fields[3].decode() if has_reply else None
        data = self.file.read(int(fields[-1]) + 2)[:-2]
        split = int(fields[-2]) if with_headers else 0
        return reply, data[:split], data[split:]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
            self.sock.close()


def test_a_rogue_replying_garbage_is_a_decode_error(nats_server: NatsServer) -> None:
    subject = "hms.svc.rogue.v1.Liar.Echo"
    rogue = RawNats(nats_server.port)
    rogue.send(f"SUB {subject} 1\r\nPING\r\n".encode())
    rogue.expect(b"PONG")

    def answer_garbage(n: int) -> None:
        for i in range(n):
            reply, _, _ = rogue.next_message()
            assert reply is not None
            if i % 2:  # headers, but no Hms-Status
                head = b"NATS/1.0\r\nX-Rogue: yes\r\n\r\n"
            else:  # a status that says OK with a body no one asked for
                head = b"NATS/1.0\r\nHms-Status: 13\r\n\r\n"
            body = b"\xff\x00garbage"
            rogue.send(
                f"HPUB {reply} {len(head)} {len(head) + len(body)}\r\n".encode()
                + head
                + body
                + b"\r\n"
            )

    answering = threading.Thread(target=answer_garbage, args=(2,))
    answering.start()
    try:
        with caller(nats_server.url) as rt:
            for _ in range(2):
                with pytest.raises(DecodeError):
                    rt.call("rogue.v1.Liar/Echo", {"x": 1}, timeout=5)
    finally:
        answering.join(10)
        rogue.close()


def test_a_flood_on_the_subject_leaves_the_worker_serving(
    nats_server: NatsServer, worker: Worker
) -> None:
    subject = f"hms.svc.{SERVICE}.Echo"
    rogue = RawNats(nats_server.port)
    try:
        rogue.send(b"SUB rogue.inbox 1\r\n")
        flood = bytearray()
        for i in range(5000):
            if i % 2:  # no reply subject: asks for nothing
                flood += f"PUB {subject} 7\r\ngarbage\r\n".encode()
            else:  # garbage with a reply subject: answered with a status
                flood += f"PUB {subject} rogue.inbox 7\r\n\xff\xfegarba\r\n".encode("latin-1")
        rogue.send(bytes(flood))
        with caller(nats_server.url) as rt:
            assert rt.call(ECHO, {"id": "through"}, timeout=10)["worker"] == "worker-a"
        # The garbage with a reply subject got an HMS error status, not silence.
        _, headers, _ = rogue.next_message()
        assert b"Hms-Status: " in headers
        assert b"Hms-Status: 0\r\n" not in headers
    finally:
        rogue.close()
    assert worker.process.poll() is None
    assert "through" in worker.stop()


def test_errors_from_the_worker_carry_its_status(nats_server: NatsServer, worker: Worker) -> None:
    with caller(nats_server.url) as rt:
        with pytest.raises(HmsError) as no_method:
            rt.call(f"{SERVICE}/NoSuchMethod", {})
        assert no_method.value.code.name == "NOT_FOUND"
        with pytest.raises(HmsError) as handler_failed:
            rt.call(ECHO, {"not_id": 1})  # KeyError in the handler
        assert handler_failed.value.code.name == "HANDLER_ERROR"
        assert handler_failed.value.origin == "worker-a"


# -- a clean stop -------------------------------------------------------------------


def test_a_worker_stopped_by_sigterm_answers_its_calls_in_flight(
    nats_server: NatsServer, worker: Worker
) -> None:
    answers: list[Any] = []

    with caller(nats_server.url) as rt:

        def slow(n: int) -> None:
            try:
                answers.append(rt.call(f"{SERVICE}/Sleep", {"id": f"s{n}", "ms": 400}, timeout=10))
            except HmsError as failed:
                answers.append(failed)

        threads = [threading.Thread(target=slow, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.15)  # the calls are running in the worker now
        answered = worker.stop()
        for thread in threads:
            thread.join(15)
        assert sorted(answered) == ["s0", "s1", "s2", "s3"]
        assert sorted(a["id"] for a in answers) == sorted(answered), answers
        # Stopped: the next call finds nobody.
        with pytest.raises(UnavailableError):
            rt.call(ECHO, {"id": "late"}, timeout=5)
