"""ABI 1.1 from Python: Method (resolved once) and batches."""

from __future__ import annotations

import struct
import threading
from typing import Any

import pytest

import hms_cffi
from hms_cffi import (
    BatchError,
    ClosedError,
    DecodeError,
    Format,
    HandlerError,
    InvalidArgumentError,
    InvalidHandleError,
    Method,
    NotFoundError,
    ResourceExhaustedError,
    Runtime,
    ffi,
    lib,
)
from hms_cffi.proto.hms.sys.v1 import system_pb2

ECHO = "hms.sys.v1.System/Echo"


def echo_bytes(text: str) -> bytes:
    return system_pb2.EchoRequest(text=text, payload=text.encode()).SerializeToString()


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


def test_bad_requests_raise_and_the_method_goes_on(rt: Runtime) -> None:
    method = rt.method(ECHO)
    with pytest.raises(DecodeError) as err:
        method.call_raw(b"\xff\xff")
    assert err.value.origin == ECHO
    assert system_pb2.EchoResponse.FromString(method.call_raw(echo_bytes("ok"))).text == "ok"


def test_oversize_requests_are_refused() -> None:
    with Runtime({"max_message_bytes": 64}) as small:
        with pytest.raises(ResourceExhaustedError):
            small.method(ECHO).call_raw(b"\x0a\x50" + bytes(80))


def test_a_closed_method_or_runtime_raises_closed_error() -> None:
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


def test_a_method_follows_a_host_service_that_goes_and_comes_back(rt: Runtime) -> None:
    name = "fast.v1.Greeter"
    service = rt.register_service(name, {"Greet": lambda r: {"from": "first"}})
    method = rt.method(f"{name}/Greet", Format.CBOR)
    assert method({}) == {"from": "first"}
    service.close()
    with pytest.raises(NotFoundError):
        method({})
    rt.register_service(name, {"Greet": lambda r: {"from": "second"}})
    assert method({}) == {"from": "second"}


def test_a_batch_of_a_thousand_answers_in_order(rt: Runtime) -> None:
    method = rt.method(ECHO)
    answers = method.batch_raw([echo_bytes(f"call {i}") for i in range(1000)])
    assert [system_pb2.EchoResponse.FromString(a).text for a in answers] == [
        f"call {i}" for i in range(1000)
    ]
    typed = method.batch([system_pb2.EchoRequest(text=str(i)) for i in range(3)])
    assert [a.text for a in typed] == ["0", "1", "2"]
    assert method.batch_raw([]) == []


def test_a_failing_call_fails_alone_and_every_outcome_is_kept(rt: Runtime) -> None:
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


def test_a_batch_mixes_methods_formats_and_dead_handles(rt: Runtime) -> None:
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
