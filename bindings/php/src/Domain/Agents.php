<?php

declare(strict_types=1);

namespace Hms\Domain;

use Hms\Runtime;

/**
 * Agents (hms.agent.v1.AgentService). Agents are arrays with proto field
 * names: id, name, kind, version, description, capabilities, labels,
 * metadata, state (a LifecycleState name), created_at, updated_at, revision.
 */
final class Agents
{
    private const SERVICE = 'hms.agent.v1.AgentService/';

    /** @internal use Runtime::agents() */
    public function __construct(private readonly Runtime $runtime)
    {
    }

    /**
     * Creates an agent (name required); it starts INITIALIZED.
     *
     * @param array<string, mixed> $agent
     * @return array<string, mixed>
     */
    public function create(array $agent): array
    {
        return $this->runtime->call(self::SERVICE . 'CreateAgent', ['agent' => $agent]);
    }

    /** @return array<string, mixed> */
    public function get(string $id): array
    {
        return $this->runtime->call(self::SERVICE . 'GetAgent', ['id' => $id]);
    }

    /**
     * One page of agents: ['agents' => [...], 'next_page_token' => ...].
     * $filter: labels, capabilities, states, kind, page_size, page_token.
     *
     * @param array<string, mixed> $filter
     * @return array<string, mixed>
     */
    public function list(array $filter = []): array
    {
        return $this->runtime->call(self::SERVICE . 'ListAgents', $filter);
    }

    /**
     * Every agent matching $filter, page after page.
     *
     * @param array<string, mixed> $filter
     * @return \Generator<int, array<string, mixed>>
     */
    public function all(array $filter = []): \Generator
    {
        return Pages::walk(fn (array $f): array => $this->list($f), $filter, 'agents');
    }

    /**
     * Replaces the fields named in $mask (name, kind, version, description,
     * capabilities, labels, metadata; empty: all of them) of the agent
     * $agent['id']. A non-zero $agent['revision'] must be the current one
     * (AbortedException otherwise).
     *
     * @param array<string, mixed> $agent
     * @param list<string> $mask
     * @return array<string, mixed>
     */
    public function update(array $agent, array $mask = []): array
    {
        $request = ['agent' => $agent];
        if ($mask !== []) {
            $request['update_mask'] = implode(',', $mask);
        }
        return $this->runtime->call(self::SERVICE . 'UpdateAgent', $request);
    }

    /** Deletes an agent; a non-zero $revision must be the current one. */
    public function delete(string $id, int $revision = 0): void
    {
        $request = ['id' => $id];
        if ($revision !== 0) {
            $request['revision'] = $revision;
        }
        $this->runtime->call(self::SERVICE . 'DeleteAgent', $request);
    }
}
