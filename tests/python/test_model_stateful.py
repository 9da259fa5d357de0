"""Random operation sequences against a plain Python model of DOMAIN.md.

Hypothesis drives agents (create, transitions with and without force), tasks
(submit, assign, start, complete, fail, cancel; with no, the current, or a
stale revision) and knowledge (put and delete, same revision choices) on one
runtime, predicts every answer and error code from the model, and compares
the runtime's records with the model after every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import hypothesis.strategies as st
from helpers import ALLOWED, STATE_NAMES
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    rule,
)

from hms_cffi import (
    AbortedError,
    FailedPreconditionError,
    HmsError,
    NotFoundError,
    Runtime,
    State,
    TaskStatus,
    TransitionType,
)

# -- the model -----------------------------------------------------------------


@dataclass
class AgentModel:
    state: str = "INITIALIZED"
    revision: int = 1
    history: list[tuple[str, str, int]] = field(default_factory=list)  # (from, to, type)


@dataclass
class TaskModel:
    status: str
    agent_id: str
    revision: int = 1


@dataclass
class EntryModel:
    id: str
    text: str
    revision: int = 1


#: Which statuses each task move starts from, and where it goes.
TASK_MOVES: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({"ASSIGNED"}), "RUNNING"),
    "complete": (frozenset({"RUNNING"}), "SUCCEEDED"),
    "fail": (frozenset({"RUNNING"}), "FAILED"),
    "cancel": (frozenset({"PENDING", "ASSIGNED", "RUNNING"}), "CANCELLED"),
}

#: How a write names a revision: not at all, the current one, or a stale one.
REVISIONS = st.sampled_from(["none", "none", "current", "stale"])
KEYS = st.sampled_from(["k1", "k2", "k3"])
#: Targets of transitions, ACTIVE more often so that agents take tasks.
TARGETS = st.sampled_from(["ACTIVE"] * 6 + STATE_NAMES)


def pick_revision(choice: str, current: int | None) -> int | None:
    if choice == "none":
        return None
    if current is None:  # nothing there: any revision is stale
        return 1 if choice == "current" else 2
    return current if choice == "current" else current + 1


def expect_error(exc_type: type[HmsError] | None, call: Any, *args: Any, **kwargs: Any) -> Any:
    """Calls ``call``; with ``exc_type``, asserts it raised exactly that
    (and returns the exception), else returns the result."""
    if exc_type is None:
        return call(*args, **kwargs)
    try:
        call(*args, **kwargs)
    except HmsError as exc:
        assert type(exc) is exc_type, f"expected {exc_type.__name__}, got {exc!r}"
        return exc
    raise AssertionError(f"expected {exc_type.__name__}, the call succeeded")


# -- the machine -----------------------------------------------------------------


class DomainMachine(RuleBasedStateMachine):
    agents = Bundle("agents")  # moved around at random
    workers = Bundle("workers")  # ACTIVE, or PAUSED for a while
    tasks = Bundle("tasks")

    def __init__(self) -> None:
        super().__init__()
        self.rt = Runtime()
        self.agent_model: dict[str, AgentModel] = {}
        self.task_model: dict[str, TaskModel] = {}
        self.entries: dict[str, EntryModel] = {}  # by key, live entries
        self.dead_ids: list[str] = []

    def teardown(self) -> None:
        self.rt.close()

    # -- agents ------------------------------------------------------------------

    @rule(target=agents, name=st.text(min_size=1, max_size=8))
    def create_agent(self, name: str) -> str:
        agent = self.rt.agents.create(name=name)
        assert (agent.name, agent.state, agent.revision) == (name, State.INITIALIZED, 1)
        self.agent_model[agent.id] = AgentModel()
        return agent.id

    @initialize(target=workers)
    def first_worker(self) -> str:
        """Every run starts with one ACTIVE agent, ready to take tasks."""
        return self.create_worker()

    @rule(target=workers)
    def create_worker(self) -> str:
        agent_id: str = self.create_agent("worker")
        self.transition(agent_id, "ACTIVE", False)
        return agent_id

    @rule(agent_id=workers)
    def toggle_worker(self, agent_id: str) -> None:
        """ACTIVE <-> PAUSED, both allowed."""
        state = self.agent_model[agent_id].state
        self.transition(agent_id, "PAUSED" if state == "ACTIVE" else "ACTIVE", False)

    @rule(agent_id=agents, to=TARGETS, force=st.booleans())
    def transition(self, agent_id: str, to: str, force: bool) -> None:
        target = to
        model = self.agent_model[agent_id]
        source = model.state
        allowed = source != "TERMINATED" and (force or target in ALLOWED[source])
        if not allowed:
            exc = expect_error(
                FailedPreconditionError,
                self.rt.lifecycle.transition,
                agent_id,
                State[target],
                force=force,
            )
            assert (exc.details["from"], exc.details["to"]) == (source, target)
            return
        reply = self.rt.lifecycle.transition(agent_id, State[target], force=force)
        kind = TransitionType.FORCED if force else TransitionType.NORMAL
        assert (reply.previous_state, reply.current_state) == (State[source], State[target])
        assert reply.event.transition_type == kind
        assert reply.event.sequence == len(model.history) + 1
        model.state = target
        model.revision += 1
        model.history.append((source, target, kind))

    # -- tasks -------------------------------------------------------------------

    @rule(target=tasks)
    def submit_pending(self) -> Any:
        return self.submit(None)

    @rule(target=tasks, agent_id=workers)
    def submit_to_worker(self, agent_id: str) -> Any:
        return self.submit(agent_id)

    @rule(target=tasks, agent_id=agents)
    def submit_to_agent(self, agent_id: str) -> Any:
        return self.submit(agent_id)

    def submit(self, agent_id: str | None) -> Any:
        if agent_id is not None and self.agent_model[agent_id].state != "ACTIVE":
            expect_error(FailedPreconditionError, self.rt.tasks.submit, "t", agent_id=agent_id)
            return multiple()
        task = self.rt.tasks.submit("t", agent_id=agent_id or "")
        expected = "ASSIGNED" if agent_id else "PENDING"
        assert (TaskStatus(task.status).name, task.revision) == (expected, 1)
        self.task_model[task.id] = TaskModel(expected, agent_id or "")
        return task.id

    @rule(task_id=tasks, agent_id=workers, revision=REVISIONS)
    def assign_to_worker(self, task_id: str, agent_id: str, revision: str) -> None:
        self.assign(task_id, agent_id, revision)

    @rule(task_id=tasks, agent_id=agents, revision=REVISIONS)
    def assign(self, task_id: str, agent_id: str, revision: str) -> None:
        model = self.task_model[task_id]
        rev = pick_revision(revision, model.revision)
        if revision == "stale":
            error: type[HmsError] | None = AbortedError
        elif model.status != "PENDING" or self.agent_model[agent_id].state != "ACTIVE":
            error = FailedPreconditionError
        else:
            error = None
        result = expect_error(error, self.rt.tasks.assign, task_id, agent_id, revision=rev)
        if error is None:
            assert (TaskStatus(result.status).name, result.agent_id) == ("ASSIGNED", agent_id)
            model.status, model.agent_id = "ASSIGNED", agent_id
            model.revision += 1
            assert result.revision == model.revision

    @rule(task_id=tasks, revision=REVISIONS)
    def start_task(self, task_id: str, revision: str) -> None:
        """``start`` once more, so that tasks reach RUNNING often."""
        self.move_task(task_id, "start", revision)

    @rule(task_id=tasks, move=st.sampled_from(sorted(TASK_MOVES)), revision=REVISIONS)
    def move_task(self, task_id: str, move: str, revision: str) -> None:
        model = self.task_model[task_id]
        sources, target = TASK_MOVES[move]
        rev = pick_revision(revision, model.revision)
        if revision == "stale":
            error: type[HmsError] | None = AbortedError
        elif model.status not in sources:
            error = FailedPreconditionError
        else:
            error = None
        call = getattr(self.rt.tasks, move)
        result = expect_error(error, call, task_id, revision=rev)
        if isinstance(result, FailedPreconditionError):
            assert (result.details["from"], result.details["to"]) == (model.status, target)
        if error is None:
            assert TaskStatus(result.status).name == target
            model.status = target
            model.revision += 1
            assert result.revision == model.revision

    # -- knowledge -----------------------------------------------------------------

    @rule(key=KEYS, text=st.text(max_size=5), revision=REVISIONS)
    def put_knowledge(self, key: str, text: str, revision: str) -> None:
        live = self.entries.get(key)
        rev = pick_revision(revision, live.revision if live else None)
        if rev is not None and (live is None or rev != live.revision):
            expect_error(AbortedError, self.rt.knowledge.put, "ns", key, text=text, revision=rev)
            return
        entry = self.rt.knowledge.put("ns", key, text=text, revision=rev)
        if live is None:
            assert entry.revision == 1
            self.entries[key] = EntryModel(entry.id, text)
        else:
            assert (entry.id, entry.revision) == (live.id, live.revision + 1)
            live.revision += 1
            live.text = text

    @rule(key=KEYS, revision=REVISIONS)
    def delete_knowledge(self, key: str, revision: str) -> None:
        live = self.entries.get(key)
        if live is None:
            missing = self.dead_ids[-1] if self.dead_ids else "never-existed"
            expect_error(NotFoundError, self.rt.knowledge.delete, missing)
            return
        rev = pick_revision(revision, live.revision)
        if rev is not None and rev != live.revision:
            expect_error(AbortedError, self.rt.knowledge.delete, live.id, revision=rev)
            return
        self.rt.knowledge.delete(live.id, revision=rev)
        del self.entries[key]
        self.dead_ids.append(live.id)

    @rule(agent_id=consumes(agents))
    def delete_agent(self, agent_id: str) -> None:
        model = self.agent_model.pop(agent_id)
        expect_error(AbortedError, self.rt.agents.delete, agent_id, revision=model.revision + 1)
        self.rt.agents.delete(agent_id, revision=model.revision)
        expect_error(NotFoundError, self.rt.agents.get, agent_id)
        # Its tasks stay, assignee and all.

    # -- the runtime agrees with the model after every step --------------------------

    @invariant()
    def records_match(self) -> None:
        agents = {a.id: a for a in self.rt.agents.list()}
        assert set(agents) == set(self.agent_model)
        for agent_id, model in self.agent_model.items():
            agent = agents[agent_id]
            assert (State(agent.state).name, agent.revision) == (model.state, model.revision)
        tasks = {t.id: t for t in self.rt.tasks.list()}
        assert set(tasks) == set(self.task_model)
        for task_id, tm in self.task_model.items():
            task = tasks[task_id]
            assert (TaskStatus(task.status).name, task.agent_id) == (tm.status, tm.agent_id)
            assert task.revision == tm.revision
        entries = {e.key: e for e in self.rt.knowledge.query(namespace="ns")}
        assert set(entries) == set(self.entries)
        for key, em in self.entries.items():
            assert (entries[key].id, entries[key].text) == (em.id, em.text)
            assert entries[key].revision == em.revision

    @invariant()
    def histories_match(self) -> None:
        for agent_id, model in self.agent_model.items():
            history = list(self.rt.lifecycle.history(agent_id))
            got = [
                (State(e.previous_state).name, State(e.new_state).name, e.transition_type)
                for e in history
            ]
            assert got == model.history
            assert [e.sequence for e in history] == list(range(1, len(history) + 1))


DomainMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestDomainModel = DomainMachine.TestCase
