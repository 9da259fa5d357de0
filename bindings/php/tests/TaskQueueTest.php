<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\Exception\DecodeException;
use Hms\Exception\FailedPreconditionException;
use Hms\Exception\InvalidArgumentException;

/** The queue workers share: claim, renewLease and fail with retry. */
final class TaskQueueTest extends HmsTestCase
{
    public function testClaimsTakeTheMostUrgentThenTheOldest(): void
    {
        $tasks = $this->runtime()->tasks();
        $low = $tasks->submit(['title' => 'low']);
        $high = $tasks->submit(['title' => 'high', 'priority' => 5]);
        $lowToo = $tasks->submit(['title' => 'low too']);
        $claimed = [$tasks->claim('w'), $tasks->claim('w'), $tasks->claim('w')];
        $this->assertSame([$high['id'], $low['id'], $lowToo['id']], array_column($claimed, 'id'));
        $this->assertSame(['RUNNING'], array_values(array_unique(array_column($claimed, 'status'))));
        $this->assertSame('w', $claimed[0]['claimed_by']);
        $this->assertSame(1, $claimed[0]['attempts']);
        $this->assertNull($tasks->claim('w'));
    }

    public function testCapabilitiesAndLabelsChooseTheWorker(): void
    {
        $tasks = $this->runtime()->tasks();
        $gpu = $tasks->submit(['title' => 'render', 'required_capabilities' => ['gpu'], 'labels' => ['region' => 'eu']]);
        $this->assertNull($tasks->claim('cpu', ['cpu']));
        $this->assertNull($tasks->claim('us', ['gpu'], ['region' => 'us']));
        $task = $tasks->claim('eu', ['gpu', 'cpu'], ['region' => 'eu'], 1500);
        $this->assertSame($gpu['id'], $task['id']);
        $lease = (new \DateTimeImmutable($task['lease_expires_at']))->format('U.v') - (new \DateTimeImmutable($task['updated_at']))->format('U.v');
        $this->assertEqualsWithDelta(1.5, $lease, 0.0001);
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $tasks->claim(''));
        $this->assertStatus(DecodeException::class, 'DECODE_ERROR', fn () => $tasks->claim('w', [], [], -1), 'lease_ms');
        $this->assertStatus(InvalidArgumentException::class, 'INVALID_ARGUMENT', fn () => $tasks->claim('w', [], [], 3600001), '3600000');
    }

    public function testOnlyTheHolderRenewsALease(): void
    {
        $tasks = $this->runtime()->tasks();
        $tasks->submit(['title' => 'work']);
        $held = $tasks->claim('holder', [], [], 1000);
        $renewed = $tasks->renewLease($held['id'], 'holder', 60000, $held['revision']);
        $this->assertGreaterThan(new \DateTimeImmutable($held['lease_expires_at']), new \DateTimeImmutable($renewed['lease_expires_at']));
        $this->assertStatus(FailedPreconditionException::class, 'FAILED_PRECONDITION', fn () => $tasks->renewLease($held['id'], 'intruder'));
        $this->assertSame('holder', $tasks->get($held['id'])['claimed_by']);
    }

    public function testRetriedFailuresEndInDeadLetter(): void
    {
        $tasks = $this->runtime()->tasks();
        $submitted = $tasks->submit(['title' => 'flaky', 'max_attempts' => 2]);
        $first = $tasks->claim('w');
        $again = $tasks->fail($first['id'], ['code' => 14, 'message' => 'try again'], $first['revision'], retry: true);
        $this->assertSame('PENDING', $again['status']);
        $this->assertSame(1, $again['attempts']);
        $second = $tasks->claim('w');
        $this->assertSame($submitted['id'], $second['id']);
        $dead = $tasks->fail($second['id'], ['code' => 14, 'message' => 'still failing'], retry: true);
        $this->assertSame('DEAD_LETTER', $dead['status']);
        $this->assertSame(2, $dead['attempts']);
        $this->assertNull($tasks->claim('w'));
        $this->assertSame([$submitted['id']], array_column($tasks->list(['statuses' => ['DEAD_LETTER']])['tasks'], 'id'));
    }
}
