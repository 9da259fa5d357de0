<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_INVALID_ARGUMENT: A malformed argument: bad UTF-8, unknown format or method name, NULL pointer with a length. */
class InvalidArgumentException extends StatusException
{
    public const STATUS = 'INVALID_ARGUMENT';
}
