<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\Cbor;
use Hms\Exception\BatchException;
use Hms\Exception\ClosedException;
use Hms\Exception\DecodeException;
use Hms\Exception\InvalidArgumentException;
use Hms\Exception\NotFoundException;
use Hms\Exception\ResourceExhaustedException;
use Hms\Format;
use Hms\HmsException;
use Hms\Native;
use Hms\Status;
use Hms\Sys\V1\EchoRequest;

/** Batches (ABI 1.1): Method::batchRaw(), Runtime::batchRaw(), hms_call_batch frames. */
final class BatchTest extends HmsTestCase
{
    private const ECHO = 'hms.sys.v1.System/Echo';

    private static function pb(string $text): string
    {
        return (new EchoRequest(['text' => $text]))->serializeToString();
    }

    public function testBatchOfAThousand(): void
    {
        $echo = $this->runtime()->method(self::ECHO, Format::PROTOBUF);
        $requests = [];
        for ($i = 0; $i < 1000; $i++) {
            $requests[] = $i % 7 === 0 ? '' : self::pb(str_repeat('x', $i % 300) . $i);
        }
        $this->assertSame($requests, $echo->batchRaw($requests));
        // keys do not matter: answers are a list in the order given
        $this->assertSame([self::pb('b'), self::pb('a')], $echo->batchRaw(['k' => self::pb('b'), 7 => self::pb('a')]));
        $this->assertSame([self::pb('one')], $echo->batchRaw([self::pb('one')]));
    }

    public function testFailingCallsInTheMiddleDoNotStopTheOthers(): void
    {
        $rt = $this->runtime();
        $echo = $rt->method(self::ECHO, Format::PROTOBUF);
        $requests = [self::pb('a'), "\xff\xff\xff", self::pb('b'), "\x12\x10ab", self::pb('c')];
        try {
            $echo->batchRaw($requests);
            $this->fail('no BatchException');
        } catch (BatchException $e) {
            $this->assertSame(Status::code('DECODE_ERROR'), $e->getCode());
            $this->assertSame('DECODE_ERROR', $e->getStatusName());
            $this->assertStringContainsString('2 of 5 calls', $e->getMessage());
            $this->assertStringContainsString('call 1', $e->getMessage());
            $this->assertSame(1, $e->firstFailure());
            $this->assertSame([1, 3], array_keys($e->failures()));
            $results = $e->results();
            $this->assertSame([0, 1, 2, 3, 4], array_keys($results));
            $this->assertSame(self::pb('a'), $results[0]);
            $this->assertSame(self::pb('b'), $results[2]);
            $this->assertSame(self::pb('c'), $results[4]);
            foreach ([1, 3] as $i) {
                $this->assertInstanceOf(DecodeException::class, $results[$i]);
                $this->assertSame($e->failures()[$i], $results[$i]);
            }
            $this->assertSame($results[1], $e->getPrevious());
            // each failure is what a single call would have thrown
            $single = $this->assertStatus(DecodeException::class, 'DECODE_ERROR', fn () => $echo->callRaw("\xff\xff\xff"));
            $this->assertSame($single->getMessage(), $results[1]->getMessage());
            $this->assertSame($single->getOrigin(), $results[1]->getOrigin());
            $this->assertSame($single->getDetails(), $results[1]->getDetails());
            $this->assertSame($single->getOrigin(), $e->getOrigin());
        }
        // failures decode in the method's format (CBOR and JSON too)
        foreach ([Format::CBOR => "\xff", Format::JSON => '{"text":'] as $format => $garbage) {
            $m = $rt->method(self::ECHO, $format);
            $ok = $format === Format::CBOR ? Cbor::encode(['text' => 'k']) : '{"text":"k"}';
            try {
                $m->batchRaw([$garbage, $ok]);
                $this->fail('no BatchException');
            } catch (BatchException $e) {
                $this->assertSame($ok, $e->results()[1]);
                $single = $this->assertStatus(DecodeException::class, 'DECODE_ERROR', fn () => $m->callRaw($garbage));
                $this->assertSame($single->getMessage(), $e->results()[0]->getMessage());
                $this->assertNotSame('', $single->getOrigin());
            }
        }
    }

