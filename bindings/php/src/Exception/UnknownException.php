<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_UNKNOWN: An error without a better code. */
class UnknownException extends StatusException
{
    public const STATUS = 'UNKNOWN';
}
