<?php

declare(strict_types=1);

namespace Hms\Domain;

use Hms\Bytes;
use Hms\Runtime;

/**
 * Tasks (hms.agent.v1.TaskService). A task moves only forward:
 * PENDING -> ASSIGNED -> RUNNING -> SUCCEEDED or FAILED; CANCELLED from any
 * status that is not final; anything else is a FailedPreconditionException.
 * Only an ACTIVE agent takes tasks. Tasks are arrays with proto field names
 * (input and result are Bytes).
 *
 * Workers share the PENDING tasks through claim(): each claim takes one task
 * (RUNNING, claimed_by the worker) under a lease the worker keeps with
 * renewLease(); once the lease ends another claim can take the task. A
 * claimed task failed with $retry is PENDING again, or DEAD_LETTER once its
 * attempts reach its max_attempts.
 */
final class Tasks
{
    private const SERVICE = 'hms.agent.v1.TaskService/';

    /** @internal use Runtime::tasks() */
    public function __construct(private readonly Runtime $runtime)
    {
    }

    /**
     * Submits a task (title required; with agent_id it is assigned at once).
     * A string input is sent as bytes.
     *
     * @param array<string, mixed> $task
     * @return array<string, mixed>
     */
    public function submit(array $task): array
    {
        if (isset($task['input']) && is_string($task['input'])) {
            $task['input'] = new Bytes($task['input']);
        }
        return $this->runtime->call(self::SERVICE . 'SubmitTask', ['task' => $task]);
    }

    /** @return array<string, mixed> */
    public function get(string $id): array
    {
        return $this->runtime->call(self::SERVICE . 'GetTask', ['id' => $id]);
    }

    /**
     * One page: ['tasks' => [...], 'next_page_token' => ...]. $filter:
     * agent_id, statuses, page_size, page_token.
     *
     * @param array<string, mixed> $filter
     * @return array<string, mixed>
     */
    public function list(array $filter = []): array
    {
        return $this->runtime->call(self::SERVICE . 'ListTasks', $filter);
    }

    /**
     * @param array<string, mixed> $filter
     * @return \Generator<int, array<string, mixed>>
     */
    public function all(array $filter = []): \Generator
    {
        return Pages::walk(fn (array $f): array => $this->list($f), $filter, 'tasks');
    }

    /** @return array<string, mixed> */
    public function assign(string $id, string $agentId, int $revision = 0): array
    {
        return $this->runtime->call(self::SERVICE . 'AssignTask', self::rev(['id' => $id, 'agent_id' => $agentId], $revision));
    }

    /** @return array<string, mixed> */
    public function start(string $id, int $revision = 0): array
    {
        return $this->runtime->call(self::SERVICE . 'StartTask', self::rev(['id' => $id], $revision));
    }

    /**
     * Claims the most urgent, then oldest, PENDING task whose
     * required_capabilities are all among $capabilities and which carries
     * all of $labels: it is RUNNING for $workerId until its lease of $leaseMs
     * (0: the core's default, 30 s) ends. Null when no task is ready for
     * this worker.
     *
     * @param list<string> $capabilities
     * @param array<string, string> $labels
     * @return array<string, mixed>|null
     */
    public function claim(string $workerId, array $capabilities = [], array $labels = [], int $leaseMs = 0): ?array
    {
        $request = ['worker_id' => $workerId, 'capabilities' => $capabilities, 'lease_ms' => $leaseMs];
        if ($labels !== []) {
            // An empty PHP array would go out as a JSON list, not a map.
            $request['labels'] = $labels;
        }
        $reply = $this->runtime->call(self::SERVICE . 'ClaimTask', $request);
        return $reply['task'] ?? null;
    }

    /**
     * Extends the lease $workerId holds on a claimed task to $leaseMs from
     * now (0: the core's default); a FailedPreconditionException when
     * another worker holds it.
     *
     * @return array<string, mixed>
     */
    public function renewLease(string $id, string $workerId, int $leaseMs = 0, int $revision = 0): array
    {
        $request = ['id' => $id, 'worker_id' => $workerId, 'lease_ms' => $leaseMs];
        return $this->runtime->call(self::SERVICE . 'RenewLease', self::rev($request, $revision));
    }

    /** @return array<string, mixed> */
    public function complete(string $id, string $result = '', string $contentType = '', int $revision = 0): array
    {
        $request = ['id' => $id, 'result' => new Bytes($result)];
        if ($contentType !== '') {
            $request['result_content_type'] = $contentType;
        }
        return $this->runtime->call(self::SERVICE . 'CompleteTask', self::rev($request, $revision));
    }

    /**
     * Fails a task with an hms.v1.Status (code, message, details). With
     * $retry a claimed task goes back to PENDING for another claim, or to
     * DEAD_LETTER once its attempts reach its max_attempts, instead of FAILED.
     *
     * @param array<string, mixed> $error
     * @return array<string, mixed>
     */
    public function fail(string $id, array $error, int $revision = 0, bool $retry = false): array
    {
        $request = ['id' => $id, 'error' => $error, 'retry' => $retry];
        return $this->runtime->call(self::SERVICE . 'FailTask', self::rev($request, $revision));
    }

    /** @return array<string, mixed> */
    public function cancel(string $id, string $reason = '', int $revision = 0): array
    {
        return $this->runtime->call(self::SERVICE . 'CancelTask', self::rev(['id' => $id, 'reason' => $reason], $revision));
    }

    /**
     * @param array<string, mixed> $request
     * @return array<string, mixed>
     */
    private static function rev(array $request, int $revision): array
    {
        if ($revision !== 0) {
            $request['revision'] = $revision;
        }
        return $request;
    }
}
