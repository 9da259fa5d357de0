"""Echo through every Python path, against the floor of a bare CFFI call.

Run (not part of the test suite):
    python -m pytest benchmarks/python --benchmark-json=bench.json
    python benchmarks/python/report.py bench.json   # markdown table with ratios
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import hms_cffi
from hms_cffi import Format, Runtime, ffi, lib
from hms_cffi.proto.hms.sys.v1 import system_pb2

ECHO = "hms.sys.v1.System/Echo"
SIZES = {"64B": 64, "64KiB": 64 * 1024}


@pytest.fixture(scope="module")
def rt() -> Iterator[Runtime]:
    with Runtime() as runtime:
        yield runtime


def _payload(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def test_floor_abi_version(benchmark: Any) -> None:
    """The floor: one bare CFFI call with no arguments."""
    fn = lib.hms_abi_version
    assert benchmark(fn) == lib.hms_abi_version()


@pytest.mark.parametrize("size", SIZES)
def test_bare_hms_call(benchmark: Any, rt: Runtime, size: str) -> None:
    """lib.hms_call alone, answer not copied out: the core's share of an Echo."""
    data = system_pb2.EchoRequest(payload=_payload(SIZES[size])).SerializeToString()
    bufs = hms_cffi._ffi.Buffers()
    name = ECHO.encode()
    args = (rt.handle, name, len(name), 1, data, len(data), ffi.NULL, 0, bufs.out, bufs.err)
    assert benchmark(lib.hms_call, *args) == 0


@pytest.mark.parametrize("size", SIZES)
def test_raw_echo(benchmark: Any, rt: Runtime, size: str) -> None:
    """Protobuf bytes in, protobuf bytes out, through Runtime.call."""
    data = system_pb2.EchoRequest(payload=_payload(SIZES[size])).SerializeToString()
    out = benchmark(rt.call, ECHO, data, format=Format.PROTOBUF)
    assert system_pb2.EchoResponse.FromString(out).payload == _payload(SIZES[size])


@pytest.mark.parametrize("size", SIZES)
def test_raw_echo_call_raw(benchmark: Any, rt: Runtime, size: str) -> None:
    """The same through Runtime.call_raw (no argument dispatch)."""
    data = system_pb2.EchoRequest(payload=_payload(SIZES[size])).SerializeToString()
    out = benchmark(rt.call_raw, ECHO, data, 1)
    assert system_pb2.EchoResponse.FromString(out).payload == _payload(SIZES[size])


@pytest.mark.parametrize("size", SIZES)
def test_typed_echo(benchmark: Any, rt: Runtime, size: str) -> None:
    """EchoRequest message in, EchoResponse message out (serialize + parse)."""
    req = system_pb2.EchoRequest(payload=_payload(SIZES[size]))
    rt.call(ECHO, req)  # output type looked up once, then cached
    out = benchmark(rt.call, ECHO, req)
    assert out.payload == req.payload


@pytest.mark.parametrize("size", SIZES)
def test_dict_echo_cbor(benchmark: Any, rt: Runtime, size: str) -> None:
    """A dict in, a dict out (CBOR on the wire)."""
    req = {"payload": _payload(SIZES[size])}
    out = benchmark(rt.call, ECHO, req)
    assert out == req


class _Buf(ctypes.Structure):
    _fields_ = [
        ("data", ctypes.POINTER(ctypes.c_uint8)),
        ("len", ctypes.c_size_t),
        ("cap", ctypes.c_size_t),
    ]


def _ctypes_echo(handle: int) -> Callable[[bytes], bytes]:
    dll = ctypes.CDLL(str(hms_cffi.library_path()))
    call = dll.hms_call
    call.restype = ctypes.c_int32
    call.argtypes = [
        ctypes.c_uint64, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int32,
        ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
        ctypes.POINTER(_Buf), ctypes.POINTER(_Buf),
    ]  # fmt: skip
    out, err = _Buf(), _Buf()
    out_p, err_p = ctypes.byref(out), ctypes.byref(err)
    name = ECHO.encode()
    string_at = ctypes.string_at

    def echo(data: bytes) -> bytes:
        rc = call(handle, name, len(name), 1, data, len(data), None, 0, out_p, err_p)
        if rc:
            raise hms_cffi.HmsError.from_code(rc, "ctypes echo failed")
        return string_at(out.data, out.len)

    return echo


@pytest.mark.parametrize("size", SIZES)
def test_ctypes_raw_echo(benchmark: Any, rt: Runtime, size: str) -> None:
    """The raw Echo through ctypes.CDLL(library_path()), for comparison."""
    echo = _ctypes_echo(rt.handle)
    data = system_pb2.EchoRequest(payload=_payload(SIZES[size])).SerializeToString()
    out = benchmark(echo, data)
    assert system_pb2.EchoResponse.FromString(out).payload == _payload(SIZES[size])
