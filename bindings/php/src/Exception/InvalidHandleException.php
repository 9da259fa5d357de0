<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_INVALID_HANDLE: Unknown, stale, freed or wrong-kind handle. */
class InvalidHandleException extends StatusException
{
    public const STATUS = 'INVALID_HANDLE';
}
