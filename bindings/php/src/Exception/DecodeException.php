<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_DECODE_ERROR: A payload does not parse in the declared format/type. */
class DecodeException extends StatusException
{
    public const STATUS = 'DECODE_ERROR';
}
