#!/usr/bin/env python3
"""Remote calls over NATS, from Python: writes benchmarks/out/python-remote.json.

One nats-server on free loopback ports (tests/python/nats_server.py), and
``hms serve`` worker processes exporting ``hms.sys.v1.System``, measured the
benchmarks/CASES.md way (run.py's Case: calibrated rounds, interleaved):

- ``remote_echo_raw_64``: Echo 64 B through ``Method.call_raw`` of a runtime
  that reaches System over NATS (``remote_services``), one worker;
- ``nats_py_echo_64``: the same request/reply by nats-py alone, to the same
  worker's subject on the same server (its baseline);
- ``grpc_echo_64``: run.py's gRPC loopback comparator, for the same run;
- ``remote_batch_echo_raw_64``: 1,000 such calls in one ``hms_call_batch``,
  per call, against ``remote_echo_raw_64`` (1,000 serial calls);
- ``remote_echo_throughput_<n>w``: 8 threads calling Echo 64 B against a
  queue group of n = 1, 2, 4 workers; time per call, so 1e9 / figure is the
  rate (each group has a subject prefix of its own);
- ``echo_raw_64_transport``: the local raw Echo of a runtime that has a
  transport (the method is local), against ``echo_raw_64`` without one.

    python benchmarks/python/remote.py [--out PATH] [--only ID,ID]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import run
from run import BATCH, ECHO, Case, echo_request, grpc_case, measure, version_string

from hms_cffi import Format, Runtime

sys.path.insert(0, str(run.ROOT / "tests" / "python"))
from nats_server import NatsServer, started

SYSTEM = "hms.sys.v1.System"
#: Caller threads of the throughput cases, and the calls each makes per call of the case.
THREADS = 8
PER_THREAD = 25
WORKER_COUNTS = (1, 2, 4)


@contextmanager
def workers(url: str, prefix: str, count: int) -> Iterator[None]:
    """``count`` ``hms serve`` processes exporting System under ``prefix``."""
    stack = ExitStack()
    with stack, tempfile.TemporaryDirectory(prefix="hms-bench-remote-") as tmp:
        for i in range(count):
            config = Path(tmp) / f"{prefix}-{i}.json"
            config.write_text(json.dumps({"nats": {"subject_prefix": prefix}}))
            process = subprocess.Popen(
                [sys.executable, "-m", "hms_cffi.cli", "serve", "--nats", url]
                + ["--export", SYSTEM, "--name", f"{prefix}-{i}", "--config", str(config)],
                stdout=subprocess.PIPE,
                text=True,
            )
            stack.callback(stop, process)
            assert process.stdout is not None
            line = process.stdout.readline()
            if "serving" not in line:
                raise RuntimeError(f"hms serve did not start: {line!r}")
        yield


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.communicate(timeout=30)


def caller(url: str, prefix: str, remote: bool = True) -> Runtime:
    nats: dict[str, Any] = {"servers": [url], "subject_prefix": prefix}
    if remote:
        nats["remote_services"] = [SYSTEM]
    return Runtime({"name": f"bench-caller-{prefix}", "nats": nats})


class NatsPy:
    """nats-py's request/reply on its own event loop, ``count`` serial
    requests per call (one loop entry per call would time the loop)."""

    def __init__(self, url: str, subject: str, data: bytes, count: int) -> None:
        import nats

        self.loop = asyncio.new_event_loop()
        self.subject, self.data, self.count = subject, data, count
        self.nc = self.loop.run_until_complete(nats.connect(url))

    def requests(self) -> list[bytes]:
        async def serial() -> list[bytes]:
            out = []
            for _ in range(self.count):
                reply = await self.nc.request(self.subject, self.data, timeout=10)
                out.append(reply.data)
            return out

        return self.loop.run_until_complete(serial())

    def close(self) -> None:
        self.loop.run_until_complete(self.nc.close())
        self.loop.close()


def threaded_calls(call: Callable[[bytes], bytes], data: bytes) -> Callable[[], int]:
    """A function making THREADS x PER_THREAD calls of ``call`` at once."""
    pool = ThreadPoolExecutor(THREADS)

    def one_thread() -> int:
        for _ in range(PER_THREAD):
            if call(data) != data:
                raise AssertionError("wrong Echo answer")
        return PER_THREAD

    def all_threads() -> int:
        return sum(f.result() for f in [pool.submit(one_thread) for _ in range(THREADS)])

    all_threads.pool = pool  # type: ignore[attr-defined]
    return all_threads


def build(server: NatsServer, stack: ExitStack) -> tuple[list[Case], dict[str, str]]:
    url = server.url
    data = echo_request(64)
    cases: list[Case] = []
    for count in WORKER_COUNTS:
        stack.enter_context(workers(url, f"w{count}", count))

    def add(case: Case, check: Callable[[Any], bool]) -> None:
        fn, args = case.call()
        if not check(fn(*args)):
            raise AssertionError(f"{case.id}: wrong answer")
        cases.append(case)

    one = stack.enter_context(caller(url, "w1"))
    echo = one.method(ECHO, Format.PROTOBUF)
    add(
        Case(
            "remote_echo_raw_64",
            "Method.call_raw: Echo 64 B served by another process through NATS",
            echo.call_raw,
            (data,),
            baseline="nats_py_echo_64",
        ),
        data.__eq__,
    )
    bare = NatsPy(url, "w1.svc.hms.sys.v1.System.Echo", data, 100)
    stack.callback(bare.close)
    add(
        Case(
            "nats_py_echo_64",
            "nats-py request/reply: the same 64 B request to the same worker's subject",
            bare.requests,
            per_call=bare.count,
        ),
        lambda out: out == [data] * bare.count,
    )
    add(
        Case(
            "remote_batch_echo_raw_64",
            f"Method.batch_raw: {BATCH:,} remote Echo 64 B in one hms_call_batch; per call",
            echo.batch_raw,
            ([data] * BATCH,),
            baseline="remote_echo_raw_64",
            per_call=BATCH,
        ),
        lambda outs: outs == [data] * BATCH,
    )
    for count in WORKER_COUNTS:
        rt = one if count == 1 else stack.enter_context(caller(url, f"w{count}"))
        calls = threaded_calls(rt.method(ECHO, Format.PROTOBUF).call_raw, data)
        stack.callback(calls.pool.shutdown)  # type: ignore[attr-defined]
        add(
            Case(
                f"remote_echo_throughput_{count}w",
                f"{THREADS} threads calling remote Echo 64 B, {count} worker(s) in a queue group; "
                "time per call",
                calls,
                baseline=None if count == 1 else "remote_echo_throughput_1w",
                per_call=THREADS * PER_THREAD,
            ),
            lambda n: n == THREADS * PER_THREAD,
        )
    local = stack.enter_context(Runtime())
    add(
        Case(
            "echo_raw_64",
            "Method.call_raw: local Echo 64 B, no transport",
            local.method(ECHO, Format.PROTOBUF).call_raw,
            (data,),
        ),
        data.__eq__,
    )
    with_transport = stack.enter_context(caller(url, "local", remote=False))
    add(
        Case(
            "echo_raw_64_transport",
            "Method.call_raw: local Echo 64 B in a runtime connected to NATS",
            with_transport.method(ECHO, Format.PROTOBUF).call_raw,
            (data,),
            baseline="echo_raw_64",
        ),
        data.__eq__,
    )
    versions = {"grpcio": grpc_case(stack, cases)}
    cases[-1].baseline = "remote_echo_raw_64"
    return cases, versions


def server_version(server: NatsServer) -> str:
    return str(server.monitor("varz")["version"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    out_dir = Path(os.environ.get("HMS_BENCH_OUT") or run.ROOT / "benchmarks" / "out")
    parser.add_argument("--out", type=Path, default=out_dir / "python-remote.json")
    parser.add_argument("--only", help="comma-separated case ids (default: all)")
    args = parser.parse_args(argv)
    only = set(args.only.split(",")) if args.only else None
    with ExitStack() as stack:
        server = stack.enter_context(started())
        built, versions = build(server, stack)
        cases = [c for c in built if only is None or c.id in only]
        measure(cases, "remote.py")
        rates = {
            c.id: 1e9 / statistics.median(c.samples)
            for c in cases
            if c.id.startswith("remote_echo_throughput_")
        }
        scaling = ", ".join(
            f"{case_id.rsplit('_', 1)[1].removesuffix('w')} worker(s) {rate:,.0f}"
            for case_id, rate in rates.items()
        )
        result = {
            "language": "Python, remote calls over NATS",
            "version": f"{version_string(versions)}, nats-py "
            f"{importlib.metadata.version('nats-py')}, nats-server {server_version(server)}",
            "notes": [
                "One nats-server on 127.0.0.1 and `hms serve` worker processes exporting "
                "hms.sys.v1.System, all on the same machine as the caller.",
                "nats_py_echo_64 sends the same bytes to the same worker as "
                "remote_echo_raw_64: the ratio is what HMS adds on the caller's side.",
                f"remote_echo_throughput_<n>w: {THREADS} caller threads in one process; "
                "1e9 / median is the rate in calls/s.",
                "The remote batch sends its 1,000 calls at once (each its own request in "
                "flight) and waits for every answer.",
                f"Throughput in calls/s (1e9 / median): {scaling}. The workers, the server and "
                "the caller share the machine's cores, so more workers add no cores here: "
                "the table shows the queue group sharing the load, not a cluster's scaling.",
            ],
            "cases": [c.result() for c in cases],
            "memory": [],
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for c in result["cases"]:
        print(f"{c['id']:<28} {c['median_ns']:>14,.1f} ns  [{c['q1_ns']:,.1f} - {c['q3_ns']:,.1f}]")
    print(f"calls/s: {scaling}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
