<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_DEADLINE_EXCEEDED: The call's deadline passed. */
class DeadlineExceededException extends StatusException
{
    public const STATUS = 'DEADLINE_EXCEEDED';
}