    public function testCallsAfterAFailureHaveTheirEffects(): void
    {
        $rt = $this->runtime();
        $create = $rt->method('hms.agent.v1.AgentService/CreateAgent');
        $calls = [
            [$create, Cbor::encode(['agent' => ['name' => 'first']])],
            [$create, Cbor::encode(['agent' => ['name' => '']])],   // name required
            [$create, "\xff"],                                     // garbage
            [$create, Cbor::encode(['agent' => ['name' => 'last']])],
        ];
        try {
            $rt->batchRaw($calls);
            $this->fail('no BatchException');
        } catch (BatchException $e) {
            $this->assertSame([1, 2], array_keys($e->failures()));
            $this->assertInstanceOf(DecodeException::class, $e->failures()[2]);
            $this->assertSame('last', Cbor::decode($e->results()[3])['name']);
        }
        $names = array_map(fn (array $a): string => $a['name'], $rt->agents()->list()['agents']);
        sort($names);
        $this->assertSame(['first', 'last'], $names);
    }

    public function testMixedMethodsAndFormats(): void
    {
        $rt = $this->runtime();
        $pb = $rt->method(self::ECHO, Format::PROTOBUF);
        $json = $rt->method(self::ECHO, Format::JSON);
        $health = $rt->method('hms.sys.v1.System/Health');
        $other = $this->runtime(['name' => 'other'])->method('hms.sys.v1.System/Health', Format::JSON);
        $results = $rt->batchRaw([
            [$pb, self::pb('p')],
            [$json, '{"text":"j"}'],
            [$health, ''],
            [$pb, ''],
            [$other, '{}'],
        ]);
        $this->assertCount(5, $results);
        $this->assertSame(self::pb('p'), $results[0]);
        $this->assertSame('{"text":"j"}', $results[1]);
        $this->assertSame('SERVING', Cbor::decode($results[2])['status']);
        $this->assertSame('', $results[3]);
        $this->assertSame('other', json_decode($results[4], true)['runtime_name']);
    }

    public function testEmptyBatches(): void
    {
        $rt = $this->runtime();
        $echo = $rt->method(self::ECHO);
        $this->assertSame([], $echo->batchRaw([]));
        $this->assertSame([], $rt->batchRaw([]));
        // the core with a frame of no calls: a result frame of no calls
        $native = Native::get();
        [, $out, $err] = $native->pair();
        $frame = pack('P', 0);
        $this->assertSame(0, $native->ffi->hms_call_batch($frame, strlen($frame), $out, $err));
        $this->assertSame(pack('P', 0), $native->take($out));
    }

