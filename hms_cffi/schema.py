"""Format conversion and schema registration (process-wide, no runtime needed)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any, cast

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import Descriptor, FileDescriptor
from google.protobuf.message import Message

from hms_cffi._ffi import buffers, error_from, ffi, lib
from hms_cffi.errors import StatusCode
from hms_cffi.formats import Format, encode_value

__all__ = ["convert", "file_descriptor_set", "register_schema"]

_JSON = int(Format.JSON)


def convert(
    type_name: str,
    data: bytes | Mapping[str, Any],
    from_format: Format | int,
    to_format: Format | int,
) -> bytes:
    """Converts one message of type ``type_name`` (e.g. "hms.sys.v1.EchoRequest")
    from ``from_format`` to ``to_format`` inside the core.

    ``data`` is bytes in ``from_format``, or a dict when ``from_format`` is CBOR
    or JSON. An empty ``type_name`` converts any value structurally between
    CBOR and JSON. Raises NotFoundError (unknown type), DecodeError,
    ResourceExhaustedError or InvalidArgumentError.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        data = encode_value(dict(data), int(from_format))
    name = type_name.encode()
    bufs = buffers()
    rc = lib.hms_convert(
        name,
        len(name),
        int(from_format),
        bytes(data),
        len(data),
        int(to_format),
        bufs.out,
        bufs.err,
    )
    if rc:
        raise error_from(rc, bufs.err, _JSON)
    return bufs.read()


def message_bytes(value: Message | Mapping[str, Any], type_name: str, fmt: int) -> bytes:
    """``value`` (a message, or a dict with proto field names) as bytes of
    ``type_name`` in ``fmt``; the core converts when the two differ."""
    if isinstance(value, Message):
        raw = value.SerializeToString()
        if fmt == Format.PROTOBUF:
            return raw
        return convert(value.DESCRIPTOR.full_name, raw, Format.PROTOBUF, fmt)
    if fmt == Format.PROTOBUF:
        return convert(type_name, encode_value(dict(value), Format.CBOR), Format.CBOR, fmt)
    return encode_value(dict(value), fmt)


SchemaSource = (
    bytes
    | descriptor_pb2.FileDescriptorSet
    | FileDescriptor
    | Descriptor
    | ModuleType
    | type[Message]
    | Message
)


def file_descriptor_set(
    sources: Iterable[FileDescriptor], *, skip_builtin: bool = True
) -> descriptor_pb2.FileDescriptorSet:
    """The FileDescriptorSet of ``sources`` and their transitive imports, each
    file after its imports. ``skip_builtin`` leaves out the files the core
    knows already: hms/**, and those google/protobuf/** files that its
    built-in schemas import (asked of the core, see :func:`_core_has_file`).
    Every other google/protobuf/** import (duration, any, struct, empty,
    wrappers...) comes along, or the core could not resolve the types that
    use it."""
    fds = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def visit(fd: FileDescriptor) -> None:
        if fd.name in seen:
            return
        seen.add(fd.name)
        for dep in fd.dependencies:
            visit(dep)
        if skip_builtin and (
            fd.name.startswith("hms/")
            or (fd.name.startswith("google/protobuf/") and _core_has_file(fd))
        ):
            return
        proto = descriptor_pb2.FileDescriptorProto()
        fd.CopyToProto(proto)
        fds.file.append(proto)

    for source in sources:
        visit(source)
    return fds


def _core_has_file(fd: FileDescriptor) -> bool:
    """Whether the core's pool has the messages of ``fd`` already.

    The core has only the google/protobuf files its own schemas import
    (timestamp, field_mask), compiled from its own copy; this Python's copy
    of those files may differ in options, and the core refuses a file it
    knows with other content. So such a file is not sent, and any other one
    is. A message-less file counts as known: nothing in it needs the core.
    """
    names = list(fd.message_types_by_name)
    if not names:
        return True
    name = f"{fd.package}.{names[0]}" if fd.package else names[0]
    with _lock:
        if fd.name in _core_files:
            return True
    raw = name.encode()
    bufs = buffers()
    # An empty payload is the default message; only NOT_FOUND says that the
    # type is missing (whatever else the conversion answers).
    rc = lib.hms_convert(raw, len(raw), int(Format.PROTOBUF), b"", 0, _JSON, bufs.out, ffi.NULL)
    if rc == int(StatusCode.NOT_FOUND):
        return False
    with _lock:
        _core_files.add(fd.name)
    return True


def _file_of(source: SchemaSource) -> FileDescriptor:
    if isinstance(source, FileDescriptor):
        return source
    if isinstance(source, Descriptor):
        return source.file
    if isinstance(source, ModuleType):
        fd = getattr(source, "DESCRIPTOR", None)
        if isinstance(fd, FileDescriptor):
            return fd
    if isinstance(source, Message) or (isinstance(source, type) and issubclass(source, Message)):
        return cast(FileDescriptor, source.DESCRIPTOR.file)
    raise TypeError(f"cannot find a FileDescriptor in {source!r}")


def register_schema(*sources: SchemaSource) -> None:
    """Adds message types to the core's process-wide schema pool, so host
    services can name them and :func:`convert` can convert them.

    Each source is a serialized ``google.protobuf.FileDescriptorSet`` (bytes),
    a FileDescriptorSet message, or something whose .proto file is meant: a
    message class or instance, a descriptor, or a generated ``_pb2`` module;
    their imports come along, google/protobuf/** ones (Duration, Any,
    Struct, Empty, wrappers...) included, except the files the core has
    built in (hms/**, and the google/protobuf/** files they import). Files
    the core knows with identical content are skipped. Raises DecodeError
    or InvalidArgumentError (conflict, missing import).
    """
    payloads: list[bytes] = []
    files: list[FileDescriptor] = []
    for source in sources:
        if isinstance(source, bytes | bytearray | memoryview):
            payloads.append(bytes(source))
        elif isinstance(source, descriptor_pb2.FileDescriptorSet):
            payloads.append(source.SerializeToString())
        else:
            files.append(_file_of(source))
    sent: list[tuple[str, bytes]] = []
    if files:
        fds = file_descriptor_set(files)
        with _lock:
            fresh = [f for f in fds.file if _sent.get(f.name) != f.SerializeToString()]
        if fresh:
            del fds.file[:]
            fds.file.extend(fresh)
            payloads.append(fds.SerializeToString())
            sent = [(f.name, f.SerializeToString()) for f in fresh]
    bufs = buffers()
    for payload in payloads:
        rc = lib.hms_schema_register(payload, len(payload), bufs.err)
        if rc:
            raise error_from(rc, bufs.err, _JSON)
    with _lock:
        _sent.update(sent)


#: Files this process sent already (name -> serialized FileDescriptorProto),
#: so registering a service's types again does not send them again.
_sent: dict[str, bytes] = {}
#: google/protobuf/** files the core was found to have (only a "yes" is kept:
#: a file the core lacks is sent, and then it has it).
_core_files: set[str] = set()
_lock = threading.Lock()
