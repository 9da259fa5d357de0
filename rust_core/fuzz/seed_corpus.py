#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target from tests/vectors.

    python3 rust_core/fuzz/seed_corpus.py [CORPUS_DIR]   (default rust_core/fuzz/corpus)

The golden vectors already cover every edge case the bindings agree on
(unicode, NULs, extremes, maps, unknown enums), so seeds are generated from
them rather than committed as binary blobs. Each target's input layout is
described at the top of its fuzz_targets/<target>.rs; the prefixes below
follow those layouts. Seed files are named by content hash, as libFuzzer
names its own, so re-running adds nothing twice.
"""

import hashlib
import json
import struct
import sys
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
ROOT = FUZZ.parent.parent
VECTORS = ROOT / "tests" / "vectors"

# Same order as TYPES in src/lib.rs.
TYPES = [
    "hms.agent.v1.Agent",
    "hms.v1.CallOptions",
    "hms.v1.RuntimeConfig",
    "hms.v1.Status",
    "hms.agent.v1.Task",
    "hms.agent.v1.KnowledgeEntry",
    "hms.agent.v1.ListAgentsRequest",
    "hms.agent.v1.UpdateAgentRequest",
    "hms.agent.lifecycle.v1.LifecycleEvent",
    "hms.events.v1.Event",
    "hms.sys.v1.EchoRequest",
]
# Format numbers (HMS_FORMAT_*); typed_decode's selector is the number - 1.
FORMATS = {"pb": 1, "cbor": 2, "json": 3}
# Indexes into METHODS of src/lib.rs.
ECHO, HEALTH, LIST_SERVICES, CREATE_AGENT, GET_AGENT, PUT_KNOWLEDGE = 0, 1, 3, 5, 6, 18
# Indexes into the batch target's handle table: RESOLVED without its last
# (freed) entry, then 0, the stale handle, the runtime handle, u64::MAX.
BATCH_ECHO_PB, BATCH_ECHO_CBOR, BATCH_ECHO_JSON, BATCH_CREATE_AGENT_CBOR = 0, 1, 2, 4


def vectors():
    """(type name, case, format, bytes) of every vector file."""
    manifest = json.loads((VECTORS / "manifest.json").read_text())
    for case in manifest["cases"]:
        for fmt, rel in case["files"].items():
            yield case["type"], case["case"], fmt, (VECTORS / rel).read_bytes()


def call(fmt, method, request, options=b""):
    """One call of the call target's input layout."""
    return bytes([fmt, method, len(options)]) + options + struct.pack("<H", len(request)) + request


def batch(calls):
    """A well-formed batch frame (mode 1) of (handle index, request) pairs."""
    ends, end = [], 0
    for _, request in calls:
        end += len(request)
        ends.append(end)
    words = [len(calls)] + [m for m, _ in calls] + ends
    return b"\x01" + struct.pack(f"<{len(words)}Q", *words) + b"".join(r for _, r in calls)


def main():
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else FUZZ / "corpus"
    seeds = {
        t: []
        for t in [
            "cbor_value",
            "json_value",
            "typed_decode",
            "convert",
            "runtime_config",
            "call",
            "batch",
        ]
    }
    by_type = {}
    for type_name, case, fmt, data in vectors():
        by_type.setdefault(type_name, {}).setdefault(case, {})[fmt] = data
        number = FORMATS[fmt]
        if fmt == "cbor":
            seeds["cbor_value"].append(data)
        if fmt == "json":
            seeds["json_value"].append(data)
        if fmt != "pb":
            # Untyped conversion: the empty type name.
            for to in (2, 3):
                seeds["convert"].append(bytes([len(TYPES), number, to]) + data)
        if type_name in TYPES:
            index = TYPES.index(type_name)
            seeds["typed_decode"].append(bytes([index, number - 1]) + data)
            for to in (1, 2, 3):
                seeds["convert"].append(bytes([index, number, to]) + data)
        if type_name == "hms.v1.RuntimeConfig":
            seeds["runtime_config"].append(bytes([number]) + data)

    echo = by_type["hms.sys.v1.EchoRequest"]
    options = by_type["hms.v1.CallOptions"]["full"]
    for case in echo.values():
        for fmt, data in case.items():
            seeds["call"].append(call(FORMATS[fmt], ECHO, data))
            seeds["call"].append(call(FORMATS[fmt], ECHO, data, options[fmt]))
    seeds["call"].append(call(3, HEALTH, b"{}") + call(3, LIST_SERVICES, b"{}"))
    seeds["call"].append(
        call(3, CREATE_AGENT, b'{"agent":{"name":"a","labels":{"k":"v"}}}')
        + call(3, GET_AGENT, b'{"id":"x"}')
        + call(3, PUT_KNOWLEDGE, b'{"entry":{"namespace":"n","key":"k"}}')
    )
    for case in by_type["hms.agent.v1.Agent"].values():
        # CreateAgentRequest { Agent agent = 1; }: the Agent vector as field 1.
        pb = case["pb"]
        seeds["call"].append(
            call(1, CREATE_AGENT, b"\x0a" + bytes([len(pb)]) + pb)
            if len(pb) < 128
            else call(1, CREATE_AGENT, b"")
        )
    seeds["call"].append(call(3, 0xFF, b"{}") + b"\x14hms.sys.v1.System/Nope")

    for case in echo.values():
        seeds["batch"].append(
            batch(
                [
                    (BATCH_ECHO_PB, case["pb"]),
                    (BATCH_ECHO_CBOR, case["cbor"]),
                    (BATCH_ECHO_JSON, case["json"]),
                ]
            )
        )
    seeds["batch"].append(
        batch(
            [
                (BATCH_CREATE_AGENT_CBOR, b"\xa1\x65agent\xa1\x64name\x61a"),
                (9, b""),
                (10, b"{}"),
                (11, b""),
            ]
        )
    )
    seeds["batch"].append(b"\x00" + struct.pack("<QQQ", 1, 0, 0))

    total = 0
    for target, items in seeds.items():
        directory = out / target
        directory.mkdir(parents=True, exist_ok=True)
        for data in items:
            path = directory / hashlib.sha1(data).hexdigest()
            if not path.exists():
                path.write_bytes(data)
                total += 1
    print(
        f"seed_corpus: {sum(len(v) for v in seeds.values())} seeds for {len(seeds)} targets "
        f"in {out} ({total} new)"
    )


if __name__ == "__main__":
    main()
