<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\Bytes;
use Hms\Cbor;
use Hms\Exception\ClosedException;
use Hms\Exception\DecodeException;
use Hms\Exception\InvalidArgumentException;
use Hms\Exception\InvalidHandleException;
use Hms\Exception\NotFoundException;
use Hms\Format;
use Hms\Native;
use Hms\Runtime;
use Hms\Status;
use Hms\Sys\V1\EchoRequest;
use Hms\Sys\V1\EchoResponse;

/** Method handles (ABI 1.1): Runtime::method(), Method::callRaw(), call(), close(). */
final class MethodTest extends HmsTestCase
{
    private const ECHO = 'hms.sys.v1.System/Echo';

    public function testRawCallsInEveryFormat(): void
    {
        $rt = $this->runtime();
        $pb = (new EchoRequest(['text' => 'raw', 'payload' => str_repeat("\x00\xff", 32)]))->serializeToString();
        $echo = $rt->method(self::ECHO, Format::PROTOBUF);
        $this->assertSame(self::ECHO, $echo->name);
        $this->assertSame(Format::PROTOBUF, $echo->format());
        for ($i = 0; $i < 3; $i++) {
            $this->assertSame($pb, $echo->callRaw($pb));
        }
        $this->assertSame('', $echo->callRaw(''));
        $json = $rt->method(self::ECHO, Format::JSON);
        $this->assertSame('{"text":"raw"}', $json->callRaw('{"text":"raw"}'));
        // the runtime's format by default, an HMS_FORMAT_* number as is
        $cbor = $rt->method(self::ECHO);
        $this->assertSame(Format::CBOR, $cbor->format());
        $this->assertSame(Cbor::encode(['text' => 'raw']), $cbor->callRaw(Cbor::encode(['text' => 'raw'])));
        $this->assertSame("\xa0", $cbor->callRaw(''));
        $this->assertSame(Format::JSON, $rt->method(self::ECHO, 3)->format());
        $this->assertSame(Format::JSON, $this->runtime(null, Format::JSON)->method(self::ECHO)->format());
    }

    public function testAnswersOfEverySizeAndTheBufferMovingBetweenThem(): void
    {
        $rt = $this->runtime(['max_message_bytes' => 8 << 20]);
        $echo = $rt->method(self::ECHO, Format::PROTOBUF);
        // growing, shrinking, past the 1 MiB the binding keeps, and back
        foreach ([64, 1024, 65536, 16, 3 << 20, 64, 2 << 20, 0, 100] as $size) {
            $pb = (new EchoRequest(['payload' => $size === 0 ? '' : random_bytes($size)]))->serializeToString();
            $this->assertTrue($echo->callRaw($pb) === $pb, "{$size} B");
            // other users of the same buffers in between
            $this->assertSame(['text' => "{$size}"], $rt->call(self::ECHO, ['text' => "{$size}"]));
            $this->assertSame('{"text":"x"}', \Hms\Convert::convert('hms.sys.v1.EchoRequest', Cbor::encode(['text' => 'x']), Format::CBOR, Format::JSON));
        }
    }

