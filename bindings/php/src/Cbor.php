<?php

declare(strict_types=1);

namespace Hms;

use Hms\Exception\DecodeException;
use Hms\Exception\InvalidArgumentException;
use Hms\Exception\ResourceExhaustedException;

/**
 * A small CBOR codec (RFC 8949) for the PHP values HMS messages map to.
 *
 * Encoding is deterministic (RFC 8949 section 4.2.1, "core deterministic"):
 * shortest integer and length heads, the shortest float that keeps the value
 * (half, single or double), definite lengths only, map keys sorted by their
 * encoded bytes. PHP to CBOR:
 *  - null, bool, int, float: as themselves;
 *  - string: a text string when it is valid UTF-8, a byte string otherwise;
 *  - Bytes: a byte string; CborTag: a tag;
 *  - array: an array when it is a list (array_is_list), a map otherwise
 *    (so [] is an empty array; use new \stdClass() or new \ArrayObject() for
 *    an empty map, and Runtime sends [] as the empty message); map keys are
 *    always text, as in the JSON data model of HMS messages (PHP stores the
 *    key "7" as the integer 7; it is written back as "7", as json_encode does);
 *  - \stdClass, \ArrayObject: a map; \JsonSerializable: its jsonSerialize().
 *
 * Decoding checks every declared length against the bytes that remain before
 * it allocates anything, and limits nesting (arrays, maps, tags) to a depth
 * given by the caller. CBOR to PHP: maps become arrays (keys must be integers
 * or text; PHP turns a text key such as "7" into the integer 7), byte strings
 * Bytes, tags CborTag, undefined null; integers past PHP's range become
 * decimal strings (as proto3 JSON writes 64-bit integers).
 */
final class Cbor
{
    /** Default nesting limit of decode(): the core's default depth plus headroom. */
    public const DEFAULT_MAX_DEPTH = 128;

    /** Deepest value encode() accepts (a guard against recursive objects). */
    public const MAX_ENCODE_DEPTH = 1024;

    private string $data;
    private int $pos = 0;
    private int $end;

    private function __construct(string $data, private readonly int $maxDepth)
    {
        $this->data = $data;
        $this->end = strlen($data);
    }

    /** One PHP value as deterministic CBOR. */
    public static function encode(mixed $value): string
    {
        return self::encodeValue($value, 0);
    }

    /**
     * One CBOR data item (the whole input; trailing bytes are an error).
     *
     * @throws DecodeException on malformed input, a declared length past the end,
     *                         or nesting deeper than $maxDepth
     */
    public static function decode(string $data, int $maxDepth = self::DEFAULT_MAX_DEPTH): mixed
    {
        $decoder = new self($data, $maxDepth);
        $value = $decoder->item(0);
        if ($decoder->pos !== $decoder->end) {
            $decoder->fail('trailing bytes after the data item (' . ($decoder->end - $decoder->pos) . ' left)');
        }
        return $value;
    }

    // -- encoding ---------------------------------------------------------

    private static function encodeValue(mixed $value, int $depth): string
    {
        if ($depth > self::MAX_ENCODE_DEPTH) {
            throw new ResourceExhaustedException(
                'value nested deeper than ' . self::MAX_ENCODE_DEPTH . ' levels',
                ['limit' => (string) self::MAX_ENCODE_DEPTH],
                'hms-php/cbor',
            );
        }
        switch (true) {
            case $value === null:
                return "\xf6";
            case $value === false:
                return "\xf4";
            case $value === true:
                return "\xf5";
            case is_int($value):
                return $value >= 0 ? self::head(0, $value) : self::head(1, -1 - $value);
            case is_float($value):
                return self::encodeFloat($value);
            case is_string($value):
                return preg_match('//u', $value) === 1
                    ? self::head(3, strlen($value)) . $value
                    : self::head(2, strlen($value)) . $value;
            case is_array($value):
                return array_is_list($value) ? self::encodeList($value, $depth) : self::encodeMap($value, $depth);
            case $value instanceof Bytes:
                return self::head(2, strlen($value->value)) . $value->value;
            case $value instanceof CborTag:
                if ($value->tag < 0) {
                    throw new InvalidArgumentException("a CBOR tag is not negative, got {$value->tag}", [], 'hms-php/cbor');
                }
                return self::head(6, $value->tag) . self::encodeValue($value->value, $depth + 1);
            case $value instanceof \ArrayObject:
                return self::encodeMap($value->getArrayCopy(), $depth);
            case $value instanceof \stdClass:
                return self::encodeMap(get_object_vars($value), $depth);
            case $value instanceof \JsonSerializable:
                return self::encodeValue($value->jsonSerialize(), $depth + 1);
            default:
                throw new InvalidArgumentException(
                    'cannot encode a value of type ' . get_debug_type($value) . ' as CBOR',
                    ['type' => get_debug_type($value)],
                    'hms-php/cbor',
                );
        }
    }

