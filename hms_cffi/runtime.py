"""The :class:`Runtime`: one registry of services, one event bus, one store."""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar, overload

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message

from hms_cffi import proto as _proto  # noqa: F401  # registers the HMS types
from hms_cffi._ffi import Buffers, _tls, buffers, error_from, ffi, lib, next_wait_ms
from hms_cffi._handle import Handle
from hms_cffi.credentials import Credentials, with_default_credentials
from hms_cffi.domain._common import TimeLike, timestamp
from hms_cffi.domain.agents import Agents
from hms_cffi.domain.events import Events
from hms_cffi.domain.knowledge import Knowledge
from hms_cffi.domain.lifecycle import Lifecycle
from hms_cffi.domain.tasks import Tasks
from hms_cffi.errors import (
    ClosedError,
    FailedPreconditionError,
    HmsError,
    NotFoundError,
    StatusCode,
)
from hms_cffi.events import EventCallback, PushState, Subscription
from hms_cffi.formats import Format, decode_value, encode_value
from hms_cffi.methods import Method, batch_raw
from hms_cffi.proto.hms.events.v1 import events_pb2
from hms_cffi.proto.hms.registry.v1 import registry_pb2
from hms_cffi.proto.hms.v1 import options_pb2, service_pb2
from hms_cffi.schema import message_bytes, register_schema
from hms_cffi.services import ContextHandler, Handler, Service, ServiceState, in_handler_of

__all__ = ["Runtime"]

M = TypeVar("M", bound=Message)

_PROTOBUF = int(Format.PROTOBUF)
_CBOR = int(Format.CBOR)
_INVALID_HANDLE = int(StatusCode.INVALID_HANDLE)
_DESCRIBE = "hms.registry.v1.Registry/DescribeService"
#: Most method handles :meth:`Runtime.call_raw` resolves on its own.
_CACHED_METHODS = 256

Options = options_pb2.CallOptions | Mapping[str, Any]
TypeRef = type[Message] | str


def _free_runtime(children: dict[int, Handle], handle: int) -> None:
    for child in list(children.values()):
        child.close()
    lib.hms_runtime_free(handle)


class _RuntimeFree:
    """The runtime's free function; closes its services and subscriptions
    first. Holds no reference to the Runtime, so the finalizer can run."""

    __slots__ = ("children",)

    def __init__(self, children: dict[int, Handle]) -> None:
        self.children = children

    def __call__(self, handle: int) -> None:
        _free_runtime(self.children, handle)


