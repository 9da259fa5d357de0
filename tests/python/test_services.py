"""Services implemented in Python: dict and protobuf handlers, errors,
re-entry, deadlines, unregistering."""

from __future__ import annotations

import threading
import time

import pytest
from helpers import ECHO, demo_classes

import hms_cffi
from hms_cffi import Format, Runtime, StatusCode
from hms_cffi.proto.hms.registry.v1 import registry_pb2
from hms_cffi.proto.hms.sys.v1 import system_pb2


def test_dict_service_in_every_caller_format(rt: Runtime) -> None:
    seen = []

    def greet(req: dict[str, str]) -> dict[str, str]:
        seen.append(req)
        return {"greeting": f"hello {req['name']}"}

    with rt.register_service("demo.v1.Greeter", {"Greet": greet}, version="1.2.0") as svc:
        assert svc.format == Format.CBOR
        assert svc.methods == ["Greet"]
        assert rt.call("demo.v1.Greeter/Greet", {"name": "ann"}) == {"greeting": "hello ann"}
        out = rt.call("demo.v1.Greeter/Greet", b'{"name":"bo"}', format=Format.JSON)
        assert out == b'{"greeting":"hello bo"}'
        assert rt.call("demo.v1.Greeter/Greet", {"name": "ü"}, format=Format.JSON) == {
            "greeting": "hello ü"
        }
        assert seen == [{"name": "ann"}, {"name": "bo"}, {"name": "ü"}]
    assert svc.closed


def test_any_value_roundtrip(rt: Runtime) -> None:
    value = {"i": -(2**63), "u": 2**64 - 1, "f": 0.5, "b": b"\x00\xff", "l": [1, "x", None, True]}
    with rt.register_service("demo.v1.Any", {"Id": lambda r: r}):
        assert rt.call("demo.v1.Any/Id", value) == value


def test_protobuf_service(rt: Runtime) -> None:
    classes = demo_classes()
    req_cls, rep_cls = classes["GreetRequest"], classes["GreetReply"]

    def greet(req: object) -> object:
        assert isinstance(req, req_cls)
        return rep_cls(greeting=f"hi {req.name}", count=len(req.blob))  # type: ignore[attr-defined]

    svc = rt.register_service(
        "demo.v1.Typed",
        {"Greet": greet},
        input_types={"Greet": req_cls},
        output_types={"Greet": rep_cls},
    )
    assert svc.format == Format.PROTOBUF
    reply = rt.call("demo.v1.Typed/Greet", req_cls(name="pb", blob=b"\x00\x01\x02"))
    assert isinstance(reply, rep_cls)
    assert (reply.greeting, reply.count) == ("hi pb", 3)  # type: ignore[attr-defined]
    # Callers may use any format; the core converts.
    assert rt.call("demo.v1.Typed/Greet", {"name": "cbor", "blob": b"ab"}) == {
        "greeting": "hi cbor",
        "count": 2,
    }
    out = rt.call("demo.v1.Typed/Greet", b'{"name":"js"}', format=Format.JSON)
    assert out == b'{"greeting":"hi js"}'
    # A second service with the same types registers fine.
    svc2 = rt.register_service(
        "demo.v1.Typed2",
        {"Greet": greet},
        input_types={"Greet": req_cls},
        output_types={"Greet": rep_cls},
    )
    svc2.close()
    svc.close()


def test_handler_returning_the_wrong_message_is_a_handler_error(rt: Runtime) -> None:
    svc = rt.register_service(
        "demo.v1.Wrong",
        {"Echo": lambda r: system_pb2.HealthResponse()},
        input_types={"Echo": system_pb2.EchoRequest},
        output_types={"Echo": system_pb2.EchoResponse},
    )
    with pytest.raises(hms_cffi.HandlerError, match="TypeError"):
        rt.call("demo.v1.Wrong/Echo", system_pb2.EchoRequest())
    svc.close()


def test_types_by_name_give_dict_handlers(rt: Runtime) -> None:
    svc = rt.register_service(
        "demo.v1.Named",
        {"Echo": lambda r: {"text": r.get("text", "") + "!"}},
        input_types={"Echo": "hms.sys.v1.EchoRequest"},
        output_types={"Echo": "hms.sys.v1.EchoResponse"},
    )
    assert svc.format == Format.CBOR
    reply = rt.call("demo.v1.Named/Echo", system_pb2.EchoRequest(text="n"))
    assert isinstance(reply, system_pb2.EchoResponse)
    assert reply.text == "n!"
    assert rt.call("demo.v1.Named/Echo") == {"text": "!"}
    svc.close()


