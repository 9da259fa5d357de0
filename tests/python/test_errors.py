"""Status codes, the exception hierarchy, and the error paths of hms_call."""

from __future__ import annotations

import pickle

import pytest
from helpers import ECHO

import hms_cffi
from hms_cffi import Format, HmsError, Runtime, StatusCode, ffi, lib
from hms_cffi._ffi import Buffers, error_from

EXPECTED = {
    "CANCELLED": hms_cffi.CancelledError,
    "UNKNOWN": hms_cffi.UnknownError,
    "INVALID_ARGUMENT": hms_cffi.InvalidArgumentError,
    "DEADLINE_EXCEEDED": hms_cffi.DeadlineExceededError,
    "NOT_FOUND": hms_cffi.NotFoundError,
    "ALREADY_EXISTS": hms_cffi.AlreadyExistsError,
    "PERMISSION_DENIED": hms_cffi.PermissionDeniedError,
    "RESOURCE_EXHAUSTED": hms_cffi.ResourceExhaustedError,
    "FAILED_PRECONDITION": hms_cffi.FailedPreconditionError,
    "ABORTED": hms_cffi.AbortedError,
    "OUT_OF_RANGE": hms_cffi.OutOfRangeError,
    "UNIMPLEMENTED": hms_cffi.UnimplementedError,
    "INTERNAL": hms_cffi.InternalError,
    "UNAVAILABLE": hms_cffi.UnavailableError,
    "DATA_LOSS": hms_cffi.DataLossError,
    "UNAUTHENTICATED": hms_cffi.UnauthenticatedError,
    "INVALID_HANDLE": hms_cffi.InvalidHandleError,
    "DECODE_ERROR": hms_cffi.DecodeError,
    "HANDLER_ERROR": hms_cffi.HandlerError,
    "INCOMPATIBLE": hms_cffi.IncompatibleError,
    "PANIC": hms_cffi.PanicError,
}


def test_status_codes_are_the_header_constants() -> None:
    assert len(StatusCode) == 22
    for code in StatusCode:
        assert code.value == getattr(lib, f"HMS_{code.name}")
    numbers = {c.name: int(c) for c in StatusCode}
    assert numbers["OK"] == 0
    assert numbers["UNAUTHENTICATED"] == 16
    assert numbers["INVALID_HANDLE"] == 100
    assert numbers["PANIC"] == 104


def test_formats_are_the_header_constants() -> None:
    assert [(f.name, int(f)) for f in Format] == [("PROTOBUF", 1), ("CBOR", 2), ("JSON", 3)]
    assert Format.CBOR == lib.HMS_FORMAT_CBOR


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_one_subclass_per_code(name: str) -> None:
    code = StatusCode[name]
    cls = EXPECTED[name]
    assert issubclass(cls, HmsError)
    assert code == cls.CODE
    err = HmsError.from_code(code, "boom", {"k": "v"}, "origin-x")
    assert type(err) is cls
    assert (err.code, err.message, err.details, err.origin) == (
        code,
        "boom",
        {"k": "v"},
        "origin-x",
    )
    assert name in str(err)
    assert "boom" in str(err)
    assert "origin-x" in str(err)
    # Direct construction takes the class's code.
    assert cls("x").code == code


def test_all_21_error_codes_have_distinct_classes() -> None:
    assert len(set(EXPECTED.values())) == 21
    assert len([c for c in StatusCode if c != StatusCode.OK]) == 21


def test_from_code_of_an_unknown_number() -> None:
    err = HmsError.from_code(4242, "future code")
    assert type(err) is HmsError
    assert err.code == 4242
    assert "4242" in str(err)


def test_from_code_ok_is_not_an_error_code() -> None:
    assert type(HmsError.from_code(0, "?")) is hms_cffi.UnknownError


def test_closed_error_is_an_invalid_handle_error() -> None:
    err = hms_cffi.ClosedError("closed")
    assert isinstance(err, hms_cffi.InvalidHandleError)
    assert err.code == StatusCode.INVALID_HANDLE


def test_errors_pickle() -> None:
    err = HmsError.from_code(StatusCode.NOT_FOUND, "gone", {"a": "1"}, "registry")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is hms_cffi.NotFoundError
    assert (back.message, back.details, back.origin) == ("gone", {"a": "1"}, "registry")


@pytest.mark.parametrize("fmt", list(Format))
def test_status_fields_come_from_the_core_in_each_format(rt: Runtime, fmt: Format) -> None:
    with pytest.raises(hms_cffi.NotFoundError) as info:
        rt.call("hms.sys.v1.System/Nope", b"", format=fmt)
    err = info.value
    assert err.code == StatusCode.NOT_FOUND
    assert "Nope" in err.message
    assert err.origin  # the component that raised it
    assert isinstance(err.details, dict)


def test_unknown_method(rt: Runtime) -> None:
    with pytest.raises(hms_cffi.NotFoundError, match="Nope"):
        rt.call("hms.sys.v1.System/Nope", {})


def test_unknown_service(rt: Runtime) -> None:
    with pytest.raises(hms_cffi.NotFoundError, match=r"no\.such\.Service"):
        rt.call("no.such.Service/Method", {})


