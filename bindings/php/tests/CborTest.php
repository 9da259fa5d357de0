<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\Bytes;
use Hms\Cbor;
use Hms\CborTag;
use Hms\Convert;
use Hms\Exception\DecodeException;
use Hms\Exception\InvalidArgumentException;
use Hms\Format;

final class CborTest extends HmsTestCase
{
    /** @return array<string, array{0: mixed, 1: string}> RFC 8949 Appendix A (deterministic subset) */
    public static function vectors(): array
    {
        return [
            '0' => [0, '00'],
            '23' => [23, '17'],
            '24' => [24, '1818'],
            '100' => [100, '1864'],
            '1000' => [1000, '1903e8'],
            '1000000' => [1000000, '1a000f4240'],
            '1000000000000' => [1000000000000, '1b000000e8d4a51000'],
            'int max' => [PHP_INT_MAX, '1b7fffffffffffffff'],
            '-1' => [-1, '20'],
            '-100' => [-100, '3863'],
            '-1000' => [-1000, '3903e7'],
            'int min' => [PHP_INT_MIN, '3b7fffffffffffffff'],
            '0.0' => [0.0, 'f90000'],
            '-0.0' => [-0.0, 'f98000'],
            '1.0' => [1.0, 'f93c00'],
            '1.1' => [1.1, 'fb3ff199999999999a'],
            '1.5' => [1.5, 'f93e00'],
            '65504.0' => [65504.0, 'f97bff'],
            '100000.0' => [100000.0, 'fa47c35000'],
            '3.4028234663852886e+38' => [3.4028234663852886e+38, 'fa7f7fffff'],
            '1.0e+300' => [1.0e+300, 'fb7e37e43c8800759c'],
            '5.960464477539063e-8' => [5.960464477539063e-8, 'f90001'],
            '0.00006103515625' => [0.00006103515625, 'f90400'],
            '-4.0' => [-4.0, 'f9c400'],
            '-4.1' => [-4.1, 'fbc010666666666666'],
            'Infinity' => [INF, 'f97c00'],
            '-Infinity' => [-INF, 'f9fc00'],
            'false' => [false, 'f4'],
            'true' => [true, 'f5'],
            'null' => [null, 'f6'],
            'empty bytes' => [new Bytes(''), '40'],
            'h\'01020304\'' => [new Bytes("\x01\x02\x03\x04"), '4401020304'],
            'empty text' => ['', '60'],
            '"a"' => ['a', '6161'],
            '"IETF"' => ['IETF', '6449455446'],
            '"\u00fc"' => ["\u{00fc}", '62c3bc'],
            '"\u6c34"' => ["\u{6c34}", '63e6b0b4'],
            '"\ud800\udd51"' => ["\u{10151}", '64f0908591'],
            '[]' => [[], '80'],
            '[1, 2, 3]' => [[1, 2, 3], '83010203'],
            '[1, [2, 3], [4, 5]]' => [[1, [2, 3], [4, 5]], '8301820203820405'],
            '25 items' => [range(1, 25), '98190102030405060708090a0b0c0d0e0f101112131415161718181819'],
            '{}' => [new \stdClass(), 'a0'],
            '{"a": 1, "b": [2, 3]}' => [['a' => 1, 'b' => [2, 3]], 'a26161016162820203'],
            '["a", {"b": "c"}]' => [['a', ['b' => 'c']], '826161a161626163'],
            'tag 1' => [new CborTag(1, 1363896240), 'c11a514b67b0'],
        ];
    }

    /** @dataProvider vectors */
    public function testEncodesRfc8949Vectors(mixed $value, string $hex): void
    {
        $this->assertSame($hex, bin2hex(Cbor::encode($value)));
    }

    /** @dataProvider vectors */
    public function testDecodesRfc8949Vectors(mixed $value, string $hex): void
    {
        $decoded = Cbor::decode(hex2bin($hex));
        if ($value instanceof \stdClass) {
            $value = [];
        }
        if (is_float($value)) {
            $this->assertIsFloat($decoded);
            $this->assertSame(bin2hex(pack('E', $value)), bin2hex(pack('E', $decoded)));
            return;
        }
        $this->assertEquals($value, $decoded);
    }

