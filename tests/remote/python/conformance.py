"""The shared conformance scenarios once more, with the services in another
process (tests/remote/README.md):

    python3 conformance.py serve NATS_URL   exports conformance.v1.Host
        (export=True) and the domain services (nats.export_services), prints
        "ready", serves until stdin closes
    python3 conformance.py call NATS_URL SERVER   runs every scenario that
        calls only those services, in a runtime that has none of them
        (domain ones in nats.remote_services), and checks that each ends as
        the same scenario run locally: its code, and its message with ids
        masked (but for DEADLINE_EXCEEDED, which the caller's side words
        itself); an error a host handler raised names SERVER, the runtime
        that answered, as its origin

The scenarios' steps and host handlers are tests/conformance/run_python.py's.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from hms_cffi import HmsError, Runtime, StatusCode

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests" / "conformance"))

import run_python  # noqa: E402

HOST = "conformance.v1.Host"
DOMAIN = [
    "hms.agent.v1.AgentService",
    "hms.agent.v1.TaskService",
    "hms.agent.lifecycle.v1.LifecycleService",
]
SCENARIOS = json.loads((ROOT / "tests" / "conformance" / "scenarios.json").read_text())
#: Ids the core generates differ between runs (run_matrix.py masks them too).
IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def serve(url: str) -> None:
    config = {"name": "conformance-server", "nats": {"servers": [url], "export_services": DOMAIN}}
    with Runtime(config) as rt:
        methods = SCENARIOS["services"][HOST]["methods"]
        rt.register_service(
            HOST, {m: run_python.handler(b) for m, b in methods.items()}, export=True
        )
        print("ready", flush=True)
        sys.stdin.read()


def remote_only(scenario: dict[str, Any]) -> bool:
    """Whether every step is a call of a service the server exports (and the
    scenario needs no runtime of its own)."""
    served = (HOST, *DOMAIN)
    return "runtime_config" not in scenario and all(
        step["op"] == "call" and step["method"].split("/")[0] in served
        for step in scenario["steps"]
    )


def outcome(scenario: dict[str, Any], rt: Runtime) -> tuple[str, str, str]:
    """Code, message (ids masked) and origin of the scenario's end."""
    env: dict[str, str] = {}
    for step in scenario["steps"]:
        try:
            run_python.run_step(step, rt, env, SCENARIOS)
        except HmsError as exc:
            code = exc.code.name if isinstance(exc.code, StatusCode) else str(exc.code)
            return code, IDS.sub("<id>", exc.message), exc.origin
    return "OK", "", ""


def call(url: str, server: str) -> int:
    config = {"name": "conformance-caller", "nats": {"servers": [url], "remote_services": DOMAIN}}
    failed = 0
    ran = 0
    for scenario in SCENARIOS["scenarios"]:
        if not remote_only(scenario):
            continue
        ran += 1
        local = run_python.run(scenario, SCENARIOS)
        with Runtime(config) as rt:
            code, message, origin = outcome(scenario, rt)
        ok = code == local["code"] == scenario["expect"]
        if code != "DEADLINE_EXCEEDED":
            ok = ok and message == IDS.sub("<id>", local["message"])
        if code not in ("OK", "DEADLINE_EXCEEDED") and scenario.get("services"):
            ok = ok and origin == server
        failed += not ok
        mark = "ok  " if ok else "FAIL"
        print(f"  {mark} {scenario['id']}: {code} (local {local['code']}) {message}", flush=True)
    print(f"conformance over NATS: {ran - failed}/{ran} scenarios as local")
    return 1 if failed or ran == 0 else 0


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    else:
        sys.exit(call(sys.argv[2], sys.argv[3]))
