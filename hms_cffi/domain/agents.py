"""``rt.agents``: hms.agent.v1.AgentService."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from google.protobuf import field_mask_pb2

from hms_cffi.domain._common import Client, int_list, pages, revision_of, set_fields, str_list
from hms_cffi.domain.enums import State
from hms_cffi.proto.hms.agent.v1 import agent_pb2

__all__ = ["Agents"]

_SERVICE = "hms.agent.v1.AgentService/"
_CREATE = _SERVICE + "CreateAgent"
_GET = _SERVICE + "GetAgent"
_LIST = _SERVICE + "ListAgents"
_UPDATE = _SERVICE + "UpdateAgent"
_DELETE = _SERVICE + "DeleteAgent"

Agent = agent_pb2.Agent


class Agents(Client):
    """Agents of the runtime: ``rt.agents``.

    Every method returns ``hms.agent.v1.Agent`` messages and raises the
    :class:`~hms_cffi.errors.HmsError` subclass of a failure: NotFoundError
    for an unknown id, InvalidArgumentError for a malformed request,
    AbortedError when a given ``revision`` is not the current one.
    """

    __slots__ = ()

    def create(
        self,
        name: str,
        *,
        kind: str = "",
        version: str = "",
        description: str = "",
        capabilities: Iterable[str] = (),
        labels: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> agent_pb2.Agent:
        """Creates an agent (state INITIALIZED, revision 1) and returns it
        with the id, timestamps and revision the core assigned."""
        # Filled in place, empty fields skipped: half the cost of keyword
        # construction plus a copy into the request.
        request = agent_pb2.CreateAgentRequest()
        agent = request.agent
        agent.name = name
        if kind:
            agent.kind = kind
        if version:
            agent.version = version
        if description:
            agent.description = description
        if capabilities:
            agent.capabilities.extend(str_list(capabilities))
        if labels:
            agent.labels.update(labels)
        if metadata:
            agent.metadata.update(metadata)
        return self._call(_CREATE, request, Agent)

    def get(self, agent_id: str) -> agent_pb2.Agent:
        """The agent with id ``agent_id`` (NotFoundError when there is none)."""
        return self._call(_GET, agent_pb2.GetAgentRequest(id=agent_id), Agent)

    def page(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        capabilities: Iterable[str] | str | None = None,
        states: Iterable[State | int] | State | int | None = None,
        kind: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[agent_pb2.Agent], str]:
        """One page of agents, oldest first, and the token of the next page
        (empty on the last). Filters: all of ``labels``, all of
        ``capabilities``, any of ``states``, ``kind``. ``page_size`` 0 is
        the core's default (100; at most 1000)."""
        request = agent_pb2.ListAgentsRequest(
            labels=dict(labels or {}),
            capabilities=str_list(capabilities),
            kind=kind,
            page_size=page_size,
            page_token=page_token,
        )
        request.states.extend(int_list(states))  # type: ignore[arg-type]
        reply = self._call(_LIST, request, agent_pb2.ListAgentsResponse)
        return list(reply.agents), reply.next_page_token

    def list(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        capabilities: Iterable[str] | str | None = None,
        states: Iterable[State | int] | State | int | None = None,
        kind: str = "",
        page_size: int = 0,
    ) -> Iterator[agent_pb2.Agent]:
        """Every matching agent, oldest first, fetching page after page
        lazily (filters as :meth:`page`)."""
        return pages(
            lambda token: self.page(
                labels=labels,
                capabilities=capabilities,
                states=states,
                kind=kind,
                page_size=page_size,
                page_token=token,
            )
        )

    def update(
        self, agent_id: str, *, revision: int | None = None, **fields: Any
    ) -> agent_pb2.Agent:
        """Replaces the given fields of an agent (name, kind, version,
        description, capabilities, labels, metadata) and returns it; the
        update mask is the names given. With ``revision``, fails with
        AbortedError unless it is the agent's current revision. The state
        changes only through ``rt.lifecycle.transition``."""
        if not fields:
            raise TypeError("update() needs at least one field to change")
        agent = agent_pb2.Agent(id=agent_id, revision=revision_of(revision))
        mask = field_mask_pb2.FieldMask(paths=set_fields(agent, fields))
        return self._call(
            _UPDATE, agent_pb2.UpdateAgentRequest(agent=agent, update_mask=mask), Agent
        )

    def delete(self, agent_id: str, revision: int | None = None) -> None:
        """Deletes an agent and its lifecycle history. With ``revision``,
        fails with AbortedError unless it is the current one."""
        self._call(
            _DELETE,
            agent_pb2.DeleteAgentRequest(id=agent_id, revision=revision_of(revision)),
            agent_pb2.DeleteAgentResponse,
        )