    public function testDecodesWhatTheDeterministicEncoderDoesNotWrite(): void
    {
        $this->assertNan(Cbor::decode(hex2bin('f97e00')));
        $this->assertSame(1.0, Cbor::decode(hex2bin('fb3ff0000000000000')));
        $this->assertSame(1.5, Cbor::decode(hex2bin('fa3fc00000')));
        $this->assertSame('18446744073709551615', Cbor::decode(hex2bin('1bffffffffffffffff')));
        $this->assertSame('-18446744073709551616', Cbor::decode(hex2bin('3bffffffffffffffff')));
        $this->assertSame('-9223372036854775809', Cbor::decode(hex2bin('3b8000000000000000')));
        $this->assertNull(Cbor::decode(hex2bin('f7')));
        $this->assertSame(0, Cbor::decode(hex2bin('190000')));
        // indefinite lengths
        $this->assertEquals(new Bytes("\x01\x02\x03\x04\x05"), Cbor::decode(hex2bin('5f42010243030405ff')));
        $this->assertSame('streaming', Cbor::decode(hex2bin('7f657374726561646d696e67ff')));
        $this->assertSame([1, [2, 3], [4, 5]], Cbor::decode(hex2bin('9f018202039f0405ffff')));
        $this->assertSame(['a' => 1, 'b' => [2, 3]], Cbor::decode(hex2bin('bf61610161629f0203ffff')));
        $this->assertSame(['Fun' => true, 'Amt' => -2], Cbor::decode(hex2bin('bf6346756ef563416d7421ff')));
    }

    public function testMapKeysAreSortedByTheirEncodedBytes(): void
    {
        $a = Cbor::encode(['zz' => 1, 'b' => 2, 'aaa' => 3, 'a' => 4]);
        $b = Cbor::encode(['a' => 4, 'aaa' => 3, 'b' => 2, 'zz' => 1]);
        $this->assertSame($a, $b);
        $this->assertSame(['a', 'b', 'zz', 'aaa'], array_keys(Cbor::decode($a)));
        // integer keys, keys that are not UTF-8 (byte strings), long keys, a key
        // whose encoding differs from another's only past the head: the order
        // of their encoded bytes, whatever the order given
        $map = [10 => 'i', "\xff" => 'b', str_repeat('k', 30) => 'l', '' => 'e', 'B' => 'u', 2 => 'j', 'a' => 'x', "\x00" => 'z'];
        $encoded = Cbor::encode($map);
        $keys = array_map(static fn (int|string $k): string => Cbor::encode((string) $k), array_keys($map));
        $sorted = $keys;
        usort($sorted, strcmp(...));
        $expected = '';
        foreach ($sorted as $k) {
            $expected .= $k . Cbor::encode($map[Cbor::decode($k) instanceof \Hms\Bytes ? Cbor::decode($k)->value : Cbor::decode($k)]);
        }
        $this->assertSame(bin2hex("\xa8" . $expected), bin2hex($encoded));
        $shuffled = $map;
        for ($i = 0; $i < 5; $i++) {
            $shuffled = array_combine(array_reverse(array_keys($shuffled)), array_reverse($shuffled));
            $this->assertSame($encoded, Cbor::encode($shuffled));
            $pairs = array_map(null, array_keys($shuffled), $shuffled);
            shuffle($pairs);
            $this->assertSame($encoded, Cbor::encode(array_column($pairs, 1, 0)));
        }
    }

    public function testIntegerKeysAreWrittenAsText(): void
    {
        // PHP stores the key "7" as the int 7; HMS maps are keyed by text.
        $this->assertSame('a161376178', bin2hex(Cbor::encode(['7' => 'x'])));
    }

    public function testStringsThatAreNotUtf8AreByteStrings(): void
    {
        $this->assertSame('42ff00', bin2hex(Cbor::encode("\xff\x00")));
    }

