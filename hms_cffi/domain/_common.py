"""What the domain clients share: the typed call, paging, field helpers."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from google.protobuf import timestamp_pb2
from google.protobuf.message import Message

from hms_cffi.formats import Format

if TYPE_CHECKING:
    from hms_cffi.runtime import Runtime

__all__ = ["Client", "TimeLike", "pages", "timestamp"]

M = TypeVar("M", bound=Message)
T = TypeVar("T")

_PROTOBUF = int(Format.PROTOBUF)

#: A point in time: a ``datetime`` (naive ones are taken as UTC), a
#: ``google.protobuf.Timestamp``, or seconds since the epoch.
TimeLike = _dt.datetime | timestamp_pb2.Timestamp | float | int


class Client:
    """Base of the domain clients (``rt.agents``, ``rt.tasks``, ...): typed
    protobuf calls through the runtime's one-crossing fast path."""

    __slots__ = ("_rt",)

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    @property
    def runtime(self) -> Runtime:
        """The runtime this client calls."""
        return self._rt

    def _call(self, method: str, request: Message, out: type[M]) -> M:
        """``request`` as protobuf to ``method``; the answer as an ``out``."""
        return out.FromString(self._rt.call_raw(method, request.SerializeToString(), _PROTOBUF))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._rt!r}>"


def pages(fetch: Callable[[str], tuple[list[T], str]]) -> Iterator[T]:
    """Every item of every page: ``fetch(token)`` returns one page and the
    token of the next (empty on the last). Pages are fetched lazily."""
    token = ""
    while True:
        items, token = fetch(token)
        yield from items
        if not token:
            return


def timestamp(value: TimeLike) -> timestamp_pb2.Timestamp:
    """``value`` as a ``google.protobuf.Timestamp``."""
    if isinstance(value, timestamp_pb2.Timestamp):
        return value
    stamp = timestamp_pb2.Timestamp()
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        stamp.FromDatetime(value)
    elif isinstance(value, int | float):
        whole = int(value // 1)
        stamp.seconds = whole
        stamp.nanos = round((value - whole) * 1e9) % 1_000_000_000
    else:
        raise TypeError(f"a time is a datetime, a Timestamp or seconds, not {value!r}")
    return stamp


def str_list(value: Iterable[str] | str | None) -> list[str]:
    """A list of strings; a lone string is a list of one."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def int_list(value: Iterable[int] | int | None) -> list[int]:
    """A list of enum numbers; a lone value is a list of one."""
    if value is None:
        return []
    if isinstance(value, int):
        return [int(value)]
    return [int(v) for v in value]


def set_fields(message: Message, fields: Mapping[str, Any]) -> list[str]:
    """Sets ``fields`` (proto field names) on ``message`` and returns their
    names. Repeated fields and maps are replaced; messages are copied;
    unknown names raise TypeError."""
    descriptor = message.DESCRIPTOR
    names: list[str] = []
    for name, value in fields.items():
        field = descriptor.fields_by_name.get(name)
        if field is None:
            known = ", ".join(sorted(descriptor.fields_by_name))
            raise TypeError(f"{descriptor.full_name} has no field {name!r} (fields: {known})")
        target = getattr(message, name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            target.clear()
            target.update(dict(value or {}))
        elif field.is_repeated:
            del target[:]
            target.extend(str_list(value) if isinstance(value, str) else list(value or ()))
        elif field.message_type is not None:
            message.ClearField(name)
            if value is not None:
                is_time = field.message_type.full_name == "google.protobuf.Timestamp"
                target.CopyFrom(timestamp(value) if is_time else value)
        else:
            setattr(message, name, value)
        names.append(name)
    return names


def revision_of(revision: int | None) -> int:
    """A revision argument as the wire value (None and 0: any revision)."""
    if revision is None:
        return 0
    if revision < 0:
        raise ValueError(f"a revision is not negative: {revision}")
    return int(revision)
