<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_UNAVAILABLE: The handler cannot run now (e.g. wrong thread, being unregistered). */
class UnavailableException extends StatusException
{
    public const STATUS = 'UNAVAILABLE';
}
