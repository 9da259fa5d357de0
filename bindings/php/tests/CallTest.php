<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\Bytes;
use Hms\Cbor;
use Hms\Exception\ClosedException;
use Hms\Exception\DecodeException;
use Hms\Exception\InvalidArgumentException;
use Hms\Exception\NotFoundException;
use Hms\Exception\ResourceExhaustedException;
use Hms\Format;
use Hms\Sys\V1\EchoRequest;
use Hms\Sys\V1\EchoResponse;
use Hms\Sys\V1\HealthResponse;

final class CallTest extends HmsTestCase
{
    private const ECHO = 'hms.sys.v1.System/Echo';

    public function testArraysTravelAsCbor(): void
    {
        $reply = $this->runtime()->call(self::ECHO, ['text' => 'hé', 'payload' => new Bytes("\x00\x01\xff")]);
        $this->assertEquals(['text' => 'hé', 'payload' => new Bytes("\x00\x01\xff")], $reply);
    }

    public function testArraysTravelAsJson(): void
    {
        $rt = $this->runtime(null, Format::JSON);
        $reply = $rt->call(self::ECHO, ['text' => 'hé', 'payload' => new Bytes("\x00\x01\xff")]);
        $this->assertSame(['payload' => 'AAH/', 'text' => 'hé'], $reply);
        // one call in another format than the runtime's default
        $this->assertEquals(['text' => 'x'], $rt->call(self::ECHO, ['text' => 'x'], format: Format::CBOR));
    }

    public function testMessagesTravelAsProtobuf(): void
    {
        $rt = $this->runtime();
        $reply = $rt->call(self::ECHO, new EchoRequest(['text' => 'pb', 'payload' => "\x00\xff"]));
        $this->assertInstanceOf(EchoResponse::class, $reply);
        $this->assertSame('pb', $reply->getText());
        $this->assertSame("\x00\xff", $reply->getPayload());
        $health = $rt->call('hms.sys.v1.System/Health', new \Hms\Sys\V1\HealthRequest());
        $this->assertInstanceOf(HealthResponse::class, $health);
        $this->assertSame(HealthResponse\ServingStatus::SERVING, $health->getStatus());
    }

    public function testRawBytesInEveryFormat(): void
    {
        $rt = $this->runtime();
        $pb = (new EchoRequest(['text' => 'raw']))->serializeToString();
        $this->assertSame($pb, $rt->callRaw(self::ECHO, $pb, Format::PROTOBUF));
        $this->assertSame('{"text":"raw"}', $rt->callRaw(self::ECHO, '{"text":"raw"}', Format::JSON));
        $cbor = Cbor::encode(['text' => 'raw']);
        $this->assertSame($cbor, $rt->callRaw(self::ECHO, $cbor, Format::CBOR));
        $this->assertSame("\xa0", $rt->callRaw(self::ECHO, '', Format::CBOR));
    }

    public function testEmptyRequestIsTheDefaultMessage(): void
    {
        $rt = $this->runtime();
        $this->assertSame([], $rt->call(self::ECHO));
        $this->assertSame([], $rt->call(self::ECHO, []));
        $this->assertSame('SERVING', $rt->health()['status']);
        $this->assertSame(Format::class, Format::class);
        $version = $rt->version();
        $this->assertSame(\Hms\Runtime::libraryVersion(), $version['library_version']);
        $this->assertSame(\Hms\Runtime::abiVersion()[0], $version['abi_major']);
    }

    public function testCallOptions(): void
    {
        $rt = $this->runtime();
        $options = ['deadline_ms' => 1000, 'metadata' => ['k' => 'v'], 'trace_id' => 't-1'];
        $this->assertSame(['text' => 'x'], $rt->call(self::ECHO, ['text' => 'x'], $options));
        $reply = $rt->call(self::ECHO, new EchoRequest(['text' => 'y']), $options);
        $this->assertSame('y', $reply->getText());
        $this->assertStatus(DecodeException::class, 'DECODE_ERROR', fn () => $rt->callRaw(self::ECHO, "\xa0", Format::CBOR, "\xff"));
    }

