"""Services exported per registration (``export=True``, HMS_SERVICE_EXPORT)
and called from another runtime through a real nats-server."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from nats_server import NatsServer

import hms_cffi
from hms_cffi import Format, Runtime
from hms_cffi.proto.hms.sys.v1 import system_pb2

GREETER = "remote.v1.Greeter"

pytestmark = pytest.mark.remote


def on_nats(server: NatsServer, name: str) -> Runtime:
    return Runtime({"name": name, "nats": {"servers": [server.url], "request_timeout_ms": 5000}})


def greet(request: system_pb2.EchoRequest) -> system_pb2.EchoResponse:
    return system_pb2.EchoResponse(text=f"hello {request.text}", payload=request.payload)


def refuse(request: system_pb2.EchoRequest) -> system_pb2.EchoResponse:
    raise hms_cffi.PermissionDeniedError(f"{request.text} may not", details={"rule": "no-guests"})


def register_greeter(rt: Runtime, **flags: Any) -> hms_cffi.Service:
    return rt.register_service(
        GREETER,
        {"Greet": greet, "Refuse": refuse},
        input_types={"Greet": system_pb2.EchoRequest, "Refuse": system_pb2.EchoRequest},
        output_types={"Greet": system_pb2.EchoResponse, "Refuse": system_pb2.EchoResponse},
        **flags,
    )


def test_an_exported_service_answers_remote_callers_as_local_ones(nats_server: NatsServer) -> None:
    with (
        on_nats(nats_server, "py-exporter") as exporter,
        on_nats(nats_server, "py-caller") as caller,
    ):
        service = register_greeter(exporter, export=True)
        request = system_pb2.EchoRequest(text="ann", payload=b"\x00\xff")
        for fmt in (Format.PROTOBUF, Format.CBOR, Format.JSON):
            raw = hms_cffi.convert(
                "hms.sys.v1.EchoRequest", request.SerializeToString(), Format.PROTOBUF, fmt
            )
            local = exporter.call_raw(f"{GREETER}/Greet", raw, fmt)
            assert caller.call_raw(f"{GREETER}/Greet", raw, fmt) == local
        answer = caller.call(f"{GREETER}/Greet", request, expect=system_pb2.EchoResponse)
        assert answer.text == "hello ann"

        errors = []
        for rt in (exporter, caller):
            with pytest.raises(hms_cffi.PermissionDeniedError) as raised:
                rt.call(f"{GREETER}/Refuse", {"text": "bob"})
            errors.append(raised.value)
        local, remote = errors
        assert (remote.message, remote.details) == (local.message, local.details)
        assert remote.details == {"rule": "no-guests"}
        # The handler named no origin: a local call names the method, a
        # remote one the runtime that answered (docs/transport.md).
        assert local.origin == f"{GREETER}/Refuse"
        assert remote.origin == "py-exporter"

        # Closing the service withdraws it from NATS.
        service.close()
        with pytest.raises(hms_cffi.UnavailableError):
            caller.call(f"{GREETER}/Greet", request, expect=system_pb2.EchoResponse)


def test_a_service_registered_without_export_stays_local(nats_server: NatsServer) -> None:
    with (
        on_nats(nats_server, "py-private") as exporter,
        on_nats(nats_server, "py-caller") as caller,
    ):
        with register_greeter(exporter):
            assert exporter.call(f"{GREETER}/Greet", {"text": "x"}) == {"text": "hello x"}
            with pytest.raises(hms_cffi.UnavailableError):
                caller.call(f"{GREETER}/Greet", {"text": "x"})


def test_export_without_a_transport_says_how_to_configure_one(rt: Runtime) -> None:
    with pytest.raises(hms_cffi.FailedPreconditionError) as raised:
        register_greeter(rt, export=True)
    assert "no transport" in raised.value.message
    assert "nats.servers" in raised.value.message
    # Nothing stays registered: the name is free.
    with register_greeter(rt):
        pass


def test_a_caller_thread_service_is_exported_and_served_by_its_thread(
    nats_server: NatsServer,
) -> None:
    with (
        on_nats(nats_server, "py-pump") as exporter,
        on_nats(nats_server, "py-caller") as caller,
    ):
        register_greeter(exporter, export=True, caller_thread=True)
        assert exporter.serve(0) == 0
        answers: list[Any] = []

        def call_both() -> None:
            answers.append(caller.call(f"{GREETER}/Greet", {"text": "ann"}))
            try:
                caller.call(f"{GREETER}/Refuse", {"text": "bob"})
            except hms_cffi.PermissionDeniedError as error:
                answers.append(error)

        remote = threading.Thread(target=call_both)
        remote.start()
        served = 0
        give_up = time.monotonic() + 20
        while remote.is_alive():
            assert time.monotonic() < give_up, "the remote calls did not finish"
            served += exporter.serve(0.05)
        remote.join()
        assert served == 2
        assert answers[0] == {"text": "hello ann"}
        refused = answers[1]
        assert (refused.message, refused.details) == ("bob may not", {"rule": "no-guests"})
        assert refused.origin == "py-pump"


def test_serve_needs_a_transport(rt: Runtime) -> None:
    with pytest.raises(hms_cffi.FailedPreconditionError) as raised:
        rt.serve(0)
    assert "no transport" in raised.value.message


def test_remote_events_arrive_with_their_origin(nats_server: NatsServer) -> None:
    publisher = Runtime(
        {"name": "publisher", "nats": {"servers": [nats_server.url], "publish_events": True}}
    )
    watcher = on_nats(nats_server, "watcher")
    with publisher, watcher:
        remote = watcher.events.subscribe("agent.*", origins="publisher")
        local_only = watcher.events.subscribe("agent.*")
        agent = publisher.agents.create(name="far-away")
        event = remote.next(timeout=10)
        assert event is not None
        assert event.kind == "agent.created"
        assert (event.origin, event.agent_id) == ("publisher", agent.id)
        assert local_only.next(timeout=0.2) is None


def test_remote_events_need_a_transport_and_replay_needs_a_stream(
    rt: Runtime, nats_server: NatsServer
) -> None:
    with pytest.raises(hms_cffi.FailedPreconditionError):
        rt.subscribe(include_remote=True)
    with on_nats(nats_server, "no-stream") as connected:
        with pytest.raises(hms_cffi.FailedPreconditionError, match="event_stream"):
            connected.subscribe(replay_from_sequence=1)
        with pytest.raises(hms_cffi.FailedPreconditionError, match="event_stream"):
            connected.events.subscribe(replay_from_time=0)
