"""Hostile input: garbage, truncation, lying length prefixes, deep nesting,
oversized payloads and bad handles. Every case must fail fast with the right
status and leave the runtime working."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import cbor2
import pytest
from helpers import ECHO, demo_classes, varint

import hms_cffi
from hms_cffi import Format, Runtime, ffi, lib
from hms_cffi._ffi import Buffers
from hms_cffi.proto.hms.sys.v1 import system_pb2

DEPTH = 100_000
FAST = 2.0  # seconds; each hostile payload must be refused well within this

GARBAGE = {
    Format.PROTOBUF: b"\xff\xff\xff\xff\x0f garbage \x07",
    Format.CBOR: b"\xff\xfe\xfd\x1c garbage",
    Format.JSON: b"{[}] not json \xff",
}
TRUNCATED = {
    # field 1 (payload) declares 5 bytes, 2 follow
    Format.PROTOBUF: b"\x0a\x05ab",
    # map(1) "text" => text(5) with 2 bytes
    Format.CBOR: b"\xa1\x64text\x65ab",
    Format.JSON: b'{"text": "ab',
}
DEEP = {
    # 100,000 nested unknown groups (start-group tag of field 3, then end tags)
    Format.PROTOBUF: b"\x1b" * DEPTH + b"\x1c" * DEPTH,
    Format.CBOR: b"\x81" * DEPTH + b"\x00",
    Format.JSON: b"[" * DEPTH,
}


@pytest.fixture
def timed() -> Iterator[None]:
    start = time.monotonic()
    yield
    assert time.monotonic() - start < FAST


def _still_works(rt: Runtime) -> None:
    assert rt.call(ECHO, {"text": "still here"}) == {"text": "still here"}


@pytest.mark.parametrize("fmt", list(Format))
def test_garbage_payload(rt: Runtime, fmt: Format, timed: None) -> None:
    with pytest.raises(hms_cffi.DecodeError):
        rt.call(ECHO, GARBAGE[fmt], format=fmt)
    _still_works(rt)


@pytest.mark.parametrize("fmt", list(Format))
def test_truncated_payload(rt: Runtime, fmt: Format, timed: None) -> None:
    with pytest.raises(hms_cffi.DecodeError):
        rt.call(ECHO, TRUNCATED[fmt], format=fmt)
    _still_works(rt)


@pytest.mark.parametrize("fmt", list(Format))
def test_every_truncation_of_a_valid_payload(rt: Runtime, fmt: Format) -> None:
    full = {
        Format.PROTOBUF: system_pb2.EchoRequest(
            payload=b"\x00" * 40, text="t" * 40
        ).SerializeToString(),
        Format.CBOR: cbor2.dumps({"payload": b"\x00" * 40, "text": "t" * 40}),
        Format.JSON: b'{"payload": "AAAAAAAA", "text": "tttttttttt"}',
    }[fmt]
    for cut in range(1, len(full)):
        with contextlib.suppress(hms_cffi.DecodeError, hms_cffi.ResourceExhaustedError):
            rt.call(ECHO, full[:cut], format=fmt)
    _still_works(rt)


def test_cbor_byte_string_claiming_2_64_minus_1_bytes(rt: Runtime, timed: None) -> None:
    # {"payload": bytes(len = 2**64 - 1)} with no bytes behind the header
    hostile = b"\xa1\x67payload\x5b" + b"\xff" * 8
    with pytest.raises((hms_cffi.DecodeError, hms_cffi.ResourceExhaustedError)):
        rt.call(ECHO, hostile, format=Format.CBOR)
    # the same lie in a text string, an array and a map
    for header in (b"\x7b", b"\x9b", b"\xbb"):
        with pytest.raises((hms_cffi.DecodeError, hms_cffi.ResourceExhaustedError)):
            rt.call(ECHO, b"\xa1\x64text" + header + b"\xff" * 8, format=Format.CBOR)
    _still_works(rt)


def test_protobuf_huge_length_prefix(rt: Runtime, timed: None) -> None:
    for length in (2**63, 2**64 - 1, 2**32, 5 * 2**20):
        hostile = b"\x0a" + varint(length) + b"abc"
        with pytest.raises((hms_cffi.DecodeError, hms_cffi.ResourceExhaustedError)):
            rt.call(ECHO, hostile, format=Format.PROTOBUF)
    # an over-long varint (11 bytes)
    with pytest.raises(hms_cffi.DecodeError):
        rt.call(ECHO, b"\x0a" + b"\xff" * 10 + b"\x01", format=Format.PROTOBUF)
    _still_works(rt)


@pytest.mark.parametrize("fmt", list(Format))
def test_deep_nesting(rt: Runtime, fmt: Format, timed: None) -> None:
    with pytest.raises((hms_cffi.DecodeError, hms_cffi.ResourceExhaustedError)):
        rt.call(ECHO, DEEP[fmt], format=fmt)
    _still_works(rt)


@pytest.mark.parametrize("fmt", [Format.CBOR, Format.JSON])
def test_deep_nesting_into_an_untyped_host_service(rt: Runtime, fmt: Format, timed: None) -> None:
    calls = []
    svc = rt.register_service("hostile.Any", {"Id": lambda r: calls.append(r) or r})
    with pytest.raises((hms_cffi.DecodeError, hms_cffi.ResourceExhaustedError)):
        rt.call("hostile.Any/Id", DEEP[fmt], format=fmt)
    assert calls == []  # refused before the handler
    svc.close()


def test_deep_protobuf_length_delimited_nesting(rt: Runtime, timed: None) -> None:
    """100,000 levels of a recursive message (Node.child), each level a nested
    length-delimited field: through hms_convert and into a typed host service."""
    classes = demo_classes("hostile.v1")
    hms_cffi.register_schema(classes["Node"])
    deep = b""
    for _ in range(DEPTH):
        deep = b"\x12" + varint(len(deep)) + deep
    assert len(deep) < 4 << 20
    for to in (Format.JSON, Format.CBOR):
        with pytest.raises((hms_cffi.DecodeError, hms_cffi.ResourceExhaustedError)):
            hms_cffi.convert("hostile.v1.Node", deep, Format.PROTOBUF, to)
    node = classes["Node"]
    calls = []
    svc = rt.register_service(
        "hostile.v1.Tree",
        {"Walk": lambda r: calls.append(r) or node()},
        input_types={"Walk": node},
        output_types={"Walk": node},
    )
    with pytest.raises((hms_cffi.DecodeError, hms_cffi.ResourceExhaustedError)):
        rt.call("hostile.v1.Tree/Walk", deep, format=Format.PROTOBUF)
    assert calls == []
    # A shallow tree still works.
    shallow = node(name="a", child=node(name="b"))
    assert rt.call("hostile.v1.Tree/Walk", shallow) == node()
    svc.close()


@pytest.mark.parametrize("fmt", list(Format))
def test_64_mib_payload_is_resource_exhausted(rt: Runtime, fmt: Format, timed: None) -> None:
    size = 64 << 20
    data = {
        Format.PROTOBUF: b"\x0a" + varint(size) + b"\x00" * size,
        Format.CBOR: b"\xa1\x67payload\x5a" + size.to_bytes(4, "big") + b"\x00" * size,
        Format.JSON: b'{"text": "' + b"a" * size + b'"}',
    }[fmt]
    with pytest.raises(hms_cffi.ResourceExhaustedError) as info:
        rt.call(ECHO, data, format=fmt)
    assert info.value.message
    _still_works(rt)


def test_response_over_the_limit_is_resource_exhausted() -> None:
    with Runtime({"max_message_bytes": 4096}) as rt:
        svc = rt.register_service("big.Out", {"Big": lambda r: {"blob": b"\x00" * 10_000}})
        with pytest.raises(hms_cffi.ResourceExhaustedError):
            rt.call("big.Out/Big", {})
        svc.close()


# -- handles -------------------------------------------------------------------

MADE_UP = [0, 1, 12345, 0xDEADBEEF, 2**63, 2**64 - 1]


@pytest.mark.parametrize("handle", MADE_UP, ids=hex)
def test_zero_and_made_up_handles(handle: int, bufs: Buffers) -> None:
    name = ECHO.encode()
    invalid = lib.HMS_INVALID_HANDLE
    assert (
        lib.hms_call(handle, name, len(name), 2, b"\xa0", 1, ffi.NULL, 0, bufs.out, bufs.err)
        == invalid
    )
    assert lib.hms_runtime_free(handle) == invalid
    assert lib.hms_service_unregister(handle) == invalid
    assert lib.hms_unsubscribe(handle) == invalid
    assert lib.hms_poll(handle, 0, bufs.out, bufs.err) == invalid
    out = ffi.new("hms_subscription *")
    assert lib.hms_subscribe(handle, 2, b"", 0, out, bufs.err) == invalid
    svc = ffi.new("hms_service *")
    desc = cbor2.dumps({"name": "x.Y", "methods": [{"name": "M"}]})
    assert (
        lib.hms_service_register(
            handle, 2, desc, len(desc), 0, lib._hms_py_handler, ffi.NULL, svc, bufs.err
        )
        == invalid
    )
    assert hms_cffi._ffi.error_from(invalid, bufs.err, 2).code == invalid


def test_stale_and_double_freed_handles(bufs: Buffers) -> None:
    invalid = lib.HMS_INVALID_HANDLE
    rt = Runtime()
    svc = rt.register_service("stale.S", {"M": lambda r: r})
    sub = rt.subscribe()
    h_rt, h_svc, h_sub = rt.handle, svc.handle, sub.handle

    assert lib.hms_service_unregister(h_svc) == lib.HMS_OK
    assert lib.hms_service_unregister(h_svc) == invalid  # double free
    assert lib.hms_unsubscribe(h_sub) == lib.HMS_OK
    assert lib.hms_unsubscribe(h_sub) == invalid
    assert lib.hms_poll(h_sub, 0, bufs.out, bufs.err) == invalid
    svc.close()  # the wrapper's own free now fails quietly
    sub.close()

    rt.close()
    assert lib.hms_runtime_free(h_rt) == invalid  # double free
    name = ECHO.encode()
    assert (
        lib.hms_call(h_rt, name, len(name), 2, b"\xa0", 1, ffi.NULL, 0, bufs.out, bufs.err)
        == invalid
    )
    # A new runtime does not revive the stale handle (generational handles).
    with Runtime() as fresh:
        assert fresh.handle != h_rt
        assert lib.hms_runtime_free(h_rt) == invalid
        assert (
            lib.hms_call(h_rt, name, len(name), 2, b"\xa0", 1, ffi.NULL, 0, bufs.out, bufs.err)
            == invalid
        )
        _still_works(fresh)


def test_wrong_kind_handles(bufs: Buffers) -> None:
    invalid = lib.HMS_INVALID_HANDLE
    with Runtime() as rt:
        svc = rt.register_service("kind.S", {"M": lambda r: r})
        sub = rt.subscribe()
        name = ECHO.encode()
        # a service or subscription handle used as a runtime, and so on
        assert (
            lib.hms_call(
                svc.handle, name, len(name), 2, b"\xa0", 1, ffi.NULL, 0, bufs.out, bufs.err
            )
            == invalid
        )
        assert lib.hms_runtime_free(sub.handle) == invalid
        assert lib.hms_unsubscribe(svc.handle) == invalid
        assert lib.hms_service_unregister(rt.handle) == invalid
        assert lib.hms_poll(rt.handle, 0, bufs.out, bufs.err) == invalid
        _still_works(rt)
        assert rt.call("kind.S/M", {"x": 1}) == {"x": 1}


def test_python_wrapper_closed_twice_is_fine() -> None:
    rt = Runtime()
    svc = rt.register_service("twice.S", {"M": lambda r: r})
    sub = rt.subscribe()
    for obj in (svc, sub, rt, svc, sub, rt):
        obj.close()
    assert rt.closed
    assert svc.closed
    assert sub.closed
