"""``rt.knowledge``: hms.agent.v1.KnowledgeService."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from hms_cffi.domain._common import Client, pages, revision_of, str_list
from hms_cffi.proto.hms.agent.v1 import agent_pb2

__all__ = ["Knowledge"]

_SERVICE = "hms.agent.v1.KnowledgeService/"
_PUT = _SERVICE + "PutKnowledge"
_GET = _SERVICE + "GetKnowledge"
_QUERY = _SERVICE + "QueryKnowledge"
_DELETE = _SERVICE + "DeleteKnowledge"

Entry = agent_pb2.KnowledgeEntry


class Knowledge(Client):
    """Knowledge entries of the runtime: ``rt.knowledge``.

    ``(namespace, key)`` is unique: :meth:`put` inserts or replaces the entry
    there. Writes take an optional ``revision`` (AbortedError unless it is
    the entry's current one; on a put, a revision for an entry that does not
    exist is AbortedError too).
    """

    __slots__ = ()

    def put(
        self,
        namespace: str,
        key: str,
        *,
        text: str = "",
        content: bytes = b"",
        content_type: str = "",
        tags: Iterable[str] | str = (),
        confidence: float = 0.0,
        source: str = "",
        agent_id: str = "",
        revision: int | None = None,
        entry_id: str = "",
    ) -> agent_pb2.KnowledgeEntry:
        """Inserts or replaces the entry at (``namespace``, ``key``) and
        returns it. Its content is ``text`` or ``content`` (bytes of
        ``content_type``), not both; ``confidence`` is 0..1. ``entry_id``,
        when given, must be the id of the entry already there."""
        entry = agent_pb2.KnowledgeEntry(
            id=entry_id,
            namespace=namespace,
            key=key,
            text=text,
            content=content,
            content_type=content_type,
            tags=str_list(tags),
            confidence=confidence,
            source=source,
            agent_id=agent_id,
            revision=revision_of(revision),
        )
        return self._call(_PUT, agent_pb2.PutKnowledgeRequest(entry=entry), Entry)

    def get(
        self,
        entry_id: str | None = None,
        *,
        namespace: str | None = None,
        key: str | None = None,
    ) -> agent_pb2.KnowledgeEntry:
        """The entry with id ``entry_id``, or the one at ``namespace`` and
        ``key`` (NotFoundError when there is none)."""
        if entry_id is None and (namespace is None or key is None):
            raise TypeError("get() takes an entry id, or namespace= and key=")
        request = agent_pb2.GetKnowledgeRequest(
            id=entry_id or "", namespace=namespace or "", key=key or ""
        )
        return self._call(_GET, request, Entry)

    def query_page(
        self,
        *,
        namespace: str = "",
        key_prefix: str = "",
        tags: Iterable[str] | str = (),
        min_confidence: float = 0.0,
        agent_id: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> tuple[list[agent_pb2.KnowledgeEntry], str]:
        """One page of matching entries, by namespace then key, and the next
        page's token (empty on the last). Filters: ``namespace``, keys
        starting with ``key_prefix``, all of ``tags``, confidence at least
        ``min_confidence``, owner ``agent_id``."""
        request = agent_pb2.QueryKnowledgeRequest(
            namespace=namespace,
            key_prefix=key_prefix,
            tags=str_list(tags),
            min_confidence=min_confidence,
            agent_id=agent_id,
            page_size=page_size,
            page_token=page_token,
        )
        reply = self._call(_QUERY, request, agent_pb2.QueryKnowledgeResponse)
        return list(reply.entries), reply.next_page_token

    #: ``page`` is the same as :meth:`query_page`, named like the others.
    page = query_page

    def query(
        self,
        *,
        namespace: str = "",
        key_prefix: str = "",
        tags: Iterable[str] | str = (),
        min_confidence: float = 0.0,
        agent_id: str = "",
        page_size: int = 0,
    ) -> Iterator[agent_pb2.KnowledgeEntry]:
        """Every matching entry (filters as :meth:`query_page`), page after
        page, lazily."""
        return pages(
            lambda token: self.query_page(
                namespace=namespace,
                key_prefix=key_prefix,
                tags=tags,
                min_confidence=min_confidence,
                agent_id=agent_id,
                page_size=page_size,
                page_token=token,
            )
        )

    def delete(self, entry_id: str, revision: int | None = None) -> None:
        """Deletes an entry. With ``revision``, fails with AbortedError
        unless it is the current one."""
        self._call(
            _DELETE,
            agent_pb2.DeleteKnowledgeRequest(id=entry_id, revision=revision_of(revision)),
            agent_pb2.DeleteKnowledgeResponse,
        )