@pytest.mark.parametrize("method", ["", "nonsense", "/Echo", "hms.sys.v1.System/"])
def test_malformed_method_names(rt: Runtime, method: str) -> None:
    with pytest.raises((hms_cffi.InvalidArgumentError, hms_cffi.NotFoundError)):
        rt.call(method, {})


def test_method_name_bad_utf8(rt: Runtime, bufs: Buffers) -> None:
    rc = lib.hms_call(
        rt.handle, b"\xff\xfe", 2, Format.CBOR, b"\xa0", 1, ffi.NULL, 0, bufs.out, bufs.err
    )
    assert rc == lib.HMS_INVALID_ARGUMENT
    err = error_from(rc, bufs.err, Format.CBOR)
    assert isinstance(err, hms_cffi.InvalidArgumentError)
    assert "UTF-8" in err.message


@pytest.mark.parametrize("fmt", [0, 4, -1, 99, 2**31 - 1])
def test_unknown_format_number(rt: Runtime, fmt: int) -> None:
    with pytest.raises(hms_cffi.InvalidArgumentError, match="format"):
        rt.call(ECHO, b"", format=fmt)


def test_null_request_with_length(rt: Runtime, bufs: Buffers) -> None:
    name = ECHO.encode()
    rc = lib.hms_call(
        rt.handle, name, len(name), Format.CBOR, ffi.NULL, 5, ffi.NULL, 0, bufs.out, bufs.err
    )
    assert rc == lib.HMS_INVALID_ARGUMENT
    assert "NULL" in error_from(rc, bufs.err, Format.CBOR).message


def test_null_pointers_with_length_everywhere(rt: Runtime, bufs: Buffers) -> None:
    name = ECHO.encode()
    cbor = Format.CBOR
    args = (bufs.out, bufs.err)
    assert lib.hms_call(rt.handle, ffi.NULL, 5, cbor, b"\xa0", 1, ffi.NULL, 0, *args) == 3
    assert lib.hms_call(rt.handle, name, len(name), cbor, b"\xa0", 1, ffi.NULL, 7, *args) == 3
    assert (
        lib.hms_call(rt.handle, name, len(name), cbor, b"\xa0", 1, ffi.NULL, 0, ffi.NULL, bufs.err)
        == 3
    )
    out = ffi.new("hms_service *")
    assert (
        lib.hms_service_register(
            rt.handle, cbor, ffi.NULL, 3, 0, lib._hms_py_handler, ffi.NULL, out, bufs.err
        )
        == 3
    )
    sub = ffi.new("hms_subscription *")
    assert lib.hms_subscribe(rt.handle, cbor, ffi.NULL, 3, sub, bufs.err) == 3
    assert lib.hms_schema_register(ffi.NULL, 3, bufs.err) == 3
    assert lib.hms_convert(ffi.NULL, 3, cbor, b"\xa0", 1, 3, bufs.out, bufs.err) == 3
    assert lib.hms_convert(b"", 0, cbor, ffi.NULL, 1, 3, bufs.out, bufs.err) == 3


def test_err_may_be_null(rt: Runtime, bufs: Buffers) -> None:
    name = b"hms.sys.v1.System/Nope"
    rc = lib.hms_call(
        rt.handle, name, len(name), Format.CBOR, b"\xa0", 1, ffi.NULL, 0, bufs.out, ffi.NULL
    )
    assert rc == lib.HMS_NOT_FOUND


def test_output_untouched_on_failure(rt: Runtime, bufs: Buffers) -> None:
    name = ECHO.encode()
    assert (
        lib.hms_call(
            rt.handle,
            name,
            len(name),
            Format.CBOR,
            b"\xa1dtextbhi",
            9,
            ffi.NULL,
            0,
            bufs.out,
            bufs.err,
        )
        == 0
    )
    before = (bufs.out.data, bufs.out.len, bufs.out.cap)
    assert (
        lib.hms_call(
            rt.handle, name, len(name), Format.CBOR, b"\xff", 1, ffi.NULL, 0, bufs.out, bufs.err
        )
        == lib.HMS_DECODE_ERROR
    )
    assert (bufs.out.data, bufs.out.len, bufs.out.cap) == before
    assert ffi.buffer(bufs.out.data, bufs.out.len)[:] == b"\xa1dtextbhi"


def test_buf_free_is_null_safe_and_idempotent(bufs: Buffers) -> None:
    lib.hms_buf_free(ffi.NULL)
    with Runtime() as rt:
        name = ECHO.encode()
        assert (
            lib.hms_call(
                rt.handle, name, len(name), Format.CBOR, b"\xa0", 1, ffi.NULL, 0, bufs.out, bufs.err
            )
            == 0
        )
    lib.hms_buf_free(bufs.out)
    assert (bufs.out.data, bufs.out.len, bufs.out.cap) == (ffi.NULL, 0, 0)
    lib.hms_buf_free(bufs.out)  # second free: no-op


def test_error_from_ignores_a_stale_status() -> None:
    # A status whose code differs from rc (left by an earlier call) is not used.
    err = error_from(lib.HMS_NOT_FOUND, None, Format.CBOR)
    assert type(err) is hms_cffi.NotFoundError
    assert err.message == "not found"
