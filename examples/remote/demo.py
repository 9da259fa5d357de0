#!/usr/bin/env python3
"""Remote calls and events across processes and languages, over a real
nats-server started here on a free loopback port: ``python3
examples/remote/demo.py`` (the second half of ``scripts/demo.sh``).

1. A second process joins: ``hms serve`` keeps the agents and tasks (its
   own data folder) and publishes its events to NATS.
2. This process has no agents of its own: it creates them over there, and
   their events flow back to its subscription, each naming its origin.
3. A Python service (``tests/remote/python/greeter.py``, exported with
   ``export=True``) is called from Go, PHP, Ruby and C, each in a process of
   its own, with the same answers and the same errors.

Every process and the server stop on the way out, failure or not.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests" / "python"), str(ROOT / "tests" / "remote")]

from nats_server import started  # noqa: E402
from run import Server, build, environment, run_callers  # noqa: E402

from hms_cffi import Runtime, State, TaskStatus  # noqa: E402

AGENTS = "hms.agent.v1.AgentService"
TASKS = "hms.agent.v1.TaskService"
LIFECYCLE = "hms.agent.lifecycle.v1.LifecycleService"
WORKER = "agents-host"
#: Longest wait for one event to come back over NATS.
EVENT_TIMEOUT_S = 10.0


def say(text: str) -> None:
    print(text, flush=True)


def join_worker(url: str, data_dir: str) -> subprocess.Popen[str]:
    """``hms serve`` in a process of its own; returns once it serves."""
    command = [
        *("serve", "--nats", url, "--name", WORKER, "--data-dir", data_dir),
        *("--export", AGENTS, "--export", TASKS, "--export", LIFECYCLE, "--publish-events"),
    ]
    say(f"$ hms {' '.join(command)}")
    # The `hms` command of this very interpreter, installed or not.
    worker = subprocess.Popen(
        [sys.executable, "-m", "hms_cffi.cli", *command], stdout=subprocess.PIPE, text=True
    )
    assert worker.stdout is not None
    line = worker.stdout.readline().strip()
    if not line.startswith("hms serve:") or worker.poll() is not None:
        worker.kill()
        raise SystemExit(f"demo: hms serve did not start (it said {line!r})")
    say(f"  {line}")
    return worker


def stop_worker(worker: subprocess.Popen[str]) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    out, _ = worker.communicate(timeout=30)
    for line in out.splitlines():
        say(f"  {line}")


def drive_remote_agents(url: str) -> None:
    config = {
        "name": "demo-hub",
        "nats": {"servers": [url], "remote_services": [AGENTS, TASKS, LIFECYCLE]},
    }
    with Runtime(config) as hub:
        events = hub.events.subscribe(["agent.*", "task.*", "lifecycle.*"], origins=WORKER)
        scout = hub.agents.create(name="scout")
        writer = hub.agents.create(name="writer")
        hub.lifecycle.transition(scout.id, State.ACTIVE, reason="ready to work")
        task = hub.tasks.submit(title="find sources")
        hub.tasks.assign(task.id, scout.id)
        hub.tasks.start(task.id)
        hub.tasks.complete(task.id)
        say(f"  created {scout.name} and {writer.name}, activated {scout.name}, ran a task")
        names = {scout.id: scout.name, writer.id: writer.name}
        while True:
            event = events.next(timeout=EVENT_TIMEOUT_S)
            if event is None:
                raise SystemExit(f"demo: the events from {WORKER} stopped coming back")
            which = event.WhichOneof("payload")
            if which == "task":
                what = f"{event.task.title} ({TaskStatus(event.task.status).name})"
            elif which == "lifecycle":
                what = f"{names[event.agent_id]} -> {State(event.lifecycle.new_state).name}"
            else:
                what = event.agent.name
            say(f"  event #{event.sequence} from {event.origin}: {event.kind:<22} {what}")
            if event.kind == "task.succeeded":
                break
        listed = [agent.name for agent in hub.agents.list()]
        say(f"  ListAgents, answered by {WORKER}: {', '.join(sorted(listed))}")


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = environment()
    with tempfile.TemporaryDirectory() as scratch:
        say("> building the Go and C callers")
        programs = build(Path(scratch), env)
        with started() as nats:
            say(f"> nats-server on {nats.url}")
            say("\n> a second process joins: it keeps the agents and publishes their events")
            worker = join_worker(nats.url, str(Path(scratch) / "agents"))
            try:
                say("\n> this process calls the agents over there; their events flow back")
                drive_remote_agents(nats.url)
            finally:
                stop_worker(worker)
            say("\n> a Python service in its own process, called from Go, PHP, Ruby and C")
            greeter = Server(programs["python serve"], nats.url, env)
            try:
                callers = ["go call", "php call", "ruby call", "c call"]
                failed = run_callers(programs, callers, nats.url, "python-server", env)
            finally:
                greeter.stop()
    if failed:
        say(f"demo: FAILED: {', '.join(failed)}")
        return 1
    say("\n> done: every process stopped, nats-server too")
    return 0


if __name__ == "__main__":
    sys.exit(main())
