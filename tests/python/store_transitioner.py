"""A process of the fleet test (test_store_fleet.py): THREADS threads move
the shared agents between ACTIVE, PAUSED and MAINTENANCE for SECONDS
through one runtime on the PostgreSQL store of CONFIG, and write each
transition that returned OK to OUT, one JSON line each. The last line on
stdout is a JSON summary of the errors seen.

    python store_transitioner.py CONFIG AGENTS_FILE OUT SECONDS THREADS
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from pathlib import Path

from hms_cffi import Runtime
from hms_cffi.domain.enums import State
from hms_cffi.errors import FailedPreconditionError, UnavailableError

# Every move here is in the transition table, so only a race refuses one.
NEXT = {
    State.ACTIVE: (State.PAUSED, State.MAINTENANCE),
    State.PAUSED: (State.ACTIVE,),
    State.MAINTENANCE: (State.ACTIVE,),
}


def main() -> None:
    config_path, agents_path, out_path, seconds, threads = sys.argv[1:6]
    config = json.loads(Path(config_path).read_text())
    agents = Path(agents_path).read_text().split()
    deadline = time.monotonic() + float(seconds)
    lock = threading.Lock()
    counts = {"ok": 0, "raced": 0, "unavailable": 0}
    with Runtime(config) as rt, open(out_path, "w") as out:

        def work(seed: int) -> None:
            pick = random.Random(seed)
            while time.monotonic() < deadline:
                agent = pick.choice(agents)
                try:
                    state = rt.lifecycle.state(agent)
                    reply = rt.lifecycle.transition(agent, pick.choice(NEXT[state]))
                except FailedPreconditionError:
                    outcome, line = "raced", None
                except UnavailableError:
                    # The server is restarting: wait a little and go on.
                    outcome, line = "unavailable", None
                    time.sleep(0.05)
                else:
                    outcome = "ok"
                    line = json.dumps(
                        {
                            "agent": agent,
                            "event_id": reply.event.event_id,
                            "sequence": reply.event.sequence,
                        }
                    )
                with lock:
                    counts[outcome] += 1
                    if line is not None:
                        out.write(line + "\n")

        workers = [threading.Thread(target=work, args=(i,)) for i in range(int(threads))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    print(json.dumps(counts), flush=True)


if __name__ == "__main__":
    main()
