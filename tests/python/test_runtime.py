"""Runtime lifetime, configuration, the ABI check and the package layout."""

from __future__ import annotations

import ctypes
import gc
import re
from pathlib import Path

import pytest
from helpers import ECHO

import hms_cffi
from hms_cffi import Format, Runtime, ffi, lib
from hms_cffi._ffi import check_abi_version
from hms_cffi.proto.hms.v1 import options_pb2

ROOT = Path(__file__).resolve().parents[2]


def test_abi_version_matches_header_and_cargo() -> None:
    major, minor = hms_cffi.abi_version()
    assert (major, minor) == (hms_cffi.ABI_MAJOR, hms_cffi.ABI_MINOR)
    header = (ROOT / "include" / "hms_ffi.h").read_text()
    assert f"#define HMS_ABI_VERSION_MAJOR {major}" in header
    assert re.search(rf"#define HMS_ABI_VERSION_MINOR {minor}\b", header)
    cargo = (ROOT / "rust_core" / "Cargo.toml").read_text()
    assert f"abi-major = {major}" in cargo
    assert f"abi-minor = {minor}" in cargo
    assert hms_cffi.library_version() == re.search(r'^version = "(.+)"', cargo, re.M)[1]  # type: ignore[index]


def test_package_version_is_the_core_version() -> None:
    cargo = (ROOT / "rust_core" / "Cargo.toml").read_text()
    core = re.search(r'^version = "(.+)"', cargo, re.M)[1]  # type: ignore[index]
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.search(r'^version = "(.+)"', pyproject, re.M)[1] == core  # type: ignore[index]
    assert hms_cffi.__version__ == core


def test_abi_check_accepts_same_major_and_newer_minor() -> None:
    major, minor = hms_cffi.ABI_MAJOR, hms_cffi.ABI_MINOR
    check_abi_version((major << 16) | minor)
    check_abi_version((major << 16) | (minor + 7))


@pytest.mark.parametrize(
    ("library", "binding"),
    [((2, 0), (1, 0)), ((0, 9), (1, 0)), ((1, 2), (1, 3))],
    ids=["newer-major", "older-major", "older-minor"],
)
def test_abi_check_refuses_other_major_or_older_minor(
    monkeypatch: pytest.MonkeyPatch, library: tuple[int, int], binding: tuple[int, int]
) -> None:
    monkeypatch.setattr(hms_cffi._ffi, "ABI_MAJOR", binding[0])
    monkeypatch.setattr(hms_cffi._ffi, "ABI_MINOR", binding[1])
    with pytest.raises(hms_cffi.IncompatibleError) as info:
        check_abi_version((library[0] << 16) | library[1])
    err = info.value
    assert err.code == hms_cffi.StatusCode.INCOMPATIBLE
    assert f"ABI {library[0]}.{library[1]}" in err.message
    assert f"ABI {binding[0]}.{binding[1]}" in err.message
    assert err.details == {
        "library_abi": f"{library[0]}.{library[1]}",
        "binding_abi": f"{binding[0]}.{binding[1]}",
    }


def test_library_path_is_the_linked_library() -> None:
    path = hms_cffi.library_path()
    assert path.is_file()
    assert path.parent == Path(hms_cffi.__file__).parent
    loaded = ctypes.CDLL(str(path))
    loaded.hms_abi_version.restype = ctypes.c_uint32
    assert loaded.hms_abi_version() == lib.hms_abi_version()


def test_include_dir_ships_header_cdef_and_protos() -> None:
    inc = hms_cffi.include_dir()
    assert (inc / "hms_ffi.h").read_text() == (ROOT / "include" / "hms_ffi.h").read_text()
    assert (inc / "hms_ffi_cdef.h").is_file()
    protos = sorted(p.relative_to(inc / "proto") for p in (inc / "proto").rglob("*.proto"))
    assert Path("hms/sys/v1/system.proto") in protos
    assert hms_cffi.proto_dir() == inc / "proto"


def test_package_is_typed() -> None:
    assert (Path(hms_cffi.__file__).parent / "py.typed").is_file()


def test_context_manager_and_idempotent_close() -> None:
    with Runtime() as rt:
        assert not rt.closed
        handle = rt.handle
        assert handle != 0
        assert rt.call(ECHO, {"text": "x"}) == {"text": "x"}
    assert rt.closed
    assert rt.handle == 0
    rt.close()
    rt.close()
    # The library handle itself is gone.
    assert lib.hms_runtime_free(handle) == lib.HMS_INVALID_HANDLE


