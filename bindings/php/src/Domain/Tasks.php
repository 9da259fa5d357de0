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
     * Fails a task with an hms.v1.Status (code, message, details).
     *
     * @param array<string, mixed> $error
     * @return array<string, mixed>
     */
    public function fail(string $id, array $error, int $revision = 0): array
    {
        return $this->runtime->call(self::SERVICE . 'FailTask', self::rev(['id' => $id, 'error' => $error], $revision));
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
