<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_RESOURCE_EXHAUSTED: A size limit: payload, queue or nesting. */
class ResourceExhaustedException extends StatusException
{
    public const STATUS = 'RESOURCE_EXHAUSTED';
}
