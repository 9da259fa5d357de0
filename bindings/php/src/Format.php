<?php

declare(strict_types=1);

namespace Hms;

use Hms\Exception\InvalidArgumentException;

/**
 * Formats of the payloads that cross the boundary. Use the names below
 * wherever the API takes a format; their numbers come from
 * include/hms_ffi_cdef.h (HMS_FORMAT_*).
 */
final class Format
{
    /** Protobuf binary encoding: the schema of truth. */
    public const PROTOBUF = 'PROTOBUF';
    /** CBOR with the data model of the proto3 JSON mapping (the default for arrays). */
    public const CBOR = 'CBOR';
    /** The proto3 JSON mapping, UTF-8. */
    public const JSON = 'JSON';

    /** @var array<string, int> */
    private static array $values = [];

    private function __construct()
    {
    }

    /**
     * The HMS_FORMAT_* number of a format name. An integer is taken as the
     * number itself and reaches the core unchanged (it answers
     * HMS_INVALID_ARGUMENT for a number that is no format).
     */
    public static function value(string|int $format): int
    {
        if (is_int($format)) {
            return $format;
        }
        return self::$values[$format] ?? self::resolve($format);
    }

    private static function resolve(string $format): int
    {
        if ($format !== self::PROTOBUF && $format !== self::CBOR && $format !== self::JSON) {
            throw new InvalidArgumentException(
                "unknown format '{$format}': use Format::PROTOBUF, Format::CBOR or Format::JSON",
                ['format' => $format],
                'hms-php',
            );
        }
        return self::$values[$format] = Native::constant('FORMAT_' . $format);
    }
}
