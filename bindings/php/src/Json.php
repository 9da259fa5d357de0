<?php

declare(strict_types=1);

namespace Hms;

use Hms\Exception\DecodeException;
use Hms\Exception\InvalidArgumentException;

/**
 * JSON for the proto3 JSON mapping: UTF-8, no escaped slashes or unicode,
 * floats keep their fraction, Bytes become base64; big integers decode as
 * strings (as proto3 JSON writes 64-bit integers).
 */
final class Json
{
    private const ENCODE = JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE
        | JSON_PRESERVE_ZERO_FRACTION;

    private function __construct()
    {
    }

    public static function encode(mixed $value): string
    {
        try {
            return json_encode($value, self::ENCODE);
        } catch (\JsonException $e) {
            throw new InvalidArgumentException("cannot encode as JSON: {$e->getMessage()}", [], 'hms-php/json', $e);
        }
    }

    public static function decode(string $data, int $maxDepth = Cbor::DEFAULT_MAX_DEPTH): mixed
    {
        try {
            return json_decode($data, true, $maxDepth + 1, JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING);
        } catch (\JsonException $e) {
            throw new DecodeException("JSON: {$e->getMessage()}", [], 'hms-php/json', $e);
        }
    }
}
