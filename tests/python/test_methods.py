"""ABI 1.1 from Python: Method (resolved once) and batches."""

from __future__ import annotations

import gc
import os
import struct
import subprocess
import sys
import threading
import weakref
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import hms_cffi
import hms_cffi.methods
from hms_cffi import (
    BatchError,
    ClosedError,
    DecodeError,
    Format,
    HandlerError,
    HmsError,
    InvalidArgumentError,
    InvalidHandleError,
    Method,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    Runtime,
    ffi,
    lib,
)
from hms_cffi.formats import decode_value, encode_value
from hms_cffi.proto.hms.sys.v1 import system_pb2

ECHO = "hms.sys.v1.System/Echo"
MiB = 1 << 20


def echo_bytes(text: str, payload: bytes | None = None) -> bytes:
    payload = text.encode() if payload is None else payload
    return system_pb2.EchoRequest(text=text, payload=payload).SerializeToString()


def echo_text(answer: bytes) -> str:
    return system_pb2.EchoResponse.FromString(answer).text


@pytest.fixture(params=["fast", "cffi"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test through the compiled fast path (hms_cffi._fast), then
    through CFFI alone (as a build without it would), on methods made
    during the test."""
    if request.param == "cffi":
        monkeypatch.setattr(hms_cffi.methods, "FAST", False)
    return str(request.param)


def thread_buffers() -> tuple[int, int, bool]:
    from hms_cffi import _fast

    return _fast.thread_buffers()


def rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def test_a_method_answers_as_call_does_in_every_format(rt: Runtime) -> None:
    for fmt in Format:
        method = rt.method(ECHO, fmt)
        assert isinstance(method, Method)
        assert (method.name, method.format) == (ECHO, fmt)
        if fmt == Format.PROTOBUF:
            raw = echo_bytes("héllo")
            assert method(system_pb2.EchoRequest(text="héllo")).text == "héllo"
        else:
            raw = hms_cffi.formats.encode_value({"text": "héllo"}, int(fmt))
            assert method({"text": "héllo"}) == {"text": "héllo"}
        assert method.call_raw(raw) == rt.call(ECHO, raw, format=fmt)


def test_the_same_name_and_format_give_the_same_method(rt: Runtime) -> None:
    first = rt.method(ECHO)
    assert rt.method(ECHO) is first
    assert rt.method(ECHO, Format.CBOR) is not first
    first.close()
    again = rt.method(ECHO)
    assert again is not first
    assert not again.closed


def test_expect_types_the_answers(rt: Runtime) -> None:
    method = rt.method(ECHO, expect=system_pb2.EchoResponse)
    assert method.output_type is system_pb2.EchoResponse
    answer: system_pb2.EchoResponse = method(system_pb2.EchoRequest(text="t"))
    assert answer.text == "t"


def test_wrong_request_kinds_are_type_errors(rt: Runtime) -> None:
    with pytest.raises(TypeError, match="pass a message"):
        rt.method(ECHO)({"text": "x"})
    with pytest.raises(TypeError, match="pass a dict"):
        rt.method(ECHO, Format.CBOR)(system_pb2.EchoRequest())
    with pytest.raises(TypeError, match="protobuf message or a dict"):
        rt.method(ECHO)(42)  # type: ignore[arg-type]


def test_unknown_and_malformed_names_fail_when_resolved(rt: Runtime) -> None:
    with pytest.raises(NotFoundError) as err:
        rt.method("no.such.v1.Service/Method")
    assert err.value.origin == "registry"
    with pytest.raises(NotFoundError):
        rt.method("hms.sys.v1.System/Nope")
    with pytest.raises(InvalidArgumentError):
        rt.method("")
    with pytest.raises(InvalidArgumentError):
        rt.method(ECHO, 9)


def test_bad_requests_raise_and_the_method_goes_on(rt: Runtime, path: str) -> None:
    method = rt.method(ECHO)
    with pytest.raises(DecodeError) as err:
        method.call_raw(b"\xff\xff")
    assert err.value.origin == ECHO
    assert system_pb2.EchoResponse.FromString(method.call_raw(echo_bytes("ok"))).text == "ok"


def test_oversize_requests_are_refused(path: str) -> None:
    with Runtime({"max_message_bytes": 64}) as small:
        with pytest.raises(ResourceExhaustedError):
            small.method(ECHO).call_raw(b"\x0a\x50" + bytes(80))


def test_a_closed_method_or_runtime_raises_closed_error(path: str) -> None:
    rt = Runtime()
    method = rt.method(ECHO)
    method.close()
    method.close()
    with pytest.raises(ClosedError):
        method.call_raw(b"")
    with pytest.raises(ClosedError):
        method.batch_raw([b""])
    other = rt.method(ECHO, Format.JSON)
    rt.close()
    assert other.closed
    with pytest.raises(ClosedError):
        other.call_raw(b"{}")
    with pytest.raises(ClosedError):
        rt.method(ECHO)


def test_raw_handles_the_library_refuses(bufs: Any) -> None:
    for handle in (0, 12345, (4 << 56) | 99):
        rc = lib.hms_method_call(handle, b"", 0, bufs.out, bufs.err)
        assert rc == lib.HMS_INVALID_HANDLE
    assert lib.hms_method_free(0) == lib.HMS_INVALID_HANDLE
    with Runtime() as rt:
        # A runtime handle is not a method handle.
        assert lib.hms_method_call(rt.handle, b"", 0, bufs.out, ffi.NULL) == lib.HMS_INVALID_HANDLE
        assert lib.hms_method_call(rt.method(ECHO).handle, b"", 0, ffi.NULL, ffi.NULL) == (
            lib.HMS_INVALID_ARGUMENT
        )


def test_a_method_follows_a_host_service_that_goes_and_comes_back(rt: Runtime, path: str) -> None:
    name = "fast.v1.Greeter"
    service = rt.register_service(name, {"Greet": lambda r: {"from": "first"}})
    method = rt.method(f"{name}/Greet", Format.CBOR)
    assert method({}) == {"from": "first"}
    service.close()
    with pytest.raises(NotFoundError):
        method({})
    rt.register_service(name, {"Greet": lambda r: {"from": "second"}})
    assert method({}) == {"from": "second"}


def test_a_batch_of_a_thousand_answers_in_order(rt: Runtime, path: str) -> None:
    method = rt.method(ECHO)
    answers = method.batch_raw([echo_bytes(f"call {i}") for i in range(1000)])
    assert [system_pb2.EchoResponse.FromString(a).text for a in answers] == [
        f"call {i}" for i in range(1000)
    ]
    typed = method.batch([system_pb2.EchoRequest(text=str(i)) for i in range(3)])
    assert [a.text for a in typed] == ["0", "1", "2"]
    assert method.batch_raw([]) == []


def test_a_failing_call_fails_alone_and_every_outcome_is_kept(rt: Runtime, path: str) -> None:
    calls: list[Any] = []

    def greet(request: Any) -> Any:
        calls.append(request)
        if request.get("fail"):
            raise ValueError("asked to fail")
        return {"ok": request["n"]}

    rt.register_service("fast.v1.Flaky", {"Greet": greet})
    method = rt.method("fast.v1.Flaky/Greet", Format.CBOR)
    requests = [{"n": 0}, {"n": 1, "fail": True}, {"n": 2}]
    with pytest.raises(BatchError) as err:
        method.batch(requests)
    error = err.value
    assert len(calls) == 3, "the call after the failure ran"
    assert error.code == hms_cffi.StatusCode.HANDLER_ERROR
    assert list(error.failures) == [1]
    assert isinstance(error.failures[1], HandlerError)
    assert "asked to fail" in error.failures[1].message
    assert error.results[0] == {"ok": 0}
    assert error.results[2] == {"ok": 2}
    assert "1 of 3 calls failed" in str(error)


def test_a_batch_mixes_methods_formats_and_dead_handles(rt: Runtime, path: str) -> None:
    pb, js = rt.method(ECHO), rt.method(ECHO, Format.JSON)
    dead = rt.method(ECHO, Format.CBOR)
    dead.close()
    answers = rt.batch_raw([(pb, echo_bytes("a")), (js, b'{"text":"b"}')])
    assert system_pb2.EchoResponse.FromString(answers[0]).text == "a"
    assert answers[1] == b'{"text":"b"}'
    with pytest.raises(ClosedError):
        rt.batch_raw([(pb, b""), (dead, b"")])


def test_a_dead_handle_inside_a_frame_answers_a_json_status(rt: Runtime, bufs: Any) -> None:
    js = rt.method(ECHO, Format.JSON).handle
    dead = (4 << 56) | 77
    frame = struct.pack("<7Q", 3, js, dead, js, 2, 2, 4) + b"{}{}"
    assert lib.hms_call_batch(frame, len(frame), bufs.out, bufs.err) == lib.HMS_OK
    results = bufs.read()
    words = struct.unpack_from("<7Q", results)
    assert words[:4] == (3, 0, lib.HMS_INVALID_HANDLE, 0)
    status = results[56 + words[4] : 56 + words[5]]
    error = hms_cffi._ffi.error_from_status(lib.HMS_INVALID_HANDLE, status, int(Format.JSON))
    assert isinstance(error, InvalidHandleError)
    assert "method" in error.message
    assert results[56 + words[5] :] == b"{}"


def test_malformed_frames_are_refused_before_anything_runs(bufs: Any) -> None:
    with Runtime() as rt:
        h = rt.method(ECHO).handle
        frames = {
            "empty": b"",
            "count too large for the bytes": struct.pack("<Q", 5),
            "ends decrease": struct.pack("<5Q", 2, h, h, 2, 1) + b"ab",
            "last end short": struct.pack("<3Q", 1, h, 1) + b"ab",
        }
        for what, frame in frames.items():
            rc = lib.hms_call_batch(frame, len(frame), bufs.out, bufs.err)
            assert rc == lib.HMS_INVALID_ARGUMENT, what
            error = hms_cffi._ffi.error_from(rc, bufs.err, int(Format.JSON))
            assert "batch frame" in error.message, what
        huge = struct.pack("<Q", lib.HMS_BATCH_MAX_CALLS + 1)
        assert lib.hms_call_batch(huge, len(huge), bufs.out, ffi.NULL) == (
            lib.HMS_RESOURCE_EXHAUSTED
        )
        assert lib.hms_call_batch(ffi.NULL, 8, bufs.out, ffi.NULL) == lib.HMS_INVALID_ARGUMENT


def test_methods_and_batches_from_many_threads(rt: Runtime) -> None:
    method = rt.method(ECHO)
    failures: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for i in range(200):
                text = f"{thread}/{i}"
                answer = system_pb2.EchoResponse.FromString(method.call_raw(echo_bytes(text)))
                assert answer.text == text
                assert len(method.batch_raw([echo_bytes(text)] * 5)) == 5
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# -- the compiled fast path (hms_cffi._fast) and its CFFI fallback ---------------


def test_the_installed_package_uses_the_fast_path(rt: Runtime) -> None:
    from hms_cffi import _fast

    assert hms_cffi.methods.FAST
    # Built by setup.py next to the core it links, abi3 like _native.
    assert Path(_fast.__file__).name.endswith(".abi3.so")
    assert Path(_fast.__file__).parent == hms_cffi.library_path().parent
    method = rt.method(ECHO)
    binding = method.call_raw.__self__  # type: ignore[attr-defined]
    assert isinstance(binding, _fast.Binding)
    assert binding.handle == method.handle
    assert echo_text(method.call_raw(echo_bytes("fast"))) == "fast"


def test_without_the_fast_module_the_package_falls_back_to_cffi() -> None:
    script = """
import sys
sys.modules["hms_cffi._fast"] = None  # import hms_cffi._fast raises ImportError
import hms_cffi, hms_cffi.methods
assert not hms_cffi.methods.FAST
with hms_cffi.Runtime() as rt:
    m = rt.method("hms.sys.v1.System/Echo", hms_cffi.Format.JSON)
    assert m.call_raw(b'{"text":"x"}') == b'{"text":"x"}'
    assert m.batch_raw([b'{"text":"y"}']) == [b'{"text":"y"}']
    m.close()
    try:
        m.call_raw(b"{}")
    except hms_cffi.ClosedError:
        print("fallback ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.stdout.strip() == "fallback ok", done.stderr


def test_requests_may_be_any_contiguous_bytes_like_object(rt: Runtime, path: str) -> None:
    method = rt.method(ECHO)
    raw = echo_bytes("kind")
    for request in (
        raw,
        bytearray(raw),
        memoryview(raw),
        memoryview(b"--" + raw)[2:],
        array("B", raw),
    ):
        assert echo_text(method.call_raw(request)) == "kind", type(request)
    assert method.call_raw(b"") == b""
    assert method.batch_raw([raw, bytearray(raw), memoryview(raw)]) == [method.call_raw(raw)] * 3
    with pytest.raises(BufferError):
        method.call_raw(memoryview(raw)[::2])
    for wrong in ("text", None, 5, [1, 2]):
        with pytest.raises(TypeError):
            method.call_raw(wrong)  # type: ignore[arg-type]


def _outcome(call: Callable[[bytes], bytes], request: bytes) -> Any:
    try:
        return call(request)
    except HmsError as error:
        return (type(error), error.code, error.message, error.details, error.origin)


def test_both_paths_raise_the_same_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def guard(request: Any) -> Any:
        if request.get("deny"):
            raise PermissionDeniedError("not you", details={"who": "x"})
        if request.get("crash"):
            raise ValueError("boom")
        return {"ok": True}

    cbor = int(Format.CBOR)
    cases = [
        (ECHO, Format.PROTOBUF, b"\xff\xff"),
        (ECHO, Format.JSON, b"{not json"),
        (ECHO, Format.PROTOBUF, echo_bytes("fine")),
        ("fast.v1.Guard/Check", Format.CBOR, encode_value({"deny": True}, cbor)),
        ("fast.v1.Guard/Check", Format.CBOR, encode_value({"crash": True}, cbor)),
        ("fast.v1.Guard/Check", Format.CBOR, encode_value({}, cbor)),
    ]
    outcomes: dict[bool, list[Any]] = {}
    for fast in (True, False):
        monkeypatch.setattr(hms_cffi.methods, "FAST", fast)
        with Runtime() as rt:
            rt.register_service("fast.v1.Guard", {"Check": guard})
            methods = [rt.method(name, fmt) for name, fmt, _ in cases]
            bound_to = {type(m.call_raw.__self__).__name__ for m in methods}  # type: ignore[attr-defined]
            assert bound_to == ({"Binding"} if fast else {"Method"})
            outcomes[fast] = [
                _outcome(m.call_raw, r) for m, (_, _, r) in zip(methods, cases, strict=True)
            ]
    assert outcomes[True] == outcomes[False]
    found = outcomes[True]
    assert found[0][0] is DecodeError
    assert found[0][4] == ECHO
    assert found[1][0] is DecodeError
    assert echo_text(found[2]) == "fine"
    assert found[3][:3] == (PermissionDeniedError, hms_cffi.StatusCode.PERMISSION_DENIED, "not you")
    assert found[4][0] is HandlerError
    assert "boom" in found[4][2]
    assert found[5] == encode_value({"ok": True}, cbor)


def test_a_bad_handle_through_the_fast_path_is_an_invalid_handle_error() -> None:
    from hms_cffi import _fast

    for handle in (0, 12345, (4 << 56) | 99):
        with pytest.raises(InvalidHandleError) as err:
            _fast.Binding(handle, int(Format.JSON), None).call(b"{}")
        assert type(err.value) is InvalidHandleError  # not ClosedError: no method to ask
    for bad in (-1, 1 << 64):
        with pytest.raises(OverflowError):
            _fast.Binding(bad, 1, None)


def test_a_closed_method_raises_closed_error_even_through_an_old_reference(path: str) -> None:
    rt = Runtime()
    method = rt.method(ECHO)
    call = method.call_raw  # taken before close, as a racing thread would hold it
    method.close()
    for attempt in (method.call_raw, call):
        with pytest.raises(ClosedError, match=r"the method hms\.sys\.v1\.System/Echo is closed"):
            attempt(echo_bytes("x"))
    other = rt.method(ECHO, Format.JSON)
    call = other.call_raw
    rt.close()
    for attempt in (other.call_raw, call):
        with pytest.raises(ClosedError):
            attempt(b"{}")
    # Closing drops the binding: nothing keeps a closed method alive.
    del call, attempt
    ref = weakref.ref(other)
    del other
    gc.collect()
    assert ref() is None


def test_a_method_closed_while_threads_call_it_answers_or_raises_closed_error(
    rt: Runtime, path: str
) -> None:
    method = rt.method(ECHO)
    request = echo_bytes("race")
    outcomes: list[str] = []
    started = threading.Barrier(5)

    def work() -> None:
        started.wait()
        for _ in range(2000):
            try:
                method.call_raw(request)
            except ClosedError:
                outcomes.append("closed")
                return
            except BaseException as error:
                outcomes.append(repr(error))
                return
        outcomes.append("done")

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    started.wait()
    method.close()
    for t in threads:
        t.join()
    assert set(outcomes) <= {"closed", "done"}, outcomes
    assert len(outcomes) == 4


def test_nested_calls_from_a_handler_keep_the_outer_answer(rt: Runtime, path: str) -> None:
    echo = rt.method(ECHO)
    big = bytes(range(256)) * (2 * MiB // 256)
    seen: list[Any] = []

    def run(request: Any) -> Any:
        depth = request["depth"]
        pair = thread_buffers() if path == "fast" else None
        assert echo_text(echo.call_raw(echo_bytes("small"))) == "small"
        answer = system_pb2.EchoResponse.FromString(echo.call_raw(echo_bytes("big", big)))
        assert answer.payload == big
        assert [echo_text(a) for a in echo.batch_raw([echo_bytes("b")] * 3)] == ["b"] * 3
        inner = None
        if depth:
            inner = decode_value(outer.call_raw(encode_value({"depth": depth - 1}, cbor)), cbor)
        if pair is not None:
            # The outer call owns this thread's pair: the nested calls above
            # got pairs of their own and left it as it was.
            assert pair[2]
            assert thread_buffers() == pair
        seen.append(threading.get_ident())
        return {"depth": depth, "inner": inner, "pad": "x" * (1000 * depth)}

    cbor = int(Format.CBOR)
    rt.register_service("fast.v1.Nest", {"Run": run})
    outer = rt.method("fast.v1.Nest/Run", Format.CBOR)
    answer = decode_value(outer.call_raw(encode_value({"depth": 3}, cbor)), cbor)
    levels = []
    while answer is not None:
        levels.append(answer["depth"])
        assert answer["pad"] == "x" * (1000 * answer["depth"])
        answer = answer["inner"]
    assert levels == [3, 2, 1, 0]
    assert seen == [threading.get_ident()] * 4, "the handlers ran on the calling thread"
    # A batch whose calls make nested calls.
    results = outer.batch_raw([encode_value({"depth": d}, cbor) for d in (0, 1)])
    assert [decode_value(r, cbor)["depth"] for r in results] == [0, 1]
    if path == "fast":
        assert not thread_buffers()[2]


def test_a_nested_call_that_fails_leaves_the_outer_call_intact(rt: Runtime, path: str) -> None:
    echo = rt.method(ECHO)

    def run(request: Any) -> Any:
        with pytest.raises(DecodeError):
            echo.call_raw(b"\xff\xff")
        return {"after": echo_text(echo.call_raw(echo_bytes("after")))}

    rt.register_service("fast.v1.Fails", {"Run": run})
    method = rt.method("fast.v1.Fails/Run", Format.CBOR)
    assert method({}) == {"after": "after"}


def test_many_threads_call_and_batch_with_answers_of_every_size(rt: Runtime, path: str) -> None:
    method = rt.method(ECHO)
    sizes = [0, 64, 64 << 10, MiB + 123]
    failures: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for i in range(60):
                payload = bytes([thread]) * sizes[(thread + i) % len(sizes)]
                text = f"{thread}/{i}"
                answer = system_pb2.EchoResponse.FromString(
                    method.call_raw(echo_bytes(text, payload))
                )
                assert (answer.text, answer.payload) == (text, payload)
                if i % 10 == 0:
                    with pytest.raises(DecodeError):
                        method.call_raw(b"\xff\xff")
                    batch = [echo_bytes(f"{text}/{j}") for j in range(5)]
                    assert [echo_text(a) for a in method.batch_raw(batch)] == [
                        f"{text}/{j}" for j in range(5)
                    ]
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_big_answers_release_their_memory() -> None:
    with Runtime({"max_message_bytes": 8 * MiB}) as rt:
        method = rt.method(ECHO)
        payload = b"\x5a" * (4 * MiB)
        answer = system_pb2.EchoResponse.FromString(method.call_raw(echo_bytes("big", payload)))
        assert answer.payload == payload
        # Not kept: a buffer past 1 MiB is freed after use...
        assert thread_buffers()[0] == 0
        assert len(method.batch_raw([echo_bytes("b", payload)])[0]) > 4 * MiB
        assert thread_buffers()[0] == 0
        # ...while a small one is kept for the next call.
        method.call_raw(echo_bytes("small", bytes(1000)))
        assert 1000 < thread_buffers()[0] <= MiB
        assert thread_buffers()[2] is False


def test_exiting_threads_free_their_buffers(rt: Runtime) -> None:
    method = rt.method(ECHO)
    request = echo_bytes("kept", bytes(400 << 10))

    def work() -> None:
        assert len(method.call_raw(request)) > 400 << 10
        assert 400 << 10 < thread_buffers()[0] <= MiB  # kept by the thread

    def threads(n: int) -> None:
        for _ in range(n):
            t = threading.Thread(target=work)
            t.start()
            t.join()

    threads(3)
    before = rss_kib()
    threads(100)  # ~40 MiB if each exiting thread left its buffer behind
    assert rss_kib() - before < 16 * 1024


def test_plain_calls_by_name_go_through_a_cached_handle(rt: Runtime) -> None:
    request = echo_bytes("cached")
    first = rt.call_raw(ECHO, request, int(Format.PROTOBUF))
    cached = rt.method(ECHO)
    assert rt.call_raw(ECHO, request, int(Format.PROTOBUF)) == first
    assert rt.method(ECHO) is cached, "the call resolved it once"
    # Errors are those of a call by name, origin included.
    with pytest.raises(DecodeError) as by_handle:
        rt.call_raw(ECHO, b"\xff", int(Format.PROTOBUF))
    with pytest.raises(DecodeError) as by_name:
        rt.call_raw("/" + ECHO, b"\xff", int(Format.PROTOBUF))
    assert by_handle.value.message == by_name.value.message
    assert by_handle.value.origin == ECHO
    # A service that goes away answers NotFoundError either way.
    service = rt.register_service("fast.v1.Gone", {"Do": lambda r: {}})
    rt.call("fast.v1.Gone/Do", {})
    rt.call("fast.v1.Gone/Do", {})
    service.close()
    with pytest.raises(NotFoundError):
        rt.call("fast.v1.Gone/Do", {})
