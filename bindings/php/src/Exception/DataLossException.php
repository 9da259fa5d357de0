<?php

declare(strict_types=1);

namespace Hms\Exception;

/** HMS_DATA_LOSS: Stored data is unreadable. */
class DataLossException extends StatusException
{
    public const STATUS = 'DATA_LOSS';
}
