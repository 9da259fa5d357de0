#!/usr/bin/env python3
"""Store throughput: writes benchmarks/out/python-store.json.

Operations per second of CreateAgent, a Transition (ACTIVE and PAUSED in
turn on a pool of agents) and ClaimTask + CompleteTask, with 1, 2 and 4
runtimes on one PostgreSQL database, each runtime in a worker process of
its own (THREADS threads calling it), beside the embedded SQLite store of
one runtime in a data_dir (one worker process, the same threads): the
baseline. The PostgreSQL server is a fresh one of tests/python/
postgres_server.py; every (operation, store) pair gets a database (or a
data_dir) of its own.

Rounds are timed by the wall clock: the coordinator gives every worker the
same start and end, each worker counts the operations its threads finished
in between. A figure is the time per operation of all workers together
(1e9 / figure = operations/s), the CASES.md format. While the 4-runtime
rounds run, PostgreSQL samples its own pg_stat_activity (the wait events
of the benchmark's connections in use: idle pooled connections are left
out) and /proc/stat gives the busy share of the
machine's cores: both go into the file as ``where_it_stops``.

    python benchmarks/python/store.py [--out PATH] [--only create_agent,transition,claim_complete]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
QUICK = os.environ.get("HMS_BENCH_QUICK") == "1"
ROUNDS = 3 if QUICK else 7
ROUND_SECONDS = 0.4 if QUICK else 1.5
#: Threads per worker process (one runtime each).
THREADS = 2
RUNTIME_COUNTS = (1, 2, 4)
#: Agents each thread moves between ACTIVE and PAUSED.
POOL_PER_THREAD = 8
#: Tasks a runtime's worker submits before a claim round: more than the
#: round can take (the round fails rather than time an empty queue).
TASKS_FIRST_FILL = 1_000 if QUICK else 4_000
SUBMIT_CHUNK = 250
#: pg_stat_activity samples per second during the 4-runtime rounds.
SAMPLE_HZ = 20

OPERATIONS = {
    "create_agent": "CreateAgent",
    "transition": "Transition ACTIVE <-> PAUSED on a pool of agents",
    "claim_complete": "ClaimTask + CompleteTask of a shared queue",
}
CLAIM = "hms.agent.v1.TaskService/ClaimTask"
COMPLETE = "hms.agent.v1.TaskService/CompleteTask"
SUBMIT = "hms.agent.v1.TaskService/SubmitTask"


# ---------------------------------------------------------------- worker


def _operation(rt: Any, op: str, thread: int, name: str) -> Callable[[], bool]:
    """One operation of ``op`` for thread ``thread`` of worker ``name``;
    returns False when there was nothing to do (an empty task queue)."""
    from hms_cffi import State, TaskStatus
    from hms_cffi.proto.hms.agent.v1 import agent_pb2

    if op == "create_agent":
        create = rt.agents.create

        def create_one() -> bool:
            create(name=name)
            return True

        return create_one
    if op == "transition":
        pool = []
        for _ in range(POOL_PER_THREAD):
            agent_id = rt.agents.create(name=f"{name}-{thread}").id
            rt.lifecycle.transition(agent_id, State.ACTIVE)
            pool.append([agent_id, State.ACTIVE])
        transition = rt.lifecycle.transition
        turn = [0]

        def transition_one() -> bool:
            entry = pool[turn[0] % POOL_PER_THREAD]
            turn[0] += 1
            entry[1] = State.PAUSED if entry[1] == State.ACTIVE else State.ACTIVE
            transition(entry[0], entry[1])
            return True

        return transition_one
    claim, complete = rt.method(CLAIM), rt.method(COMPLETE)
    request = agent_pb2.ClaimTaskRequest(worker_id=f"{name}-{thread}", lease_ms=600_000)

    def claim_complete_one() -> bool:
        claimed = claim(request)
        if not claimed.HasField("task"):
            return False
        task = claimed.task
        done = complete(
            agent_pb2.CompleteTaskRequest(id=task.id, revision=task.revision, result=b"ok")
        )
        assert done.status == TaskStatus.SUCCEEDED, done
        return True

    return claim_complete_one


def _fill(rt: Any, count: int) -> None:
    from hms_cffi.proto.hms.agent.v1 import agent_pb2

    submit = rt.method(SUBMIT)
    for start in range(0, count, SUBMIT_CHUNK):
        n = min(SUBMIT_CHUNK, count - start)
        submit.batch([agent_pb2.SubmitTaskRequest(task=agent_pb2.Task(title="bench"))] * n)


def _round(ops: list[Callable[[], bool]], start: float, end: float) -> dict[str, Any]:
    """One thread per operation, each calling it from ``start`` to ``end``
    (wall clock, shared by every worker)."""
    counts = [0] * len(ops)
    empty: list[bool] = []
    errors: list[str] = []

    def run(t: int) -> None:
        one = ops[t]
        time.sleep(max(0.0, start - time.time()))
        n = 0
        try:
            while time.time() < end:
                if not one():
                    empty.append(True)
                    break
                n += 1
        except Exception as e:  # reported to the coordinator, which fails the case
            errors.append(repr(e))
        counts[t] = n

    cpu = time.process_time()
    threads = [threading.Thread(target=run, args=(t,)) for t in range(len(ops))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {
        "ops": sum(counts),
        "cpu_s": time.process_time() - cpu,
        "empty": bool(empty),
        "errors": errors,
    }


def worker(config: dict[str, Any], op: str, name: str) -> int:
    """A runtime on ``config`` answering the coordinator on stdin/stdout,
    one JSON line each way: {"fill": n} -> {"filled": n}; {"start": t,
    "end": t} -> {"ops": n, "cpu_s": s, "empty": bool}; EOF ends it."""
    from hms_cffi import Runtime

    with Runtime(config) as rt:
        ops = [_operation(rt, op, t, name) for t in range(THREADS)]
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            if "fill" in command:
                _fill(rt, command["fill"])
                print(json.dumps({"filled": command["fill"]}), flush=True)
                continue
            answer = _round(ops, command["start"], command["end"])
            print(json.dumps(answer), flush=True)
    return 0


# ---------------------------------------------------------------- coordinator


class Workers:
    """``count`` worker processes of ``op`` on ``config``."""

    def __init__(self, config: dict[str, Any], op: str, count: int, tag: str) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), *sys.path]))
        self.processes = [
            subprocess.Popen(
                [sys.executable, __file__, "--worker", json.dumps(config), op, f"{tag}-{i}"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for i in range(count)
        ]
        for answer in self.ask_all(None):
            assert answer.get("ready"), answer

    def _read(self, process: subprocess.Popen[str]) -> dict[str, Any]:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"a store worker died (exit {process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask_all(self, command: dict[str, Any] | None) -> list[dict[str, Any]]:
        if command is not None:
            for process in self.processes:
                stdin: IO[str] | None = process.stdin
                assert stdin is not None
                stdin.write(json.dumps(command) + "\n")
                stdin.flush()
        return [self._read(p) for p in self.processes]

    def fill(self, per_worker: int) -> None:
        self.ask_all({"fill": per_worker})

    def close(self) -> None:
        for process in self.processes:
            assert process.stdin is not None
            process.stdin.close()
        for process in self.processes:
            if process.wait(timeout=60) != 0:
                raise RuntimeError(f"a store worker exited {process.returncode}")


def cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


_SAMPLE_SQL = """
CREATE TEMP TABLE hms_bench_waits (kind text, event text, state text);
DO $$
BEGIN
  FOR i IN 1..{count} LOOP
    PERFORM pg_stat_clear_snapshot();
    INSERT INTO hms_bench_waits
      SELECT coalesce(wait_event_type, 'CPU'), coalesce(wait_event, 'running'), state
      FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid()
        AND backend_type = 'client backend' AND state <> 'idle';
    PERFORM pg_sleep({pause});
  END LOOP;
