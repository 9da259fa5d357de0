"""Load over NATS: 4 caller processes x 8 threads for 30 s against 2 worker
processes sharing ``faults.v1.Work`` in one queue group.

No call is lost or answered twice (each request has an id of its own, the
worker echoes it and records it), no subscription leaks (the server's
monitoring endpoint counts them), and the workers' RSS stays flat.
``HMS_REMOTE_LOAD_SECONDS`` shortens the run (the default is 30).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from nats_server import NatsServer
from remote_worker import Worker

pytestmark = [pytest.mark.slow, pytest.mark.remote]

CALLERS = 4
THREADS = 8
#: RSS may grow this much from the end of the warm-up to the end of the run:
#: allocator slack on a busy machine, far below what a per-call leak over
#: the run's 100,000s of calls would add (40 bytes a call: 10 MiB).
RSS_GROWTH_KIB = 8 * 1024


def test_load_loses_no_call_and_leaks_nothing(nats_server: NatsServer, tmp_path: Path) -> None:
    seconds = float(os.environ.get("HMS_REMOTE_LOAD_SECONDS", "30"))
    workers = [Worker(nats_server.url, name, tmp_path) for name in ("worker-a", "worker-b")]
    subscriptions_before = nats_server.subscriptions()
    script = Path(__file__).with_name("remote_caller.py")
    outs = [tmp_path / f"caller-{i}.json" for i in range(CALLERS)]
    callers = [
        subprocess.Popen(
            [
                sys.executable,
                str(script),
                nats_server.url,
                str(seconds),
                str(THREADS),
                f"c{i}",
                str(out),
            ]
        )
        for i, out in enumerate(outs)
    ]
    # The warm-up: a sixth of the run, then the first RSS reading.
    time.sleep(seconds / 6)
    warm = [w.rss_kib() for w in workers]
    for process in callers:
        assert process.wait(seconds + 60) == 0
    end = [w.rss_kib() for w in workers]
    subscriptions_after = nats_server.subscriptions()
    answered = [w.stop() for w in workers]

    ok: dict[str, str] = {}
    errors: Counter[str] = Counter()
    for out in outs:
        result = json.loads(out.read_text())
        assert result["mismatched"] == []
        ok.update(result["ok"])
        errors.update(result["errors"])
    print(
        f"\nload: {len(ok)} calls in {seconds:.0f} s, "
        f"{Counter(ok.values())}, errors {dict(errors)}, RSS KiB {warm} -> {end}, "
        f"subscriptions {subscriptions_before} -> {subscriptions_after}"
    )
    assert not errors
    assert len(ok) > 1000
    # Each call that succeeded was answered by exactly one worker, once, and
    # no worker answered a call its caller did not get.
    for worker, ids in zip(workers, answered, strict=True):
        assert len(ids) == len(set(ids)), f"{worker.name} answered some call twice"
        assert all(ok.get(call_id) == worker.name for call_id in ids)
    assert sum(len(ids) for ids in answered) == len(ok)
    assert all(Counter(ok.values())[w.name] > 0 for w in workers)  # both shared the load
    assert subscriptions_after == subscriptions_before
    for worker, before, after in zip(workers, warm, end, strict=True):
        assert after - before < RSS_GROWTH_KIB, f"{worker.name}: RSS {before} -> {after} KiB"