def test_handler_exception_is_a_handler_error_and_the_next_call_works(rt: Runtime) -> None:
    calls = []

    def flaky(req: dict[str, int]) -> dict[str, int]:
        calls.append(req)
        if req.get("fail"):
            raise KeyError("the key 'x' is missing")
        return {"ok": 1}

    with rt.register_service("demo.v1.Flaky", {"Do": flaky}):
        for _ in range(3):
            with pytest.raises(hms_cffi.HandlerError) as info:
                rt.call("demo.v1.Flaky/Do", {"fail": 1})
            assert info.value.code == StatusCode.HANDLER_ERROR
            assert info.value.message.startswith("KeyError: ")
            assert "the key 'x' is missing" in info.value.message
            assert rt.call("demo.v1.Flaky/Do", {}) == {"ok": 1}
        assert rt.call(ECHO, {"text": "core fine"}) == {"text": "core fine"}
    assert len(calls) == 6


def test_base_exceptions_are_caught_too(rt: Runtime) -> None:
    def bail(req: object) -> None:
        raise SystemExit(3)

    with rt.register_service("demo.v1.Bail", {"Do": bail}):
        with pytest.raises(hms_cffi.HandlerError, match="SystemExit"):
            rt.call("demo.v1.Bail/Do", {})
        with pytest.raises(hms_cffi.HandlerError):
            rt.call("demo.v1.Bail/Do", {})


@pytest.mark.parametrize(
    "exc",
    [
        hms_cffi.NotFoundError("no such agent"),
        hms_cffi.PermissionDeniedError("nope"),
        hms_cffi.InvalidArgumentError("bad name"),
        hms_cffi.UnavailableError("later"),
    ],
)
def test_hms_error_in_a_handler_keeps_its_code(rt: Runtime, exc: hms_cffi.HmsError) -> None:
    def handler(req: object) -> None:
        raise exc

    with rt.register_service("demo.v1.Err", {"Do": handler}):
        with pytest.raises(type(exc)) as info:
            rt.call("demo.v1.Err/Do", {})
        assert info.value.code == exc.code
        assert exc.message in info.value.message


def test_unserializable_result_is_a_handler_error(rt: Runtime) -> None:
    with rt.register_service("demo.v1.Bad", {"Do": lambda r: object()}):
        with pytest.raises(hms_cffi.HandlerError):
            rt.call("demo.v1.Bad/Do", {})
        assert rt.call(ECHO, {"text": "ok"}) == {"text": "ok"}


def test_reentrant_handler(rt: Runtime) -> None:
    def outer(req: dict[str, int]) -> dict[str, object]:
        depth = req["depth"]
        echoed = rt.call(ECHO, system_pb2.EchoRequest(text=f"level {depth}"))
        inner = rt.call("demo.v1.Nest/Outer", {"depth": depth - 1}) if depth else None
        return {"depth": depth, "echo": echoed.text, "inner": inner}

    with rt.register_service("demo.v1.Nest", {"Outer": outer}):
        result = rt.call("demo.v1.Nest/Outer", {"depth": 3})
    level = result
    for depth in (3, 2, 1, 0):
        assert level["depth"] == depth
        assert level["echo"] == f"level {depth}"
        level = level["inner"]
    assert level is None


def test_reentrant_error_does_not_leak_into_the_outer_call(rt: Runtime) -> None:
    def outer(req: object) -> dict[str, str]:
        with pytest.raises(hms_cffi.NotFoundError):
            rt.call("demo.v1.Missing/X", {})
        return {"after": "inner failure"}

    with rt.register_service("demo.v1.Outer", {"Do": outer}):
        assert rt.call("demo.v1.Outer/Do", {}) == {"after": "inner failure"}


def test_deadline_exceeded_by_a_sleeping_handler(rt: Runtime) -> None:
    release = threading.Event()

    def slow(req: object) -> dict[str, str]:
        release.wait(5)
        return {"late": "yes"}

    with rt.register_service("demo.v1.Slow", {"Sleep": slow}):
        start = time.monotonic()
        with pytest.raises(hms_cffi.DeadlineExceededError):
            rt.call("demo.v1.Slow/Sleep", {}, timeout=0.2)
        elapsed = time.monotonic() - start
        assert 0.15 < elapsed < 2.0
        release.set()
        # The late answer is dropped; the next call works.
        assert rt.call("demo.v1.Slow/Sleep", {}, timeout=5) == {"late": "yes"}


