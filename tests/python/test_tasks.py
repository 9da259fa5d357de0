"""TaskService: statuses move only forward; only ACTIVE agents take tasks."""

from __future__ import annotations

import datetime as dt

import pytest
from helpers import agent_in

from hms_cffi import (
    AbortedError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    Runtime,
    State,
    StatusCode,
    TaskStatus,
)
from hms_cffi.proto.hms.agent.v1 import agent_pb2
from hms_cffi.proto.hms.v1 import status_pb2

S = TaskStatus


def test_enum_matches_the_proto() -> None:
    values = {v.name: v.number for v in agent_pb2.TaskStatus.DESCRIPTOR.values}
    assert {s.proto_name: int(s) for s in TaskStatus} == values
    assert [s.name for s in TaskStatus if s.is_final] == [
        "SUCCEEDED",
        "FAILED",
        "CANCELLED",
        "DEAD_LETTER",
    ]


def test_submit_pending(rt: Runtime) -> None:
    deadline = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    task = rt.tasks.submit(
        "crawl",
        input=b"\x00\x01",
        input_content_type="application/octet-stream",
        priority=7,
        deadline=deadline,
        labels={"queue": "fast"},
    )
    assert task.status == S.PENDING
    assert task.agent_id == ""
    assert (task.title, task.input, task.priority) == ("crawl", b"\x00\x01", 7)
    assert task.input_content_type == "application/octet-stream"
    assert task.deadline.ToDatetime(dt.UTC) == deadline
    assert dict(task.labels) == {"queue": "fast"}
    assert task.revision == 1
    assert task.created_at == task.updated_at
    assert rt.tasks.get(task.id) == task


def test_submit_to_an_active_agent_assigns_at_once(rt: Runtime) -> None:
    agent_id = agent_in(rt, "ACTIVE")
    task = rt.tasks.submit("now", agent_id=agent_id)
    assert (task.status, task.agent_id) == (S.ASSIGNED, agent_id)


@pytest.mark.parametrize("state", ["INITIALIZED", "PAUSED", "ERROR", "TERMINATED"])
def test_only_active_agents_take_tasks(rt: Runtime, state: str) -> None:
    agent_id = agent_in(rt, state)
    with pytest.raises(FailedPreconditionError) as info:
        rt.tasks.submit("no", agent_id=agent_id)
    assert "ACTIVE" in info.value.details["rule"]
    assert info.value.details["agent_state"] == state
    pending = rt.tasks.submit("later")
    with pytest.raises(FailedPreconditionError):
        rt.tasks.assign(pending.id, agent_id)
    assert rt.tasks.get(pending.id) == pending
    assert [t.id for t in rt.tasks.list()] == [pending.id]


def test_bad_requests(rt: Runtime) -> None:
    with pytest.raises(InvalidArgumentError):
        rt.tasks.submit("")
    with pytest.raises(NotFoundError):
        rt.tasks.submit("x", agent_id="nobody")
    with pytest.raises(NotFoundError):
        rt.tasks.get("nothing")
    task = rt.tasks.submit("x")
    with pytest.raises(NotFoundError):
        rt.tasks.assign(task.id, "nobody")
    with pytest.raises(InvalidArgumentError):
        rt.tasks.assign(task.id, "")
    for move in (rt.tasks.start, rt.tasks.complete, rt.tasks.fail, rt.tasks.cancel):
        with pytest.raises(NotFoundError):
            move("nothing")


def test_full_success_path(rt: Runtime) -> None:
    agent_id = agent_in(rt, "ACTIVE")
    task = rt.tasks.submit("work")
    task = rt.tasks.assign(task.id, agent_id, revision=1)
    assert (task.status, task.agent_id, task.revision) == (S.ASSIGNED, agent_id, 2)
    task = rt.tasks.start(task.id, revision=2)
    assert (task.status, task.revision) == (S.RUNNING, 3)
    task = rt.tasks.complete(task.id, b'{"ok":true}', content_type="application/json", revision=3)
    assert task.status == S.SUCCEEDED
    assert (task.result, task.result_content_type) == (b'{"ok":true}', "application/json")
    assert task.revision == 4
    assert task.updated_at.ToNanoseconds() >= task.created_at.ToNanoseconds()
    assert rt.tasks.get(task.id) == task


def test_fail_keeps_the_error(rt: Runtime) -> None:
    agent_id = agent_in(rt, "ACTIVE")
    ids = [rt.tasks.start(rt.tasks.submit(f"t{i}", agent_id=agent_id).id).id for i in range(4)]
    plain = rt.tasks.fail(ids[0], "it broke")
    assert plain.status == S.FAILED
    assert (plain.error.code, plain.error.message) == (StatusCode.UNKNOWN, "it broke")
    coded = rt.tasks.fail(ids[1], "too slow", code=StatusCode.DEADLINE_EXCEEDED)
    assert coded.error.code == StatusCode.DEADLINE_EXCEEDED
    status = status_pb2.Status(code=8, message="quota", details={"limit": "5"}, origin="me")
    assert rt.tasks.fail(ids[2], status).error == status
    error = AbortedError("conflict", details={"k": "v"}, origin="db")
    failed = rt.tasks.fail(ids[3], error)
    assert (failed.error.code, failed.error.message) == (StatusCode.ABORTED, "conflict")
    assert dict(failed.error.details) == {"k": "v"}


def test_cancel_records_the_reason(rt: Runtime) -> None:
    task = rt.tasks.cancel(rt.tasks.submit("x").id, "not needed")
    assert task.status == S.CANCELLED
    assert (task.error.code, task.error.message) == (StatusCode.CANCELLED, "not needed")


