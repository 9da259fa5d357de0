"""AgentService through rt.agents: records, revisions, filters, pages."""

from __future__ import annotations

import uuid

import pytest
from helpers import agent_in

from hms_cffi import (
    AbortedError,
    InvalidArgumentError,
    NotFoundError,
    Runtime,
    State,
)
from hms_cffi.proto.hms.agent.v1 import agent_pb2


def test_create_and_get(rt: Runtime) -> None:
    agent = rt.agents.create(
        name="scout",
        kind="researcher",
        version="2.1",
        description="finds things",
        capabilities=["search", "summarize"],
        labels={"team": "blue"},
        metadata={"owner": "ann"},
    )
    assert isinstance(agent, agent_pb2.Agent)
    assert uuid.UUID(agent.id).version == 7
    assert (agent.name, agent.kind, agent.version) == ("scout", "researcher", "2.1")
    assert agent.description == "finds things"
    assert list(agent.capabilities) == ["search", "summarize"]
    assert dict(agent.labels) == {"team": "blue"}
    assert dict(agent.metadata) == {"owner": "ann"}
    assert agent.state == State.INITIALIZED
    assert agent.revision == 1
    assert agent.created_at == agent.updated_at
    assert agent.created_at.seconds > 1_700_000_000
    assert rt.agents.get(agent.id) == agent


def test_create_needs_a_name(rt: Runtime) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        rt.agents.create(name="")
    assert info.value.details["field"] == "agent.name"


def test_ids_are_unique(rt: Runtime) -> None:
    ids = {rt.agents.create(name=f"a{i}").id for i in range(50)}
    assert len(ids) == 50


def test_get_unknown(rt: Runtime) -> None:
    with pytest.raises(NotFoundError) as info:
        rt.agents.get("nope")
    assert info.value.details == {"kind": "agent", "id": "nope"}
    with pytest.raises(InvalidArgumentError):
        rt.agents.get("")


def test_update_replaces_only_the_named_fields(rt: Runtime) -> None:
    agent = rt.agents.create(
        name="a", kind="k", capabilities=["x"], labels={"l": "1"}, metadata={"m": "1"}
    )
    updated = rt.agents.update(agent.id, labels={"l": "2", "new": "y"}, description="d")
    assert dict(updated.labels) == {"l": "2", "new": "y"}
    assert updated.description == "d"
    assert (updated.name, updated.kind, list(updated.capabilities)) == ("a", "k", ["x"])
    assert dict(updated.metadata) == {"m": "1"}
    assert updated.revision == 2
    assert updated.created_at == agent.created_at
    assert updated.updated_at.ToNanoseconds() >= agent.updated_at.ToNanoseconds()
    # Repeated fields and maps are replaced, and may be emptied.
    emptied = rt.agents.update(agent.id, capabilities=[], metadata={}, revision=2)
    assert list(emptied.capabilities) == []
    assert dict(emptied.metadata) == {}
    assert rt.agents.get(agent.id) == emptied


def test_update_with_stale_revision_aborts(rt: Runtime) -> None:
    agent = rt.agents.create(name="a")
    rt.agents.update(agent.id, kind="k1", revision=1)
    with pytest.raises(AbortedError) as info:
        rt.agents.update(agent.id, kind="k2", revision=1)
    assert info.value.details["current_revision"] == "2"
    assert rt.agents.get(agent.id).kind == "k1"


def test_update_refusals(rt: Runtime) -> None:
    agent = rt.agents.create(name="a")
    with pytest.raises(InvalidArgumentError, match="Transition"):
        rt.agents.update(agent.id, state=State.ACTIVE)
    with pytest.raises(InvalidArgumentError):
        rt.agents.update(agent.id, name="")
    with pytest.raises(TypeError, match="no field 'colour'"):
        rt.agents.update(agent.id, colour="red")
    with pytest.raises(TypeError, match="at least one"):
        rt.agents.update(agent.id)
    with pytest.raises(NotFoundError):
        rt.agents.update("nope", name="b")
    assert rt.agents.get(agent.id) == agent


def test_transitions_bump_the_revision(rt: Runtime) -> None:
    agent = rt.agents.create(name="a")
    rt.lifecycle.transition(agent.id, State.ACTIVE)
    now = rt.agents.get(agent.id)
    assert (now.state, now.revision) == (State.ACTIVE, 2)
    with pytest.raises(AbortedError):
        rt.agents.update(agent.id, kind="x", revision=1)


