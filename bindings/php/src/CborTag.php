<?php

declare(strict_types=1);

namespace Hms;

/** A tagged CBOR data item (major type 6), e.g. tag 1 (epoch time). */
final class CborTag
{
    public function __construct(public readonly int $tag, public readonly mixed $value)
    {
    }
}
