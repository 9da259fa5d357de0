<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\Bytes;
use Hms\Exception\AlreadyExistsException;
use Hms\Exception\FailedPreconditionException;
use Hms\Exception\HandlerException;
use Hms\Exception\NotFoundException;
use Hms\Exception\PermissionDeniedException;
use Hms\Format;
use Hms\Runtime;
use Hms\Service;

final class ServiceTest extends HmsTestCase
{
    public function testPhpCallablesAnswerCalls(): void
    {
        $rt = $this->runtime();
        $svc = $rt->registerService('demo.v1.Greeter', [
            'Greet' => fn (array $req): array => ['greeting' => 'hello ' . $req['name']],
            'Echo' => fn (mixed $req, string $method): array => ['method' => $method, 'got' => $req],
        ], version: '1.2.0');
        $this->assertSame(['greeting' => 'hello php'], $rt->call('demo.v1.Greeter/Greet', ['name' => 'php']));
        $this->assertEquals(
            ['method' => 'Echo', 'got' => ['b' => new Bytes("\x00"), 'n' => [1, 2.5, null, true]]],
            $rt->call('demo.v1.Greeter/Echo', ['b' => new Bytes("\x00"), 'n' => [1, 2.5, null, true]]),
        );
        // JSON callers reach the same CBOR service; the core converts structurally
        $this->assertSame(['greeting' => 'hello json'], $rt->call('demo.v1.Greeter/Greet', ['name' => 'json'], format: Format::JSON));
        $this->assertSame(['Echo', 'Greet'], $this->sorted($svc->methods()));
        $listed = $rt->listServices('demo.v1.');
        $this->assertCount(1, $listed);
        $this->assertSame('demo.v1.Greeter', $listed[0]['name']);
        $this->assertSame('1.2.0', $listed[0]['version']);
        $this->assertSame('host', $listed[0]['origin']);
    }

    public function testTypedMethodsConvertBetweenFormats(): void
    {
        $rt = $this->runtime();
        $rt->registerService(
            'demo.v1.Typed',
            ['Echo' => fn (array $req): array => ['text' => strtoupper($req['text'] ?? ''), 'payload' => $req['payload'] ?? new Bytes('')]],
            types: ['Echo' => ['hms.sys.v1.EchoRequest', 'hms.sys.v1.EchoResponse']],
        );
        $this->assertEquals(['text' => 'ABC', 'payload' => new Bytes("\x01")], $rt->call('demo.v1.Typed/Echo', ['text' => 'abc', 'payload' => new Bytes("\x01")]));
        $this->assertSame(['payload' => 'AQ==', 'text' => 'J'], $rt->call('demo.v1.Typed/Echo', ['text' => 'j', 'payload' => 'AQ=='], format: Format::JSON));
        $reply = $rt->call('demo.v1.Typed/Echo', new \Hms\Sys\V1\EchoRequest(['text' => 'pb']));
        $this->assertInstanceOf(\Hms\Sys\V1\EchoResponse::class, $reply);
        $this->assertSame('PB', $reply->getText());
    }

    public function testHandlerThatThrowsBecomesHandlerError(): void
    {
        $rt = $this->runtime();
        $rt->registerService('demo.v1.Boom', [
            'Throw' => fn () => throw new \LogicException('kaput'),
            'Error' => fn () => intdiv(1, 0),
            'Typed' => fn () => throw new PermissionDeniedException('not you', ['who' => 'php']),
            'Garbage' => fn () => fopen('php://memory', 'r'),
        ]);
        $this->assertStatus(HandlerException::class, 'HANDLER_ERROR', fn () => $rt->call('demo.v1.Boom/Throw'), 'LogicException: kaput');
        $this->assertStatus(HandlerException::class, 'HANDLER_ERROR', fn () => $rt->call('demo.v1.Boom/Error'), 'DivisionByZeroError');
        $this->assertStatus(PermissionDeniedException::class, 'PERMISSION_DENIED', fn () => $rt->call('demo.v1.Boom/Typed'), 'not you');
        $this->assertStatus(HandlerException::class, 'HANDLER_ERROR', fn () => $rt->call('demo.v1.Boom/Garbage'), 'CBOR cannot carry');
        // the runtime and the service go on
        $this->assertStatus(HandlerException::class, 'HANDLER_ERROR', fn () => $rt->call('demo.v1.Boom/Throw'));
        $this->assertSame(['text' => 'ok'], $rt->call('hms.sys.v1.System/Echo', ['text' => 'ok']));
    }

