<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_INCOMPATIBLE: ABI or schema version mismatch. */
class IncompatibleException extends StatusException
{
    public const STATUS = 'INCOMPATIBLE';
}
