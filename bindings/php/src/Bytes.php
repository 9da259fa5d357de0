<?php

declare(strict_types=1);

namespace Hms;

/**
 * A byte string. PHP strings carry both text and bytes; wrap bytes in this
 * class so they travel as a CBOR byte string (base64 in JSON), e.g. the
 * `payload` of an EchoRequest or the `input` of a Task. The CBOR decoder
 * returns byte strings as Bytes too.
 */
final class Bytes implements \JsonSerializable, \Stringable
{
    public function __construct(public readonly string $value)
    {
    }

    public function __toString(): string
    {
        return $this->value;
    }

    /** Base64, as the proto3 JSON mapping writes bytes. */
    public function jsonSerialize(): string
    {
        return base64_encode($this->value);
    }
}
