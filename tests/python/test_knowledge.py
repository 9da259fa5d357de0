"""KnowledgeService through rt.knowledge: (namespace, key) unique, queries, revisions."""

from __future__ import annotations

import pytest

from hms_cffi import (
    AbortedError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    Runtime,
)
from hms_cffi.proto.hms.agent.v1 import agent_pb2


def test_put_and_get(rt: Runtime) -> None:
    entry = rt.knowledge.put(
        "facts",
        "sky",
        text="blue",
        tags=["color", "nature"],
        confidence=0.75,
        source="window",
        agent_id="a1",
    )
    assert isinstance(entry, agent_pb2.KnowledgeEntry)
    assert entry.id
    assert entry.revision == 1
    assert (entry.namespace, entry.key, entry.text) == ("facts", "sky", "blue")
    assert list(entry.tags) == ["color", "nature"]
    assert (entry.confidence, entry.source, entry.agent_id) == (0.75, "window", "a1")
    assert rt.knowledge.get(entry.id) == entry
    assert rt.knowledge.get(namespace="facts", key="sky") == entry
    binary = rt.knowledge.put("facts", "logo", content=b"\x89PNG", content_type="image/png")
    assert (binary.content, binary.content_type, binary.text) == (b"\x89PNG", "image/png", "")


def test_put_replaces_at_the_same_key(rt: Runtime) -> None:
    first = rt.knowledge.put("ns", "k", text="v1")
    second = rt.knowledge.put("ns", "k", text="v2", tags=["t"])
    assert second.id == first.id
    assert second.revision == 2
    assert second.created_at == first.created_at
    assert (second.text, list(second.tags)) == ("v2", ["t"])
    assert [e.id for e in rt.knowledge.query()] == [first.id]
    # Naming the id works when it is the one at that key.
    third = rt.knowledge.put("ns", "k", text="v3", entry_id=first.id, revision=2)
    assert third.revision == 3


def test_revisions(rt: Runtime) -> None:
    entry = rt.knowledge.put("ns", "k", text="v1")
    with pytest.raises(AbortedError):
        rt.knowledge.put("ns", "k", text="v2", revision=7)
    assert rt.knowledge.get(entry.id) == entry
    # A revision for an entry that does not exist: nothing to be at that revision.
    with pytest.raises(AbortedError):
        rt.knowledge.put("ns", "other", text="x", revision=1)
    with pytest.raises(NotFoundError):
        rt.knowledge.get(namespace="ns", key="other")
    with pytest.raises(AbortedError):
        rt.knowledge.delete(entry.id, revision=2)
    rt.knowledge.delete(entry.id, revision=1)
    with pytest.raises(NotFoundError):
        rt.knowledge.get(entry.id)
    with pytest.raises(NotFoundError):
        rt.knowledge.delete(entry.id)


def test_key_and_id_never_move(rt: Runtime) -> None:
    a = rt.knowledge.put("ns", "a", text="1")
    with pytest.raises(FailedPreconditionError):
        rt.knowledge.put("ns", "b", text="2", entry_id=a.id)
    with pytest.raises(NotFoundError):
        rt.knowledge.put("ns", "c", text="2", entry_id="unknown-id")
    assert [e.key for e in rt.knowledge.query()] == ["a"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"namespace": "", "key": "k"}, "entry.namespace"),
        ({"namespace": "n", "key": ""}, "entry.key"),
        ({"namespace": "n", "key": "k", "confidence": 1.5}, "entry.confidence"),
        ({"namespace": "n", "key": "k", "confidence": -0.1}, "entry.confidence"),
        ({"namespace": "n", "key": "k", "text": "t", "content": b"c"}, "entry.content"),
        ({"namespace": "n\0", "key": "k"}, "entry.namespace"),
    ],
)
def test_invalid_entries(rt: Runtime, kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        rt.knowledge.put(**kwargs)  # type: ignore[arg-type]
    assert info.value.details["field"] == field
    assert list(rt.knowledge.query()) == []


def test_get_arguments(rt: Runtime) -> None:
    with pytest.raises(TypeError):
        rt.knowledge.get()
    with pytest.raises(TypeError):
        rt.knowledge.get(namespace="only")
    with pytest.raises(NotFoundError) as info:
        rt.knowledge.get(namespace="n", key="k")
    assert info.value.details == {"namespace": "n", "key": "k"}


def test_query_filters_and_order(rt: Runtime) -> None:
    rows = [
        ("b", "x/1", ["t1", "t2"], 0.9, "a1"),
        ("a", "x/2", ["t1"], 0.5, "a2"),
        ("a", "y/1", ["t2"], 0.2, "a1"),
        ("a", "x/1", ["t1", "t2", "t3"], 1.0, ""),
        ("c", "z", [], 0.0, "a2"),
    ]
    for ns, key, tags, confidence, agent in rows:
        rt.knowledge.put(ns, key, text=key, tags=tags, confidence=confidence, agent_id=agent)

    def keys(**filters: object) -> list[str]:
        return [f"{e.namespace}:{e.key}" for e in rt.knowledge.query(**filters)]  # type: ignore[arg-type]

    # By namespace, then key.
    assert keys() == ["a:x/1", "a:x/2", "a:y/1", "b:x/1", "c:z"]
    assert keys(namespace="a") == ["a:x/1", "a:x/2", "a:y/1"]
    assert keys(key_prefix="x/") == ["a:x/1", "a:x/2", "b:x/1"]
    assert keys(namespace="a", key_prefix="x/") == ["a:x/1", "a:x/2"]
    assert keys(tags=["t1"]) == ["a:x/1", "a:x/2", "b:x/1"]
    assert keys(tags=["t1", "t2"]) == ["a:x/1", "b:x/1"]
    assert keys(tags="t3") == ["a:x/1"]
    assert keys(min_confidence=0.5) == ["a:x/1", "a:x/2", "b:x/1"]
    assert keys(min_confidence=0.95) == ["a:x/1"]
    assert keys(agent_id="a1") == ["a:y/1", "b:x/1"]
    assert keys(namespace="a", tags=["t2"], min_confidence=0.1, agent_id="a1") == ["a:y/1"]
    assert keys(namespace="none") == []


@pytest.mark.parametrize("page_size", [1, 2, 5, 9, 40, 41, 0])
def test_query_pages_see_every_entry_once(rt: Runtime, page_size: int) -> None:
    made = []
    for ns in ("n1", "n2"):
        for i in range(20):
            made.append((ns, f"k{i:02}"))
            rt.knowledge.put(ns, f"k{i:02}", text="v", tags=["even"] if i % 2 == 0 else [])
    seen = [(e.namespace, e.key) for e in rt.knowledge.query(page_size=page_size)]
    assert seen == sorted(made)
    evens = [(e.namespace, e.key) for e in rt.knowledge.query(tags=["even"], page_size=page_size)]
    assert evens == sorted(m for m in made if int(m[1][1:]) % 2 == 0)
    items, token = rt.knowledge.query_page(namespace="n2", page_size=15)
    assert len(items) == 15
    assert token
    items, token = rt.knowledge.page(namespace="n2", page_size=15, page_token=token)
    assert [e.key for e in items] == [f"k{i}" for i in range(15, 20)]
    assert token == ""
    with pytest.raises(InvalidArgumentError):
        rt.knowledge.query_page(page_token="bm90IGEgdG9rZW4")  # base64 without the separator
