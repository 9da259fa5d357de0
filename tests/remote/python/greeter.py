"""The Greeter of the cross-process tests, in Python.

    python3 greeter.py serve NATS_URL   exports it, prints "ready", serves
                                        until stdin closes
    python3 greeter.py call NATS_URL SERVER
                                        calls it (served by the runtime named
                                        SERVER, another process), checks
                                        every answer

Both sides follow tests/remote/README.md: Greet answers "hello <text>",
Refuse fails PERMISSION_DENIED with "<text> may not" and details
{"rule": "no-guests"}.
"""

from __future__ import annotations

import sys

import hms_cffi
from hms_cffi import Format, Runtime
from hms_cffi.proto.hms.sys.v1 import system_pb2

SERVICE = "remote.v1.Greeter"
TYPES = {"Greet": system_pb2.EchoRequest, "Refuse": system_pb2.EchoRequest}
ANSWERS = {"Greet": system_pb2.EchoResponse, "Refuse": system_pb2.EchoResponse}


def greet(request: system_pb2.EchoRequest) -> system_pb2.EchoResponse:
    return system_pb2.EchoResponse(text=f"hello {request.text}")


def refuse(request: system_pb2.EchoRequest) -> system_pb2.EchoResponse:
    raise hms_cffi.PermissionDeniedError(f"{request.text} may not", details={"rule": "no-guests"})


def runtime(url: str, name: str) -> Runtime:
    return Runtime({"name": name, "nats": {"servers": [url], "request_timeout_ms": 10000}})


def serve(url: str) -> None:
    with runtime(url, "python-server") as rt:
        rt.register_service(
            SERVICE,
            {"Greet": greet, "Refuse": refuse},
            input_types=TYPES,
            output_types=ANSWERS,
            export=True,
        )
        print("ready", flush=True)
        sys.stdin.read()


def check(what: str, got: object, want: object) -> None:
    if got != want:
        raise SystemExit(f"python caller: {what}: got {got!r}, want {want!r}")


def call(url: str, server: str) -> None:
    with runtime(url, "remote-python-caller") as rt:
        for fmt in (Format.CBOR, Format.JSON):
            answer = rt.call(f"{SERVICE}/Greet", {"text": "python"}, format=fmt)
            check(f"Greet ({fmt.name})", answer, {"text": "hello python"})
        typed = rt.call(
            f"{SERVICE}/Greet",
            system_pb2.EchoRequest(text="python"),
            expect=system_pb2.EchoResponse,
        )
        check("Greet (protobuf)", typed.text, "hello python")
        try:
            rt.call(f"{SERVICE}/Refuse", {"text": "python"})
        except hms_cffi.PermissionDeniedError as error:
            check("Refuse message", error.message, "python may not")
            check("Refuse details", error.details, {"rule": "no-guests"})
            check("Refuse origin", error.origin, server)
        else:
            raise SystemExit("python caller: Refuse answered instead of failing")
        try:
            rt.call(f"{SERVICE}/Missing", {})
        except hms_cffi.NotFoundError:
            pass
        else:
            raise SystemExit("python caller: a method the service lacks answered")
        print("python caller: ok")


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        call(sys.argv[2], sys.argv[3])
