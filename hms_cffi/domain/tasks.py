"""``rt.tasks``: hms.agent.v1.TaskService."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from hms_cffi.domain._common import Client, TimeLike, int_list, pages, revision_of, timestamp
from hms_cffi.domain.enums import TaskStatus
from hms_cffi.errors import HmsError, StatusCode
from hms_cffi.proto.hms.agent.v1 import agent_pb2
from hms_cffi.proto.hms.v1 import status_pb2

__all__ = ["Tasks"]

_SERVICE = "hms.agent.v1.TaskService/"
_SUBMIT = _SERVICE + "SubmitTask"
_GET = _SERVICE + "GetTask"
_LIST = _SERVICE + "ListTasks"
_ASSIGN = _SERVICE + "AssignTask"
_START = _SERVICE + "StartTask"
_COMPLETE = _SERVICE + "CompleteTask"
_FAIL = _SERVICE + "FailTask"
_CANCEL = _SERVICE + "CancelTask"
_CLAIM = _SERVICE + "ClaimTask"
_RENEW_LEASE = _SERVICE + "RenewLease"

Task = agent_pb2.Task

#: What ``fail`` accepts as the reason of a failure.
ErrorLike = status_pb2.Status | HmsError | str | None


class Tasks(Client):
    """Tasks of the runtime: ``rt.tasks``.

    A task's status moves only forward (PENDING -> ASSIGNED -> RUNNING ->
    SUCCEEDED or FAILED; CANCELLED from any status that is not final) and
    only an ACTIVE agent takes new tasks: any other move raises
    FailedPreconditionError whose ``details`` name the ``rule``, ``from`` and
    ``to``. Every move takes an optional ``revision`` (AbortedError unless it
    is the task's current one) and returns the updated ``hms.agent.v1.Task``.

    Workers share the PENDING tasks through ``claim``: each claim takes one
    task (RUNNING, ``claimed_by`` the worker) under a lease the worker keeps
    with ``renew_lease``; once the lease ends the task can be claimed again.
    """

    __slots__ = ()

    def submit(
        self,
        title: str,
        *,
        agent_id: str = "",
        input: bytes = b"",
        input_content_type: str = "",
        priority: int = 0,
        deadline: TimeLike | None = None,
        labels: Mapping[str, str] | None = None,
        required_capabilities: Iterable[str] = (),
        max_attempts: int = 0,
    ) -> agent_pb2.Task:
        """Submits a task: PENDING, or ASSIGNED at once when ``agent_id``
        names an ACTIVE agent. Only workers with all ``required_capabilities``
        claim it, at most ``max_attempts`` times (0: the core's default, 3)."""
        task = agent_pb2.Task(
            title=title,
            agent_id=agent_id,
            input=input,
            input_content_type=input_content_type,
            priority=priority,
            labels=dict(labels or {}),
            required_capabilities=list(required_capabilities),
            max_attempts=max_attempts,
        )
        if deadline is not None:
            task.deadline.CopyFrom(timestamp(deadline))
        return self._call(_SUBMIT, agent_pb2.SubmitTaskRequest(task=task), Task)

    def get(self, task_id: str) -> agent_pb2.Task:
        """The task with id ``task_id`` (NotFoundError when there is none)."""
        return self._call(_GET, agent_pb2.GetTaskRequest(id=task_id), Task)

    def page(
        self,
        *,
        agent_id: str = "",
        statuses: Iterable[TaskStatus | int] | TaskStatus | int | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[agent_pb2.Task], str]:
        """One page of tasks, oldest first, and the next page's token (empty
        on the last). Filters: the assignee ``agent_id``, any of ``statuses``."""
        request = agent_pb2.ListTasksRequest(
            agent_id=agent_id, page_size=page_size, page_token=page_token
        )
        request.statuses.extend(int_list(statuses))  # type: ignore[arg-type]
        reply = self._call(_LIST, request, agent_pb2.ListTasksResponse)
        return list(reply.tasks), reply.next_page_token

    def list(
        self,
        *,
        agent_id: str = "",
        statuses: Iterable[TaskStatus | int] | TaskStatus | int | None = None,
        page_size: int = 0,
    ) -> Iterator[agent_pb2.Task]:
        """Every matching task, oldest first, page after page (lazily)."""
        return pages(
            lambda token: self.page(
                agent_id=agent_id, statuses=statuses, page_size=page_size, page_token=token
            )
        )

    def assign(self, task_id: str, agent_id: str, *, revision: int | None = None) -> agent_pb2.Task:
        """PENDING -> ASSIGNED to ``agent_id``, which must be ACTIVE."""
        request = agent_pb2.AssignTaskRequest(
            id=task_id, agent_id=agent_id, revision=revision_of(revision)
        )
        return self._call(_ASSIGN, request, Task)

    def start(self, task_id: str, *, revision: int | None = None) -> agent_pb2.Task:
        """ASSIGNED -> RUNNING."""
        request = agent_pb2.StartTaskRequest(id=task_id, revision=revision_of(revision))
        return self._call(_START, request, Task)

    def claim(
        self,
        worker_id: str,
        *,
        capabilities: Iterable[str] = (),
        labels: Mapping[str, str] | None = None,
        lease_ms: int = 0,
    ) -> agent_pb2.Task | None:
        """Claims the most urgent, then oldest, PENDING task whose required
        capabilities are all among ``capabilities`` and which carries all of
        ``labels``: it is RUNNING for ``worker_id`` until its lease of
        ``lease_ms`` (0: the core's default, 30 s) ends. None when no task is
        ready for this worker."""
        request = agent_pb2.ClaimTaskRequest(
            worker_id=worker_id,
            capabilities=list(capabilities),
            labels=dict(labels or {}),
            lease_ms=lease_ms,
        )
        reply = self._call(_CLAIM, request, agent_pb2.ClaimTaskResponse)
        return reply.task if reply.HasField("task") else None

    def renew_lease(
        self,
        task_id: str,
        worker_id: str,
        *,
        lease_ms: int = 0,
        revision: int | None = None,
    ) -> agent_pb2.Task:
        """Extends the lease ``worker_id`` holds on a claimed task to
        ``lease_ms`` from now (0: the core's default). FailedPreconditionError
        when another worker holds the task."""
        request = agent_pb2.RenewLeaseRequest(
            id=task_id, worker_id=worker_id, lease_ms=lease_ms, revision=revision_of(revision)
        )
        return self._call(_RENEW_LEASE, request, Task)

    def complete(
        self,
        task_id: str,
        result: bytes = b"",
        *,
        content_type: str = "",
        revision: int | None = None,
    ) -> agent_pb2.Task:
        """RUNNING -> SUCCEEDED with ``result`` (bytes of ``content_type``)."""
        request = agent_pb2.CompleteTaskRequest(
            id=task_id,
            result=result,
            result_content_type=content_type,
            revision=revision_of(revision),
        )
        return self._call(_COMPLETE, request, Task)

    def fail(
        self,
        task_id: str,
        error: ErrorLike = None,
        *,
        code: StatusCode | int | None = None,
        revision: int | None = None,
        retry: bool = False,
    ) -> agent_pb2.Task:
        """RUNNING -> FAILED. ``error`` says why: an ``hms.v1.Status``, an
        HmsError (its code, message, details and origin), or a message text
        (``code`` defaults to UNKNOWN). With ``retry``, a claimed task goes
        back to PENDING for another claim instead, or to DEAD_LETTER once its
        attempts reach its ``max_attempts``."""
        request = agent_pb2.FailTaskRequest(
            id=task_id,
            error=_status(error, code),
            revision=revision_of(revision),
            retry=retry,
        )
        return self._call(_FAIL, request, Task)

    def cancel(
        self, task_id: str, reason: str = "", *, revision: int | None = None
    ) -> agent_pb2.Task:
        """PENDING, ASSIGNED or RUNNING -> CANCELLED; ``reason`` is kept in
        the task's ``error`` (code CANCELLED)."""
        request = agent_pb2.CancelTaskRequest(
            id=task_id, reason=reason, revision=revision_of(revision)
        )
        return self._call(_CANCEL, request, Task)


def _status(error: ErrorLike, code: StatusCode | int | None) -> status_pb2.Status:
    if isinstance(error, status_pb2.Status):
        status = status_pb2.Status()
        status.CopyFrom(error)
    elif isinstance(error, HmsError):
        status = status_pb2.Status(
            code=int(error.code),
            message=error.message,
            details=dict(error.details),
            origin=error.origin,
        )
    else:
        status = status_pb2.Status(message=error or "")
    if code is not None:
        status.code = int(code)
    return status
