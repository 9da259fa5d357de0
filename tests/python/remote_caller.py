"""A caller process for the load test: THREADS threads call
``faults.v1.Work/Echo`` of remote_worker.py for SECONDS, each request with
an id of its own, and the outcome goes to OUT_FILE as JSON:
``{"ok": {id: worker}, "errors": {code: count}, "mismatched": [...]}``.

    python remote_caller.py NATS_URL SECONDS THREADS PREFIX OUT_FILE
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import Counter

from remote_worker import SERVICE

from hms_cffi import Runtime
from hms_cffi.errors import HmsError


def main(url: str, seconds: str, threads: str, prefix: str, out_file: str) -> int:
    ok: dict[str, str] = {}
    errors: Counter[str] = Counter()
    mismatched: list[str] = []
    lock = threading.Lock()
    until = time.monotonic() + float(seconds)
    with Runtime({"name": prefix, "nats": {"servers": [url]}}) as rt:

        def load(thread: int) -> None:
            n = 0
            while time.monotonic() < until:
                n += 1
                call_id = f"{prefix}-{thread}-{n}"
                try:
                    reply = rt.call(f"{SERVICE}/Echo", {"id": call_id}, timeout=10)
                except HmsError as failed:
                    with lock:
                        errors[failed.code.name] += 1
                    continue
                with lock:
                    if reply.get("id") != call_id:
                        mismatched.append(f"{call_id} got {reply!r}")
                    ok[call_id] = reply["worker"]

        workers = [threading.Thread(target=load, args=(t,)) for t in range(int(threads))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    with open(out_file, "w") as out:
        json.dump({"ok": ok, "errors": dict(errors), "mismatched": mismatched}, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