class Runtime(Handle):
    """A runtime of the HMS core.

    ``config`` is an ``hms.v1.RuntimeConfig``: a message, a dict with proto
    field names, or bytes in ``format`` (the default CBOR). ``credentials``
    become its ``security.default_credentials``: the runtime's own identity
    for the calls it makes (docs/security.md). ``close()`` frees
    the runtime after closing the services and subscriptions made through it;
    it is idempotent, and the runtime is a context manager. Any call on a
    closed runtime raises :class:`~hms_cffi.errors.ClosedError` (a subclass
    of InvalidHandleError).

    Every method may be called from any thread.
    """

    __slots__ = ("_children", "_lock", "_methods", "_out_types", "format")

    def __init__(
        self,
        config: options_pb2.RuntimeConfig | Mapping[str, Any] | bytes | None = None,
        *,
        format: Format | int = Format.CBOR,
        credentials: Credentials | None = None,
    ) -> None:
        fmt = int(format)
        if credentials is not None:
            if isinstance(config, bytes | bytearray | memoryview):
                raise TypeError(
                    "credentials= needs the config as a message or a dict, not bytes: "
                    "put security.default_credentials in the bytes instead"
                )
            config = with_default_credentials(config, credentials)
        if config is None:
            raw = b""
        elif isinstance(config, bytes | bytearray | memoryview):
            raw = bytes(config)
        else:
            raw = message_bytes(config, "hms.v1.RuntimeConfig", fmt)
        out = ffi.new("hms_runtime *")
        bufs = buffers()
        rc = lib.hms_runtime_new(fmt, raw, len(raw), out, bufs.err)
        if rc:
            raise error_from(rc, bufs.err, fmt)
        children: dict[int, Handle] = {}
        super().__init__(out[0], _RuntimeFree(children))
        self.format = Format(fmt)
        self._children = children
        self._lock = threading.Lock()
        self._out_types: dict[str, type[Message]] = {
            _DESCRIBE: registry_pb2.DescribeServiceResponse,
        }
        self._methods: dict[tuple[str, int], Method[Any]] = {}

    # -- calls -------------------------------------------------------------

    @overload
    def call(
        self,
        method: str,
        request: Message,
        *,
        expect: type[M],
        format: Format | int | None = None,
        options: Options | None = None,
        timeout: float | None = None,
        credentials: Credentials | None = None,
    ) -> M: ...

    @overload
    def call(
        self,
        method: str,
        request: Message,
        *,
        format: Format | int | None = None,
        options: Options | None = None,
        timeout: float | None = None,
        credentials: Credentials | None = None,
    ) -> Any: ...

    @overload
    def call(
        self,
        method: str,
        request: bytes | bytearray | memoryview,
        *,
        format: Format | int | None = None,
        options: Options | None = None,
        timeout: float | None = None,
        credentials: Credentials | None = None,
    ) -> bytes: ...

    @overload
    def call(
        self,
        method: str,
        request: Mapping[str, Any] | None = None,
        *,
        format: Format | int | None = None,
        options: Options | None = None,
        timeout: float | None = None,
        credentials: Credentials | None = None,
    ) -> Any: ...

    def call(
        self,
        method: str,
        request: Message | bytes | bytearray | memoryview | Mapping[str, Any] | None = None,
        *,
        expect: type[Message] | None = None,
        format: Format | int | None = None,
        options: Options | None = None,
        timeout: float | None = None,
        credentials: Credentials | None = None,
    ) -> Any:
        """Calls ``method`` ("package.Service/Method"), built-in or host service.

        - a protobuf message travels as protobuf and the answer is the
          method's output message: of class ``expect`` when given (typed for
          mypy), else found once per method through
          hms.registry.v1.Registry/DescribeService, then protobuf's default
          descriptor pool (import the _pb2 module of host-service types);
        - a dict (or None, the empty message) travels as CBOR, or JSON with
          ``format=Format.JSON``, and the answer is a dict;
        - bytes travel as they are in ``format`` (required) and the answer is
          bytes in that format.

        ``options`` is an ``hms.v1.CallOptions`` (message or dict);
        ``timeout`` (seconds) sets its ``deadline_ms`` and ``credentials``
        its ``credentials``, in place of the runtime's default ones. Raises the
        :class:`~hms_cffi.errors.HmsError` subclass of the status.
        """
        if isinstance(request, bytes):
            if format is None:
                raise TypeError("bytes need an explicit format= (Format.PROTOBUF, CBOR or JSON)")
            fmt = int(format)
            opts = _options(options, timeout, credentials, fmt)
            return self.call_raw(method, request, fmt, opts)
        if isinstance(request, Message):
            if format is not None and int(format) != _PROTOBUF:
                raise ValueError("a protobuf message travels as Format.PROTOBUF")
            out_cls = self.output_type(method) if expect is None else expect
            opts = _options(options, timeout, credentials, _PROTOBUF)
            return out_cls.FromString(
                self.call_raw(method, request.SerializeToString(), _PROTOBUF, opts)
            )
        if request is None or isinstance(request, Mapping):
            fmt = _CBOR if format is None else int(format)
            data = encode_value({} if request is None else request, fmt)
            opts = _options(options, timeout, credentials, fmt)
            return decode_value(self.call_raw(method, data, fmt, opts), fmt)
        if isinstance(request, bytearray | memoryview):
            return self.call(
                method,
                bytes(request),
                format=format,
                options=options,
                timeout=timeout,
                credentials=credentials,
            )
        raise TypeError(f"request must be a protobuf message, a dict or bytes, not {request!r}")

    def call_raw(self, method: str, request: bytes, fmt: int, options: bytes = b"") -> bytes:
        """The fast path under :meth:`call`: bytes in, bytes out, one crossing.

        Without options, a method called before goes through its method
        handle (:meth:`method`), resolved after its first successful call:
        the same answers and errors as a call by name, at a fraction of the
        cost. Names with a leading "/" always go by name (a handle's errors
        name the method without it).
        """
        if not options:
            known = self._methods.get((method, fmt))
            if known is not None:
                return known.call_raw(request)
        name = method.encode()
        try:
            bufs: Buffers = _tls.bufs
        except AttributeError:
            bufs = buffers()
        rc = lib.hms_call(
            self._handle,
            name,
            len(name),
            fmt,
            request,
            len(request),
            options,
            len(options),
            bufs.out,
            bufs.err,
        )
        if rc:
            if rc == _INVALID_HANDLE and self._handle == 0:
                raise ClosedError("the runtime is closed", origin="hms_cffi")
            raise error_from(rc, bufs.err, fmt)
        answer: bytes = bufs.read()
        if not options and len(self._methods) < _CACHED_METHODS and not method.startswith("/"):
            # The call answered, but its service may be gone by now (a
            # handler can unregister its own): then there is nothing to cache.
            with contextlib.suppress(HmsError):
                self.method(method, fmt)
        return answer

    def method(
        self,
        name: str,
        format: Format | int = Format.PROTOBUF,
        *,
        expect: type[M] | None = None,
    ) -> Method[M]:
        """The method ``name`` ("package.Service/Method") resolved once, for
        the fastest calls: ``m.call_raw(bytes)``, ``m(request)`` and batches
        (``m.batch_raw``, ``m.batch``). Requests and answers travel in
        ``format``. ``expect`` gives the output message class (else it is
        looked up on the first typed call, as :meth:`call` does).

        Raises NotFoundError for an unknown method. The same (name, format)
        gives the same :class:`~hms_cffi.Method` until it is closed.
        """
        self._check_open()
        fmt = int(format)
        key = (name, fmt)
        with self._lock:
            known = self._methods.get(key)
        if known is not None and not known.closed:
            return known
        raw = name.encode()
        out = ffi.new("hms_method *")
        bufs = buffers()
        rc = lib.hms_method_resolve(self._handle, raw, len(raw), fmt, out, bufs.err)
        if rc:
            self._raise(rc, bufs.err, fmt)
        children, methods, lock = self._children, self._methods, self._lock

        def forget(child: Handle) -> None:
            with lock:
                children.pop(id(child), None)
                if methods.get(key) is child:
                    del methods[key]

        method: Method[M] = Method(self, name, Format(fmt), out[0], expect, forget)
        with lock:
            children[id(method)] = method
            methods[key] = method
        return method

    def batch_raw(self, calls: Iterable[tuple[Method[Any], bytes]]) -> list[bytes]:
        """Runs calls of several methods (of this runtime) in one crossing;
        see :func:`hms_cffi.methods.batch_raw`."""
        self._check_open()
        return batch_raw(calls)

    def output_type(self, method: str) -> type[Message]:
        """The message class of ``method``'s output (cached per method)."""
        cls = self._out_types.get(method)
        if cls is not None:
            return cls
        service, sep, short = method.rpartition("/")
        if not sep or not service or not short:
            raise NotFoundError(f"not a full method name: {method!r}", origin="hms_cffi")
        reply = self.call(_DESCRIBE, registry_pb2.DescribeServiceRequest(name=service))
        assert isinstance(reply, registry_pb2.DescribeServiceResponse)
        for m in reply.service.methods:
            if m.name == short:
                type_name = m.output_type
                break
        else:
            raise NotFoundError(f"{service} has no method {short!r}", origin="hms_cffi")
        if not type_name:
            raise TypeError(f"{method} takes and returns any CBOR/JSON value: pass a dict")
        try:
            desc = descriptor_pool.Default().FindMessageTypeByName(type_name)
        except KeyError:
            raise NotFoundError(
                f"{type_name} (output of {method}) is not in protobuf's default pool: "
                "import its _pb2 module",
                origin="hms_cffi",
            ) from None
        cls = message_factory.GetMessageClass(desc)
        self._out_types[method] = cls
        return cls

    # -- services ------------------------------------------------------------

    def register_service(
        self,
        name: str,
        handlers: Mapping[str, Handler | ContextHandler],
        *,
        version: str = "",
        input_types: Mapping[str, TypeRef] | None = None,
        output_types: Mapping[str, TypeRef] | None = None,
        caller_thread: bool = False,
        export: bool = False,
        description: str = "",
    ) -> Service:
        """Registers a service implemented in Python.

        ``handlers`` maps short method names to callables taking the request
        and returning the response. Without types, requests and responses are
        any CBOR/JSON value (dicts in, dicts out; CBOR on the wire). When
        ``input_types`` and ``output_types`` give protobuf message classes for
        every method, the service runs in protobuf: handlers receive message
        instances and return messages (their .proto files are registered with
        the core). Types given as full names (strings) must be known to the
        core; those handlers get dicts. Callers may use any format either way.

        A handler that takes a second positional parameter receives the
        :class:`CallContext` of its call too (method, caller metadata, trace
        id, deadline); this is decided once, here, from its signature.

        A handler raising an HmsError subclass answers with its code, message,
        details and origin (empty: the method's full name), which the caller's
        exception carries; any other exception answers HMS_HANDLER_ERROR with
        "ExcType: text".
        Handlers may call the runtime again. ``caller_thread=True`` registers
        the service HMS_SERVICE_CALLER_THREAD. ``export=True``
        (HMS_SERVICE_EXPORT, ABI 1.3) also serves it to other processes over
        the runtime's NATS transport until it is closed, as if
        ``nats.export_services`` named it; a runtime without a transport
        raises FailedPreconditionError. With ``caller_thread=True`` too (ABI
        1.4), exported calls wait until a thread runs them with :meth:`serve`.
        The runtime keeps the service until :meth:`Service.close` or
        :meth:`close`.
        """
        self._check_open()
        ins = dict(input_types or {})
        outs = dict(output_types or {})
        methods = sorted(handlers)
        unknown = (set(ins) | set(outs)) - set(methods)
        if unknown:
            raise ValueError(f"types given for methods without a handler: {sorted(unknown)}")
        typed = bool(methods) and all(
            isinstance(ins.get(m), type) and isinstance(outs.get(m), type) for m in methods
        )
        fmt = _PROTOBUF if typed else _CBOR

        def type_name(ref: TypeRef | None) -> str:
            if ref is None:
                return ""
            if isinstance(ref, str):
                return ref
            if isinstance(ref, type) and issubclass(ref, Message):
                return str(ref.DESCRIPTOR.full_name)
            raise TypeError(f"a type is a protobuf message class or a full name, not {ref!r}")

        descriptor = service_pb2.ServiceDescriptor(
            name=name,
            version=version,
            description=description,
            methods=[
                service_pb2.MethodDescriptor(
                    name=m, input_type=type_name(ins.get(m)), output_type=type_name(outs.get(m))
                )
                for m in methods
            ],
        )
        classes = [t for t in (*ins.values(), *outs.values()) if isinstance(t, type)]
        if classes:
            register_schema(*classes)
        state = ServiceState(
            name,
            self._handle,
            handlers,
            fmt,
            {m: t for m, t in ins.items() if isinstance(t, type)},
            {m: t for m, t in outs.items() if isinstance(t, type)},
            frozenset(m for m in methods if outs.get(m)),
        )
        raw = descriptor.SerializeToString() if typed else _descriptor_cbor(descriptor)
        user_data = ffi.new_handle(state)
        flags = lib.HMS_SERVICE_DEFAULT
        if caller_thread:
            flags |= lib.HMS_SERVICE_CALLER_THREAD
        if export:
            flags |= lib.HMS_SERVICE_EXPORT
        out = ffi.new("hms_service *")
        bufs = buffers()
        rc = lib.hms_service_register(
            self._handle,
            fmt,
            raw,
            len(raw),
            flags,
            lib._hms_py_handler,
            user_data,
            out,
            bufs.err,
        )
        if rc:
            self._raise(rc, bufs.err, fmt)
        service = Service(out[0], state, user_data, version, self._child_closed(name))
        with self._lock:
            self._children[id(service)] = service
        return service

    def serve(self, timeout: float | None = None) -> int:
        """Runs, on this thread, the calls other processes made to this
        runtime's exported ``caller_thread=True`` services (hms_serve, ABI
        1.4), waiting up to ``timeout`` seconds for the first (None: until
        one came; 0: only those waiting already); returns how many ran.
        Raises CancelledError when the runtime is being freed and
        FailedPreconditionError without a transport or while another thread
        serves it."""
        self._check_open()
        bufs = buffers()
        served = ffi.new("uint32_t *")
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        while True:
            rc = lib.hms_serve(self._handle, next_wait_ms(deadline), served, bufs.err)
            if rc:
                self._raise(rc, bufs.err, int(Format.JSON))
            if served[0] or (deadline is not None and time.monotonic() >= deadline):
                return int(served[0])

    # -- events --------------------------------------------------------------

    def subscribe(
        self,
        kinds: Iterable[str] | str | None = None,
        subjects: Iterable[str] | str | None = None,
        *,
        agent_ids: Iterable[str] | str | None = None,
        states: Iterable[int] | int | None = None,
        transition_types: Iterable[int] | int | None = None,
        include_remote: bool = False,
        origins: Iterable[str] | str | None = None,
        replay_from_sequence: int | None = None,
        replay_from_time: TimeLike | None = None,
        format: Format | int = Format.CBOR,
        callback: EventCallback | None = None,
    ) -> Subscription:
        """Subscribes to this runtime's events (``hms.events.v1.EventFilter``:
        ``kinds`` such as "registry.service_registered" or "registry.*",
        ``subjects`` such as service names or agent ids, ``agent_ids``,
        ``states`` and ``transition_types`` (enum numbers, e.g.
        :class:`~hms_cffi.State` members); empty matches all).

        Events are dicts (CBOR or JSON) or ``events_pb2.Event`` messages
        (``format=Format.PROTOBUF``). Without ``callback`` the subscription is
        polled with :meth:`Subscription.next`; with one, the library calls
        ``callback(event)`` on a library thread, in order (exceptions it
        raises are logged and counted, never propagated).

        With a NATS transport (docs/transport.md, "Events over NATS"):
        ``include_remote`` adds other runtimes' events, ``origins`` only
        those of the runtimes so named (implies ``include_remote``); each
        remote event names its runtime in ``origin``. ``replay_from_sequence``
        or ``replay_from_time`` (a ``datetime``, a ``Timestamp`` or seconds)
        first replays the configured JetStream ``event_stream`` from there,
        then goes on live. Without a transport or a stream these raise
        :class:`FailedPreconditionError`.
        """
        self._check_open()
        fmt = int(format)
        values: dict[str, Any] = {
            "kinds": _strings(kinds),
            "subjects": _strings(subjects),
            "agent_ids": _strings(agent_ids),
            "states": _numbers(states),
            "transition_types": _numbers(transition_types),
            "origins": _strings(origins),
        }
        values = {k: v for k, v in values.items() if v}
        if include_remote:
            values["include_remote"] = True
        if replay_from_sequence is not None:
            values["replay_from_sequence"] = replay_from_sequence
        if replay_from_time is not None:
            values["replay_from_time"] = timestamp(replay_from_time)
        if fmt == _PROTOBUF:
            raw = events_pb2.EventFilter(**values).SerializeToString()
        else:
            if "replay_from_time" in values:
                values["replay_from_time"] = values["replay_from_time"].ToJsonString()
            raw = encode_value(values, fmt)
        out = ffi.new("hms_subscription *")
        bufs = buffers()
        push = None
        user_data = None
        if callback is None:
            rc = lib.hms_subscribe(self._handle, fmt, raw, len(raw), out, bufs.err)
        else:
            push = PushState(callback, fmt)
            user_data = ffi.new_handle(push)
            rc = lib.hms_subscribe_push(
                self._handle, fmt, raw, len(raw), lib._hms_py_event, user_data, out, bufs.err
            )
        if rc:
            self._raise(rc, bufs.err, fmt)
        sub = Subscription(out[0], fmt, push, user_data, self._child_closed(None))
        with self._lock:
            self._children[id(sub)] = sub
        return sub

    # -- the domain (DOMAIN.md) ------------------------------------------------

    @property
    def agents(self) -> Agents:
        """hms.agent.v1.AgentService, typed: ``rt.agents.create(name=...)``."""
        return Agents(self)

    @property
    def tasks(self) -> Tasks:
        """hms.agent.v1.TaskService, typed: ``rt.tasks.submit(title=...)``."""
        return Tasks(self)

    @property
    def knowledge(self) -> Knowledge:
        """hms.agent.v1.KnowledgeService, typed: ``rt.knowledge.put(ns, key, ...)``."""
        return Knowledge(self)

    @property
    def lifecycle(self) -> Lifecycle:
        """hms.agent.lifecycle.v1.LifecycleService, typed, with Python hooks:
        ``rt.lifecycle.transition(agent_id, State.ACTIVE)``."""
        return Lifecycle(self)

    @property
    def events(self) -> Events:
        """Subscriptions yielding typed ``hms.events.v1.Event`` messages:
        ``rt.events.subscribe(kinds=["task.*"])``."""
        return Events(self)

    # -- built-in conveniences -------------------------------------------------

    def health(self) -> Any:
        """hms.sys.v1.System/Health as a dict."""
        return self.call("hms.sys.v1.System/Health")

    def list_services(self, name_prefix: str = "") -> list[service_pb2.ServiceDescriptor]:
        """hms.registry.v1.Registry/ListServices."""
        reply = self.call(
            "hms.registry.v1.Registry/ListServices",
            registry_pb2.ListServicesRequest(name_prefix=name_prefix),
        )
        assert isinstance(reply, registry_pb2.ListServicesResponse)
        return list(reply.services)

    # -- lifetime --------------------------------------------------------------

    def close(self) -> None:
        """Closes the services and subscriptions made through this runtime,
        then frees it. Idempotent. Not allowed from inside one of its handlers."""
        if self.closed:
            return
        if in_handler_of(self._handle):
            raise FailedPreconditionError(
                "a runtime cannot be closed from inside one of its own handlers",
                origin="hms_cffi",
            )
        super().close()

    def _check_open(self) -> None:
        if self._handle == 0:
            raise ClosedError("the runtime is closed", origin="hms_cffi")

    def _raise(self, rc: int, err: Any, fmt: int) -> None:
        if rc == _INVALID_HANDLE and self._handle == 0:
            raise ClosedError("the runtime is closed", origin="hms_cffi")
        raise error_from(rc, err, fmt)

    def _child_closed(self, service_name: str | None) -> Any:
        children, lock, out_types = self._children, self._lock, self._out_types

        def forget(child: Handle) -> None:
            with lock:
                children.pop(id(child), None)
            if service_name is not None:
                prefix = service_name + "/"
                for method in [m for m in out_types if m.startswith(prefix)]:
                    out_types.pop(method, None)

        return forget


