"""Many runtimes, one PostgreSQL store: 4 processes x 4 threads moving 50
shared agents for 30 s, with the server restarted in the middle. Every
agent's history must be a valid, gapless path of the transition table,
its revision must count every transition, and every transition a process
was told succeeded must be in the history exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from postgres_server import started as postgres_started
from store_transitioner import NEXT

from hms_cffi import Runtime
from hms_cffi.domain.enums import State
from hms_cffi.errors import UnavailableError

PROCESSES = 4
THREADS = 4
AGENTS = 50
SECONDS = float(os.environ.get("HMS_FLEET_SECONDS", "30"))
WORKER = Path(__file__).with_name("store_transitioner.py")


@pytest.mark.slow
def test_processes_sharing_the_store_never_lose_or_interleave_a_transition(
    tmp_path: Path,
) -> None:
    with postgres_started() as server:
        database = server.fresh_database()
        store = server.store_config(database)
        store["postgres"]["connect_timeout_ms"] = "2000"
        config = {"store": store}
        config_path = tmp_path / "config.json"
        config_path.write_text(json.dumps(config))
        with Runtime(config) as rt:
            agents = [rt.agents.create(f"shared-{i}").id for i in range(AGENTS)]
            for agent in agents:
                rt.lifecycle.transition(agent, State.ACTIVE)
        agents_path = tmp_path / "agents.txt"
        agents_path.write_text("\n".join(agents))
        outputs = [tmp_path / f"ok-{i}.jsonl" for i in range(PROCESSES)]
        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    str(WORKER),
                    str(config_path),
                    str(agents_path),
                    str(out),
                    str(SECONDS),
                    str(THREADS),
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for out in outputs
        ]
        # The database goes away for a moment a third of the way in.
        time.sleep(SECONDS / 3)
        server.stop()
        time.sleep(1.0)
        server.start()
        summaries = []
        for worker in workers:
            stdout, _ = worker.communicate(timeout=SECONDS * 3 + 60)
            assert worker.returncode == 0, stdout
            summaries.append(json.loads(stdout.strip().splitlines()[-1]))
        assert sum(s["unavailable"] for s in summaries) > 0, (
            f"no process saw the restart: {summaries}"
        )
        assert all(s["ok"] > 0 for s in summaries), summaries

        reported: dict[str, list[str]] = {}
        for out in outputs:
            for line in out.read_text().splitlines():
                made = json.loads(line)
                reported.setdefault(made["agent"], []).append(made["event_id"])

        with Runtime(config) as rt:
            for agent in agents:
                events = list(rt.lifecycle.history(agent, page_size=1000))
                assert [e.sequence for e in events] == list(range(1, len(events) + 1))
                state = State.INITIALIZED
                for event in events:
                    assert event.previous_state == state, f"{agent} jumps at {event.sequence}"
                    if event.sequence > 1:
                        assert State(event.new_state) in NEXT[state]
                    state = State(event.new_state)
                current = rt.agents.get(agent)
                assert current.state == state
                # Created at revision 1, then one revision per transition.
                assert current.revision == 1 + len(events)
                recorded = [e.event_id for e in events]
                for event_id in reported.get(agent, []):
                    assert recorded.count(event_id) == 1, f"{agent}: {event_id} lost"
            server.stop()
            with pytest.raises(UnavailableError):
                rt.agents.get(agents[0])
