<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_ALREADY_EXISTS: A service of that name is registered already. */
class AlreadyExistsException extends StatusException
{
    public const STATUS = 'ALREADY_EXISTS';
}
