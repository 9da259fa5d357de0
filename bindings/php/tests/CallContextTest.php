<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\CallContext;
use Hms\Exception\PermissionDeniedException;
use Hms\Exception\UnknownException;
use Hms\Format;
use Hms\HmsException;

final class CallContextTest extends HmsTestCase
{
    private const TRACED = ['metadata' => ['tenant' => 'acme', 'ünï' => 'cödé'], 'trace_id' => 'trace-42'];

    public function testAThirdParameterReceivesTheCallContext(): void
    {
        $rt = $this->runtime();
        /** @var list<CallContext> $seen */
        $seen = [];
        $rt->registerService('ctx.v1.Svc', [
            'Look' => function (mixed $req, string $method, CallContext $call) use (&$seen): array {
                $seen[] = $call;
                return ['method' => $method];
            },
        ]);
        $this->assertSame(['method' => 'Look'], $rt->call('ctx.v1.Svc/Look', [], self::TRACED));
        $rt->call('ctx.v1.Svc/Look', [], self::TRACED + ['deadline_ms' => 30000]);
        $this->assertCount(2, $seen);
        foreach ($seen as $call) {
            $this->assertSame('ctx.v1.Svc/Look', $call->method);
            $this->assertEquals(['tenant' => 'acme', 'ünï' => 'cödé'], $call->metadata);
            $this->assertSame('trace-42', $call->traceId);
            $this->assertSame('', $call->principal);
        }
        $this->assertNull($seen[0]->deadlineNs);
        $this->assertNull($seen[0]->remainingMs());
        $left = $seen[1]->remainingMs();
        $this->assertNotNull($left);
        $this->assertGreaterThan(0, $left);
        $this->assertLessThanOrEqual(30000, $left);
    }

    public function testTheDeadlineCountsDownWhileTheHandlerRuns(): void
    {
        $rt = $this->runtime();
        $left = [];
        $rt->registerService('ctx.v1.Slow', [
            'Wait' => function (mixed $req, string $method, CallContext $call) use (&$left): array {
                $left[] = $call->remainingMs();
                usleep(50_000);
                $left[] = $call->remainingMs();
                return [];
            },
        ]);
        $rt->call('ctx.v1.Slow/Wait', [], ['deadline_ms' => 10000]);
        $this->assertGreaterThanOrEqual(40, $left[0] - $left[1]);
    }

    public function testHandlersWithoutAThirdParameterAreCalledAsBefore(): void
    {
        $rt = $this->runtime();
        $rt->registerService('ctx.v1.Plain', [
            'Two' => fn (mixed $req, string $method): string => $method,
            'One' => fn (mixed $req): mixed => $req,
        ]);
        $this->assertSame('Two', $rt->call('ctx.v1.Plain/Two', [], self::TRACED));
        $this->assertSame(['a' => 1], $rt->call('ctx.v1.Plain/One', ['a' => 1]));
    }

    public function testThrownDetailsAndOriginReachTheCallerInEveryFormat(): void
    {
        $rt = $this->runtime();
        $rt->registerService(
            'ctx.v1.Deny',
            ['Read' => fn () => throw new PermissionDeniedException(
                'tenant acme may not read this',
                ['rule' => 'tenant-isolation', 'tenant' => 'acme'],
                'policy.v1.Engine',
            )],
            types: ['Read' => ['hms.sys.v1.EchoRequest', 'hms.sys.v1.EchoResponse']],
        );
        $requests = [
            [new \Hms\Sys\V1\EchoRequest(['text' => 'x']), null],
            [['text' => 'x'], Format::CBOR],
            [['text' => 'x'], Format::JSON],
        ];
        foreach ($requests as [$request, $format]) {
            try {
                $rt->call('ctx.v1.Deny/Read', $request, format: $format);
                $this->fail('the call should fail');
            } catch (PermissionDeniedException $e) {
                $this->assertSame('tenant acme may not read this', $e->getMessage());
                $this->assertSame(['rule' => 'tenant-isolation', 'tenant' => 'acme'], $e->getDetails());
                $this->assertSame('policy.v1.Engine', $e->getOrigin());
            }
        }
    }

    public function testAnErrorWithoutOriginNamesTheMethod(): void
    {
        $rt = $this->runtime();
        $rt->registerService('ctx.v1.Fail', [
            'Do' => fn () => throw new HmsException('no luck', 4242, ['attempt' => '3']),
        ]);
        try {
            $rt->call('ctx.v1.Fail/Do', []);
            $this->fail('the call should fail');
        } catch (UnknownException $e) {
            $this->assertSame(['attempt' => '3'], $e->getDetails());
            $this->assertSame('ctx.v1.Fail/Do', $e->getOrigin());
        }
    }
}