    public function testHandlersReenterTheRuntime(): void
    {
        $rt = $this->runtime();
        $depth = 0;
        $rt->registerService('demo.v1.Nested', [
            'Down' => function (array $req) use ($rt, &$depth): array {
                $depth = max($depth, $req['n']);
                if ($req['n'] === 0) {
                    return $rt->call('hms.sys.v1.System/Echo', ['text' => 'bottom']);
                }
                $inner = $rt->call('demo.v1.Nested/Down', ['n' => $req['n'] - 1]);
                return ['text' => $inner['text'] . '<' . $req['n']];
            },
            'Sub' => function () use ($rt): array {
                $svc = $rt->registerService('demo.v1.Inner', ['Ping' => fn () => ['pong' => true]]);
                $answer = $rt->call('demo.v1.Inner/Ping');
                $svc->close();
                return $answer;
            },
            'Close' => function () use ($rt): array {
                $rt->close();
                return [];
            },
        ]);
        $this->assertSame(['text' => 'bottom<1<2<3<4<5'], $rt->call('demo.v1.Nested/Down', ['n' => 5]));
        $this->assertSame(5, $depth);
        $this->assertSame(['pong' => true], $rt->call('demo.v1.Nested/Sub'));
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $rt->call('demo.v1.Inner/Ping'));
        $this->assertStatus(FailedPreconditionException::class, 'FAILED_PRECONDITION', fn () => $rt->call('demo.v1.Nested/Close'), 'inside one of its own handlers');
        $this->assertFalse($rt->isClosed());
    }

    public function testServiceUnregistersItselfFromItsHandler(): void
    {
        $rt = $this->runtime();
        $holder = new \ArrayObject();
        $holder['svc'] = $rt->registerService('demo.v1.Once', [
            'Go' => function () use ($holder): array {
                $holder['svc']->close();
                return ['bye' => true];
            },
        ]);
        $this->assertSame(['bye' => true], $rt->call('demo.v1.Once/Go'));
        $this->assertTrue($holder['svc']->isClosed());
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $rt->call('demo.v1.Once/Go'));
    }

    public function testRegistrationErrors(): void
    {
        $rt = $this->runtime();
        $svc = $rt->registerService('demo.v1.Dup', ['A' => fn () => 1]);
        $this->assertStatus(AlreadyExistsException::class, 'ALREADY_EXISTS', fn () => $rt->registerService('demo.v1.Dup', ['A' => fn () => 2]));
        $this->assertStatus(\Hms\Exception\InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $rt->registerService('', ['A' => fn () => 1]));
        $this->assertStatus(\Hms\Exception\InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $rt->registerService('demo.v1.X', ['A' => 'no_such_function_anywhere']));
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $rt->registerService('demo.v1.Y', ['A' => fn () => 1], types: ['A' => ['no.Such', 'no.Such']]));
        $this->assertSame(1, $rt->call('demo.v1.Dup/A'));
        $svc->close();
        $svc->close();
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $rt->call('demo.v1.Dup/A'));
        $again = $rt->registerService('demo.v1.Dup', ['A' => fn () => 2]);
        $this->assertInstanceOf(Service::class, $again);
        $this->assertSame(2, $rt->call('demo.v1.Dup/A'));
    }

    public function testUnknownMethodOfAHostService(): void
    {
        $rt = $this->runtime();
        $rt->registerService('demo.v1.Small', ['A' => fn () => 1]);
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $rt->call('demo.v1.Small/B'));
    }

    public function testClosingTheRuntimeClosesItsServices(): void
    {
        $rt = new Runtime();
        $svc = $rt->registerService('demo.v1.Gone', ['A' => fn () => 1]);
        $rt->close();
        $this->assertTrue($svc->isClosed());
        $svc->close();
        $this->assertTrue($rt->isClosed());
    }

    /**
     * @param list<string> $list
     * @return list<string>
     */
    private function sorted(array $list): array
    {
        sort($list);
        return $list;
    }
}
