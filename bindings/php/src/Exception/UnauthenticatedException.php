<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_UNAUTHENTICATED: Missing or invalid credentials. */
class UnauthenticatedException extends StatusException
{
    public const STATUS = 'UNAUTHENTICATED';
}