END $$;
SELECT kind, event, state, count(*) FROM hms_bench_waits GROUP BY 1, 2, 3 ORDER BY 4 DESC;
"""


def start_sampler(admin_url: str, seconds: float) -> subprocess.Popen[str]:
    """psql sampling pg_stat_activity inside the server for ``seconds``
    (a loop in one session: no psql start per sample on the shared cores)."""
    from postgres_server import _psql_binary

    sql = _SAMPLE_SQL.format(count=max(1, int(seconds * SAMPLE_HZ)), pause=1 / SAMPLE_HZ)
    return subprocess.Popen(
        [_psql_binary(), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", admin_url]
        + ["-c", sql],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_sampler(process: subprocess.Popen[str], into: Counter[str]) -> None:
    out, err = process.communicate(timeout=120)
    if process.returncode != 0:
        raise RuntimeError(f"sampling pg_stat_activity failed: {err}")
    for line in out.splitlines():
        kind, event, state, count = line.split("|")
        into[f"{kind}:{event} ({state})"] += int(count)


def run_case(
    workers: Workers,
    op: str,
    *,
    waits: Counter[str] | None = None,
    sample_url: str = "",
) -> dict[str, Any]:
    """Warm-up, then ROUNDS rounds; per round ops/s, workers' CPU and the
    machine's busy share."""
    per_round: list[float] = []
    counts: list[int] = []
    busy_shares: list[float] = []
    worker_cpu: list[float] = []
    taken = TASKS_FIRST_FILL
    if op == "claim_complete":
        workers.fill(TASKS_FIRST_FILL // len(workers.processes))
    for r in range(ROUNDS + 1):
        warm_up = r == 0
        seconds = ROUND_SECONDS / 2 if warm_up else ROUND_SECONDS
        if op == "claim_complete" and not warm_up:
            # Twice what the last round took, so the queue never runs dry.
            workers.fill(2 * taken // len(workers.processes) + 1)
        start = time.time() + 0.2
        sampler = None
        if waits is not None and not warm_up:
            sampler = start_sampler(sample_url, seconds)
        ticks0 = cpu_ticks()
        answers = workers.ask_all({"start": start, "end": start + seconds})
        ticks1 = cpu_ticks()
        if sampler is not None and waits is not None:
            finish_sampler(sampler, waits)
        failures = [e for a in answers for e in a["errors"]]
        if failures:
            raise RuntimeError(f"{op}: a worker failed: {failures[0]}")
        if any(a["empty"] for a in answers):
            raise RuntimeError(f"{op}: the task queue ran dry in a round")
        taken = sum(a["ops"] for a in answers)
        if taken == 0:
            raise RuntimeError(f"{op}: no operation finished in a round")
        if warm_up:
            continue
        counts.append(taken)
        per_round.append(seconds * 1e9 / taken)
        busy_shares.append((ticks1[0] - ticks0[0]) / max(1, ticks1[1] - ticks0[1]))
        worker_cpu.append(sum(a["cpu_s"] for a in answers) / seconds)
    q1, median, q3 = statistics.quantiles(per_round, n=4, method="inclusive")
    return {
        "median_ns": round(median, 2),
        "q1_ns": round(q1, 2),
        "q3_ns": round(q3, 2),
        "rounds": len(per_round),
        "iterations": int(statistics.median(counts)),
        "ops_per_s": round(1e9 / median, 1),
        "machine_busy": round(statistics.median(busy_shares), 3),
        "worker_cpu_cores": round(statistics.median(worker_cpu), 2),
    }


def case_id(op: str, store: str) -> str:
    return f"{op}_{store}"


@contextlib.contextmanager
def postgres() -> Iterator[Any]:
    sys.path.insert(0, str(ROOT / "tests" / "python"))
    from postgres_server import started

    with started() as server:
        yield server


def summarize_waits(waits: Counter[str]) -> list[dict[str, Any]]:
    total = sum(waits.values()) or 1
    return [
        {"event": event, "samples": n, "share": round(n / total, 3)}
        for event, n in waits.most_common(8)
    ]


def measure(ops: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any], list[str]]:
    cases: list[dict[str, Any]] = []
    stops: dict[str, Any] = {}
    notes = [
        f"{THREADS} threads per runtime, each runtime in a process of its own; "
        f"{ROUNDS} rounds of {ROUND_SECONDS} s after a warm-up; a figure is the time per "
        "operation of all runtimes together (1e9 / median = operations/s).",
        f"{os.cpu_count()} cores shared by the workers, PostgreSQL and this coordinator; "
        "load average when it started: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()),
    ]
    with postgres() as server, tempfile.TemporaryDirectory(prefix="hms-bench-store-") as tmp:
        from postgres_server import psql

        pg_version = psql(server.admin_url, "SHOW server_version")
        notes.append(f"PostgreSQL {pg_version} (scripts/postgres.sh, default settings)")
        for op in ops:
            what = OPERATIONS[op]
            sqlite = {"data_dir": f"{tmp}/{op}"}
            stores: list[tuple[str, dict[str, Any], int, str, str | None]] = [
                ("sqlite", sqlite, 1, f"{what}: SQLite, one runtime (data_dir)", None)
            ]
            for n in RUNTIME_COUNTS:
                baseline = "sqlite" if n == 1 else "pg_1rt"
                label = f"{what}: PostgreSQL, {n} runtime{'s' if n > 1 else ''}"
                stores.append((f"pg_{n}rt", {}, n, label, baseline))
            for store, store_config, count, label, base in stores:
                config = store_config
                waits: Counter[str] | None = None
                sample_url = ""
                if store.startswith("pg_"):
                    database = server.fresh_database()
                    config = {"store": server.store_config(database)}
                    if count == max(RUNTIME_COUNTS):
                        waits = Counter()
                        sample_url = database.url
                print(f"store: {op} on {store} ...", file=sys.stderr, flush=True)
                workers = Workers(config, op, count, f"{op}-{store}")
                try:
                    figures = run_case(workers, op, waits=waits, sample_url=sample_url)
                finally:
                    workers.close()
                print(
                    f"store: {op} on {store}: {figures['ops_per_s']:,.0f} ops/s",
                    file=sys.stderr,
                    flush=True,
                )
                cases.append(
                    {
                        "id": case_id(op, store),
                        "label": label,
                        **figures,
                        "runtimes": count,
                        "baseline": case_id(op, base) if base else None,
                    }
                )
                if waits is not None:
                    stops[op] = {
                        "runtimes": count,
                        "machine_busy": figures["machine_busy"],
                        "worker_cpu_cores": figures["worker_cpu_cores"],
                        "wait_events": summarize_waits(waits),
                    }
    return cases, stops, notes


def version() -> str:
    import hms_cffi

    abi = ".".join(map(str, hms_cffi.abi_version()))
    return (
        f"CPython {platform.python_version()}, hms_cffi {hms_cffi.__version__} "
        f"(library {hms_cffi.library_version()}, ABI {abi})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--worker", nargs=3, metavar=("CONFIG", "OP", "NAME"), help=argparse.SUPPRESS
    )
    out_dir = Path(os.environ.get("HMS_BENCH_OUT", ROOT / "benchmarks" / "out"))
    parser.add_argument("--out", type=Path, default=out_dir / "python-store.json")
    parser.add_argument("--only", help="operations, comma separated: " + ", ".join(OPERATIONS))
    args = parser.parse_args(argv)
    if args.worker:
        config, op, name = args.worker
        return worker(json.loads(config), op, name)
    ops = list(OPERATIONS) if not args.only else args.only.split(",")
    unknown = [op for op in ops if op not in OPERATIONS]
    if unknown:
        parser.error(f"unknown operation {', '.join(unknown)} (known: {', '.join(OPERATIONS)})")
    cases, stops, notes = measure(ops)
    result = {
        "language": "Python: store throughput",
        "version": version(),
        "notes": notes,
        "cases": cases,
        "where_it_stops": stops,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"store: wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
