<?php

declare(strict_types=1);

namespace Hms;

use Hms\Exception\CancelledException;
use Hms\Exception\ClosedException;

/**
 * A polled subscription to a runtime's events (Runtime::subscribe()).
 *
 *     while (($event = $sub->next(1000)) !== null) { ... }   // null: none within 1 s
 *     foreach ($sub->events(1000) as $event) { ... }          // ends after 1 s without events
 *
 * Events are hms.events.v1.Event values: arrays with sequence, kind,
 * subject, time, agent_id and one payload (service, lagged, agent, task,
 * knowledge, lifecycle, hook_failed), or Hms\Events\V1\Event messages. A
 * subscriber that falls behind gets one "lagged" event (lagged.dropped says
 * how many older events were lost). close() is idempotent.
 *
 * @implements \IteratorAggregate<int, mixed>
 */
final class Subscription implements \IteratorAggregate
{
    /** Longest single wait inside hms_poll, so PHP sees signals between waits. */
    private const SLICE_MS = 200;

    private int $handle;
    private readonly int $fmt;

    /** @internal created by Runtime::subscribe() */
    public function __construct(
        private readonly Native $native,
        private readonly Runtime $runtime,
        int $handle,
        public readonly string $format,
        private readonly int $maxDepth,
    ) {
        $this->handle = $handle;
        $this->fmt = Format::value($format);
    }

    /**
     * The next event, waiting up to $timeoutMs (negative: until one comes;
     * 0: do not wait). Returns null when none came in time. Throws
     * CancelledException when the runtime closed the subscription and
     * ClosedException after close().
     */
    public function next(int $timeoutMs = -1): mixed
    {
        if ($this->handle === 0) {
            throw new ClosedException('the subscription is closed', [], 'hms-php');
        }
        $ffi = $this->native->ffi;
        [, $out, $err] = $this->native->pair();
        $deadline = $timeoutMs < 0 ? null : hrtime(true) + $timeoutMs * 1_000_000;
        $timedOut = Native::constant('DEADLINE_EXCEEDED');
        while (true) {
            $wait = $deadline === null
                ? self::SLICE_MS
                : max(0, min(self::SLICE_MS, intdiv($deadline - hrtime(true) + 999_999, 1_000_000)));
            $rc = $ffi->hms_poll($this->handle, $wait, $out, $err);
            if ($rc === 0) {
                return $this->decode($this->native->take($out));
            }
            if ($rc !== $timedOut) {
                throw $this->native->error($rc, $err, $this->fmt);
            }
            if ($deadline !== null && hrtime(true) >= $deadline) {
                return null;
            }
            if (function_exists('pcntl_signal_dispatch')) {
                pcntl_signal_dispatch();
            }
        }
    }

    /**
     * Yields events until none comes within $timeoutMs (negative: wait
     * forever) or the subscription is closed.
     *
     * @return \Generator<int, mixed>
     */
    public function events(int $timeoutMs = -1): \Generator
    {
        while ($this->handle !== 0) {
            try {
                $event = $this->next($timeoutMs);
            } catch (CancelledException | ClosedException) {
                return;
            }
            if ($event === null) {
                return;
            }
            yield $event;
        }
    }

    /** @return \Generator<int, mixed> events(-1) */
    public function getIterator(): \Generator
    {
        return $this->events(-1);
    }

    public function isClosed(): bool
    {
        return $this->handle === 0;
    }

    /** Closes the subscription (a poller waiting on it returns). Idempotent. */
    public function close(): void
    {
        if ($this->handle === 0) {
            return;
        }
        $handle = $this->handle;
        $this->handle = 0;
        $this->native->ffi->hms_unsubscribe($handle);
        $this->runtime->forget($this);
    }

    private function decode(string $data): mixed
    {
        return match ($this->format) {
            Format::CBOR => Cbor::decode($data, $this->maxDepth),
            Format::JSON => Json::decode($data, $this->maxDepth),
            default => (static function (string $data): \Hms\Events\V1\Event {
                $event = new \Hms\Events\V1\Event();
                $event->mergeFromString($data);
                return $event;
            })($data),
        };
    }
}