    public function testUnknownMethod(): void
    {
        $rt = $this->runtime();
        $e = $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $rt->call('hms.sys.v1.System/Nope'), 'Nope');
        $this->assertSame(['method' => 'Nope', 'service' => 'hms.sys.v1.System'], $e->getDetails());
        $this->assertSame('registry', $e->getOrigin());
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $rt->call('no.such.Service/Method'));
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $rt->call('nosuch'), 'full name');
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $rt->call(''), 'empty');
    }

    public function testMethodThatIsNotUtf8(): void
    {
        $rt = $this->runtime();
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $rt->call("hms.sys.v1.System/Ech\xff"), 'UTF-8');
    }

    public function testUnknownFormat(): void
    {
        $rt = $this->runtime();
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $rt->callRaw(self::ECHO, '', 'XML'), 'unknown format');
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => new \Hms\Runtime(null, null, 'YAML'));
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $rt->call(self::ECHO, [], format: Format::PROTOBUF));
        // the core's own check, below the binding
        $native = \Hms\Native::get();
        [, $out, $err] = $native->pair();
        $rc = $native->ffi->hms_call($rt->handle(), self::ECHO, strlen(self::ECHO), 99, '', 0, null, 0, $out, $err);
        $this->assertSame(\Hms\Status::code('INVALID_ARGUMENT'), $rc);
        $this->assertStringContainsString('unknown format 99', $native->error($rc, $err, 3)->getMessage());
    }

    /** @return array<string, array{0: string, 1: string}> */
    public static function garbage(): array
    {
        return [
            'cbor garbage' => [Format::CBOR, "\xff\xfe\xfd"],
            'cbor truncated' => [Format::CBOR, "\xa1\x64te"],
            'cbor not a map' => [Format::CBOR, "\x01"],
            'json garbage' => [Format::JSON, "\x00not json"],
            'json truncated' => [Format::JSON, '{"text":'],
            'protobuf garbage' => [Format::PROTOBUF, "\xff\xff\xff"],
            'protobuf truncated' => [Format::PROTOBUF, "\x12\x10ab"],
        ];
    }

    /** @dataProvider garbage */
    public function testGarbageAndTruncatedPayloads(string $format, string $payload): void
    {
        $rt = $this->runtime();
        $this->assertStatus(DecodeException::class, 'DECODE_ERROR', fn () => $rt->callRaw(self::ECHO, $payload, $format));
        $this->assertSame(['text' => 'still fine'], $rt->call(self::ECHO, ['text' => 'still fine']));
    }

    public function testCborLengthPrefixOf2To64(): void
    {
        $rt = $this->runtime();
        $payload = "\xa1\x67payload\x5b" . str_repeat("\xff", 8);
        $this->assertStatus(DecodeException::class, 'DECODE_ERROR', fn () => $rt->callRaw(self::ECHO, $payload, Format::CBOR), '18446744073709551615');
        $this->assertStatus(DecodeException::class, 'DECODE_ERROR', fn () => Cbor::decode($payload), '18446744073709551615');
    }

    /** @return array<string, array{0: string, 1: string}> */
    public static function nesting(): array
    {
        return [
            'cbor' => [Format::CBOR, str_repeat("\x81", 100_000) . "\x00"],
            'json' => [Format::JSON, str_repeat('[', 100_000) . str_repeat(']', 100_000)],
            'protobuf' => [Format::PROTOBUF, str_repeat("\x0b", 100_000)],
        ];
    }

    /** @dataProvider nesting */
    public function testHundredThousandLevelsOfNesting(string $format, string $payload): void
    {
        $rt = $this->runtime();
        try {
            $rt->callRaw(self::ECHO, $payload, $format);
            $this->fail('100,000 levels of nesting were accepted');
        } catch (ResourceExhaustedException | DecodeException $e) {
            $this->assertContains($e->getStatusName(), ['RESOURCE_EXHAUSTED', 'DECODE_ERROR']);
        }
        $this->assertSame(['text' => 'alive'], $rt->call(self::ECHO, ['text' => 'alive']));
    }

    public function testSixtyFourMebibytePayload(): void
    {
        $big = str_repeat("\xab", 64 << 20);
        $rt = $this->runtime();
        $this->assertStatus(
            ResourceExhaustedException::class,
            'RESOURCE_EXHAUSTED',
            fn () => $rt->call(self::ECHO, ['payload' => new Bytes($big)]),
            'over the limit of 4194304 bytes',
        );
        $roomy = $this->runtime(['max_message_bytes' => 80 << 20]);
        $reply = $roomy->call(self::ECHO, ['payload' => new Bytes($big)]);
        $this->assertSame(64 << 20, strlen($reply['payload']->value));
        $this->assertTrue($reply['payload']->value === $big);
        $this->assertSame(['text' => 'small'], $roomy->call(self::ECHO, ['text' => 'small']));
    }

    public function testClosedRuntime(): void
    {
        $rt = new \Hms\Runtime();
        $rt->close();
        $rt->close();
        $this->assertTrue($rt->isClosed());
        $e = $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $rt->call(self::ECHO));
        $this->assertInstanceOf(\Hms\Exception\InvalidHandleException::class, $e);
        $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $rt->subscribe());
        $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $rt->registerService('a.B', ['C' => fn () => 1]));
    }

    public function testRuntimeConfig(): void
    {
        $rt = $this->runtime(['name' => 'php-test']);
        $this->assertSame('php-test', $rt->health()['runtime_name']);
        $pb = new \Hms\Runtime(new \Hms\V1\RuntimeConfig(['name' => 'pb-config']));
        $this->assertSame('pb-config', $pb->health()['runtime_name']);
        $pb->close();
        $this->assertStatus(DecodeException::class, 'DECODE_ERROR', fn () => new \Hms\Runtime("\xff\xff"));
    }
}
