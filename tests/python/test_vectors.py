"""The shared golden vectors (tests/vectors/), as every binding runs them.

Per case: the files match the manifest; the core converts each of the three
files into each format with the vector's bytes as result (the six directions,
plus the three identities); and what Python naturally produces (protobuf
classes filled from the JSON through json_format, a dict of native values
through cbor2) is accepted by the core and equals the vector.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import cbor2
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

import hms_cffi.proto  # noqa: F401  (every HMS type in the default pool)
from hms_cffi import Format, convert

VECTORS = Path(__file__).resolve().parent.parent / "vectors"
MANIFEST = json.loads((VECTORS / "manifest.json").read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = MANIFEST["cases"]
FORMATS = {"json": Format.JSON, "cbor": Format.CBOR, "pb": Format.PROTOBUF}
IDS = [f"{c['type']}/{c['case']}" for c in CASES]


def load(case: dict[str, Any]) -> dict[str, bytes]:
    return {ext: (VECTORS / rel).read_bytes() for ext, rel in case["files"].items()}


def assert_same(case: dict[str, Any], ext: str, got: bytes, want: dict[str, bytes]) -> None:
    """The core's output is deterministic in every format: byte equality."""
    assert got == want[ext], f"{case['type']}/{case['case']}.{ext}: {got!r}"


def message_class(type_name: str) -> type[Message]:
    desc = descriptor_pool.Default().FindMessageTypeByName(type_name)
    return message_factory.GetMessageClass(desc)


def test_manifest_covers_the_required_types_and_edge_cases() -> None:
    types = {c["type"] for c in CASES}
    assert {
        "hms.sys.v1.EchoRequest",
        "hms.agent.v1.Agent",
        "hms.agent.v1.Task",
        "hms.agent.v1.KnowledgeEntry",
        "hms.agent.lifecycle.v1.LifecycleEvent",
        "hms.v1.Status",
        "hms.v1.RuntimeConfig",
    } <= types
    tags = {t for c in CASES for t in c["tags"]}
    assert {"empty", "unicode", "extremes", "bytes", "nul", "maps", "repeated"} <= tags
    assert "unknown_enum" in tags
    for type_name in types:
        assert any(c["type"] == type_name and "empty" in c["tags"] for c in CASES) or (
            type_name.endswith("Request") or type_name == "hms.v1.CallOptions"
        )


def test_every_file_on_disk_is_listed() -> None:
    listed = {VECTORS / rel for c in CASES for rel in c["files"].values()}
    on_disk = {p for d in VECTORS.iterdir() if d.is_dir() for p in d.iterdir()}
    assert on_disk == listed


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_files_match_the_manifest(case: dict[str, Any]) -> None:
    for ext, data in load(case).items():
        assert hashlib.sha256(data).hexdigest() == case["sha256"][ext]
    assert case["files"]["json"] == f"{case['type']}/{case['case']}.json"


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_core_converts_in_every_direction(case: dict[str, Any]) -> None:
    want = load(case)
    for src, src_fmt in FORMATS.items():
        for dst, dst_fmt in FORMATS.items():
            got = convert(case["type"], want[src], src_fmt, dst_fmt)
            assert_same(case, dst, got, want)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_protobuf_classes_read_and_write_the_vectors(case: dict[str, Any]) -> None:
    want = load(case)
    cls = message_class(case["type"])
    from_json = json_format.Parse(want["json"], cls())
    assert cls.FromString(want["pb"]) == from_json
    native = from_json.SerializeToString()
    for dst, dst_fmt in FORMATS.items():
        assert_same(case, dst, convert(case["type"], native, Format.PROTOBUF, dst_fmt), want)
    # protobuf's own JSON printer agrees on the data (text may differ).
    printed = json_format.MessageToJson(from_json, preserving_proto_field_name=True)
    reparsed = convert(case["type"], printed.encode(), Format.JSON, Format.CBOR)
    assert reparsed == want["cbor"]


def native(msg: Message) -> dict[str, Any]:
    """``msg`` as the dict a Python program would write by hand: native
    ints, floats, bytes and lists, enums by name (numbers when unknown),
    well-known types in their JSON form."""
    return {fd.name: _native_field(fd, value) for fd, value in msg.ListFields()}


def _native_field(fd: FieldDescriptor, value: Any) -> Any:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        value_fd = fd.message_type.fields_by_name["value"]
        return {k: _native_scalar(value_fd, v) for k, v in value.items()}
    if fd.is_repeated:
        return [_native_scalar(fd, v) for v in value]
    return _native_scalar(fd, value)


def _native_scalar(fd: FieldDescriptor, value: Any) -> Any:
    if fd.message_type is not None:
        if fd.message_type.full_name.startswith("google.protobuf."):
            # Timestamp and FieldMask (the ones HMS uses): their JSON text.
            return value.ToJsonString()
        return native(value)
    if fd.enum_type is not None:
        known = fd.enum_type.values_by_number.get(value)
        return known.name if known is not None else value
    return value


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_native_dicts_through_cbor2(case: dict[str, Any]) -> None:
    want = load(case)
    cls = message_class(case["type"])
    data = cbor2.dumps(native(cls.FromString(want["pb"])))
    for dst, dst_fmt in FORMATS.items():
        assert_same(case, dst, convert(case["type"], data, Format.CBOR, dst_fmt), want)
    # And the vector's CBOR decodes to exactly that dict.
    assert cbor2.loads(want["cbor"]) == cbor2.loads(data) or "nan" in case["tags"]
