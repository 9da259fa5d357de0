#!/usr/bin/env python3
"""The other process of the remote conformance matrix (run_matrix.py
--remote; tests/conformance/README.md, "Remote mode"):

    python3 serve_python.py CONFIG_JSON SCENARIOS_JSON

opens a runtime with CONFIG_JSON (an hms.v1.RuntimeConfig in JSON, whose
`nats.export_services` exports the domain services), registers every host
service of SCENARIOS_JSON with run_python.py's handlers and exports it
(`export=True`), prints "ready", and serves until its stdin closes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# run_python.py is next to this script, on sys.path as its folder.
import run_python

from hms_cffi import Format, Runtime


def main(config: str, scenarios: Path) -> None:
    doc = json.loads(scenarios.read_text(encoding="utf-8"))
    with Runtime(config.encode(), format=Format.JSON) as rt:
        for name, service in doc["services"].items():
            handlers = {m: run_python.handler(b) for m, b in service["methods"].items()}
            rt.register_service(name, handlers, export=True)
        print("ready", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: serve_python.py CONFIG_JSON SCENARIOS_JSON")
    main(sys.argv[1], Path(sys.argv[2]))