    /** @param list<mixed> $list */
    private static function encodeList(array $list, int $depth): string
    {
        $out = self::head(4, count($list));
        foreach ($list as $item) {
            $out .= self::encodeValue($item, $depth + 1);
        }
        return $out;
    }

    /** @param array<int|string, mixed> $map */
    private static function encodeMap(array $map, int $depth): string
    {
        $pairs = [];
        foreach ($map as $key => $item) {
            // Keys are text, as in the JSON data model HMS messages use (and as
            // json_encode writes them): PHP turns the key "7" into the int 7.
            // An encoded key starts with a string head (0x40-0x5b or
            // 0x60-0x7b: '@', A-Z, '[', '`', a-z, '{'), never a digit or
            // '-', so PHP keeps it a string key, never an integer one.
            $pairs[self::encodeValue((string) $key, $depth + 1)] = self::encodeValue($item, $depth + 1);
        }
        if (count($pairs) > 1) {
            // Bytewise order of the encoded keys (RFC 8949 4.2.1), in C.
            ksort($pairs, SORT_STRING);
        }
        $out = self::head(5, count($pairs));
        foreach ($pairs as $k => $v) {
            $out .= $k . $v;
        }
        return $out;
    }

    /** The head of a data item: major type and argument, in the shortest form. */
    private static function head(int $major, int $n): string
    {
        $m = $major << 5;
        if ($n < 24) {
            return chr($m | $n);
        }
        if ($n <= 0xFF) {
            return chr($m | 24) . chr($n);
        }
        if ($n <= 0xFFFF) {
            return chr($m | 25) . pack('n', $n);
        }
        if ($n <= 0xFFFFFFFF) {
            return chr($m | 26) . pack('N', $n);
        }
        return chr($m | 27) . pack('J', $n);
    }

    private static function encodeFloat(float $f): string
    {
        if (is_nan($f)) {
            return "\xf9\x7e\x00";
        }
        $single = pack('G', $f);
        if (unpack('G', $single)[1] !== $f) {
            return "\xfb" . pack('E', $f);
        }
        $half = self::toHalf(unpack('N', $single)[1]);
        return $half === null ? "\xfa" . $single : "\xf9" . pack('n', $half);
    }

    /** The half-precision bits of a single-precision value, when exact. */
    private static function toHalf(int $bits): ?int
    {
        $sign = ($bits >> 16) & 0x8000;
        $exp = ($bits >> 23) & 0xFF;
        $mant = $bits & 0x7FFFFF;
        if ($exp === 0xFF) {                      // infinities (NaN handled before)
            return $sign | 0x7C00;
        }
        if ($exp === 0) {
            return $mant === 0 ? $sign : null;    // zero; single subnormals are below half's range
        }
        $e = $exp - 127;
        if ($e >= -14 && $e <= 15) {
            return ($mant & 0x1FFF) === 0 ? $sign | (($e + 15) << 10) | ($mant >> 13) : null;
        }
        if ($e >= -24 && $e < -14) {              // a half subnormal: m * 2^-24
            $sig = 0x800000 | $mant;
            $shift = -($e + 1);
            return ($sig & ((1 << $shift) - 1)) === 0 ? $sign | ($sig >> $shift) : null;
        }
        return null;
    }

    // -- decoding ---------------------------------------------------------

