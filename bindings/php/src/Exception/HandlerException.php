<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_HANDLER_ERROR: A host-language handler raised or returned garbage. */
class HandlerException extends StatusException
{
    public const STATUS = 'HANDLER_ERROR';
}
