<?php

declare(strict_types=1);

namespace Hms\Exception;

use Hms\HmsException;

/**
 * One or more calls of a batch (Method::batchRaw(), Runtime::batchRaw())
 * failed. The calls after a failing one still ran: results() holds every
 * outcome by index (the answer's bytes, or the exception of that call, the
 * same one a single call would have thrown) and failures() the failed ones.
 *
 * getCode(), getDetails() and getOrigin() are those of the first failure,
 * which is also getPrevious(); getMessage() says how many calls failed.
 */
final class BatchException extends HmsException
{
    /**
     * @internal thrown by the binding
     *
     * @param array<int, string|HmsException> $results every call's outcome, by index
     * @param array<int, HmsException> $failures the failed calls, by index (not empty)
     */
    public function __construct(
        private readonly array $results,
        private readonly array $failures,
    ) {
        $first = array_key_first($failures);
        $e = $failures[$first];
        $failed = count($failures);
        $calls = count($results);
        parent::__construct(
            "{$failed} of {$calls} calls of the batch failed; the first, call {$first}: "
            . "{$e->getStatusName()}: {$e->getMessage()}",
            $e->getCode(),
            $e->getDetails(),
            $e->getOrigin(),
            $e,
        );
    }

    /**
     * Every call's outcome in call order: the answer's bytes, or the
     * HmsException of that call.
     *
     * @return array<int, string|HmsException>
     */
    public function results(): array
    {
        return $this->results;
    }

    /**
     * The failed calls by index, in call order.
     *
     * @return array<int, HmsException>
     */
    public function failures(): array
    {
        return $this->failures;
    }

    /** The index of the first failed call. */
    public function firstFailure(): int
    {
        return (int) array_key_first($this->failures);
    }
}