def test_calls_after_close_raise_closed_error() -> None:
    rt = Runtime()
    rt.close()
    with pytest.raises(hms_cffi.ClosedError) as info:
        rt.call(ECHO, {"text": "x"})
    assert isinstance(info.value, hms_cffi.InvalidHandleError)
    assert info.value.code == hms_cffi.StatusCode.INVALID_HANDLE
    with pytest.raises(hms_cffi.ClosedError):
        rt.call(ECHO, b"", format=Format.PROTOBUF)
    with pytest.raises(hms_cffi.ClosedError):
        rt.register_service("a.B", {"M": lambda r: r})
    with pytest.raises(hms_cffi.ClosedError):
        rt.subscribe()


def test_finalizer_frees_a_forgotten_runtime() -> None:
    rt = Runtime()
    handle = rt.handle
    del rt
    gc.collect()
    assert lib.hms_runtime_free(handle) == lib.HMS_INVALID_HANDLE


def test_config_as_dict_message_and_bytes_in_every_format() -> None:
    with Runtime({"name": "from-dict"}) as rt:
        assert rt.health()["runtime_name"] == "from-dict"
    with Runtime(options_pb2.RuntimeConfig(name="from-msg"), format=Format.JSON) as rt:
        assert rt.health()["runtime_name"] == "from-msg"
    with Runtime({"name": "pb-dict", "max_depth": 8}, format=Format.PROTOBUF) as rt:
        assert rt.health()["runtime_name"] == "pb-dict"
    raw = options_pb2.RuntimeConfig(name="pb-bytes").SerializeToString()
    with Runtime(raw, format=Format.PROTOBUF) as rt:
        assert rt.health()["runtime_name"] == "pb-bytes"
    with Runtime(b'{"name": "json-bytes"}', format=Format.JSON) as rt:
        assert rt.format == Format.JSON
        assert rt.health()["runtime_name"] == "json-bytes"


def test_config_limits_apply() -> None:
    with Runtime({"max_message_bytes": 1024, "max_depth": 4}) as rt:
        assert rt.call(ECHO, {"text": "a" * 500})["text"] == "a" * 500
        with pytest.raises(hms_cffi.ResourceExhaustedError):
            rt.call(ECHO, {"text": "a" * 2000})
        svc = rt.register_service("t.Any", {"Id": lambda r: r})
        assert rt.call("t.Any/Id", {"a": [[1]]}) == {"a": [[1]]}
        with pytest.raises(hms_cffi.ResourceExhaustedError):
            rt.call("t.Any/Id", {"a": [[[[[[1]]]]]]})
        svc.close()


@pytest.mark.parametrize("fmt", list(Format))
def test_bad_config_is_a_decode_error(fmt: Format) -> None:
    with pytest.raises(hms_cffi.DecodeError):
        Runtime(b"\xff\xfe\x00garbage{", format=fmt)


def test_unknown_format_is_invalid_argument() -> None:
    with pytest.raises(hms_cffi.InvalidArgumentError) as info:
        Runtime(format=9)
    assert "9" in info.value.message


def test_runtime_new_null_config_with_length(bufs: hms_cffi._ffi.Buffers) -> None:
    out = ffi.new("hms_runtime *")
    rc = lib.hms_runtime_new(Format.CBOR, ffi.NULL, 4, out, bufs.err)
    assert rc == lib.HMS_INVALID_ARGUMENT
    assert out[0] == 0  # untouched on failure
    assert lib.hms_runtime_new(Format.CBOR, ffi.NULL, 0, ffi.NULL, bufs.err) == (
        lib.HMS_INVALID_ARGUMENT
    )


def test_runtimes_are_independent() -> None:
    with Runtime() as a, Runtime() as b:
        svc = a.register_service("only.InA", {"M": lambda r: {"ok": True}})
        assert a.call("only.InA/M") == {"ok": True}
        with pytest.raises(hms_cffi.NotFoundError):
            b.call("only.InA/M")
        svc.close()


def test_repr() -> None:
    rt = Runtime()
    assert "handle=" in repr(rt)
    rt.close()
    assert "closed" in repr(rt)
