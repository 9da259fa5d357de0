"""Schema evolution (docs/schema-evolution.md): what the frozen 1.0 schemas
(tests/schema/v1.0/) write, the current core and schemas read, and the other
way round; a later schema's additions (a new field, a new enum value) pass
through a core that does not know them; unknown fields survive protobuf ->
protobuf conversion.

The frozen .proto files are compiled at test time by grpcio-tools' protoc
into a FileDescriptorSet and loaded into a private descriptor pool, so their
classes live beside the current ones (same names, other pool) and nothing is
registered with the core: the core only ever knows the current schemas,
exactly as in production, where an older or newer host talks to it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc_tools
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

import hms_cffi.proto  # noqa: F401  (the current classes, in the default pool)
from hms_cffi import Format, convert

ROOT = Path(__file__).resolve().parent.parent.parent
FROZEN = ROOT / "tests" / "schema" / "v1.0"
VECTORS = ROOT / "tests" / "vectors"
MANIFEST = json.loads((VECTORS / "manifest.json").read_text(encoding="utf-8"))

Pool = Callable[[str], type[Message]]


def compile_schemas(root: Path, out: Path) -> descriptor_pb2.FileDescriptorSet:
    """The FileDescriptorSet of every .proto under ``root`` (imports first)."""
    protos = sorted(str(p.relative_to(root)) for p in root.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{root}",
            f"-I{well_known}",
            f"--descriptor_set_out={out}",
            "--include_imports",
            *protos,
        ],
        check=True,
        capture_output=True,
    )
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def pool_of(fds: descriptor_pb2.FileDescriptorSet) -> Pool:
    pool = descriptor_pool.DescriptorPool()
    for file in fds.file:
        pool.Add(file)

    def cls(type_name: str) -> type[Message]:
        return message_factory.GetMessageClass(pool.FindMessageTypeByName(type_name))

    return cls


@pytest.fixture(scope="module")
def frozen_fds(tmp_path_factory: pytest.TempPathFactory) -> descriptor_pb2.FileDescriptorSet:
    return compile_schemas(FROZEN, tmp_path_factory.mktemp("frozen") / "v1.0.pb")


@pytest.fixture(scope="module")
def frozen(frozen_fds: descriptor_pb2.FileDescriptorSet) -> Pool:
    return pool_of(frozen_fds)


@pytest.fixture(scope="module")
def evolved(frozen_fds: descriptor_pb2.FileDescriptorSet) -> Pool:
    """A later minor version, as the rules allow it to grow: Agent gains
    `string zone = 13;` and LifecycleState gains `HIBERNATING = 11;`."""
    fds = descriptor_pb2.FileDescriptorSet()
    fds.CopyFrom(frozen_fds)
    for file in fds.file:
        if file.name == "hms/agent/v1/agent.proto":
            agent = next(m for m in file.message_type if m.name == "Agent")
            agent.field.add(
                name="zone",
                number=13,
                json_name="zone",
                type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL,
            )
        if file.name == "hms/agent/lifecycle/v1/lifecycle.proto":
            state = next(e for e in file.enum_type if e.name == "LifecycleState")
            state.value.add(name="HIBERNATING", number=11)
    return pool_of(fds)


def vector(case: dict[str, Any], ext: str) -> bytes:
    return (VECTORS / case["files"][ext]).read_bytes()


def core_cbor(type_name: str, pb: bytes) -> bytes:
    return convert(type_name, pb, Format.PROTOBUF, Format.CBOR)


def test_frozen_schemas_hold_the_published_types(frozen: Pool) -> None:
    for name in (
        "hms.sys.v1.EchoRequest",
        "hms.agent.v1.Agent",
        "hms.agent.v1.Task",
        "hms.agent.v1.KnowledgeEntry",
        "hms.agent.lifecycle.v1.LifecycleEvent",
        "hms.events.v1.Event",
        "hms.v1.Status",
        "hms.v1.RuntimeConfig",
        "hms.v1.CallOptions",
        "hms.v1.ServiceDescriptor",
    ):
        assert frozen(name).DESCRIPTOR.full_name == name


@pytest.mark.parametrize("case", MANIFEST["cases"], ids=lambda c: f"{c['type']}/{c['case']}")
def test_current_messages_read_and_rewrite_with_the_frozen_schemas(
    case: dict[str, Any], frozen: Pool
) -> None:
    """current -> 1.0: a 1.0 reader parses what the current core writes and,
    writing it back (fields it does not know kept as unknown fields), gives
    the core the same message."""
    msg = frozen(case["type"]).FromString(vector(case, "pb"))
    again = msg.SerializeToString(deterministic=True)
    assert core_cbor(case["type"], again) == vector(case, "cbor")


def test_frozen_messages_decode_with_the_current_core(frozen: Pool) -> None:
    """1.0 -> current: messages a 1.0 writer builds from the vectors' JSON
    decode in the current core to the same data. Vectors using fields added
    after 1.0 are not expressible in 1.0 and are left out (none today)."""
    checked = 0
    for case in MANIFEST["cases"]:
        cls = frozen(case["type"])
        try:
            msg = json_format.Parse(vector(case, "json"), cls())
        except json_format.ParseError:
            continue
        assert core_cbor(case["type"], msg.SerializeToString()) == vector(case, "cbor"), case
        text = json_format.MessageToJson(msg, preserving_proto_field_name=True).encode()
        assert convert(case["type"], text, Format.JSON, Format.CBOR) == vector(case, "cbor")
        checked += 1
    assert checked == len(MANIFEST["cases"])


def test_a_newer_writer_passes_through_the_current_core(evolved: Pool) -> None:
    agent_cls = evolved("hms.agent.v1.Agent")
    newer = agent_cls(id="a1", name="scout", zone="eu-1", revision=2**64 - 1)
    newer.state = 11  # HIBERNATING: not in the current enum
    raw = newer.SerializeToString()
    # The current core reads it: the new field is unknown (dropped by JSON and
    # CBOR, which name fields), the new enum value stays a number.
    as_json = json.loads(convert("hms.agent.v1.Agent", raw, Format.PROTOBUF, Format.JSON))
    assert as_json == {
        "id": "a1",
        "name": "scout",
        "state": 11,
        "revision": "18446744073709551615",
    }
    # Protobuf -> protobuf keeps the unknown field, so the newer reader gets
    # everything back.
    through = convert("hms.agent.v1.Agent", raw, Format.PROTOBUF, Format.PROTOBUF)
    back = agent_cls.FromString(through)
    assert back == newer
    assert back.zone == "eu-1"


def test_an_older_writer_reads_with_a_newer_schema(frozen: Pool, evolved: Pool) -> None:
    old = frozen("hms.agent.v1.Agent")(id="a1", name="scout", state=2)
    new = evolved("hms.agent.v1.Agent").FromString(old.SerializeToString())
    assert (new.id, new.name, new.state, new.zone) == ("a1", "scout", 2, "")
    # And the newer message's extra field is an unknown field to 1.0 readers.
    newer = evolved("hms.agent.v1.Agent")(id="a1", zone="eu-1")
    older = frozen("hms.agent.v1.Agent").FromString(newer.SerializeToString())
    assert older.id == "a1"
    assert evolved("hms.agent.v1.Agent").FromString(older.SerializeToString()).zone == "eu-1"


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


#: One unknown field of every wire type, with field numbers no HMS message has.
UNKNOWN = (
    tag(1000, 0) + varint(2**64 - 1)  # varint
    + tag(1001, 1) + bytes(range(8))  # fixed64
    + tag(1002, 2) + varint(5) + b"a\x00b\xffc"  # length-delimited, NULs inside
    + tag(1003, 5) + b"\x01\x02\x03\x04"  # fixed32
)  # fmt: skip


@pytest.mark.parametrize(
    ("type_name", "known"),
    [
        ("hms.agent.v1.Agent", tag(1, 2) + varint(2) + b"a1"),
        ("hms.sys.v1.EchoRequest", b""),
        ("hms.v1.Status", tag(1, 0) + varint(5)),
    ],
)
def test_unknown_fields_survive_protobuf_to_protobuf(type_name: str, known: bytes) -> None:
    raw = known + UNKNOWN
    assert convert(type_name, raw, Format.PROTOBUF, Format.PROTOBUF) == raw
    # JSON and CBOR name fields, so they cannot carry unknown numbers.
    assert convert(type_name, raw, Format.PROTOBUF, Format.CBOR) == convert(
        type_name, known, Format.PROTOBUF, Format.CBOR
    )


def test_unknown_fields_survive_inside_nested_messages() -> None:
    # Task { id = "t1"; error = Status { code = 5; <unknown fields> } }
    status = tag(1, 0) + varint(5) + UNKNOWN
    raw = tag(1, 2) + varint(2) + b"t1" + tag(10, 2) + varint(len(status)) + status
    assert convert("hms.agent.v1.Task", raw, Format.PROTOBUF, Format.PROTOBUF) == raw