def test_handler_can_see_no_deadline_without_timeout(rt: Runtime) -> None:
    with rt.register_service("demo.v1.Fast", {"Do": lambda r: {"thread": threading.get_ident()}}):
        # Without a deadline the handler runs on the calling thread.
        assert rt.call("demo.v1.Fast/Do")["thread"] == threading.get_ident()


def test_caller_thread_service(rt: Runtime) -> None:
    with rt.register_service(
        "demo.v1.Pinned",
        {"Where": lambda r: {"thread": threading.get_ident()}},
        caller_thread=True,
    ):
        assert rt.call("demo.v1.Pinned/Where")["thread"] == threading.get_ident()
        results: list[object] = []

        def other() -> None:
            results.append(rt.call("demo.v1.Pinned/Where")["thread"])

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert results == [t.ident]


def test_service_is_listed_and_described(rt: Runtime) -> None:
    with rt.register_service(
        "demo.v1.Listed",
        {"B": lambda r: r, "A": lambda r: r},
        version="9.9.9",
        description="a listed service",
    ):
        listed = {s.name: s for s in rt.list_services("demo.")}
        assert listed["demo.v1.Listed"].version == "9.9.9"
        assert listed["demo.v1.Listed"].origin == "host"
        desc = rt.call(
            "hms.registry.v1.Registry/DescribeService",
            registry_pb2.DescribeServiceRequest(name="demo.v1.Listed"),
        )
        assert sorted(m.name for m in desc.service.methods) == ["A", "B"]
    assert rt.list_services("demo.") == []


def test_unregister_is_idempotent_and_final(rt: Runtime) -> None:
    svc = rt.register_service("demo.v1.Gone", {"M": lambda r: {"x": 1}})
    assert rt.call("demo.v1.Gone/M") == {"x": 1}
    svc.close()
    svc.close()
    with pytest.raises(hms_cffi.NotFoundError):
        rt.call("demo.v1.Gone/M")
    # The name is free again.
    with rt.register_service("demo.v1.Gone", {"M": lambda r: {"x": 2}}):
        assert rt.call("demo.v1.Gone/M") == {"x": 2}


def test_duplicate_name_is_already_exists(rt: Runtime) -> None:
    with rt.register_service("demo.v1.Once", {"M": lambda r: r}):
        with pytest.raises(hms_cffi.AlreadyExistsError):
            rt.register_service("demo.v1.Once", {"M": lambda r: r})


def test_bad_registrations(rt: Runtime) -> None:
    with pytest.raises(hms_cffi.InvalidArgumentError):
        rt.register_service("", {"M": lambda r: r})
    with pytest.raises(hms_cffi.NotFoundError):
        rt.register_service(
            "demo.v1.T",
            {"M": lambda r: r},
            input_types={"M": "no.such.Type"},
            output_types={"M": "no.such.Type"},
        )
    with pytest.raises(ValueError, match="without a handler"):
        rt.register_service("demo.v1.T", {"M": lambda r: r}, input_types={"N": "x.Y"})


def test_method_without_a_python_handler(rt: Runtime) -> None:
    with rt.register_service("demo.v1.Partial", {"M": lambda r: {}}):
        with pytest.raises(hms_cffi.NotFoundError):
            rt.call("demo.v1.Partial/Other")


def test_runtime_close_closes_its_services() -> None:
    rt = Runtime()
    svc = rt.register_service("demo.v1.Owned", {"M": lambda r: r})
    rt.close()
    assert svc.closed


def test_runtime_cannot_be_closed_from_its_own_handler(rt: Runtime) -> None:
    def closer(req: object) -> None:
        rt.close()

    with rt.register_service("demo.v1.Closer", {"Do": closer}):
        with pytest.raises(hms_cffi.FailedPreconditionError):
            rt.call("demo.v1.Closer/Do")
        assert not rt.closed


def test_service_can_unregister_itself_from_its_handler(rt: Runtime) -> None:
    holder: list[hms_cffi.Service] = []

    def quit_(req: object) -> dict[str, str]:
        holder[0].close()
        return {"bye": "now"}

    holder.append(rt.register_service("demo.v1.Quit", {"Do": quit_}))
    assert rt.call("demo.v1.Quit/Do") == {"bye": "now"}
    assert holder[0].closed
    with pytest.raises(hms_cffi.NotFoundError):
        rt.call("demo.v1.Quit/Do")