    private function item(int $depth): mixed
    {
        // The common cases are inlined (head byte, short arguments, strings,
        // map entries): a PHP method call costs more than what it does here.
        $start = $this->pos;
        if ($start >= $this->end) {
            $this->fail('unexpected end of input');
        }
        $ib = ord($this->data[$start]);
        $this->pos = $start + 1;
        $major = $ib >> 5;
        $ai = $ib & 0x1F;
        if ($major === 7) {
            return $this->simple($ai, $start);
        }
        if ($ai === 31) {
            return $this->indefinite($major, $depth, $start);
        }
        $n = $ai < 24 ? $ai : $this->argument($ai, $start);
        switch ($major) {
            case 0:
                return $n >= 0 ? $n : sprintf('%u', $n);
            case 1:
                return $n >= 0 ? -1 - $n : '-' . self::incrementDecimal(sprintf('%u', $n));
            case 2:
            case 3:
                if ($n < 0 || $n > $this->end - $this->pos) {
                    $this->fail('declares ' . sprintf('%u', $n) . ' bytes but only ' . ($this->end - $this->pos) . ' remain', $start);
                }
                $bytes = substr($this->data, $this->pos, $n);
                $this->pos += $n;
                if ($major === 2) {
                    return new Bytes($bytes);
                }
                if (preg_match('//u', $bytes) !== 1) {
                    $this->fail('text string is not valid UTF-8', $start);
                }
                return $bytes;
            case 4:
                $this->nest($depth, $start);
                if ($n < 0 || $n > $this->end - $this->pos) {
                    $this->fail('array declares ' . sprintf('%u', $n) . ' items but only '
                        . ($this->end - $this->pos) . ' bytes remain', $start);
                }
                $list = [];
                for ($i = 0; $i < $n; $i++) {
                    $list[] = $this->item($depth + 1);
                }
                return $list;
            case 5:
                $this->nest($depth, $start);
                if ($n < 0 || $n > intdiv($this->end - $this->pos, 2)) {
                    $this->fail('map declares ' . sprintf('%u', $n) . ' pairs but only '
                        . ($this->end - $this->pos) . ' bytes remain', $start);
                }
                $map = [];
                for ($i = 0; $i < $n; $i++) {
                    $at = $this->pos;
                    $key = $this->item($depth + 1);
                    if (!is_int($key) && !is_string($key)) {
                        $this->fail('map key of type ' . get_debug_type($key) . ' (only integer and text keys are supported)', $at);
                    }
                    if (array_key_exists($key, $map)) {
                        $this->fail("duplicate map key '{$key}'", $at);
                    }
                    $map[$key] = $this->item($depth + 1);
                }
                return $map;
            default: // 6
                $this->nest($depth, $start);
                if ($n < 0) {
                    $this->fail('tag number past 2^63 is not supported', $start);
                }
                return new CborTag($n, $this->item($depth + 1));
        }
    }

    /** @param array<int|string, mixed> $map */
    private function pair(array &$map, int $depth): void
    {
        $at = $this->pos;
        $key = $this->item($depth + 1);
        if (!is_int($key) && !is_string($key)) {
            $this->fail('map key of type ' . get_debug_type($key) . ' (only integer and text keys are supported)', $at);
        }
        if (array_key_exists($key, $map)) {
            $this->fail("duplicate map key '{$key}'", $at);
        }
        $map[$key] = $this->item($depth + 1);
    }

    private function indefinite(int $major, int $depth, int $start): mixed
    {
        switch ($major) {
            case 2:
            case 3:
                $out = '';
                while (!$this->breakNext()) {
                    $at = $this->pos;
                    $ib = $this->byte();
                    if ($ib >> 5 !== $major || ($ib & 0x1F) === 31) {
                        $this->fail('a chunk of an indefinite-length string must be a definite string of the same type', $at);
                    }
                    $chunk = $this->bytes($this->argument($ib & 0x1F, $at), $at);
                    $out .= $major === 3 ? $this->text($chunk, $at) : $chunk;
                }
                return $major === 2 ? new Bytes($out) : $out;
            case 4:
                $this->nest($depth, $start);
                $list = [];
                while (!$this->breakNext()) {
                    $list[] = $this->item($depth + 1);
                }
                return $list;
            case 5:
                $this->nest($depth, $start);
                $map = [];
                while (!$this->breakNext()) {
                    $this->pair($map, $depth);
                }
                return $map;
            default:
                $this->fail("major type {$major} has no indefinite length", $start);
        }
    }

