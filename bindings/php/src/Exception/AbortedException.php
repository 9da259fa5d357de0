<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_ABORTED: A concurrency conflict, e.g. a stale revision. */
class AbortedException extends StatusException
{
    public const STATUS = 'ABORTED';
}