    public function testBadCallsOfARuntimeBatch(): void
    {
        $rt = $this->runtime();
        $echo = $rt->method(self::ECHO);
        foreach ([[$echo], [$echo, 1], ['x', ''], 'not a pair', [1 => $echo, 2 => '']] as $bad) {
            $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $rt->batchRaw([[$echo, "\xa0"], $bad]), 'call 1');
        }
    }

    public function testClosedAndStaleMethodsInABatch(): void
    {
        $rt = $this->runtime();
        $echo = $rt->method(self::ECHO);
        $closed = $rt->method(self::ECHO);
        $closed->close();
        $stale = $rt->method(self::ECHO);
        Native::get()->ffi->hms_method_free($stale->handle());
        try {
            $rt->batchRaw([[$echo, "\xa0"], [$closed, "\xa0"], [$stale, "\xa0"], [$echo, "\xa0"]]);
            $this->fail('no BatchException');
        } catch (BatchException $e) {
            $this->assertSame(Status::code('INVALID_HANDLE'), $e->getCode());
            $this->assertSame(["\xa0", "\xa0"], [$e->results()[0], $e->results()[3]]);
            $this->assertInstanceOf(ClosedException::class, $e->results()[1]);
            $this->assertInstanceOf(\Hms\Exception\InvalidHandleException::class, $e->results()[2]);
            $this->assertNotInstanceOf(ClosedException::class, $e->results()[2]);
        }
    }

    public function testAfterTheRuntimeIsClosed(): void
    {
        $rt = new \Hms\Runtime();
        $echo = $rt->method(self::ECHO);
        $rt->close();
        $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $echo->batchRaw(["\xa0"]), 'runtime is closed');
        $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $rt->batchRaw([[$echo, "\xa0"]]), 'runtime is closed');
        $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $rt->batchRaw([]));
        // a live runtime's batch with the dead runtime's method: that call fails alone
        $live = $this->runtime();
        try {
            $live->batchRaw([[$echo, "\xa0"], [$live->method(self::ECHO), "\xa0"]]);
            $this->fail('no BatchException');
        } catch (BatchException $e) {
            $this->assertInstanceOf(ClosedException::class, $e->results()[0]);
            $this->assertSame("\xa0", $e->results()[1]);
        }
    }

    public function testUnknownMethodAndUnregisteredService(): void
    {
        $rt = $this->runtime();
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $rt->method('hms.sys.v1.System/Nope'));
        $calls = 0;
        $svc = $rt->registerService('demo.v1.Count', ['Hit' => function () use (&$calls): array {
            $calls++;
            return ['n' => $calls];
        }]);
        $hit = $rt->method('demo.v1.Count/Hit');
        $this->assertSame([Cbor::encode(['n' => 1]), Cbor::encode(['n' => 2])], $hit->batchRaw(['', '']));
        $svc->close();
        try {
            $rt->batchRaw([[$hit, ''], [$rt->method(self::ECHO), "\xa0"]]);
            $this->fail('no BatchException');
        } catch (BatchException $e) {
            $this->assertInstanceOf(NotFoundException::class, $e->results()[0]);
            $this->assertSame(Status::code('NOT_FOUND'), $e->getCode());
            $this->assertStringContainsString('demo.v1.Count', $e->getMessage());
            $this->assertSame("\xa0", $e->results()[1]);
        }
        $this->assertSame(2, $calls);
        // a service of that name again: the same handle reaches it
        $rt->registerService('demo.v1.Count', ['Hit' => fn (): array => ['again' => true]]);
        $this->assertSame([Cbor::encode(['again' => true])], $hit->batchRaw(['']));
    }

    public function testOversizeBatchRunsNothing(): void
    {
        $max = Native::constant('BATCH_MAX_CALLS');
        $this->assertSame(1 << 20, $max);
        $rt = $this->runtime();
        $calls = 0;
        $rt->registerService('demo.v1.Count', ['Hit' => function () use (&$calls): array {
            $calls++;
            return [];
        }]);
        $hit = $rt->method('demo.v1.Count/Hit');
        $e = $this->assertStatus(
            ResourceExhaustedException::class,
            'RESOURCE_EXHAUSTED',
            fn () => $hit->batchRaw(array_fill(0, $max + 1, '')),
        );
        $this->assertNotInstanceOf(BatchException::class, $e);
        $this->assertStringContainsString((string) $max, $e->getMessage());
        $this->assertSame(0, $calls, 'nothing ran');
        $this->assertSame([Cbor::encode([])], $hit->batchRaw(['']));
        $this->assertSame(1, $calls);
    }

    public function testTheLargestBatchRuns(): void
    {
        $max = Native::constant('BATCH_MAX_CALLS');
        $echo = $this->runtime()->method(self::ECHO, Format::PROTOBUF);
        $results = $echo->batchRaw(array_fill(0, $max, ''));
        $this->assertCount($max, $results);
        $this->assertSame('', $results[$max - 1]);
    }

    /**
     * Frames the core must refuse as a whole: malformed (INVALID_ARGUMENT),
     * or claiming more than HMS_BATCH_MAX_CALLS calls (RESOURCE_EXHAUSTED,
     * without allocating for the claimed count).
     *
     * @return array<string, array{0: string, 1: string}>
     */
    public static function malformed(): array
    {
        $h = 1 << 40; // replaced by a real method handle in the test
        return [
            'shorter than its count' => [pack('P', 1), 'INVALID_ARGUMENT'],
            'count larger than the buffer' => [pack('P*', 1000, $h, 2) . 'ab', 'INVALID_ARGUMENT'],
            'a count word cut short' => ["\x01\x00\x00", 'INVALID_ARGUMENT'],
            'ends decreasing' => [pack('P*', 2, $h, $h, 2, 1) . 'ab', 'INVALID_ARGUMENT'],
            'last end short of the area' => [pack('P*', 1, $h, 1) . 'ab', 'INVALID_ARGUMENT'],
            'last end past the area' => [pack('P*', 1, $h, 3) . 'ab', 'INVALID_ARGUMENT'],
            'an end of 2^64 - 1' => [pack('P*', 2, $h, $h, -1, 2) . 'ab', 'INVALID_ARGUMENT'],
            'an empty frame' => ['', 'INVALID_ARGUMENT'],
            'count of 2^63 in 27 bytes' => [pack('P*', PHP_INT_MIN, $h, 2) . 'ab', 'RESOURCE_EXHAUSTED'],
            'count of 2^64 - 1 in 27 bytes' => [pack('P*', -1, $h, 2) . 'ab', 'RESOURCE_EXHAUSTED'],
            'count of max + 1 in 27 bytes' => [pack('P*', (1 << 20) + 1, $h, 2) . 'ab', 'RESOURCE_EXHAUSTED'],
        ];
    }

    /** @dataProvider malformed */
    public function testMalformedFramesAreRefusedWithoutRunningAnything(string $frame, string $status): void
    {
        $native = Native::get();
        $ffi = $native->ffi;
        $rt = $this->runtime();
        $calls = 0;
        $rt->registerService('demo.v1.Count', ['Hit' => function () use (&$calls): array {
            $calls++;
            return [];
        }]);
        $hit = $rt->method('demo.v1.Count/Hit');
        // the handle of a real method in every handle slot
        $frame = str_replace(pack('P', 1 << 40), pack('P', $hit->handle()), $frame);
        $results = $ffi->new('hms_buf');
        $err = $ffi->new('hms_buf');
        $rc = $ffi->hms_call_batch($frame, strlen($frame), \FFI::addr($results), \FFI::addr($err));
        $this->assertSame(Status::code($status), $rc);
        $this->assertNull($results->data, 'results untouched');
        $e = $native->error($rc, \FFI::addr($err), Format::value(Format::JSON));
        $this->assertSame($status, $e->getStatusName());
        $this->assertNotSame(strtolower(str_replace('_', ' ', $status)), $e->getMessage(), 'the core says what is wrong');
        $ffi->hms_buf_free(\FFI::addr($err));
        $this->assertSame(0, $calls, 'nothing ran');
        $this->assertSame([Cbor::encode([])], $hit->batchRaw(['']), 'and the next batch runs');
    }

    public function testNullPointersAreRefused(): void
    {
        $native = Native::get();
        [, $out, $err] = $native->pair();
        $invalid = Status::code('INVALID_ARGUMENT');
        $this->assertSame($invalid, $native->ffi->hms_call_batch(null, 8, $out, $err));
        $frame = pack('P', 0);
        $this->assertSame($invalid, $native->ffi->hms_call_batch($frame, 8, null, $err));
        $this->assertSame($invalid, $native->ffi->hms_call_batch($frame, 8, null, null));
    }

    public function testBatchExceptionIsAnHmsException(): void
    {
        $failure = HmsException::fromStatus(Status::code('NOT_FOUND'), 'gone', ['k' => 'v'], 'here');
        $e = new BatchException([0 => 'ok', 1 => $failure], [1 => $failure]);
        $this->assertInstanceOf(HmsException::class, $e);
        $this->assertSame(Status::code('NOT_FOUND'), $e->getCode());
        $this->assertSame(['k' => 'v'], $e->getDetails());
        $this->assertSame('here', $e->getOrigin());
        $this->assertSame('1 of 2 calls of the batch failed; the first, call 1: NOT_FOUND: gone', $e->getMessage());
    }
}
