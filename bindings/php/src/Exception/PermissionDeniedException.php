<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_PERMISSION_DENIED: Refused by policy. */
class PermissionDeniedException extends StatusException
{
    public const STATUS = 'PERMISSION_DENIED';
}