    public function testTypedCallsMirrorRuntimeCall(): void
    {
        $rt = $this->runtime();
        $cbor = $rt->method(self::ECHO);
        $this->assertEquals(['text' => 'hé', 'payload' => new Bytes("\x00\x01")], $cbor->call(['text' => 'hé', 'payload' => new Bytes("\x00\x01")]));
        $this->assertSame([], $cbor->call());
        $this->assertSame([], $cbor->call([]));
        $json = $rt->method(self::ECHO, Format::JSON);
        $this->assertSame(['payload' => 'AAE=', 'text' => 'j'], $json->call(['text' => 'j', 'payload' => new Bytes("\x00\x01")]));
        $pb = $rt->method(self::ECHO, Format::PROTOBUF);
        $reply = $pb->call(new EchoRequest(['text' => 'pb', 'payload' => "\xff"]));
        $this->assertInstanceOf(EchoResponse::class, $reply);
        $this->assertSame('pb', $reply->getText());
        $this->assertSame("\xff", $reply->getPayload());
        $this->assertSame('', $pb->call()->getText());
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $pb->call(['text' => 'x']), 'protobuf message');
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $cbor->call(new EchoRequest()), 'Format::PROTOBUF');
    }

    public function testErrorsAreThoseOfACallByName(): void
    {
        $rt = $this->runtime();
        $empty = [Format::PROTOBUF => '', Format::CBOR => "\xa0", Format::JSON => '{}'];
        foreach (CallTest::garbage() as [$format, $payload]) {
            $byName = $this->assertStatus(DecodeException::class, 'DECODE_ERROR', fn () => $rt->callRaw(self::ECHO, $payload, $format));
            $m = $rt->method(self::ECHO, $format);
            $byHandle = $this->assertStatus(DecodeException::class, 'DECODE_ERROR', fn () => $m->callRaw($payload));
            $this->assertSame($byName->getMessage(), $byHandle->getMessage());
            $this->assertSame($byName->getOrigin(), $byHandle->getOrigin());
            $this->assertSame($byName->getDetails(), $byHandle->getDetails());
            $this->assertSame($empty[$format], $m->callRaw($empty[$format]), 'the handle still works');
        }
        // over the runtime's size limit
        $small = $this->runtime(['max_message_bytes' => 1024]);
        $m = $small->method(self::ECHO, Format::PROTOBUF);
        $big = (new EchoRequest(['payload' => str_repeat('x', 2048)]))->serializeToString();
        $this->assertStatus(\Hms\Exception\ResourceExhaustedException::class, 'RESOURCE_EXHAUSTED', fn () => $m->callRaw($big));
    }

    public function testUnknownMethodsAndBadArguments(): void
    {
        $rt = $this->runtime();
        $e = $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $rt->method('hms.sys.v1.System/Nope'), 'Nope');
        $this->assertSame(['method' => 'Nope', 'service' => 'hms.sys.v1.System'], $e->getDetails());
        $this->assertSame('registry', $e->getOrigin());
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $rt->method('no.such.Service/Method', Format::PROTOBUF), 'no.such.Service');
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $rt->method('no.such.Service/Method', Format::JSON));
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $rt->method('nosuch'), 'full name');
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $rt->method(''), 'empty');
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $rt->method("hms.sys.v1.System/Ech\xff"), 'UTF-8');
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $rt->method(self::ECHO, 'XML'), 'unknown format');
        // the core's own check (its status comes back in JSON)
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $rt->method(self::ECHO, 99), 'unknown format 99');
    }

    public function testCloseIsIdempotentAndCallsAfterItThrowClosed(): void
    {
        $rt = $this->runtime();
        $m = $rt->method(self::ECHO, Format::PROTOBUF);
        $handle = $m->handle();
        $this->assertNotSame(0, $handle);
        $this->assertFalse($m->isClosed());
        $m->close();
        $m->close();
        $this->assertTrue($m->isClosed());
        $this->assertSame(0, $m->handle());
        $e = $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $m->callRaw(''), 'method handle is closed');
        $this->assertInstanceOf(InvalidHandleException::class, $e);
        $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $m->call(new EchoRequest()));
        $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $m->batchRaw(['']));
        $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $m->batchRaw([]));
        // the freed handle is dead in the core too
        [, $out, $err] = Native::get()->pair();
        $this->assertSame(Status::code('INVALID_HANDLE'), Native::get()->ffi->hms_method_call($handle, '', 0, $out, $err));
    }

    public function testDestructorFreesTheHandle(): void
    {
        $rt = $this->runtime();
        $m = $rt->method(self::ECHO);
        $handle = $m->handle();
        unset($m);
        [, $out, $err] = Native::get()->pair();
        $this->assertSame(Status::code('INVALID_HANDLE'), Native::get()->ffi->hms_method_call($handle, '', 0, $out, $err));
    }

    public function testClosingTheRuntimeInvalidatesItsMethods(): void
    {
        $rt = new Runtime();
        $pb = $rt->method(self::ECHO, Format::PROTOBUF);
        $cbor = $rt->method(self::ECHO);
        $handle = $pb->handle();
        $rt->close();
        $this->assertTrue($pb->isClosed());
        $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $pb->callRaw(''), 'runtime is closed');
        $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $cbor->call(['text' => 'x']), 'runtime is closed');
        $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $pb->call(new EchoRequest()), 'closed');
        $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $pb->batchRaw(['']), 'runtime is closed');
        $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $rt->method(self::ECHO));
        $this->assertSame(Status::code('INVALID_HANDLE'), Native::get()->ffi->hms_method_free($handle));
        $pb->close(); // harmless: the runtime freed it already
        $cbor->close();
        $this->assertSame(0, $pb->handle());
    }

    public function testZeroMadeUpFreedAndWrongKindHandles(): void
    {
        $native = Native::get();
        $ffi = $native->ffi;
        [, $out, $err] = $native->pair();
        $invalid = Status::code('INVALID_HANDLE');
        $rt = $this->runtime();
        $sub = $rt->subscribe();
        $subHandle = (new \ReflectionProperty($sub, 'handle'))->getValue($sub);
        foreach ([0, 1, 12345, PHP_INT_MAX, -1, $rt->handle(), $subHandle] as $h) {
            $this->assertSame($invalid, $ffi->hms_method_call($h, '', 0, $out, $err), "hms_method_call({$h})");
            $this->assertSame($invalid, $ffi->hms_method_free($h), "hms_method_free({$h})");
            $e = $native->error($invalid, $err, Format::value(Format::JSON));
            $this->assertInstanceOf(InvalidHandleException::class, $e);
        }
        $this->assertSame(0, $ffi->hms_call($rt->handle(), self::ECHO, strlen(self::ECHO), 2, '', 0, null, 0, $out, $err), 'the runtime survived');
        $m = $rt->method(self::ECHO);
        $h = $m->handle();
        // a method handle is no runtime, service or subscription
        $this->assertSame($invalid, $ffi->hms_call($h, self::ECHO, strlen(self::ECHO), 2, '', 0, null, 0, $out, $err));
        $this->assertSame($invalid, $ffi->hms_runtime_free($h));
        $this->assertSame($invalid, $ffi->hms_unsubscribe($h));
        $this->assertSame($invalid, $ffi->hms_service_unregister($h));
        $this->assertSame(0, $ffi->hms_method_call($h, '', 0, $out, $err));
        // freed, then freed again, then a new handle does not revive it
        $this->assertSame(0, $ffi->hms_method_free($h));
        $this->assertSame($invalid, $ffi->hms_method_free($h));
        $this->assertSame($invalid, $ffi->hms_method_call($h, '', 0, $out, $err));
        $fresh = $rt->method(self::ECHO);
        $this->assertNotSame($h, $fresh->handle());
        $this->assertSame($invalid, $ffi->hms_method_call($h, '', 0, $out, $err));
        // the Method object notices nothing until it is used: the core's answer
        $this->assertStatus(InvalidHandleException::class, 'INVALID_HANDLE', fn () => $m->callRaw(''));
        // NULL out of a resolve and NULL response of a call: refused, not dereferenced
        $this->assertSame(Status::code('INVALID_ARGUMENT'), $ffi->hms_method_resolve($rt->handle(), self::ECHO, strlen(self::ECHO), 2, null, $err));
        $this->assertSame(Status::code('INVALID_ARGUMENT'), $ffi->hms_method_call($fresh->handle(), '', 0, null, $err));
    }

    public function testHostServiceMethodAfterUnregister(): void
    {
        $rt = $this->runtime();
        $svc = $rt->registerService('demo.v1.Gone', ['Ping' => fn (mixed $req): array => ['pong' => $req['n'] ?? 0]]);
        $ping = $rt->method('demo.v1.Gone/Ping');
        $this->assertSame(['pong' => 1], $ping->call(['n' => 1]));
        $this->assertSame(['pong' => 2], $rt->call('demo.v1.Gone/Ping', ['n' => 2])); // by name (cached handle)
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $rt->method('demo.v1.Gone/Nope'));
        $svc->close();
        // the handle answers what a call by name answers
        $byName = $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $rt->call('demo.v1.Gone/Ping', ['n' => 3]));
        $byHandle = $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $ping->call(['n' => 3]));
        $this->assertSame($byName->getMessage(), $byHandle->getMessage());
        $this->assertSame($byName->getDetails(), $byHandle->getDetails());
        $this->assertSame($byName->getOrigin(), $byHandle->getOrigin());
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $rt->method('demo.v1.Gone/Ping'));
        // the service back under the same name: the old handle reaches it
        $rt->registerService('demo.v1.Gone', ['Ping' => fn (mixed $req): array => ['pong' => -1]]);
        $this->assertSame(['pong' => -1], $ping->call(['n' => 4]));
        $this->assertSame(['pong' => -1], $rt->method('demo.v1.Gone/Ping')->call(['n' => 4]));
        $this->assertSame(['pong' => -1], $rt->call('demo.v1.Gone/Ping', ['n' => 5]));
    }

    public function testHandlersCallThroughMethodsOnTheirOwnBuffers(): void
    {
        $rt = $this->runtime();
        $echo = $rt->method(self::ECHO, Format::PROTOBUF);
        $rt->registerService('demo.v1.Nest', [
            'Twice' => function (mixed $req) use ($echo): array {
                $pb = (new EchoRequest(['text' => (string) $req['text']]))->serializeToString();
                $once = $echo->callRaw($pb);
                [$a, $b] = $echo->batchRaw([$once, $pb]);
                return ['once' => $once === $pb, 'a' => $a === $pb, 'b' => $b === $pb];
            },
        ]);
        $outer = $rt->method('demo.v1.Nest/Twice');
        $pb = (new EchoRequest(['text' => 'outer']))->serializeToString();
        $this->assertSame($pb, $echo->callRaw($pb));
        $this->assertSame(['a' => true, 'b' => true, 'once' => true], $outer->call(['text' => 'nested']));
        // the outer call's buffers were not disturbed by the nested ones
        $this->assertSame([$pb, $pb], $echo->batchRaw([$pb, $pb]));
    }

    public function testRuntimeCallsByNameReuseOneHandlePerMethodAndFormat(): void
    {
        $rt = $this->runtime();
        $resolved = new \ReflectionProperty($rt, 'resolved');
        $rt->call(self::ECHO, ['text' => 'a']);
        $rt->call(self::ECHO, ['text' => 'b']);
        $rt->call(self::ECHO, ['text' => 'c'], format: Format::JSON);
        $rt->callRaw(self::ECHO, '', Format::PROTOBUF);
        $rt->call(self::ECHO, ['text' => 'd'], ['deadline_ms' => 1000]); // options: by name
        $cache = $resolved->getValue($rt);
        $this->assertCount(3, $cache);
        foreach ($cache as $byName) {
            $this->assertSame([self::ECHO], array_keys($byName));
        }
        // names that do not resolve are not kept, and fail as before
        for ($i = 0; $i < 2; $i++) {
            $e = $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $rt->call('hms.sys.v1.System/Nope'));
            $this->assertSame(['method' => 'Nope', 'service' => 'hms.sys.v1.System'], $e->getDetails());
        }
        $this->assertCount(3, $resolved->getValue($rt));
        $rt->close();
        $this->assertSame([], $resolved->getValue($rt));
        $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $rt->call(self::ECHO));
    }
}
