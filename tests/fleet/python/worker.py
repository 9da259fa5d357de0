"""A worker of the fleet test, in Python (tests/fleet/README.md).

    python3 worker.py STORE_URL PASSWORD_FILE WORKER_ID OUT_FILE LEASE_MS

Claims tasks from the PostgreSQL store at STORE_URL, completes each with the
revision of its claim and appends its id to OUT_FILE, one a line, once the
completion is committed; exits when no task is PENDING or RUNNING.
"""

from __future__ import annotations

import sys
import time

from hms_cffi import AbortedError, Runtime, TaskStatus

#: How long to wait before asking again while other workers' tasks run.
IDLE_S = 0.05


def main() -> int:
    url, password_file, worker_id, out_file, lease_ms = sys.argv[1:]
    store = {"postgres": {"url": url, "password_file": password_file}}
    completed = 0
    with (
        Runtime({"name": worker_id, "store": store}) as rt,
        open(out_file, "a", buffering=1) as out,
    ):
        while True:
            task = rt.tasks.claim(worker_id, lease_ms=int(lease_ms))
            if task is None:
                unfinished, _ = rt.tasks.page(
                    statuses=[TaskStatus.PENDING, TaskStatus.RUNNING], page_size=1
                )
                if not unfinished:
                    break
                time.sleep(IDLE_S)
                continue
            try:
                rt.tasks.complete(task.id, task.input, revision=task.revision)
            except AbortedError:
                # The lease ran out and another worker claimed the task: it
                # is theirs to complete now.
                continue
            out.write(task.id + "\n")
            completed += 1
    print(f"{worker_id}: completed {completed}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
