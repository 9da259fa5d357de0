#!/usr/bin/env python3
"""The task queue shared by a fleet of workers in three languages, on a real
PostgreSQL server started here (tests/fleet/README.md).

    python3 tests/fleet/run.py

1. builds the Go worker against rust_core/target/release;
2. starts PostgreSQL (scripts/postgres.sh, through tests/python's fixture)
   and submits 10,000 tasks from Python;
3. starts 8 worker processes, 3 in Python, 3 in Go and 2 in Ruby, each with
   its own runtime on the same database, claiming with a 2 s lease;
4. kill -9's one Go and one Ruby worker while each holds a claimed task;
5. once the others have emptied the queue, checks that every task
   SUCCEEDED, that each was completed by exactly one worker (its id in that
   worker's output file only), and that the tasks the killed workers held
   were claimed again after their leases ended (attempts 2) and completed by
   a worker still alive.

PostgreSQL and every worker are stopped on the way out, failure or not.
"""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "python"))

from postgres_server import Database, PostgresServer, psql, started  # noqa: E402
from programs import LIBRARY, build_go, environment  # noqa: E402

from hms_cffi import Runtime, TaskStatus  # noqa: E402
from hms_cffi.proto.hms.agent.v1 import agent_pb2  # noqa: E402

TASKS = 10_000
LEASE_MS = 2000
#: Worker processes by language; the first of the two named in VICTIMS die.
FLEET = {"python": 3, "go": 3, "ruby": 2}
VICTIMS = ("go-1", "ruby-1")
#: Completions a victim makes before it is killed: it is well into the run.
KILL_AFTER = 200
SUBMITTERS = 4
#: Longest the whole queue may take to drain once the workers start.
DRAIN_TIMEOUT_S = 120.0
PROGRESS_EVERY_S = 2.0


def say(text: str) -> None:
    print(f"fleet: {text}", flush=True)


def build_go_worker(scratch: Path, env: dict[str, str]) -> Path:
    if not LIBRARY.is_file():
        raise SystemExit(f"fleet: {LIBRARY} is missing: cargo build --release in rust_core")
    program = scratch / "go-worker"
    say("building the Go worker (go build, the binding linked by cgo-env.sh)")
    build_go(HERE / "go", program, env)
    return program


def fresh_store(server: PostgresServer) -> tuple[Database, dict[str, dict[str, str]]]:
    """A fresh database and the store section of every runtime of the fleet
    on it."""
    database = server.fresh_database()
    # What is checked here is who completes what, not durability across a
    # crash of the server (tests/python covers that): commits need not wait
    # for the disk, which keeps the run short on a busy machine.
    psql(server.admin_url, f"ALTER DATABASE {database.name} SET synchronous_commit = off")
    return database, server.store_config(database)


def submit(rt: Runtime) -> set[str]:
    start = time.monotonic()
    with ThreadPoolExecutor(SUBMITTERS) as pool:
        ids = set(
            pool.map(lambda n: rt.tasks.submit(f"task {n}", input=b"%d" % n).id, range(TASKS))
        )
    elapsed = time.monotonic() - start
    say(f"submitted {len(ids)} tasks in {elapsed:.1f} s ({len(ids) / elapsed:.0f} tasks/s)")
    return ids


class Worker:
    def __init__(self, name: str, command: list[str], out: Path, env: dict[str, str]) -> None:
        self.name = name
        self.out = out
        self.process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        self.killed = False

    def completed(self) -> list[str]:
        return self.out.read_text().split() if self.out.exists() else []

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


def start_fleet(
    scratch: Path, store: dict[str, dict[str, str]], go_worker: Path, env: dict[str, str]
) -> dict[str, Worker]:
    commands = {
        "python": [sys.executable, str(HERE / "python" / "worker.py")],
        "go": [str(go_worker)],
        "ruby": ["ruby", "-w", str(HERE / "ruby" / "worker.rb")],
    }
    postgres = store["postgres"]
    workers = {}
    for language, count in FLEET.items():
        for n in range(1, count + 1):
            name = f"{language}-{n}"
            out = scratch / f"{name}.ids"
            args = [postgres["url"], postgres["password_file"], name, str(out), str(LEASE_MS)]
            workers[name] = Worker(name, [*commands[language], *args], out, env)
    say(f"started {len(workers)} workers: {', '.join(workers)}")
    return workers


def held_by(rt: Runtime, worker: str) -> dict[str, int]:
    """The tasks ``worker`` holds, each with the end of its lease (ms)."""
    running = rt.tasks.list(statuses=TaskStatus.RUNNING, page_size=1000)
    return {t.id: t.lease_expires_at.ToMilliseconds() for t in running if t.claimed_by == worker}


def kill_holding_a_task(rt: Runtime, victim: Worker) -> dict[str, int]:
    """kill -9 of ``victim`` at a moment it holds a claimed task; the tasks
    it held then. Stopped first (SIGSTOP) so that what it holds cannot
    change while the store is asked."""
    while len(victim.completed()) < KILL_AFTER:
        if victim.process.poll() is not None:
            raise SystemExit(f"fleet: {victim.name} ended before it could be killed")
        time.sleep(0.01)
    while True:
        victim.process.send_signal(signal.SIGSTOP)
        # A commit the server was already making for it lands first.
        time.sleep(0.05)
        if held_by(rt, victim.name):
            break
        victim.process.send_signal(signal.SIGCONT)
        time.sleep(0.002)
    victim.process.kill()
    victim.process.wait()
    victim.killed = True
    # Its connections are gone: what it held is what stayed RUNNING for it.
    time.sleep(0.2)
    held = held_by(rt, victim.name)
    say(
        f"kill -9 {victim.name} after {len(victim.completed())} completions, holding {sorted(held)}"
    )
    return held


