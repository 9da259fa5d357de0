"""hms_convert across every format pair, and schema registration."""

from __future__ import annotations

import itertools
import json

import cbor2
import pytest
from google.protobuf import descriptor_pb2
from helpers import demo_classes, demo_file

import hms_cffi
from hms_cffi import Format, ffi, lib
from hms_cffi._ffi import Buffers
from hms_cffi.proto.hms.sys.v1 import system_pb2

PAYLOAD = b"\x00\xffbin\x00"
TEXT = "tëxt ✓"
ECHO_T = "hms.sys.v1.EchoRequest"


def encoded(fmt: Format) -> bytes:
    if fmt == Format.PROTOBUF:
        return system_pb2.EchoRequest(payload=PAYLOAD, text=TEXT).SerializeToString()
    if fmt == Format.CBOR:
        return cbor2.dumps({"payload": PAYLOAD, "text": TEXT})
    return json.dumps({"payload": "AP9iaW4A", "text": TEXT}).encode()


def decoded(data: bytes, fmt: Format) -> tuple[bytes, str]:
    if fmt == Format.PROTOBUF:
        msg = system_pb2.EchoRequest.FromString(data)
        return msg.payload, msg.text
    if fmt == Format.CBOR:
        value = cbor2.loads(data)
        return value["payload"], value["text"]
    value = json.loads(data)
    import base64

    return base64.b64decode(value["payload"]), value["text"]


PAIRS = list(itertools.permutations(Format, 2))


@pytest.mark.parametrize(("src", "dst"), PAIRS, ids=[f"{a.name}->{b.name}" for a, b in PAIRS])
def test_convert_every_pair(src: Format, dst: Format) -> None:
    out = hms_cffi.convert(ECHO_T, encoded(src), src, dst)
    assert decoded(out, dst) == (PAYLOAD, TEXT)
    back = hms_cffi.convert(ECHO_T, out, dst, src)
    assert decoded(back, src) == (PAYLOAD, TEXT)


@pytest.mark.parametrize("fmt", list(Format))
def test_convert_same_format_is_identity_of_content(fmt: Format) -> None:
    assert decoded(hms_cffi.convert(ECHO_T, encoded(fmt), fmt, fmt), fmt) == (PAYLOAD, TEXT)


def test_cbor_output_is_deterministic() -> None:
    a = hms_cffi.convert(ECHO_T, b'{"text":"x","payload":"AA=="}', Format.JSON, Format.CBOR)
    b = hms_cffi.convert(ECHO_T, b'{"payload":"AA==","text":"x"}', Format.JSON, Format.CBOR)
    assert a == b
    assert cbor2.loads(a) == {"payload": b"\x00", "text": "x"}


def test_convert_accepts_a_dict() -> None:
    out = hms_cffi.convert(ECHO_T, {"text": "d"}, Format.CBOR, Format.PROTOBUF)
    assert system_pb2.EchoRequest.FromString(out).text == "d"


def test_structural_conversion_without_a_type() -> None:
    value = {"a": [1, 2.5, None, True, "s"], "n": {"m": -3}}
    out = hms_cffi.convert("", cbor2.dumps(value), Format.CBOR, Format.JSON)
    assert json.loads(out) == value
    back = hms_cffi.convert("", out, Format.JSON, Format.CBOR)
    assert cbor2.loads(back) == value


def test_convert_errors() -> None:
    with pytest.raises(hms_cffi.NotFoundError):
        hms_cffi.convert("no.such.Type", b"", Format.PROTOBUF, Format.JSON)
    with pytest.raises(hms_cffi.InvalidArgumentError):
        hms_cffi.convert("", b"\x08\x01", Format.PROTOBUF, Format.JSON)
    with pytest.raises(hms_cffi.InvalidArgumentError):
        hms_cffi.convert(ECHO_T, b"", Format.PROTOBUF, 7)
    with pytest.raises(hms_cffi.DecodeError):
        hms_cffi.convert(ECHO_T, b"{nope", Format.JSON, Format.CBOR)
    with pytest.raises(hms_cffi.ResourceExhaustedError):
        hms_cffi.convert("", b"[" * 1000 + b"]" * 1000, Format.JSON, Format.CBOR)
    with pytest.raises(hms_cffi.ResourceExhaustedError):
        hms_cffi.convert(
            ECHO_T, b"\x0a\x80\x80\x80\x03" + b"\x00" * (6 << 20), Format.PROTOBUF, Format.JSON
        )


def test_register_schema_from_a_message_class() -> None:
    classes = demo_classes("conv.v1")
    hms_cffi.register_schema(classes["Node"])
    node = classes["Node"](name="root", child=classes["Node"](name="leaf"), values=[1, -2, 2**40])
    as_json = json.loads(
        hms_cffi.convert("conv.v1.Node", node.SerializeToString(), Format.PROTOBUF, Format.JSON)
    )
    assert as_json == {
        "name": "root",
        "child": {"name": "leaf"},
        "values": ["1", "-2", "1099511627776"],
    }
    as_cbor = cbor2.loads(
        hms_cffi.convert("conv.v1.Node", node.SerializeToString(), Format.PROTOBUF, Format.CBOR)
    )
    assert as_cbor == {"name": "root", "child": {"name": "leaf"}, "values": [1, -2, 2**40]}
    # Registering again is fine.
    hms_cffi.register_schema(classes["Node"], classes["GreetReply"])


def test_register_schema_from_bytes() -> None:
    fds = descriptor_pb2.FileDescriptorSet(file=[demo_file("bytes.v1")])
    hms_cffi.register_schema(fds.SerializeToString())
    out = hms_cffi.convert(
        "bytes.v1.GreetReply", b'{"greeting":"g","count":"7"}', Format.JSON, Format.CBOR
    )
    assert cbor2.loads(out) == {"greeting": "g", "count": 7}


def test_register_schema_errors() -> None:
    with pytest.raises(hms_cffi.DecodeError):
        hms_cffi.register_schema(b"\xff\xff not a descriptor set")
    missing_import = descriptor_pb2.FileDescriptorProto(
        name="orphan/v1/orphan.proto",
        package="orphan.v1",
        syntax="proto3",
        dependency=["does/not/exist.proto"],
    )
    with pytest.raises(hms_cffi.InvalidArgumentError):
        hms_cffi.register_schema(descriptor_pb2.FileDescriptorSet(file=[missing_import]))
    fdp = demo_file("conflict.v1")
    hms_cffi.register_schema(descriptor_pb2.FileDescriptorSet(file=[fdp]))
    fdp.message_type[0].field[0].name = "renamed"
    with pytest.raises(hms_cffi.InvalidArgumentError):
        hms_cffi.register_schema(descriptor_pb2.FileDescriptorSet(file=[fdp]))
    with pytest.raises(TypeError):
        hms_cffi.register_schema(42)  # type: ignore[arg-type]


def test_core_skips_identical_files(bufs: Buffers) -> None:
    fds = descriptor_pb2.FileDescriptorSet(file=[demo_file("twice.v1")]).SerializeToString()
    assert lib.hms_schema_register(fds, len(fds), bufs.err) == 0
    assert lib.hms_schema_register(fds, len(fds), bufs.err) == 0, ffi.buffer(
        bufs.err.data, bufs.err.len
    )[:]
