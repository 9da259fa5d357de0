"""hms_call through Runtime.call: formats, typed calls, built-in services, options."""

from __future__ import annotations

import json

import cbor2
import pytest
from helpers import ECHO
from hypothesis import given, settings
from hypothesis import strategies as st

import hms_cffi
from hms_cffi import Format, Runtime
from hms_cffi.proto.hms.registry.v1 import registry_pb2
from hms_cffi.proto.hms.sys.v1 import system_pb2
from hms_cffi.proto.hms.v1 import options_pb2

PAYLOAD = b"\x00\x01\x02\xff\x00nul\x00"
TEXT = "héllo wörld ✓ 😀 \u0000 end"


def test_echo_dict_cbor(rt: Runtime) -> None:
    reply = rt.call(ECHO, {"payload": PAYLOAD, "text": TEXT})
    assert reply == {"payload": PAYLOAD, "text": TEXT}


def test_echo_dict_json(rt: Runtime) -> None:
    # JSON carries bytes as base64 (proto3 JSON mapping).
    reply = rt.call(ECHO, {"payload": "AAECAw==", "text": TEXT}, format=Format.JSON)
    assert reply == {"payload": "AAECAw==", "text": TEXT}


def test_echo_message_protobuf(rt: Runtime) -> None:
    reply = rt.call(ECHO, system_pb2.EchoRequest(payload=PAYLOAD, text=TEXT))
    assert isinstance(reply, system_pb2.EchoResponse)
    assert reply.payload == PAYLOAD
    assert reply.text == TEXT


def test_echo_raw_bytes_in_all_formats(rt: Runtime) -> None:
    pb = system_pb2.EchoRequest(payload=PAYLOAD, text=TEXT).SerializeToString()
    out = rt.call(ECHO, pb, format=Format.PROTOBUF)
    assert isinstance(out, bytes)
    back = system_pb2.EchoResponse.FromString(out)
    assert (back.payload, back.text) == (PAYLOAD, TEXT)

    cb = cbor2.dumps({"payload": PAYLOAD, "text": TEXT})
    assert cbor2.loads(rt.call(ECHO, cb, format=Format.CBOR)) == {"payload": PAYLOAD, "text": TEXT}

    js = json.dumps({"payload": "AP8A", "text": TEXT}).encode()
    assert json.loads(rt.call(ECHO, js, format=Format.JSON)) == {"payload": "AP8A", "text": TEXT}


def test_raw_bytes_accept_bytearray_and_memoryview(rt: Runtime) -> None:
    pb = system_pb2.EchoRequest(text="mv").SerializeToString()
    for data in (bytearray(pb), memoryview(pb)):
        out = rt.call(ECHO, data, format=Format.PROTOBUF)
        assert system_pb2.EchoResponse.FromString(out).text == "mv"


def test_empty_message_defaults(rt: Runtime) -> None:
    assert rt.call(ECHO) == {}
    assert rt.call(ECHO, {}) == {}
    assert rt.call(ECHO, system_pb2.EchoRequest()) == system_pb2.EchoResponse()
    assert rt.call(ECHO, b"", format=Format.PROTOBUF) == b""
    assert json.loads(rt.call(ECHO, b"", format=Format.JSON)) == {}


def test_empty_cbor_request_is_the_default_message(rt: Runtime) -> None:
    assert cbor2.loads(rt.call(ECHO, b"", format=Format.CBOR)) == {}


def test_large_payload_roundtrip(rt: Runtime) -> None:
    blob = bytes(range(256)) * 4096  # 1 MiB, every byte value
    assert rt.call(ECHO, {"payload": blob})["payload"] == blob
    reply = rt.call(ECHO, system_pb2.EchoRequest(payload=blob))
    assert reply.payload == blob
    # The per-thread buffer shrinks back after a large answer, and keeps working.
    assert rt.call(ECHO, {"text": "small"}) == {"text": "small"}


def test_health(rt: Runtime) -> None:
    health = rt.call("hms.sys.v1.System/Health", system_pb2.HealthRequest())
    assert isinstance(health, system_pb2.HealthResponse)
    assert health.status == system_pb2.HealthResponse.SERVING
    assert health.services >= 2
    assert health.storage == "memory"
    as_dict = rt.health()
    assert as_dict["status"] == "SERVING"


def test_version(rt: Runtime) -> None:
    version = rt.call("hms.sys.v1.System/Version", system_pb2.VersionRequest())
    assert isinstance(version, system_pb2.VersionResponse)
    assert version.library_version == hms_cffi.library_version()
    assert (version.abi_major, version.abi_minor) == hms_cffi.abi_version()
    assert set(version.formats) == {"protobuf", "cbor", "json"}


