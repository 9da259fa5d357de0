<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\Exception\StatusException;
use Hms\HmsException;
use Hms\Status;

final class ErrorsTest extends HmsTestCase
{
    public function testEveryStatusCodeHasItsSubclass(): void
    {
        foreach (Status::all() as $code => $name) {
            if ($name === 'OK') {
                $this->assertNull(HmsException::classFor($code));
                continue;
            }
            $class = HmsException::classFor($code);
            $this->assertNotNull($class, "no exception class for {$name}");
            $e = HmsException::fromStatus($code, "msg {$name}", ['k' => 'v'], 'origin');
            $this->assertInstanceOf($class, $e);
            $this->assertInstanceOf(StatusException::class, $e);
            $this->assertSame($code, $e->getCode());
            $this->assertSame($name, $e->getStatusName());
            $this->assertSame("msg {$name}", $e->getMessage());
            $this->assertSame(['k' => 'v'], $e->getDetails());
            $this->assertSame('origin', $e->getOrigin());
            $this->assertSame($code, (new $class('direct'))->getCode());
        }
        $this->assertInstanceOf(\Hms\Exception\DecodeException::class, HmsException::fromStatus(Status::code('DECODE_ERROR'), ''));
        $this->assertInstanceOf(\Hms\Exception\HandlerException::class, HmsException::fromStatus(Status::code('HANDLER_ERROR'), ''));
    }

    public function testUnknownCodeIsTheBaseClass(): void
    {
        $e = HmsException::fromStatus(4242, 'odd');
        $this->assertSame(HmsException::class, get_class($e));
        $this->assertSame(4242, $e->getCode());
        $this->assertSame('STATUS_4242', $e->getStatusName());
    }

    public function testStatusDecodesInEveryFormat(): void
    {
        $status = ['code' => 5, 'message' => 'gone', 'details' => ['id' => 'x'], 'origin' => 'here'];
        $this->assertSame($status, \Hms\Native::decodeStatus(\Hms\Cbor::encode($status), 2));
        $this->assertSame($status, \Hms\Native::decodeStatus(json_encode($status), 3));
        $pb = (new \Hms\V1\Status(['code' => -3, 'message' => 'neg', 'origin' => 'o']))->serializeToString();
        $this->assertSame(['code' => -3, 'message' => 'neg', 'details' => [], 'origin' => 'o'], \Hms\Native::decodeStatus($pb, 1));
        $pb = \Hms\Protobuf::serialize(new \Hms\V1\Status(['code' => 5, 'message' => 'gone', 'details' => ['id' => 'x'], 'origin' => 'here']));
        $this->assertSame($status, \Hms\Native::decodeStatus($pb, 1));
        $this->assertNull(\Hms\Native::decodeStatus("\xff", 2));
        $this->assertNull(\Hms\Native::decodeStatus("\x0a\x05ab", 1));
    }

    public function testErrorsOfProtobufCallsCarryTheirStatus(): void
    {
        $rt = $this->runtime();
        $e = $this->assertStatus(
            \Hms\Exception\NotFoundException::class,
            'NOT_FOUND',
            fn () => $rt->callRaw('hms.sys.v1.System/Nope', '', \Hms\Format::PROTOBUF),
            'Nope',
        );
        $this->assertSame('registry', $e->getOrigin());
        $this->assertSame('Nope', $e->getDetails()['method']);
    }
}