def _strings(value: Iterable[str] | str | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _numbers(value: Iterable[int] | int | None) -> list[int]:
    if value is None:
        return []
    return [int(value)] if isinstance(value, int) else [int(v) for v in value]


def _descriptor_cbor(descriptor: service_pb2.ServiceDescriptor) -> bytes:
    return encode_value(
        {
            "name": descriptor.name,
            "version": descriptor.version,
            "description": descriptor.description,
            "methods": [
                {"name": m.name, "input_type": m.input_type, "output_type": m.output_type}
                for m in descriptor.methods
            ],
        },
        _CBOR,
    )


def _options(
    options: Options | None, timeout: float | None, credentials: Credentials | None, fmt: int
) -> bytes:
    """The CallOptions bytes of a call in ``fmt``; empty without any option."""
    if options is None and timeout is None and credentials is None:
        return b""
    deadline = None if timeout is None else max(1, math.ceil(timeout * 1000))
    if isinstance(options, options_pb2.CallOptions):
        if deadline is not None or credentials is not None:
            copy = options_pb2.CallOptions()
            copy.CopyFrom(options)
            if deadline is not None:
                copy.deadline_ms = deadline
            if credentials is not None:
                copy.credentials.CopyFrom(credentials.as_proto())
            options = copy
        return message_bytes(options, "hms.v1.CallOptions", fmt)
    values = dict(options or {})
    if deadline is not None:
        values["deadline_ms"] = deadline
    if credentials is not None:
        values["credentials"] = credentials
    if isinstance(values.get("credentials"), Credentials):
        values["credentials"] = values["credentials"].as_dict()
    if fmt == _PROTOBUF:
        return message_bytes(values, "hms.v1.CallOptions", fmt)
    return encode_value(values, fmt)


# HmsError is re-exported for type checkers reading this module alone.
__all__ += ["HmsError"]
