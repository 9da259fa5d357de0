"""Helpers shared by the tests (imported as a plain module)."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

import hms_cffi

ECHO = "hms.sys.v1.System/Echo"


def varint(n: int) -> bytes:
    """Protobuf base-128 varint."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def demo_file(package: str = "demo.v1") -> descriptor_pb2.FileDescriptorProto:
    """A .proto of host-service types, including a recursive one:

    message Node { string name = 1; Node child = 2; repeated int64 values = 3; }
    message GreetRequest { string name = 1; bytes blob = 2; }
    message GreetReply { string greeting = 1; uint64 count = 2; }
    """
    fdp = descriptor_pb2.FileDescriptorProto(
        name=f"{package.replace('.', '/')}/demo.proto", package=package, syntax="proto3"
    )
    label = descriptor_pb2.FieldDescriptorProto
    node = fdp.message_type.add(name="Node")
    node.field.add(name="name", number=1, type=label.TYPE_STRING, label=label.LABEL_OPTIONAL)
    node.field.add(
        name="child",
        number=2,
        type=label.TYPE_MESSAGE,
        type_name=f".{package}.Node",
        label=label.LABEL_OPTIONAL,
    )
    node.field.add(name="values", number=3, type=label.TYPE_INT64, label=label.LABEL_REPEATED)
    req = fdp.message_type.add(name="GreetRequest")
    req.field.add(name="name", number=1, type=label.TYPE_STRING, label=label.LABEL_OPTIONAL)
    req.field.add(name="blob", number=2, type=label.TYPE_BYTES, label=label.LABEL_OPTIONAL)
    rep = fdp.message_type.add(name="GreetReply")
    rep.field.add(name="greeting", number=1, type=label.TYPE_STRING, label=label.LABEL_OPTIONAL)
    rep.field.add(name="count", number=2, type=label.TYPE_UINT64, label=label.LABEL_OPTIONAL)
    return fdp


def demo_classes(package: str = "demo.v1") -> dict[str, type[Message]]:
    """Message classes of demo_file(package), added to the default pool once."""
    pool = descriptor_pool.Default()
    fdp = demo_file(package)
    try:
        pool.FindFileByName(fdp.name)
    except KeyError:
        pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
        for name in ("Node", "GreetRequest", "GreetReply")
    }


# -- the domain (DOMAIN.md), restated independently of the core ---------------

#: The transition table of DOMAIN.md, by state name.
ALLOWED: dict[str, set[str]] = {
    "INITIALIZED": {"ACTIVE", "ERROR", "TERMINATED"},
    "ACTIVE": {"PAUSED", "SUSPENDED", "SHUTTING_DOWN", "ERROR", "MAINTENANCE", "UPGRADING"},
    "PAUSED": {"ACTIVE", "SUSPENDED", "SHUTTING_DOWN", "ERROR"},
    "SUSPENDED": {"RECOVERING", "TERMINATED", "ERROR"},
    "SHUTTING_DOWN": {"TERMINATED", "ERROR"},
    "TERMINATED": set(),
    "MAINTENANCE": {"ACTIVE", "ERROR", "SHUTTING_DOWN"},
    "ERROR": {"RECOVERING", "TERMINATED"},
    "UPGRADING": {"ACTIVE", "ERROR"},
    "RECOVERING": {"ACTIVE", "ERROR", "TERMINATED"},
}

STATE_NAMES = list(ALLOWED)

#: A path of allowed transitions from INITIALIZED to each state.
PATH_TO: dict[str, list[str]] = {
    "INITIALIZED": [],
    "ACTIVE": ["ACTIVE"],
    "PAUSED": ["ACTIVE", "PAUSED"],
    "SUSPENDED": ["ACTIVE", "SUSPENDED"],
    "SHUTTING_DOWN": ["ACTIVE", "SHUTTING_DOWN"],
    "TERMINATED": ["TERMINATED"],
    "MAINTENANCE": ["ACTIVE", "MAINTENANCE"],
    "ERROR": ["ERROR"],
    "UPGRADING": ["ACTIVE", "UPGRADING"],
    "RECOVERING": ["ERROR", "RECOVERING"],
}


def agent_in(rt: object, state: str, name: str = "agent") -> str:
    """A new agent of ``rt`` moved to ``state`` along PATH_TO; its id."""
    from hms_cffi import Runtime, State

    assert isinstance(rt, Runtime)
    agent = rt.agents.create(name=name)
    for step in PATH_TO[state]:
        rt.lifecycle.transition(agent.id, State[step], reason="setup")
    assert rt.lifecycle.state(agent.id) == State[state]
    return agent.id


def package_with_library(folder: Path, library: Path) -> Path:
    """A copy of this hms_cffi package under ``folder`` (symlinks to its
    files) whose own library is ``library``; returns ``folder``. A fresh
    interpreter with ``folder`` first on PYTHONPATH (and a working directory
    without hms_cffi in it) runs on ``library``.

    This is the one way to swap the library: the compiled modules find it
    through a DT_RPATH of $ORIGIN, the folder they were loaded from, which
    LD_LIBRARY_PATH does not override.
    """
    package = Path(hms_cffi.__file__).parent
    own = hms_cffi.library_path().name  # the name the compiled modules ask for
    copy = folder / "hms_cffi"
    copy.mkdir(parents=True)
    for entry in package.iterdir():
        if entry.name != own:
            (copy / entry.name).symlink_to(entry)
    (copy / own).symlink_to(library)
    return folder
