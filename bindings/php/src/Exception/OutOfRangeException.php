<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_OUT_OF_RANGE: A value past its valid range. */
class OutOfRangeException extends StatusException
{
    public const STATUS = 'OUT_OF_RANGE';
}
