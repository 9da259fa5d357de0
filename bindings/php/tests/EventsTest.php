<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\Exception\CancelledException;
use Hms\Exception\ClosedException;
use Hms\Format;
use Hms\Runtime;

final class EventsTest extends HmsTestCase
{
    public function testPollsRegistryEvents(): void
    {
        $rt = $this->runtime();
        $sub = $rt->subscribe(['kinds' => ['registry.*']]);
        $svc = $rt->registerService('demo.v1.Evented', ['A' => fn () => 1]);
        $svc->close();
        $first = $sub->next(1000);
        $this->assertSame('registry.service_registered', $first['kind']);
        $this->assertSame('demo.v1.Evented', $first['subject']);
        $this->assertSame(['A'], $first['service']['methods']);
        $second = $sub->next(1000);
        $this->assertSame('registry.service_unregistered', $second['kind']);
        $this->assertGreaterThan($first['sequence'], $second['sequence']);
        $this->assertNull($sub->next(0));
        $started = hrtime(true);
        $this->assertNull($sub->next(50));
        $this->assertGreaterThanOrEqual(45, (hrtime(true) - $started) / 1e6);
    }

    public function testGeneratorEndsWhenNoEventComesInTime(): void
    {
        $rt = $this->runtime();
        $sub = $rt->subscribe(['subjects' => ['demo.v1.S1', 'demo.v1.S3']]);
        foreach (['demo.v1.S1', 'demo.v1.S2', 'demo.v1.S3'] as $name) {
            $rt->registerService($name, ['A' => fn () => 1]);
        }
        $subjects = [];
        foreach ($sub->events(100) as $event) {
            $subjects[] = $event['subject'];
        }
        $this->assertSame(['demo.v1.S1', 'demo.v1.S3'], $subjects);
    }

    public function testEventsInJsonAndProtobuf(): void
    {
        $rt = $this->runtime();
        $json = $rt->subscribe([], Format::JSON);
        $pb = $rt->subscribe([], Format::PROTOBUF);
        $rt->registerService('demo.v1.Formats', ['A' => fn () => 1]);
        $event = $json->next(1000);
        $this->assertSame('registry.service_registered', $event['kind']);
        $this->assertIsString($event['sequence']); // uint64 as a string, per proto3 JSON
        $message = $pb->next(1000);
        $this->assertInstanceOf(\Hms\Events\V1\Event::class, $message);
        $this->assertSame('demo.v1.Formats', $message->getService()->getName());
        $this->assertSame('service', $message->getPayload());
    }

    public function testLaggingSubscriberGetsOneLaggedEvent(): void
    {
        $rt = $this->runtime(['event_queue_capacity' => 4]);
        $sub = $rt->subscribe(['kinds' => ['registry.service_registered', 'lagged']]);
        for ($i = 0; $i < 10; $i++) {
            $rt->registerService("demo.v1.Lag{$i}", ['A' => fn () => 1]);
        }
        $events = iterator_to_array($sub->events(100), false);
        $lagged = array_values(array_filter($events, fn (array $e): bool => $e['kind'] === 'lagged'));
        $this->assertCount(1, $lagged);
        $this->assertSame('lagged', $events[0]['kind']);
        $rest = array_slice($events, 1);
        $this->assertSame(10, $lagged[0]['lagged']['dropped'] + count($rest));
        $this->assertSame('demo.v1.Lag9', end($rest)['subject']);
        $this->assertLessThanOrEqual(4, count($rest));
    }

    public function testClosingEndsPolling(): void
    {
        $rt = new Runtime();
        $sub = $rt->subscribe();
        $other = $rt->subscribe();
        $sub->close();
        $sub->close();
        $this->assertStatus(ClosedException::class, 'INVALID_HANDLE', fn () => $sub->next(0));
        $this->assertSame([], iterator_to_array($sub->events(0)));
        $rt->close();
        $this->assertTrue($other->isClosed());
        $this->assertSame([], iterator_to_array($other->events(10)));
    }

    public function testSubscriptionDiesWithItsRuntime(): void
    {
        $rt = new Runtime();
        $sub = $rt->subscribe();
        $native = \Hms\Native::get();
        // free the runtime below the binding: the core closes its subscriptions
        // (a poller blocked at that moment gets CANCELLED; later polls find no handle)
        $this->assertSame(0, $native->ffi->hms_runtime_free($rt->handle()));
        $this->assertStatus(\Hms\Exception\InvalidHandleException::class, 'INVALID_HANDLE', fn () => $sub->next(0));
        $this->assertInstanceOf(CancelledException::class, \Hms\HmsException::fromStatus(\Hms\Status::code('CANCELLED'), 'closed'));
        $rt->close(); // the stale handles are refused quietly
        $this->assertTrue($sub->isClosed());
    }
}
