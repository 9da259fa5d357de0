"""Event subscriptions: polling, filters, formats, lagging, push callbacks."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import hms_cffi
from hms_cffi import Format, Runtime
from hms_cffi.proto.hms.events.v1 import events_pb2


def test_register_and_unregister_publish_events(rt: Runtime) -> None:
    with rt.subscribe() as sub:
        svc = rt.register_service("ev.v1.Svc", {"B": lambda r: r, "A": lambda r: r}, version="2")
        svc.close()
        first = sub.next(timeout=2)
        second = sub.next(timeout=2)
        assert first is not None
        assert second is not None
        assert first["kind"] == "registry.service_registered"
        assert first["subject"] == "ev.v1.Svc"
        assert first["service"]["name"] == "ev.v1.Svc"
        assert sorted(first["service"]["methods"]) == ["A", "B"]
        assert second["kind"] == "registry.service_unregistered"
        assert second["sequence"] == first["sequence"] + 1
        assert sub.next(timeout=0) is None


def test_next_times_out_with_none(rt: Runtime) -> None:
    with rt.subscribe() as sub:
        start = time.monotonic()
        assert sub.next(timeout=0.3) is None
        assert 0.25 < time.monotonic() - start < 2
        assert sub.next(timeout=0) is None


def test_iter_stops_on_timeout(rt: Runtime) -> None:
    with rt.subscribe(kinds=["registry.*"]) as sub:
        for i in range(3):
            rt.register_service(f"ev.v1.S{i}", {"M": lambda r: r}).close()
        kinds = [ev["kind"] for ev in sub.iter(timeout=0.3)]
        assert kinds == ["registry.service_registered", "registry.service_unregistered"] * 3


def test_filters_by_kind_and_subject(rt: Runtime) -> None:
    with (
        rt.subscribe(kinds="registry.service_unregistered") as by_kind,
        rt.subscribe(subjects=["ev.v1.Wanted"]) as by_subject,
    ):
        rt.register_service("ev.v1.Wanted", {"M": lambda r: r}).close()
        rt.register_service("ev.v1.Other", {"M": lambda r: r}).close()
        kinds = [(e["kind"], e["subject"]) for e in by_kind.iter(timeout=0.3)]
        assert kinds == [
            ("registry.service_unregistered", "ev.v1.Wanted"),
            ("registry.service_unregistered", "ev.v1.Other"),
        ]
        subjects = {e["subject"] for e in by_subject.iter(timeout=0.3)}
        assert subjects == {"ev.v1.Wanted"}


def test_protobuf_and_json_events(rt: Runtime) -> None:
    with rt.subscribe(format=Format.PROTOBUF) as pb, rt.subscribe(format=Format.JSON) as js:
        rt.register_service("ev.v1.Fmt", {"M": lambda r: r}).close()
        ev = pb.next(timeout=2)
        assert isinstance(ev, events_pb2.Event)
        assert ev.kind == "registry.service_registered"
        assert ev.WhichOneof("payload") == "service"
        assert ev.service.name == "ev.v1.Fmt"
        assert ev.time.seconds > 0
        jev = js.next(timeout=2)
        assert jev["kind"] == "registry.service_registered"
        assert isinstance(jev["time"], str)  # RFC 3339 in JSON


def test_lagging_subscriber_gets_a_lagged_event() -> None:
    with Runtime({"event_queue_capacity": 4}) as rt, rt.subscribe() as sub:
        for i in range(10):  # 20 events into a queue of 4
            rt.register_service(f"ev.v1.Lag{i}", {"M": lambda r: r}).close()
        events: list[dict[str, Any]] = list(sub.iter(timeout=0.3))
        lagged = [e for e in events if e["kind"] == "lagged"]
        assert len(lagged) == 1
        assert lagged[0]["lagged"]["dropped"] == 16
        assert events[0]["kind"] == "lagged"
        rest = events[1:]
        assert len(rest) == 4
        # the newest events survive, in order
        assert [e["subject"] for e in rest] == [
            "ev.v1.Lag8",
            "ev.v1.Lag8",
            "ev.v1.Lag9",
            "ev.v1.Lag9",
        ]


def test_push_subscription(rt: Runtime) -> None:
    got: list[dict[str, object]] = []
    threads: set[int] = set()
    done = threading.Event()

    def on_event(ev: dict[str, object]) -> None:
        got.append(ev)
        threads.add(threading.get_ident())
        if len(got) == 4:
            done.set()

    with rt.subscribe(kinds=["registry.*"], callback=on_event) as sub:
        rt.register_service("ev.v1.P1", {"M": lambda r: r}).close()
        rt.register_service("ev.v1.P2", {"M": lambda r: r}).close()
        assert done.wait(5)
        with pytest.raises(hms_cffi.FailedPreconditionError):
            sub.next(timeout=0)
    assert [(e["kind"], e["subject"]) for e in got] == [
        ("registry.service_registered", "ev.v1.P1"),
        ("registry.service_unregistered", "ev.v1.P1"),
        ("registry.service_registered", "ev.v1.P2"),
        ("registry.service_unregistered", "ev.v1.P2"),
    ]
    assert threading.get_ident() not in threads  # a library thread


def test_push_callback_errors_are_contained(rt: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    done = threading.Event()

    def on_event(ev: dict[str, str]) -> None:
        seen.append(ev["kind"])
        if len(seen) == 2:
            done.set()
        raise RuntimeError("callback bug")

    with rt.subscribe(callback=on_event) as sub:
        rt.register_service("ev.v1.Err", {"M": lambda r: r}).close()
        assert done.wait(5)
        deadline = time.monotonic() + 2
        while sub.callback_errors < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sub.callback_errors == 2
    assert seen == ["registry.service_registered", "registry.service_unregistered"]
    assert rt.call("hms.sys.v1.System/Echo", {"text": "ok"}) == {"text": "ok"}


def test_push_callback_may_call_the_runtime(rt: Runtime) -> None:
    echoes: list[str] = []
    done = threading.Event()

    def on_event(ev: dict[str, str]) -> None:
        echoes.append(rt.call("hms.sys.v1.System/Echo", {"text": ev["subject"]})["text"])
        done.set()

    with rt.subscribe(kinds="registry.service_registered", callback=on_event):
        svc = rt.register_service("ev.v1.Reenter", {"M": lambda r: r})
        assert done.wait(5)
        svc.close()
    assert echoes == ["ev.v1.Reenter"]


def test_closed_subscription(rt: Runtime) -> None:
    sub = rt.subscribe()
    sub.close()
    sub.close()
    with pytest.raises(hms_cffi.ClosedError):
        sub.next(timeout=0)
    assert list(sub.iter(timeout=0)) == []


def test_runtime_close_wakes_a_blocked_poller() -> None:
    rt = Runtime()
    sub = rt.subscribe()
    outcome: list[object] = []

    def poll() -> None:
        try:
            outcome.append(sub.next(timeout=10))
        except hms_cffi.HmsError as exc:
            outcome.append(exc)

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.2)
    start = time.monotonic()
    rt.close()
    t.join(5)
    assert not t.is_alive()
    assert time.monotonic() - start < 3
    assert len(outcome) == 1
    assert isinstance(outcome[0], hms_cffi.CancelledError | hms_cffi.InvalidHandleError)


def test_several_pollers_share_one_subscription(rt: Runtime) -> None:
    with rt.subscribe() as sub:
        got: list[int] = []
        lock = threading.Lock()

        def drain() -> None:
            for ev in sub.iter(timeout=0.5):
                with lock:
                    got.append(ev["sequence"])

        threads = [threading.Thread(target=drain) for _ in range(3)]
        for t in threads:
            t.start()
        for i in range(10):
            rt.register_service(f"ev.v1.Many{i}", {"M": lambda r: r}).close()
        for t in threads:
            t.join(10)
        assert sorted(got) == list(range(min(got), min(got) + 20))  # each event once
