<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_INTERNAL: An invariant of the core broke. */
class InternalException extends StatusException
{
    public const STATUS = 'INTERNAL';
}
