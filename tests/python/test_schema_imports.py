"""register_schema sends the google/protobuf/** imports the core lacks.

The core has only the well-known files its own schemas import (timestamp,
field_mask); a schema importing Duration, Any, Struct, Empty or the wrappers
must bring those files along, or the core cannot resolve its types.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    empty_pb2,
    message_factory,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)
from google.protobuf.message import Message

import hms_cffi
from hms_cffi import Format
from hms_cffi.schema import file_descriptor_set

PACKAGE = "wkt.v1"
HOLDER = f"{PACKAGE}.Holder"

# Imported for their side effect too: each puts its file in the default pool,
# which the file below imports.
WELL_KNOWN = {
    "duration": duration_pb2.Duration,
    "any": any_pb2.Any,
    "struct": struct_pb2.Struct,
    "empty": empty_pb2.Empty,
    "wrappers": wrappers_pb2.Int32Value,
    "timestamp": timestamp_pb2.Timestamp,
}


def holder_class() -> type[Message]:
    """message Holder { Duration duration = 1; Any any = 2; Struct struct = 3;
    Empty empty = 4; Int32Value wrapped = 5; Timestamp at = 6; }"""
    pool = descriptor_pool.Default()
    name = f"{PACKAGE.replace('.', '/')}/holder.proto"
    try:
        pool.FindFileByName(name)
    except KeyError:
        fdp = descriptor_pb2.FileDescriptorProto(name=name, package=PACKAGE, syntax="proto3")
        fdp.dependency.extend(
            f"google/protobuf/{f}.proto"
            for f in ("duration", "any", "struct", "empty", "wrappers", "timestamp")
        )
        msg = fdp.message_type.add(name="Holder")
        field = descriptor_pb2.FieldDescriptorProto
        for number, (fname, type_name) in enumerate(
            [
                ("duration", "google.protobuf.Duration"),
                ("any", "google.protobuf.Any"),
                ("struct", "google.protobuf.Struct"),
                ("empty", "google.protobuf.Empty"),
                ("wrapped", "google.protobuf.Int32Value"),
                ("at", "google.protobuf.Timestamp"),
            ],
            start=1,
        ):
            msg.field.add(
                name=fname,
                number=number,
                type=field.TYPE_MESSAGE,
                type_name=f".{type_name}",
                label=field.LABEL_OPTIONAL,
            )
        pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(HOLDER))


def files_to_send() -> list[str]:
    return [f.name for f in file_descriptor_set([holder_class().DESCRIPTOR.file]).file]


def test_file_descriptor_set_brings_missing_well_known_imports() -> None:
    # In a fresh process: the core's pool is process-wide, and other tests
    # may have registered some of these files already (then rightly skipped).
    out = subprocess.run(
        [sys.executable, "-c", "import test_schema_imports as t; print(*t.files_to_send())"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    files = out.stdout.split()
    # Imports first, the schema itself last.
    assert files[-1] == "wkt/v1/holder.proto"
    for name in ("duration", "any", "struct", "empty", "wrappers"):
        assert f"google/protobuf/{name}.proto" in files
    # The core has timestamp.proto built in (its own schemas import it): not
    # sent, since its copy and Python's may differ in options.
    assert "google/protobuf/timestamp.proto" not in files


def test_register_schema_importing_well_known_types() -> None:
    holder = holder_class()
    hms_cffi.register_schema(holder)
    hms_cffi.register_schema(holder)  # a second time is a no-op

    packed = any_pb2.Any()
    packed.Pack(duration_pb2.Duration(seconds=2))
    msg = holder(
        duration=duration_pb2.Duration(seconds=1, nanos=500_000_000),
        any=packed,
        empty=empty_pb2.Empty(),
        wrapped=wrappers_pb2.Int32Value(value=7),
        at=timestamp_pb2.Timestamp(seconds=0),
    )
    msg.struct.update({"k": [1, "x"]})

    as_json = json.loads(
        hms_cffi.convert(HOLDER, msg.SerializeToString(), Format.PROTOBUF, Format.JSON)
    )
    assert as_json["duration"] in ("1.5s", "1.500s")  # both are canonical
    assert as_json["struct"] == {"k": [1, "x"]}
    assert as_json["wrapped"] == 7
    assert as_json["empty"] == {}
    assert as_json["any"]["@type"] == "type.googleapis.com/google.protobuf.Duration"

    back = hms_cffi.convert(HOLDER, json.dumps(as_json).encode(), Format.JSON, Format.PROTOBUF)
    assert holder.FromString(back) == msg
