<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_CANCELLED: The operation or subscription was closed. */
class CancelledException extends StatusException
{
    public const STATUS = 'CANCELLED';
}
