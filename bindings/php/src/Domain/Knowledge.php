<?php

declare(strict_types=1);

namespace Hms\Domain;

use Hms\Runtime;

/**
 * Knowledge (hms.agent.v1.KnowledgeService): entries with id, namespace,
 * key, content (Bytes) and content_type or text, tags, confidence (0..1),
 * source, agent_id; (namespace, key) is unique.
 */
final class Knowledge
{
    private const SERVICE = 'hms.agent.v1.KnowledgeService/';

    /** @internal use Runtime::knowledge() */
    public function __construct(private readonly Runtime $runtime)
    {
    }

    /**
     * Inserts the entry, or replaces the one at its namespace and key (a
     * non-zero revision must be the current one: AbortedException otherwise).
     *
     * @param array<string, mixed> $entry
     * @return array<string, mixed>
     */
    public function put(array $entry): array
    {
        return $this->runtime->call(self::SERVICE . 'PutKnowledge', ['entry' => $entry]);
    }

    /** @return array<string, mixed> */
    public function get(string $id): array
    {
        return $this->runtime->call(self::SERVICE . 'GetKnowledge', ['id' => $id]);
    }

    /** @return array<string, mixed> */
    public function getByKey(string $namespace, string $key): array
    {
        return $this->runtime->call(self::SERVICE . 'GetKnowledge', ['namespace' => $namespace, 'key' => $key]);
    }

    /**
     * One page: ['entries' => [...], 'next_page_token' => ...]. $query:
     * namespace, key_prefix, tags (all of), min_confidence, agent_id,
     * page_size, page_token.
     *
     * @param array<string, mixed> $query
     * @return array<string, mixed>
     */
    public function query(array $query = []): array
    {
        return $this->runtime->call(self::SERVICE . 'QueryKnowledge', $query);
    }

    /**
     * @param array<string, mixed> $query
     * @return \Generator<int, array<string, mixed>>
     */
    public function all(array $query = []): \Generator
    {
        return Pages::walk(fn (array $q): array => $this->query($q), $query, 'entries');
    }

    public function delete(string $id, int $revision = 0): void
    {
        $request = ['id' => $id];
        if ($revision !== 0) {
            $request['revision'] = $revision;
        }
        $this->runtime->call(self::SERVICE . 'DeleteKnowledge', $request);
    }
}
