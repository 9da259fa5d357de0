"""TaskService/ClaimTask and RenewLease through ``rt.tasks``: the queue
workers share, on the embedded store and on PostgreSQL."""

from __future__ import annotations

import time

import pytest
from postgres_server import PostgresServer

from hms_cffi import (
    FailedPreconditionError,
    InvalidArgumentError,
    Runtime,
    StatusCode,
    TaskStatus,
)

S = TaskStatus


def test_claims_take_the_most_urgent_then_the_oldest(rt: Runtime) -> None:
    low = rt.tasks.submit("low")
    high = rt.tasks.submit("high", priority=5)
    low_too = rt.tasks.submit("low too")
    claimed = [rt.tasks.claim("w") for _ in range(3)]
    assert [task.id for task in claimed if task is not None] == [high.id, low.id, low_too.id]
    assert rt.tasks.claim("w") is None


def test_a_claimed_task_runs_for_its_worker(rt: Runtime) -> None:
    submitted = rt.tasks.submit("work")
    assert (submitted.max_attempts, submitted.attempts) == (3, 0)
    task = rt.tasks.claim("worker-1", lease_ms=5000)
    assert task is not None
    assert (task.status, task.claimed_by, task.attempts) == (S.RUNNING, "worker-1", 1)
    lease = task.lease_expires_at.ToMilliseconds() - task.updated_at.ToMilliseconds()
    assert lease == 5000
    done = rt.tasks.complete(task.id, b"ok", revision=task.revision)
    assert (done.status, done.result) == (S.SUCCEEDED, b"ok")


def test_none_is_ready_when_capabilities_or_labels_do_not_fit(rt: Runtime) -> None:
    gpu = rt.tasks.submit("render", required_capabilities=["gpu"], labels={"region": "eu"})
    assert rt.tasks.claim("cpu", capabilities=["cpu"], labels={"region": "eu"}) is None
    assert rt.tasks.claim("us", capabilities=["gpu"], labels={"region": "us"}) is None
    task = rt.tasks.claim("eu-gpu", capabilities=["gpu", "cpu"], labels={"region": "eu"})
    assert task is not None
    assert task.id == gpu.id


def test_bad_claims_are_refused(rt: Runtime) -> None:
    rt.tasks.submit("work")
    with pytest.raises(InvalidArgumentError):
        rt.tasks.claim("")
    with pytest.raises(InvalidArgumentError, match="3600000"):
        rt.tasks.claim("w", lease_ms=3_600_001)
    with pytest.raises(ValueError, match="out of range"):
        rt.tasks.claim("w", lease_ms=-1)
    assert rt.tasks.claim("w") is not None, "nothing was claimed by a refused call"


def test_only_the_holder_renews_a_lease(rt: Runtime) -> None:
    rt.tasks.submit("work")
    task = rt.tasks.claim("holder", lease_ms=1000)
    assert task is not None
    renewed = rt.tasks.renew_lease(task.id, "holder", lease_ms=60_000, revision=task.revision)
    assert renewed.lease_expires_at.ToMilliseconds() > task.lease_expires_at.ToMilliseconds()
    assert renewed.claimed_by == "holder"
    with pytest.raises(FailedPreconditionError):
        rt.tasks.renew_lease(task.id, "intruder")
    assert rt.tasks.get(task.id).claimed_by == "holder"


def test_a_lost_lease_lets_another_worker_claim(rt: Runtime) -> None:
    submitted = rt.tasks.submit("work")
    first = rt.tasks.claim("dies", lease_ms=100)
    assert first is not None
    assert first.id == submitted.id
    assert rt.tasks.claim("waits") is None, "the lease still holds"
    time.sleep(0.3)
    second = rt.tasks.claim("waits")
    assert second is not None
    assert (second.id, second.claimed_by, second.attempts) == (submitted.id, "waits", 2)


def test_retried_failures_end_in_dead_letter(rt: Runtime) -> None:
    submitted = rt.tasks.submit("flaky", max_attempts=2)
    first = rt.tasks.claim("w")
    assert first is not None
    again = rt.tasks.fail(first.id, "try again", code=StatusCode.UNAVAILABLE, retry=True)
    assert (again.status, again.attempts, again.claimed_by) == (S.PENDING, 1, "")
    second = rt.tasks.claim("w")
    assert second is not None
    assert second.id == submitted.id
    dead = rt.tasks.fail(second.id, "still failing", retry=True, revision=second.revision)
    assert (dead.status, dead.attempts) == (S.DEAD_LETTER, 2)
    assert dead.error.message == "still failing"
    assert rt.tasks.claim("w") is None
    assert [t.id for t in rt.tasks.list(statuses=S.DEAD_LETTER)] == [submitted.id]


def test_workers_of_two_runtimes_share_a_postgres_queue(
    postgres_server: PostgresServer,
) -> None:
    store = postgres_server.store_config(postgres_server.fresh_database())
    with Runtime({"store": store}) as first, Runtime({"store": store}) as second:
        ids = {first.tasks.submit(f"task {n}").id for n in range(4)}
        held = [first.tasks.claim("a"), second.tasks.claim("b")]
        held += [first.tasks.claim("a"), second.tasks.claim("b")]
        assert {task.id for task in held if task is not None} == ids
        assert second.tasks.claim("b") is None
        with pytest.raises(FailedPreconditionError):
            second.tasks.renew_lease(next(t for t in held if t is not None).id, "b")