def test_list_and_describe_services(rt: Runtime) -> None:
    names = [s.name for s in rt.list_services()]
    assert "hms.sys.v1.System" in names
    assert "hms.registry.v1.Registry" in names
    assert [s.name for s in rt.list_services("hms.sys.")] == ["hms.sys.v1.System"]

    reply = rt.call(
        "hms.registry.v1.Registry/DescribeService",
        registry_pb2.DescribeServiceRequest(name="hms.sys.v1.System"),
    )
    assert isinstance(reply, registry_pb2.DescribeServiceResponse)
    methods = {m.name: (m.input_type, m.output_type) for m in reply.service.methods}
    assert methods["Echo"] == ("hms.sys.v1.EchoRequest", "hms.sys.v1.EchoResponse")
    assert reply.service.origin == "builtin"


def test_expect_gives_the_response_class_without_a_lookup(rt: Runtime) -> None:
    reply = rt.call(ECHO, system_pb2.EchoRequest(text="e"), expect=system_pb2.EchoResponse)
    assert reply.text == "e"
    assert ECHO not in rt._out_types  # no DescribeService round trip


def test_output_type_is_found_once_and_cached(rt: Runtime) -> None:
    assert rt.output_type(ECHO) is system_pb2.EchoResponse
    assert rt.output_type("hms.sys.v1.System/Health") is system_pb2.HealthResponse
    assert ECHO in rt._out_types
    with pytest.raises(hms_cffi.NotFoundError):
        rt.output_type("hms.sys.v1.System/Nope")
    with pytest.raises(hms_cffi.NotFoundError):
        rt.output_type("no.such.Service/X")


def test_typed_call_of_untyped_method_is_a_type_error(rt: Runtime) -> None:
    svc = rt.register_service("t.Untyped", {"M": lambda r: r})
    with pytest.raises(TypeError, match="dict"):
        rt.call("t.Untyped/M", system_pb2.EchoRequest())
    svc.close()


def test_bytes_need_a_format(rt: Runtime) -> None:
    with pytest.raises(TypeError, match="format"):
        rt.call(ECHO, b"")


def test_message_travels_as_protobuf_only(rt: Runtime) -> None:
    with pytest.raises(ValueError, match="PROTOBUF"):
        rt.call(ECHO, system_pb2.EchoRequest(), format=Format.JSON)


def test_dict_cannot_travel_as_protobuf(rt: Runtime) -> None:
    with pytest.raises(ValueError, match="CBOR or JSON"):
        rt.call(ECHO, {"text": "x"}, format=Format.PROTOBUF)


def test_request_of_another_type_is_refused(rt: Runtime) -> None:
    with pytest.raises(TypeError):
        rt.call(ECHO, 42)  # type: ignore[call-overload]


@pytest.mark.parametrize("fmt", [Format.CBOR, Format.JSON])
def test_options_as_dict_in_each_format(rt: Runtime, fmt: Format) -> None:
    options = {"metadata": {"k": "v"}, "trace_id": "trace-1", "deadline_ms": 5000}
    assert rt.call(ECHO, {"text": "o"}, format=fmt, options=options) == {"text": "o"}


def test_options_as_message_and_timeout(rt: Runtime) -> None:
    opts = options_pb2.CallOptions(trace_id="t", metadata={"a": "b"})
    reply = rt.call(ECHO, system_pb2.EchoRequest(text="m"), options=opts, timeout=2.5)
    assert reply.text == "m"
    assert opts.deadline_ms == 0  # the caller's message is not modified
    assert rt.call(ECHO, {"text": "c"}, options=opts) == {"text": "c"}
    raw = system_pb2.EchoRequest(text="r").SerializeToString()
    out = rt.call(ECHO, raw, format=Format.PROTOBUF, options={"trace_id": "x"}, timeout=1)
    assert system_pb2.EchoResponse.FromString(out).text == "r"


def test_bad_options_are_a_decode_error(rt: Runtime) -> None:
    with pytest.raises(hms_cffi.DecodeError):
        rt.call(ECHO, {"text": "x"}, options={"deadline_ms": "soon"})
    with pytest.raises(hms_cffi.DecodeError):
        rt.call_raw(ECHO, b"", Format.PROTOBUF, b"\xff\xff\xff")


@settings(max_examples=60, deadline=None)
@given(payload=st.binary(max_size=2048), text=st.text(max_size=256))
def test_echo_roundtrip_property(payload: bytes, text: str) -> None:
    with Runtime() as rt:
        assert rt.call(ECHO, {"payload": payload, "text": text}) == _strip(
            {"payload": payload, "text": text}
        )
        reply = rt.call(ECHO, system_pb2.EchoRequest(payload=payload, text=text))
        assert (reply.payload, reply.text) == (payload, text)
        js = rt.call(ECHO, json.dumps({"text": text}).encode(), format=Format.JSON)
        assert json.loads(js).get("text", "") == text


def _strip(value: dict[str, object]) -> dict[str, object]:
    """proto3 omits default (empty) fields."""
    return {k: v for k, v in value.items() if v}