def _task_in(rt: Runtime, agent_id: str, status: S) -> agent_pb2.Task:
    task = rt.tasks.submit(f"in {status.name}")
    if status == S.CANCELLED:
        return rt.tasks.cancel(task.id)
    if status == S.PENDING:
        return task
    task = rt.tasks.assign(task.id, agent_id)
    if status == S.ASSIGNED:
        return task
    task = rt.tasks.start(task.id)
    if status == S.RUNNING:
        return task
    if status == S.SUCCEEDED:
        return rt.tasks.complete(task.id)
    return rt.tasks.fail(task.id, "f")


#: Each move: the one status it starts from (None: any non-final) and its target.
MOVES = {
    "assign": ({S.PENDING}, S.ASSIGNED),
    "start": ({S.ASSIGNED}, S.RUNNING),
    "complete": ({S.RUNNING}, S.SUCCEEDED),
    "fail": ({S.RUNNING}, S.FAILED),
    "cancel": ({S.PENDING, S.ASSIGNED, S.RUNNING}, S.CANCELLED),
}
STATUSES = [S.PENDING, S.ASSIGNED, S.RUNNING, S.SUCCEEDED, S.FAILED, S.CANCELLED]


@pytest.mark.parametrize("move", MOVES)
@pytest.mark.parametrize("status", STATUSES, ids=lambda s: s.name)
def test_status_moves_only_forward(rt: Runtime, status: S, move: str) -> None:
    agent_id = agent_in(rt, "ACTIVE")
    task = _task_in(rt, agent_id, status)
    assert task.status == status
    sources, target = MOVES[move]

    def do() -> agent_pb2.Task:
        if move == "assign":
            return rt.tasks.assign(task.id, agent_id)
        fn = {
            "start": rt.tasks.start,
            "complete": rt.tasks.complete,
            "fail": rt.tasks.fail,
            "cancel": rt.tasks.cancel,
        }[move]
        return fn(task.id)

    if status in sources:
        moved = do()
        assert moved.status == target
        assert moved.revision == task.revision + 1
    else:
        with pytest.raises(FailedPreconditionError) as info:
            do()
        details = info.value.details
        assert (details["from"], details["to"]) == (status.name, target.name)
        assert details["rule"]
        assert rt.tasks.get(task.id) == task


def test_stale_revisions_abort(rt: Runtime) -> None:
    agent_id = agent_in(rt, "ACTIVE")
    task = rt.tasks.submit("x")
    with pytest.raises(AbortedError) as info:
        rt.tasks.assign(task.id, agent_id, revision=5)
    assert info.value.details["current_revision"] == "1"
    assert info.value.details["expected_revision"] == "5"
    task = rt.tasks.assign(task.id, agent_id, revision=1)
    with pytest.raises(AbortedError):
        rt.tasks.start(task.id, revision=1)
    task = rt.tasks.start(task.id, revision=2)
    for call in (
        lambda: rt.tasks.complete(task.id, revision=2),
        lambda: rt.tasks.fail(task.id, revision=2),
        lambda: rt.tasks.cancel(task.id, revision=2),
    ):
        with pytest.raises(AbortedError):
            call()
    assert rt.tasks.get(task.id) == task
    assert rt.tasks.cancel(task.id, revision=3).status == S.CANCELLED


def test_list_filters_and_pages(rt: Runtime) -> None:
    a = agent_in(rt, "ACTIVE", "a")
    b = agent_in(rt, "ACTIVE", "b")
    made: list[agent_pb2.Task] = []
    for i in range(23):
        made.append(rt.tasks.submit(f"t{i}", agent_id=(a, b, "")[i % 3]))
    for task in made[:6]:
        if task.agent_id:
            rt.tasks.start(task.id)
    everything = list(rt.tasks.list())
    assert [t.id for t in everything] == [t.id for t in made]  # oldest first
    for size in (1, 4, 10, 23, 50):
        seen = [t.id for t in rt.tasks.list(page_size=size)]
        assert seen == [t.id for t in made]
    items, token = rt.tasks.page(page_size=20)
    assert len(items) == 20
    assert token
    items, token = rt.tasks.page(page_size=20, page_token=token)
    assert len(items) == 3
    assert token == ""
    of_a = list(rt.tasks.list(agent_id=a, page_size=2))
    assert [t.id for t in of_a] == [t.id for t in made if t.agent_id == a]
    running = list(rt.tasks.list(statuses=S.RUNNING))
    assert len(running) == 4
    assert all(t.status == S.RUNNING for t in running)
    pending_or_running = list(rt.tasks.list(statuses=[S.PENDING, S.RUNNING], page_size=3))
    assert len(pending_or_running) == 4 + sum(1 for t in made if not t.agent_id)
    assert list(rt.tasks.list(agent_id=b, statuses=[S.SUCCEEDED])) == []
    with pytest.raises(InvalidArgumentError):
        rt.tasks.page(page_token="%%%")


def test_tasks_of_a_paused_agent_may_still_run(rt: Runtime) -> None:
    """Only *new* tasks need an ACTIVE agent: one assigned before a pause
    starts and completes."""
    agent_id = agent_in(rt, "ACTIVE")
    task = rt.tasks.submit("x", agent_id=agent_id)
    rt.lifecycle.transition(agent_id, State.PAUSED)
    task = rt.tasks.start(task.id)
    assert rt.tasks.complete(task.id).status == S.SUCCEEDED