def drain(workers: dict[str, Worker]) -> None:
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    next_progress = time.monotonic()
    while any(w.process.poll() is None for w in workers.values() if not w.killed):
        if time.monotonic() > deadline:
            raise SystemExit(f"fleet: the queue did not drain in {DRAIN_TIMEOUT_S:.0f} s")
        if time.monotonic() >= next_progress:
            done = sum(len(w.completed()) for w in workers.values())
            say(f"{done}/{TASKS} completed")
            next_progress += PROGRESS_EVERY_S
        time.sleep(0.1)
    for worker in workers.values():
        if worker.killed:
            continue
        assert worker.process.stderr is not None
        report = worker.process.stderr.read().strip()
        if worker.process.returncode != 0:
            raise SystemExit(
                f"fleet: {worker.name} failed ({worker.process.returncode}):\n{report}"
            )
        say(f"{worker.name} finished: {report}")


def every_task(rt: Runtime) -> Iterator[agent_pb2.Task]:
    return rt.tasks.list(page_size=1000)


def check(
    rt: Runtime, submitted: set[str], workers: dict[str, Worker], held: dict[str, dict[str, int]]
) -> None:
    completers: dict[str, list[str]] = collections.defaultdict(list)
    for worker in workers.values():
        for task_id in worker.completed():
            completers[task_id].append(worker.name)
    tasks = {task.id: task for task in every_task(rt)}
    problems = []
    if set(tasks) != submitted:
        problems.append(f"{len(set(tasks) ^ submitted)} tasks differ from those submitted")
    not_done = [t.id for t in tasks.values() if t.status != TaskStatus.SUCCEEDED]
    if not_done:
        problems.append(f"{len(not_done)} tasks did not succeed, e.g. {not_done[:3]}")
    twice = {task_id: names for task_id, names in completers.items() if len(names) > 1}
    if twice:
        problems.append(f"{len(twice)} tasks completed twice, e.g. {list(twice.items())[:3]}")
    # A killed worker may die after a completion committed and before it
    # wrote the id: the store then names it, with the single attempt it made.
    unrecorded = [task for task_id, task in tasks.items() if task_id not in completers]
    for task in unrecorded:
        if task.claimed_by not in held or task.attempts != 1:
            problems.append(f"{task.id} is in no output file (claimed by {task.claimed_by!r})")
    for task_id, names in completers.items():
        if task_id in tasks and tasks[task_id].claimed_by != names[0]:
            problems.append(
                f"{task_id} is in {names[0]}'s file but the store says {tasks[task_id].claimed_by}"
            )
    for victim, ids in held.items():
        if not ids:
            problems.append(f"{victim} held no task when it was killed")
        for task_id, lease_end in ids.items():
            task = tasks[task_id]
            if task.attempts != 2 or task.claimed_by in held or task.claimed_by == "":
                problems.append(
                    f"{task_id}, held by {victim} when it was killed, was completed by "
                    f"{task.claimed_by!r} after {task.attempts} attempts (want 2, another worker)"
                )
            if task.updated_at.ToMilliseconds() < lease_end:
                problems.append(f"{task_id} was completed before {victim}'s lease on it ended")
    if problems:
        raise SystemExit("fleet: FAILED\n  " + "\n  ".join(problems))
    reclaimed = sum(1 for t in tasks.values() if t.attempts > 1)
    counts = {w.name: len(w.completed()) for w in workers.values()}
    say(f"completions per worker: {counts}")
    say(
        f"every task SUCCEEDED once; {len(unrecorded)} completed by a killed worker just before "
        f"its end; {reclaimed} claimed twice (the killed workers' held tasks: "
        f"{sum(len(ids) for ids in held.values())})"
    )


def main() -> int:
    env = environment()
    with tempfile.TemporaryDirectory(prefix="hms-fleet-") as scratch_name:
        scratch = Path(scratch_name)
        go_worker = build_go_worker(scratch, env)
        say("starting PostgreSQL (scripts/postgres.sh)")
        with started() as server:
            database, store = fresh_store(server)
            with Runtime({"name": "fleet-runner", "store": store}) as rt:
                submitted = submit(rt)
                # Statistics after the bulk load, as autovacuum would take
                # within a minute: without them the planner sorts every
                # claimable row for each claim instead of walking the index.
                psql(database.url, "ANALYZE tasks")
                workers = start_fleet(scratch, store, go_worker, env)
                try:
                    start = time.monotonic()
                    held = {name: kill_holding_a_task(rt, workers[name]) for name in VICTIMS}
                    drain(workers)
                    elapsed = time.monotonic() - start
                    say(
                        f"the fleet drained the queue in {elapsed:.1f} s "
                        f"({TASKS / elapsed:.0f} tasks/s claimed and completed)"
                    )
                    check(rt, submitted, workers, held)
                finally:
                    for worker in workers.values():
                        worker.stop()
    say("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
