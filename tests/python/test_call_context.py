"""What a Python handler sees of its call (CallContext) and the structured
errors it raises back to its caller (ABI 1.2)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import hms_cffi
from hms_cffi import CallContext, Format, Runtime
from hms_cffi.proto.hms.sys.v1 import system_pb2

TRACED = {"metadata": {"tenant": "acme", "ünï": "cödé"}, "trace_id": "trace-42"}


def test_a_second_parameter_receives_the_context(rt: Runtime) -> None:
    seen: list[tuple[CallContext, bool]] = []
    caller = threading.get_ident()

    def look(request: Any, ctx: CallContext) -> dict[str, str]:
        seen.append((ctx, threading.get_ident() == caller))
        return {}

    with rt.register_service("ctx.v1.Svc", {"Look": look}):
        rt.call("ctx.v1.Svc/Look", {}, options=TRACED)
        rt.call("ctx.v1.Svc/Look", {}, options=TRACED, timeout=30)
    (plain, on_caller), (timed, on_caller_too) = seen
    assert on_caller
    assert not on_caller_too, "a deadline runs the handler on a library thread"
    for ctx in (plain, timed):
        assert ctx.method == "ctx.v1.Svc/Look"
        assert dict(ctx.metadata) == TRACED["metadata"]
        assert ctx.trace_id == "trace-42"
        assert ctx.principal == ""
    assert plain.deadline is None
    assert plain.remaining() is None
    remaining = timed.remaining()
    assert remaining is not None
    assert 0 < remaining <= 30


def test_the_deadline_counts_down_while_the_handler_runs(rt: Runtime) -> None:
    left: list[float] = []

    def wait(request: Any, ctx: CallContext) -> None:
        first = ctx.remaining()
        time.sleep(0.05)
        second = ctx.remaining()
        assert first is not None
        assert second is not None
        left.extend([first, second])

    with rt.register_service("ctx.v1.Slow", {"Wait": wait}):
        rt.call("ctx.v1.Slow/Wait", {}, timeout=10)
    assert left[0] - left[1] >= 0.04


def test_handlers_without_a_second_parameter_are_called_as_before(rt: Runtime) -> None:
    calls: list[Any] = []

    class Handler:
        def __call__(self, request: Any) -> Any:
            calls.append(request)
            return request

    def variadic(*args: Any) -> Any:
        return len(args)

    handlers = {
        "Lambda": lambda r: r,
        "Default": lambda r, extra=1: extra,
        "Variadic": variadic,
        "Callable": Handler(),
        "Builtin": dict,
    }
    with rt.register_service("ctx.v1.Plain", handlers):
        assert rt.call("ctx.v1.Plain/Lambda", {"a": 1}, options=TRACED) == {"a": 1}
        assert rt.call("ctx.v1.Plain/Default", {}) == 1
        assert rt.call("ctx.v1.Plain/Variadic", {}) == 1
        assert rt.call("ctx.v1.Plain/Callable", {"b": 2}) == {"b": 2}
        assert rt.call("ctx.v1.Plain/Builtin", {"c": 3}) == {"c": 3}
    assert calls == [{"b": 2}]


def test_protobuf_handlers_take_the_context_too(rt: Runtime) -> None:
    def shout(request: system_pb2.EchoRequest, ctx: CallContext) -> system_pb2.EchoResponse:
        return system_pb2.EchoResponse(text=f"{request.text}@{ctx.metadata['tenant']}")

    with rt.register_service(
        "ctx.v1.Typed",
        {"Shout": shout},
        input_types={"Shout": system_pb2.EchoRequest},
        output_types={"Shout": system_pb2.EchoResponse},
    ):
        answer = rt.call("ctx.v1.Typed/Shout", system_pb2.EchoRequest(text="hi"), options=TRACED)
    assert answer.text == "hi@acme"


@pytest.mark.parametrize("fmt", [Format.PROTOBUF, Format.CBOR, Format.JSON])
def test_a_raised_error_reaches_the_caller_with_details_and_origin(
    rt: Runtime, fmt: Format
) -> None:
    def deny(request: system_pb2.EchoRequest) -> system_pb2.EchoResponse:
        raise hms_cffi.PermissionDeniedError(
            "tenant acme may not read this",
            details={"rule": "tenant-isolation", "tenant": "acme"},
            origin="policy.v1.Engine",
        )

    with rt.register_service(
        "ctx.v1.Deny",
        {"Read": deny},
        input_types={"Read": system_pb2.EchoRequest},
        output_types={"Read": system_pb2.EchoResponse},
    ):
        request: Any = system_pb2.EchoRequest(text="x") if fmt == Format.PROTOBUF else {"text": "x"}
        with pytest.raises(hms_cffi.PermissionDeniedError) as raised:
            rt.call("ctx.v1.Deny/Read", request, format=fmt)
    error = raised.value
    assert error.message == "tenant acme may not read this"
    assert error.details == {"rule": "tenant-isolation", "tenant": "acme"}
    assert error.origin == "policy.v1.Engine"


def test_an_error_without_origin_names_the_method(rt: Runtime) -> None:
    def fail(request: Any) -> Any:
        raise hms_cffi.HmsError("no luck", code=4242, details={"attempt": "3"})

    with rt.register_service("ctx.v1.Fail", {"Do": fail}):
        with pytest.raises(hms_cffi.HmsError) as raised:
            rt.call("ctx.v1.Fail/Do", {})
    assert raised.value.code == hms_cffi.StatusCode.UNKNOWN
    assert raised.value.details == {"attempt": "3"}
    assert raised.value.origin == "ctx.v1.Fail/Do"


def test_reading_a_context_outside_a_handler_is_refused() -> None:
    from hms_cffi.context import read_context

    with pytest.raises(hms_cffi.InvalidArgumentError):
        read_context(hms_cffi.ffi.NULL)
    rc = hms_cffi.lib.hms_reply_status(hms_cffi.ffi.NULL, Format.JSON, b"{}", 2)
    assert rc == hms_cffi.StatusCode.INVALID_ARGUMENT