def test_delete(rt: Runtime) -> None:
    agent_id = agent_in(rt, "ACTIVE")
    with pytest.raises(AbortedError):
        rt.agents.delete(agent_id, revision=1)
    rt.agents.delete(agent_id, revision=2)
    with pytest.raises(NotFoundError):
        rt.agents.get(agent_id)
    with pytest.raises(NotFoundError):
        list(rt.lifecycle.history(agent_id))
    with pytest.raises(NotFoundError):
        rt.lifecycle.transition(agent_id, State.PAUSED)
    with pytest.raises(NotFoundError):
        rt.agents.delete(agent_id)
    other = rt.agents.create(name="b")
    rt.agents.delete(other.id)  # no revision: any
    assert list(rt.agents.list()) == []


def test_list_filters(rt: Runtime) -> None:
    a = rt.agents.create(name="a", kind="bot", capabilities=["x", "y"], labels={"t": "1"})
    b = rt.agents.create(name="b", kind="bot", capabilities=["x"], labels={"t": "1", "u": "2"})
    c = rt.agents.create(name="c", kind="human", capabilities=["y"], labels={"t": "2"})
    rt.lifecycle.transition(b.id, State.ACTIVE)
    rt.lifecycle.transition(c.id, State.ERROR)

    def names(**filters: object) -> list[str]:
        return [x.name for x in rt.agents.list(**filters)]  # type: ignore[arg-type]

    assert names() == ["a", "b", "c"]
    assert names(labels={"t": "1"}) == ["a", "b"]
    assert names(labels={"t": "1", "u": "2"}) == ["b"]
    assert names(labels={"t": "3"}) == []
    assert names(capabilities=["x"]) == ["a", "b"]
    assert names(capabilities=["x", "y"]) == ["a"]
    assert names(capabilities="y") == ["a", "c"]
    assert names(states=[State.ACTIVE, State.ERROR]) == ["b", "c"]
    assert names(states=State.INITIALIZED) == ["a"]
    assert names(kind="bot") == ["a", "b"]
    assert names(kind="bot", states=[State.ACTIVE], labels={"t": "1"}) == ["b"]
    assert {x.id for x in rt.agents.list()} == {a.id, b.id, c.id}


@pytest.mark.parametrize("page_size", [1, 3, 7, 10, 29, 30, 31, 0])
def test_pagination_sees_every_agent_exactly_once(rt: Runtime, page_size: int) -> None:
    made = [rt.agents.create(name=f"a{i:02}", labels={"odd": str(i % 2)}).id for i in range(30)]
    assert [a.id for a in rt.agents.list(page_size=page_size)] == made
    odd = [a.id for a in rt.agents.list(labels={"odd": "1"}, page_size=page_size)]
    assert odd == made[1::2]
    # Page by page: no page is larger than asked, the last has no token.
    token, seen, pages = "", [], 0
    while True:
        items, token = rt.agents.page(page_size=page_size, page_token=token)
        assert len(items) <= (page_size or 100)
        seen += [a.id for a in items]
        pages += 1
        if not token:
            break
    assert seen == made
    assert pages == (-(-30 // page_size) if page_size else 1)


def test_pagination_while_records_change(rt: Runtime) -> None:
    made = [rt.agents.create(name=f"a{i}").id for i in range(10)]
    items, token = rt.agents.page(page_size=4)
    rt.agents.delete(made[5])
    newer = rt.agents.create(name="late").id
    rest: list[str] = []
    while token:
        page, token = rt.agents.page(page_size=4, page_token=token)
        rest += [a.id for a in page]
    assert [a.id for a in items] + rest == made[:5] + made[6:] + [newer]


def test_list_is_lazy(rt: Runtime) -> None:
    for i in range(5):
        rt.agents.create(name=f"a{i}")
    it = rt.agents.list(page_size=2)
    first = next(it)
    rt.agents.create(name="later")
    assert [first.name] + [a.name for a in it] == ["a0", "a1", "a2", "a3", "a4", "later"]


def test_bad_page_token(rt: Runtime) -> None:
    with pytest.raises(InvalidArgumentError):
        rt.agents.page(page_token="!!")
