<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_PANIC: A bug inside the core, caught at the boundary. */
class PanicException extends StatusException
{
    public const STATUS = 'PANIC';
}
