#!/usr/bin/env python3
"""Conformance runner of the Python binding (hms_cffi).

Runs every scenario of tests/conformance/scenarios.json through the binding's
public API and prints one JSON line per scenario (protocol:
tests/conformance/README.md)::

    {"lang": "python", "scenario": "unknown_method", "code": "NOT_FOUND",
     "error": "NotFoundError", "message": "...", "origin": "...", "step": 0}

In remote mode (HMS_CONFORMANCE_REMOTE, HMS_CONFORMANCE_REMOTE_CONFIG) the
scenarios named there call their services in another process.

Usage: run_python.py [SCENARIOS_JSON]   (default: the file next to this one)
Exit status 0 when every scenario ran (whatever its code), 2 on a runner bug.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hms_cffi import Format, HmsError, Runtime, Service, StatusCode, convert

LANG = "python"
DEFAULT_SCENARIOS = Path(__file__).resolve().parent / "scenarios.json"
FORMATS = {"protobuf": Format.PROTOBUF, "cbor": Format.CBOR, "json": Format.JSON}
#: Remote mode (README.md): these scenarios run in a runtime with this
#: config, their services served by another process.
REMOTE = frozenset(os.environ.get("HMS_CONFORMANCE_REMOTE", "").split())
REMOTE_CONFIG = os.environ.get("HMS_CONFORMANCE_REMOTE_CONFIG", "")


def fmt_of(value: str | int) -> int:
    return value if isinstance(value, int) else int(FORMATS[value])


def payload(spec: Any, env: dict[str, str]) -> bytes:
    """Bytes of a payload spec: text (with ${var} substituted), {"hex"},
    {"concat": [...]}, {"repeat": spec, "times": n}."""
    if isinstance(spec, str):
        return re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], spec).encode()
    if "hex" in spec:
        return bytes.fromhex(spec["hex"])
    if "concat" in spec:
        return b"".join(payload(part, env) for part in spec["concat"])
    if "repeat" in spec:
        return payload(spec["repeat"], env) * int(spec["times"])
    raise ValueError(f"unknown payload spec {spec!r}")


def handler(behaviour: dict[str, Any]) -> Any:
    """A Python function doing what a method of a scenario service says."""
    kind = behaviour["behaviour"]
    message = behaviour.get("message", "")
    if kind == "echo":
        return lambda request: request
    if kind == "raise":

        def raise_plain(request: Any) -> Any:
            raise RuntimeError(message)

        return raise_plain
    if kind == "raise_status":
        code = StatusCode[behaviour["code"]]

        def raise_status(request: Any) -> Any:
            raise HmsError.from_code(code, message)

        return raise_status
    if kind == "sleep":
        seconds = behaviour["ms"] / 1000

        def sleep(request: Any) -> Any:
            time.sleep(seconds)
            return {}

        return sleep
    raise ValueError(f"unknown behaviour {kind!r}")


def register(rt: Runtime, name: str, services: dict[str, Any]) -> Service:
    methods = services[name]["methods"]
    return rt.register_service(name, {m: handler(b) for m, b in methods.items()})


def dig(value: Any, path: str) -> str:
    for part in path.split("."):
        value = value[part]
    return str(value)


def run_step(step: dict[str, Any], rt: Runtime, env: dict[str, str], doc: dict[str, Any]) -> None:
    op = step["op"]
    if op == "call":
        fmt = fmt_of(step["format"])
        request = payload(step.get("request", ""), env)
        options = payload(step["options"], env) if "options" in step else b""
        answer = rt.call_raw(step["method"], request, fmt, options)
        for var, path in step.get("save", {}).items():
            env[var] = dig(json.loads(answer), path)
    elif op == "convert":
        convert(step["type"], payload(step["data"], env), fmt_of(step["from"]), fmt_of(step["to"]))
    elif op == "runtime_new":
        Runtime(payload(step["config"], env), format=fmt_of(step["format"])).close()
    elif op == "register_service":
        register(rt, step["service"], doc["services"])
    elif op == "close_runtime":
        rt.close()
    else:
        raise ValueError(f"unknown op {op!r}")


def run(scenario: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    remote = scenario["id"] in REMOTE
    config = REMOTE_CONFIG if remote else scenario.get("runtime_config")
    rt = Runtime(config.encode(), format=Format.JSON) if config else Runtime()
    env: dict[str, str] = {}
    line: dict[str, Any] = {"lang": LANG, "scenario": scenario["id"]}
    try:
        for name in [] if remote else scenario.get("services", []):
            register(rt, name, doc["services"])
        for index, step in enumerate(scenario["steps"]):
            line["step"] = index
            try:
                run_step(step, rt, env, doc)
            except HmsError as exc:
                code = exc.code.name if isinstance(exc.code, StatusCode) else str(exc.code)
                line |= {
                    "code": code,
                    "error": type(exc).__name__,
                    "message": exc.message,
                    "origin": exc.origin,
                }
                return line
        line |= {"code": "OK", "error": "", "message": "", "origin": ""}
        return line
    finally:
        rt.close()


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_SCENARIOS
    doc = json.loads(path.read_text(encoding="utf-8"))
    for scenario in doc["scenarios"]:
        print(json.dumps(run(scenario, doc), ensure_ascii=False), flush=True)
    # Handlers that slept past their deadline finish on library threads.
    for thread in threading.enumerate():
        if thread is not threading.main_thread():
            thread.join(timeout=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