    private function simple(int $ai, int $start): mixed
    {
        switch ($ai) {
            case 20:
                return false;
            case 21:
                return true;
            case 22:
            case 23:
                return null;
            case 24:
                $v = $this->byte();
                $this->fail($v < 32 ? "simple value {$v} in two bytes is not well-formed" : "unsupported simple value {$v}", $start);
                // no break: fail() throws
            case 25:
                return self::fromHalf(unpack('n', $this->bytes(2, $start))[1]);
            case 26:
                return (float) unpack('G', $this->bytes(4, $start))[1];
            case 27:
                return (float) unpack('E', $this->bytes(8, $start))[1];
            case 31:
                $this->fail('unexpected break', $start);
                // no break: fail() throws
            default:
                $this->fail($ai < 20 ? "unsupported simple value {$ai}" : "reserved additional information {$ai}", $start);
        }
    }

    private static function fromHalf(int $h): float
    {
        $sign = ($h & 0x8000) !== 0 ? -1.0 : 1.0;
        $exp = ($h >> 10) & 0x1F;
        $mant = $h & 0x3FF;
        if ($exp === 0) {
            return $sign * $mant * 2 ** -24;
        }
        if ($exp === 31) {
            return $mant === 0 ? $sign * INF : NAN;
        }
        return $sign * (1 + $mant / 1024) * 2 ** ($exp - 15);
    }

    /** The argument of a head; negative when it is 2^63 or more (read as unsigned). */
    private function argument(int $ai, int $start): int
    {
        if ($ai < 24) {
            return $ai;
        }
        return match ($ai) {
            24 => ord($this->bytes(1, $start)),
            25 => unpack('n', $this->bytes(2, $start))[1],
            26 => unpack('N', $this->bytes(4, $start))[1],
            27 => unpack('J', $this->bytes(8, $start))[1],
            default => $this->fail("reserved additional information {$ai}", $start),
        };
    }

    private function bytes(int $n, int $start): string
    {
        if ($n < 0 || $n > $this->end - $this->pos) {
            $this->fail('declares ' . sprintf('%u', $n) . ' bytes but only ' . ($this->end - $this->pos) . ' remain', $start);
        }
        $out = substr($this->data, $this->pos, $n);
        $this->pos += $n;
        return $out;
    }

    private function byte(): int
    {
        if ($this->pos >= $this->end) {
            $this->fail('unexpected end of input');
        }
        return ord($this->data[$this->pos++]);
    }

    private function breakNext(): bool
    {
        if ($this->pos >= $this->end) {
            $this->fail('unexpected end of input inside an indefinite-length item');
        }
        if ($this->data[$this->pos] === "\xff") {
            $this->pos++;
            return true;
        }
        return false;
    }

    private function text(string $bytes, int $start): string
    {
        if (preg_match('//u', $bytes) !== 1) {
            $this->fail('text string is not valid UTF-8', $start);
        }
        return $bytes;
    }

    private function nest(int $depth, int $start): void
    {
        if ($depth >= $this->maxDepth) {
            $this->fail("nesting deeper than {$this->maxDepth} levels", $start);
        }
    }

    private static function incrementDecimal(string $digits): string
    {
        $i = strlen($digits) - 1;
        while ($i >= 0 && $digits[$i] === '9') {
            $digits[$i] = '0';
            $i--;
        }
        return $i < 0 ? '1' . $digits : substr_replace($digits, (string) ((int) $digits[$i] + 1), $i, 1);
    }

    private function fail(string $message, ?int $at = null): never
    {
        $at ??= $this->pos;
        throw new DecodeException("CBOR at byte {$at}: {$message}", ['offset' => (string) $at], 'hms-php/cbor');
    }
}
