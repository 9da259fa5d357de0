<?php

declare(strict_types=1);

namespace Hms\Exception;

use Hms\HmsException;
use Hms\Status;

/**
 * Base of the per-code exceptions: the code comes from the STATUS constant
 * of the subclass, looked up in include/hms_ffi_cdef.h.
 */
abstract class StatusException extends HmsException
{
    /** The HMS_* status name (without the prefix) of the subclass. */
    public const STATUS = 'UNKNOWN';

    /**
     * @param array<string, string> $details
     */
    public function __construct(string $message = '', array $details = [], string $origin = '', ?\Throwable $previous = null)
    {
        parent::__construct($message, Status::code(static::STATUS), $details, $origin, $previous);
    }
}
