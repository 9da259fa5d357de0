<?php

declare(strict_types=1);

namespace Hms;

use Hms\Exception\DecodeException;

/**
 * The few protobuf wire-format reads the binding needs without the protobuf
 * runtime: an hms.v1.Status (code = 1, message = 2, details = 3, origin = 4).
 *
 * @internal
 */
final class Wire
{
    private function __construct()
    {
    }

    /**
     * @return array{code: int, message: string, details: array<string, string>, origin: string}
     */
    public static function decodeStatus(string $raw): array
    {
        $status = ['code' => 0, 'message' => '', 'details' => [], 'origin' => ''];
        foreach (self::fields($raw) as [$field, $value]) {
            match ($field) {
                1 => $status['code'] = is_int($value) ? $value : 0,
                2 => $status['message'] = (string) $value,
                4 => $status['origin'] = (string) $value,
                3 => (function () use ($value, &$status): void {
                    $entry = ['', ''];
                    foreach (self::fields((string) $value) as [$f, $v]) {
                        if ($f === 1 || $f === 2) {
                            $entry[$f - 1] = (string) $v;
                        }
                    }
                    $status['details'][$entry[0]] = $entry[1];
                })(),
                default => null,
            };
        }
        if ($status['code'] > 0x7FFFFFFF) {
            $status['code'] -= 1 << 32;
        }
        return $status;
    }

    /**
     * The fields of one message: [number, int (varint/fixed) or string (length-delimited)].
     *
     * @return list<array{0: int, 1: int|string}>
     */
    private static function fields(string $raw): array
    {
        $out = [];
        $pos = 0;
        $end = strlen($raw);
        while ($pos < $end) {
            $key = self::varint($raw, $pos);
            $field = $key >> 3;
            switch ($key & 7) {
                case 0:
                    $out[] = [$field, self::varint($raw, $pos)];
                    break;
                case 1:
                    self::need($raw, $pos, 8);
                    $out[] = [$field, unpack('P', substr($raw, $pos, 8))[1]];
                    $pos += 8;
                    break;
                case 2:
                    $len = self::varint($raw, $pos);
                    self::need($raw, $pos, $len);
                    $out[] = [$field, substr($raw, $pos, $len)];
                    $pos += $len;
                    break;
                case 5:
                    self::need($raw, $pos, 4);
                    $out[] = [$field, unpack('V', substr($raw, $pos, 4))[1]];
                    $pos += 4;
                    break;
                default:
                    throw new DecodeException('unsupported protobuf wire type ' . ($key & 7), [], 'hms-php');
            }
        }
        return $out;
    }

    private static function varint(string $raw, int &$pos): int
    {
        $value = 0;
        for ($shift = 0; $shift < 64; $shift += 7) {
            self::need($raw, $pos, 1);
            $b = ord($raw[$pos++]);
            $value |= ($b & 0x7F) << $shift;
            if ($b < 0x80) {
                return $value;
            }
        }
        throw new DecodeException('protobuf varint longer than 10 bytes', [], 'hms-php');
    }

    private static function need(string $raw, int $pos, int $n): void
    {
        if ($n < 0 || $n > strlen($raw) - $pos) {
            throw new DecodeException('truncated protobuf message', [], 'hms-php');
        }
    }
}
