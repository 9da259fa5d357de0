<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_UNIMPLEMENTED: The method exists but is not implemented. */
class UnimplementedException extends StatusException
{
    public const STATUS = 'UNIMPLEMENTED';
}
