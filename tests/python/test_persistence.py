"""RuntimeConfig.data_dir: everything survives a restart and a SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hms_cffi import FailedPreconditionError, Runtime, State, TaskStatus


def snapshot(rt: Runtime) -> dict[str, Any]:
    """Every record of the runtime, as comparable messages."""
    agents = list(rt.agents.list())
    return {
        "agents": agents,
        "tasks": list(rt.tasks.list()),
        "knowledge": list(rt.knowledge.query()),
        "history": {a.id: list(rt.lifecycle.history(a.id)) for a in agents},
    }


def populate(rt: Runtime) -> None:
    a = rt.agents.create(name="a", capabilities=["x"], labels={"l": "1"}, metadata={"m": "2"})
    b = rt.agents.create(name="b")
    gone = rt.agents.create(name="gone")
    rt.lifecycle.transition(a.id, State.ACTIVE, reason="go", metadata={"k": "v"})
    rt.lifecycle.transition(b.id, State.ERROR, reason="broken")
    rt.lifecycle.transition(b.id, State.ACTIVE, force=True)
    rt.agents.update(a.id, description="updated")
    rt.agents.delete(gone.id)
    t1 = rt.tasks.submit("one", agent_id=a.id, input=b"in", priority=3)
    rt.tasks.complete(rt.tasks.start(t1.id).id, b"out", content_type="text/plain")
    t2 = rt.tasks.start(rt.tasks.submit("two", agent_id=b.id).id)
    rt.tasks.fail(t2.id, "nope")
    rt.tasks.submit("three")
    rt.knowledge.put("ns", "k1", text="v1", tags=["t"], confidence=0.5, agent_id=a.id)
    rt.knowledge.put("ns", "k1", text="v1b")
    rt.knowledge.put("ns", "bin", content=b"\x00\xff", content_type="application/x")
    dead = rt.knowledge.put("ns", "dead", text="x")
    rt.knowledge.delete(dead.id)


def test_everything_survives_a_restart(tmp_path: Path) -> None:
    with Runtime({"data_dir": str(tmp_path)}) as rt:
        assert rt.health()["storage"] == "sqlite"
        populate(rt)
        before = snapshot(rt)
    assert len(before["agents"]) == 2
    assert len(before["tasks"]) == 3
    assert len(before["knowledge"]) == 2
    with Runtime({"data_dir": str(tmp_path)}) as rt:
        after = snapshot(rt)
        assert after == before
        # Life goes on where it stopped: revisions and sequences continue.
        a = before["agents"][0]
        reply = rt.lifecycle.transition(a.id, State.PAUSED)
        assert reply.event.sequence == len(before["history"][a.id]) + 1
        assert rt.agents.get(a.id).revision == a.revision + 1
        entry = rt.knowledge.get(namespace="ns", key="k1")
        assert rt.knowledge.put("ns", "k1", text="v1c", revision=entry.revision).revision == 3
        pending = next(rt.tasks.list(statuses=[TaskStatus.PENDING]))
        rt.tasks.cancel(pending.id)
        changed = snapshot(rt)
    with Runtime({"data_dir": str(tmp_path)}) as rt:
        assert snapshot(rt) == changed


def test_in_memory_runtimes_forget(tmp_path: Path) -> None:
    with Runtime() as rt:
        assert rt.health()["storage"] == "memory"
        rt.agents.create(name="a")
    with Runtime() as rt:
        assert list(rt.agents.list()) == []


def test_second_runtime_on_one_data_dir_fails(tmp_path: Path) -> None:
    with Runtime({"data_dir": str(tmp_path)}) as rt:
        agent = rt.agents.create(name="a")
        with pytest.raises(FailedPreconditionError) as info:
            Runtime({"data_dir": str(tmp_path)})
        assert "in use" in info.value.message
        assert info.value.details["data_dir"] == str(tmp_path)
        # Another process is refused as well.
        code = textwrap.dedent(
            f"""
            import sys
            from hms_cffi import FailedPreconditionError, Runtime
            try:
                Runtime({{"data_dir": {str(tmp_path)!r}}})
            except FailedPreconditionError:
                sys.exit(42)
            """
        )
        assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 42
        # The first runtime is unharmed.
        assert rt.agents.get(agent.id) == agent
    # Freed, the folder can be opened again.
    with Runtime({"data_dir": str(tmp_path)}) as rt:
        assert [a.id for a in rt.agents.list()] == [agent.id]


def test_unusable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(FailedPreconditionError):
        Runtime({"data_dir": str(blocker / "sub")})


CHILD = textwrap.dedent(
    """
    import sys
    from hms_cffi import Runtime, State

    rt = Runtime({"data_dir": sys.argv[1]})
    i = 0
    while True:
        agent = rt.agents.create(name=f"a{i}")
        print("committed agent", agent.id, flush=True)
        task = rt.tasks.submit(f"t{i}")
        print("committed task", task.id, flush=True)
        entry = rt.knowledge.put("ns", f"k{i:05}", text=str(i))
        print("committed knowledge", entry.id, flush=True)
        event = rt.lifecycle.transition(agent.id, State.ACTIVE).event
        print("committed transition", agent.id, event.event_id, flush=True)
        i += 1
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("lines", [1, 7, 200])
def test_committed_changes_survive_sigkill(tmp_path: Path, lines: int) -> None:
    """A child commits records and prints each id once the call returned OK;
    it is SIGKILLed right after the parent reads the n-th line. Every printed
    record is there when the data_dir is reopened."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    committed: list[list[str]] = []
    try:
        for line in child.stdout:
            words = line.split()
            assert words[0] == "committed", line
            committed.append(words[1:])
            if len(committed) == lines:
                child.send_signal(signal.SIGKILL)
                break
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert len(committed) == lines
    with Runtime({"data_dir": str(tmp_path)}) as rt:
        for kind, *ids in committed:
            if kind == "agent":
                assert rt.agents.get(ids[0]).id == ids[0]
            elif kind == "task":
                assert rt.tasks.get(ids[0]).status == TaskStatus.PENDING
            elif kind == "knowledge":
                assert rt.knowledge.get(ids[0]).id == ids[0]
            else:
                agent_id, event_id = ids
                assert rt.lifecycle.state(agent_id) == State.ACTIVE
                history = list(rt.lifecycle.history(agent_id))
                assert [e.event_id for e in history] == [event_id]
        # The reopened store works on.
        rt.agents.create(name="after")