    public function testRefusesWhatCborCannotCarry(): void
    {
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => Cbor::encode(new \DateTime()), 'DateTime');
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => Cbor::encode(fopen('php://memory', 'r')));
    }

    /** @return array<string, array{0: string, 1: string}> */
    public static function malformed(): array
    {
        return [
            'empty' => ['', 'unexpected end of input'],
            'truncated uint' => ['19 01', 'declares 2 bytes but only 1 remain'],
            'truncated text' => ['65 6162', 'declares 5 bytes but only 2 remain'],
            'byte string of 2^64-1' => ['5b ffffffffffffffff 00', 'declares 18446744073709551615 bytes'],
            'text of 2^63' => ['7b 8000000000000000', 'declares 9223372036854775808 bytes'],
            'array of 2^64-1' => ['9b ffffffffffffffff', 'array declares 18446744073709551615 items'],
            'map of 2^32' => ['bb 0000000100000000 00', 'map declares 4294967296 pairs'],
            'trailing bytes' => ['00 00', 'trailing bytes'],
            'bad utf-8' => ['62 c328', 'not valid UTF-8'],
            'reserved ai' => ['1c', 'reserved additional information 28'],
            'indefinite uint' => ['1f', 'no indefinite length'],
            'lone break' => ['ff', 'unexpected break'],
            'unterminated indefinite' => ['9f 01', 'inside an indefinite-length item'],
            'mixed chunk' => ['5f 6161 ff', 'same type'],
            'two-byte simple < 32' => ['f8 10', 'not well-formed'],
            'simple 16' => ['f0', 'unsupported simple value 16'],
            'duplicate key' => ['a2 6161 01 6161 02', "duplicate map key 'a'"],
            'array key' => ['a1 80 01', 'map key of type array'],
        ];
    }

    /** @dataProvider malformed */
    public function testRejectsMalformedInput(string $hex, string $why): void
    {
        $this->assertStatus(DecodeException::class, 'DECODE_ERROR', fn () => Cbor::decode(hex2bin(str_replace(' ', '', $hex))), $why);
    }

    public function testLimitsNestingWithoutRecursingDeep(): void
    {
        $deep = str_repeat("\x81", 100_000) . "\x00";
        $this->assertStatus(DecodeException::class, 'DECODE_ERROR', fn () => Cbor::decode($deep), 'nesting deeper than 128 levels');
        $this->assertStatus(DecodeException::class, 'DECODE_ERROR', fn () => Cbor::decode(str_repeat("\xa1\x61\x61", 10) . "\x00", 5), 'nesting deeper than 5');
        $this->assertSame([[[0]]], Cbor::decode("\x81\x81\x81\x00", 3));
        $this->assertStatus(DecodeException::class, 'DECODE_ERROR', fn () => Cbor::decode(str_repeat("\xc1", 1000) . "\x00"), 'nesting');
    }

    public function testEncodingIsTheCoresDeterministicEncoding(): void
    {
        $values = [
            ['text' => 'hi', 'payload' => new Bytes("\x00\x01\xff")],
            ['a' => 1.5, 'b' => 100000.5, 'c' => 1.0e300, 'd' => -0.0, 'e' => 0.1, 'f' => 65504.0, 'g' => 1.0e-7],
            ['n' => [PHP_INT_MAX, PHP_INT_MIN, 0, -1, 23, 24, 255, 256, 65535, 65536, 4294967295, 4294967296]],
            ['nested' => ['x' => ['y' => [true, false, null, 'ü', "\u{1F600}"]]], 'aa' => [], 'b' => new \stdClass()],
            ['long' => str_repeat('x', 70000), 'keys' => ['zz' => 1, 'b' => 2, 'aaa' => 3, 'a' => 4]],
        ];
        foreach ($values as $value) {
            $mine = Cbor::encode($value);
            // The core decodes our bytes and writes its own deterministic encoding.
            $this->assertSame(bin2hex($mine), bin2hex(Convert::convert('', $mine, Format::CBOR, Format::CBOR)));
            // The same value through JSON comes back identical too (bytes excepted: JSON has none).
            if (!isset($value['payload'])) {
                $this->assertSame(bin2hex($mine), bin2hex(Convert::convert('', \Hms\Json::encode($value), Format::JSON, Format::CBOR)));
            }
            $this->assertEquals($this->normalize($value), Cbor::decode($mine));
        }
    }

    public function testDecodesTheCoresOutput(): void
    {
        $json = '{"text":"h\u00e9","payload":"AAH/"}';
        $cbor = Convert::convert('hms.sys.v1.EchoRequest', $json, Format::JSON, Format::CBOR);
        $this->assertEquals(['text' => 'hé', 'payload' => new Bytes("\x00\x01\xff")], Cbor::decode($cbor));
        $this->assertSame($cbor, Cbor::encode(Cbor::decode($cbor)));
    }

    private function normalize(mixed $value): mixed
    {
        if ($value instanceof \stdClass) {
            return [];
        }
        if (is_array($value)) {
            return array_map(fn ($v) => $this->normalize($v), $value);
        }
        return $value;
    }
}
