<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_FAILED_PRECONDITION: The request is valid but the state forbids it. */
class FailedPreconditionException extends StatusException
{
    public const STATUS = 'FAILED_PRECONDITION';
}
