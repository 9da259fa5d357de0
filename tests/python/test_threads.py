"""Many threads at once: built-in and Python services, per-thread buffers."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from helpers import ECHO

import hms_cffi
from hms_cffi import Format, Runtime
from hms_cffi.proto.hms.sys.v1 import system_pb2

THREADS = 8
CALLS = 200


def test_eight_threads_echo_and_python_service(rt: Runtime) -> None:
    def square(req: dict[str, int]) -> dict[str, int]:
        return {"n": req["n"], "sq": req["n"] * req["n"], "thread": threading.get_ident()}

    barrier = threading.Barrier(THREADS)

    def worker(tid: int) -> int:
        barrier.wait()
        done = 0
        for i in range(CALLS):
            text = f"t{tid}-{i}-" + "x" * (i % 50)
            payload = bytes([tid, i % 256, 0]) * (i % 7)
            assert rt.call(ECHO, {"text": text, "payload": payload}) == (
                {"text": text, "payload": payload} if payload else {"text": text}
            )
            reply = rt.call(ECHO, system_pb2.EchoRequest(text=text))
            assert reply.text == text
            raw = rt.call(
                ECHO,
                system_pb2.EchoRequest(payload=payload).SerializeToString(),
                format=Format.PROTOBUF,
            )
            assert system_pb2.EchoResponse.FromString(raw).payload == payload
            n = tid * 1000 + i
            out = rt.call("threads.v1.Math/Square", {"n": n})
            assert (out["n"], out["sq"]) == (n, n * n)
            assert out["thread"] == threading.get_ident()
            done += 1
        return done

    with rt.register_service("threads.v1.Math", {"Square": square}):
        with ThreadPoolExecutor(THREADS) as pool:
            assert list(pool.map(worker, range(THREADS))) == [CALLS] * THREADS


def test_threads_with_errors_and_deadlines(rt: Runtime) -> None:
    def maybe_fail(req: dict[str, int]) -> dict[str, int]:
        if req["i"] % 3 == 0:
            raise ValueError(f"bad {req['i']}")
        return {"i": req["i"]}

    def worker(tid: int) -> tuple[int, int]:
        ok = failed = 0
        for i in range(100):
            try:
                out = rt.call("threads.v1.Flaky/Do", {"i": i}, timeout=5 if i % 2 else None)
                assert out == {"i": i}
                ok += 1
            except hms_cffi.HandlerError as exc:
                assert exc.message == f"ValueError: bad {i}"
                failed += 1
        return ok, failed

    with rt.register_service("threads.v1.Flaky", {"Do": maybe_fail}):
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(worker, range(THREADS)))
    assert results == [(66, 34)] * THREADS


def test_concurrent_register_unregister_and_calls(rt: Runtime) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def caller() -> None:
        while not stop.is_set():
            try:
                assert rt.call(ECHO, {"text": "bg"}) == {"text": "bg"}
            except BaseException as exc:
                errors.append(exc)
                return

    def churn(tid: int) -> None:
        for i in range(30):
            with rt.register_service(f"threads.v1.Churn{tid}x{i}", {"M": lambda r, i=i: {"i": i}}):
                assert rt.call(f"threads.v1.Churn{tid}x{i}/M") == {"i": i}

    bg = [threading.Thread(target=caller) for _ in range(2)]
    for t in bg:
        t.start()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(churn, range(4)))
    stop.set()
    for t in bg:
        t.join()
    assert errors == []
    assert rt.list_services("threads.") == []


def test_runtime_closed_while_other_threads_call() -> None:
    rt = Runtime()
    go = threading.Event()
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        go.wait()
        for _ in range(2000):
            try:
                rt.call(ECHO, {"text": "race"})
            except hms_cffi.InvalidHandleError:
                with lock:
                    outcomes.append("closed")
                return
        with lock:
            outcomes.append("finished")

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    go.set()
    rt.close()
    for t in threads:
        t.join(10)
    assert len(outcomes) == 4
