<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_NOT_FOUND: No such method, service, message type or record. */
class NotFoundException extends StatusException
{
    public const STATUS = 'NOT_FOUND';
}
