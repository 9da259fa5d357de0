<?php

declare(strict_types=1);

namespace Hms\Domain;

use Hms\Runtime;

/**
 * Lifecycle (hms.agent.lifecycle.v1.LifecycleService): states INITIALIZED,
 * ACTIVE, PAUSED, SUSPENDED, SHUTTING_DOWN, TERMINATED, MAINTENANCE, ERROR,
 * UPGRADING, RECOVERING (names or numbers); transitions outside the table
 * fail with FailedPreconditionException unless forced.
 */
final class Lifecycle
{
    private const SERVICE = 'hms.agent.lifecycle.v1.LifecycleService/';

    /** @internal use Runtime::lifecycle() */
    public function __construct(private readonly Runtime $runtime)
    {
    }

    /**
     * state, previous_state, since, time_in_state_ms, error (in ERROR).
     *
     * @return array<string, mixed>
     */
    public function state(string $agentId): array
    {
        return $this->runtime->call(self::SERVICE . 'GetState', ['agent_id' => $agentId]);
    }

    /**
     * Moves an agent to $target. $options: force, reason, initiated_by,
     * timeout_ms (of each blocking hook), metadata, transition_type. Blocking
     * hooks run first and can veto (their error is thrown here).
     *
     * @param array<string, mixed> $options
     * @return array<string, mixed> previous_state, current_state, event
     */
    public function transition(string $agentId, string|int $target, array $options = []): array
    {
        return $this->runtime->call(
            self::SERVICE . 'Transition',
            ['agent_id' => $agentId, 'target_state' => $target] + $options,
        );
    }

    /**
     * One page of an agent's transitions, oldest first: ['events' => [...],
     * 'next_page_token' => ...]. $options: transition_type, start_time,
     * end_time (RFC 3339), page_size, page_token.
     *
     * @param array<string, mixed> $options
     * @return array<string, mixed>
     */
    public function history(string $agentId, array $options = []): array
    {
        return $this->runtime->call(self::SERVICE . 'GetHistory', ['agent_id' => $agentId] + $options);
    }

    /**
     * Registers a PHP callable as a hook: fn(array $invocation): mixed gets
     * an hms.agent.lifecycle.v1.HookInvocation (hook_id, hook_name, blocking,
     * event) and vetoes a blocking transition by throwing (an HmsException
     * keeps its code; anything else is HMS_HANDLER_ERROR). $options:
     * agent_ids, from_states, to_states, blocking, timeout_ms, name.
     *
     * The callable runs as a PHP service method (caller thread only): it
     * fires during transitions started from PHP on this thread; a transition
     * started elsewhere reaches it as HMS_UNAVAILABLE.
     *
     * @param array<string, mixed> $options
     */
    public function registerHook(callable $hook, array $options = []): Hook
    {
        $name = 'hms.php.hooks.Hook' . bin2hex(random_bytes(8));
        $service = $this->runtime->registerService(
            $name,
            ['Invoke' => static fn (mixed $invocation): mixed => $hook($invocation ?? [])],
            description: 'PHP lifecycle hook' . (isset($options['name']) ? ' ' . $options['name'] : ''),
        );
        try {
            $reply = $this->runtime->call(self::SERVICE . 'RegisterHook', ['method' => $name . '/Invoke'] + $options);
        } catch (\Throwable $e) {
            $service->close();
            throw $e;
        }
        return new Hook($this->runtime, (string) ($reply['hook_id'] ?? ''), $service);
    }

    /** Removes a hook by id (Hook::close() does this and unregisters its service). */
    public function unregisterHook(string $hookId): void
    {
        $this->runtime->call(self::SERVICE . 'UnregisterHook', ['hook_id' => $hookId]);
    }
}
