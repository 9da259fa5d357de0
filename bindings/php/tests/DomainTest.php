<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\Bytes;
use Hms\Exception\AbortedException;
use Hms\Exception\FailedPreconditionException;
use Hms\Exception\NotFoundException;
use Hms\Exception\PermissionDeniedException;
use Hms\HmsException;

final class DomainTest extends HmsTestCase
{
    public function testAgents(): void
    {
        $agents = $this->runtime()->agents();
        $a = $agents->create(['name' => 'planner', 'kind' => 'llm', 'capabilities' => ['plan', 'code'], 'labels' => ['team' => 'core', '7' => 'seven']]);
        $this->assertMatchesRegularExpression('/^[0-9a-f-]{36}$/', $a['id']);
        $this->assertSame('INITIALIZED', $a['state']);
        $this->assertSame(1, $a['revision']);
        $this->assertSame(['7' => 'seven', 'team' => 'core'], $a['labels']);
        $this->assertEquals($a, $agents->get($a['id']));
        $b = $agents->create(['name' => 'coder', 'kind' => 'llm', 'capabilities' => ['code']]);
        $agents->create(['name' => 'human', 'kind' => 'person']);

        $this->assertSame(['planner', 'coder'], array_column($agents->list(['capabilities' => ['code']])['agents'], 'name'));
        $this->assertSame(['planner'], array_column($agents->list(['labels' => ['team' => 'core']])['agents'], 'name'));
        $page = $agents->list(['page_size' => 2]);
        $this->assertCount(2, $page['agents']);
        $this->assertNotSame('', $page['next_page_token']);
        $this->assertSame(['planner', 'coder', 'human'], array_column(iterator_to_array($agents->all(['page_size' => 1]), false), 'name'));

        $updated = $agents->update(['id' => $a['id'], 'description' => 'plans', 'revision' => 1], ['description']);
        $this->assertSame('plans', $updated['description']);
        $this->assertSame(2, $updated['revision']);
        $this->assertSame('planner', $updated['name']);
        $this->assertStatus(AbortedException::class, 'ABORTED', fn () => $agents->update(['id' => $a['id'], 'name' => 'x', 'revision' => 1], ['name']));
        $this->assertStatus(AbortedException::class, 'ABORTED', fn () => $agents->delete($b['id'], 99));
        $agents->delete($b['id']);
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $agents->get($b['id']));
        $this->assertStatus(HmsException::class, 'INVALID_ARGUMENT', fn () => $agents->create(['kind' => 'nameless']));
    }

    public function testTasksMoveOnlyForward(): void
    {
        $rt = $this->runtime();
        $agent = $rt->agents()->create(['name' => 'worker']);
        $tasks = $rt->tasks();
        $this->assertStatus(FailedPreconditionException::class, 'FAILED_PRECONDITION', fn () => $tasks->submit(['title' => 'early', 'agent_id' => $agent['id']]));
        $rt->lifecycle()->transition($agent['id'], 'ACTIVE');

        $t = $tasks->submit(['title' => 'build', 'input' => "\x00raw", 'input_content_type' => 'application/octet-stream', 'priority' => 5]);
        $this->assertSame('PENDING', $t['status']);
        $this->assertEquals(new Bytes("\x00raw"), $t['input']);
        $this->assertSame('ASSIGNED', $tasks->assign($t['id'], $agent['id'])['status']);
        $this->assertSame('RUNNING', $tasks->start($t['id'])['status']);
        $done = $tasks->complete($t['id'], '{"ok":true}', 'application/json');
        $this->assertSame('SUCCEEDED', $done['status']);
        $this->assertEquals(new Bytes('{"ok":true}'), $done['result']);
        $e = $this->assertStatus(FailedPreconditionException::class, 'FAILED_PRECONDITION', fn () => $tasks->start($t['id']));
        $this->assertSame('SUCCEEDED', $e->getDetails()['from']);
        $this->assertArrayHasKey('rule', $e->getDetails());

        $f = $tasks->submit(['title' => 'flaky', 'agent_id' => $agent['id']]);
        $this->assertSame('ASSIGNED', $f['status']);
        $tasks->start($f['id']);
        $failed = $tasks->fail($f['id'], ['code' => 13, 'message' => 'disk full']);
        $this->assertSame('FAILED', $failed['status']);
        $this->assertSame('disk full', $failed['error']['message']);

        $c = $tasks->submit(['title' => 'unwanted']);
        $cancelled = $tasks->cancel($c['id'], 'not needed');
        $this->assertSame('CANCELLED', $cancelled['status']);
        $this->assertStatus(FailedPreconditionException::class, 'FAILED_PRECONDITION', fn () => $tasks->cancel($c['id']));
        $this->assertStatus(AbortedException::class, 'ABORTED', fn () => $tasks->assign($tasks->submit(['title' => 'r'])['id'], $agent['id'], 42));

        $this->assertSame(['build'], array_column($tasks->list(['statuses' => ['SUCCEEDED']])['tasks'], 'title'));
        $this->assertSame(['build', 'flaky'], array_column(iterator_to_array($tasks->all(['agent_id' => $agent['id'], 'page_size' => 1]), false), 'title'));
        $this->assertSame('build', $tasks->get($t['id'])['title']);
    }

    public function testKnowledge(): void
    {
        $k = $this->runtime()->knowledge();
        $e = $k->put(['namespace' => 'facts', 'key' => 'sky', 'text' => 'blue', 'tags' => ['color', 'nature'], 'confidence' => 0.9, 'source' => 'eyes']);
        $this->assertSame(1, $e['revision']);
        $k->put(['namespace' => 'facts', 'key' => 'grass', 'text' => 'green', 'tags' => ['color'], 'confidence' => 0.4]);
        $k->put(['namespace' => 'facts', 'key' => 'blob', 'content' => new Bytes("\x00\x01"), 'content_type' => 'application/octet-stream']);
        $k->put(['namespace' => 'other', 'key' => 'sky', 'text' => 'grey']);

        $this->assertSame('blue', $k->get($e['id'])['text']);
        $this->assertSame('grey', $k->getByKey('other', 'sky')['text']);
        $this->assertEquals(new Bytes("\x00\x01"), $k->getByKey('facts', 'blob')['content']);
        $this->assertSame(['grass', 'sky'], array_column($k->query(['namespace' => 'facts', 'tags' => ['color']])['entries'], 'key'));
        $this->assertSame(['sky'], array_column($k->query(['namespace' => 'facts', 'min_confidence' => 0.5])['entries'], 'key'));
        $this->assertSame(['sky'], array_column($k->query(['namespace' => 'facts', 'key_prefix' => 's'])['entries'], 'key'));
        $this->assertSame(['blob', 'grass', 'sky', 'sky'], array_column(iterator_to_array($k->all(['page_size' => 1]), false), 'key'));

        $replaced = $k->put(['namespace' => 'facts', 'key' => 'sky', 'text' => 'dark', 'revision' => 1]);
        $this->assertSame(2, $replaced['revision']);
        $this->assertSame($e['id'], $replaced['id']);
        $this->assertStatus(AbortedException::class, 'ABORTED', fn () => $k->put(['namespace' => 'facts', 'key' => 'sky', 'text' => 'x', 'revision' => 1]));
        $k->delete($e['id']);
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $k->get($e['id']));
    }

    public function testLifecycleTransitionsAndHistory(): void
    {
        $rt = $this->runtime();
        $id = $rt->agents()->create(['name' => 'cycler'])['id'];
        $life = $rt->lifecycle();
        $r = $life->transition($id, 'ACTIVE', ['reason' => 'boot', 'initiated_by' => 'php', 'metadata' => ['k' => 'v']]);
        $this->assertSame('INITIALIZED', $r['previous_state']);
        $this->assertSame('ACTIVE', $r['current_state']);
        $this->assertSame('TRANSITION_TYPE_NORMAL', $r['event']['transition_type']);
        $this->assertSame(['k' => 'v'], $r['event']['metadata']);
        $this->assertSame('ACTIVE', $life->state($id)['state']);
        $this->assertSame('ACTIVE', $rt->agents()->get($id)['state']);

        $e = $this->assertStatus(FailedPreconditionException::class, 'FAILED_PRECONDITION', fn () => $life->transition($id, 'RECOVERING'));
        $this->assertNotSame([], $e->getDetails());
        $forced = $life->transition($id, 'RECOVERING', ['force' => true]);
        $this->assertSame('TRANSITION_TYPE_FORCED', $forced['event']['transition_type']);
        $life->transition($id, 'TERMINATED');
        $this->assertStatus(FailedPreconditionException::class, 'FAILED_PRECONDITION', fn () => $life->transition($id, 'ACTIVE', ['force' => true]));

        $history = $life->history($id)['events'];
        $this->assertSame(['ACTIVE', 'RECOVERING', 'TERMINATED'], array_column($history, 'new_state'));
        $this->assertSame([1, 2, 3], array_column($history, 'sequence'));
        $this->assertSame(['RECOVERING'], array_column($life->history($id, ['transition_type' => 'TRANSITION_TYPE_FORCED'])['events'], 'new_state'));
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $life->state('00000000-0000-0000-0000-000000000000'));
    }

    public function testBlockingHookVetoesFromPhp(): void
    {
        $rt = $this->runtime();
        $id = $rt->agents()->create(['name' => 'guarded'])['id'];
        $seen = [];
        $hook = $rt->lifecycle()->registerHook(function (array $invocation) use (&$seen): void {
            $seen[] = $invocation['event']['new_state'];
            if ($invocation['event']['new_state'] === 'PAUSED') {
                throw new PermissionDeniedException('no pausing on Fridays', ['day' => 'friday']);
            }
        }, ['blocking' => true, 'name' => 'friday-guard', 'to_states' => ['ACTIVE', 'PAUSED']]);
        $this->assertNotSame('', $hook->id);

        $rt->lifecycle()->transition($id, 'ACTIVE');
        $e = $this->assertStatus(PermissionDeniedException::class, 'PERMISSION_DENIED', fn () => $rt->lifecycle()->transition($id, 'PAUSED'), 'no pausing on Fridays');
        $this->assertSame('friday-guard', $e->getDetails()['hook_name']);
        $this->assertSame('ACTIVE', $rt->lifecycle()->state($id)['state']);
        $this->assertSame(['ACTIVE', 'PAUSED'], $seen);

        // a hook that throws anything else vetoes with HANDLER_ERROR
        $crash = $rt->lifecycle()->registerHook(fn () => throw new \RuntimeException('hook crashed'), ['blocking' => true, 'to_states' => ['MAINTENANCE']]);
        $this->assertStatus(\Hms\Exception\HandlerException::class, 'HANDLER_ERROR', fn () => $rt->lifecycle()->transition($id, 'MAINTENANCE'), 'hook crashed');
        $crash->close();
        $this->assertSame('MAINTENANCE', $rt->lifecycle()->transition($id, 'MAINTENANCE')['current_state']);

        $hook->close();
        $hook->close();
        $this->assertTrue($hook->service->isClosed());
        $rt->lifecycle()->transition($id, 'ACTIVE');
        $this->assertSame('PAUSED', $rt->lifecycle()->transition($id, 'PAUSED')['current_state']);
        $this->assertSame(['ACTIVE', 'PAUSED'], $seen);
    }

    public function testNonBlockingHookFailureIsAnEvent(): void
    {
        $rt = $this->runtime();
        $sub = $rt->subscribe(['kinds' => ['lifecycle.*']]);
        $id = $rt->agents()->create(['name' => 'observed'])['id'];
        $calls = 0;
        $rt->lifecycle()->registerHook(function () use (&$calls): void {
            $calls++;
            throw new \RuntimeException('observer failed');
        }, ['blocking' => false, 'name' => 'observer']);
        $this->assertSame('ACTIVE', $rt->lifecycle()->transition($id, 'ACTIVE')['current_state']);
        $this->assertSame(1, $calls);
        $kinds = [];
        $failed = null;
        foreach ($sub->events(200) as $event) {
            $kinds[] = $event['kind'];
            if ($event['kind'] === 'lifecycle.hook_failed') {
                $failed = $event['hook_failed'];
            }
        }
        $this->assertContains('lifecycle.transition', $kinds);
        $this->assertNotNull($failed);
        $this->assertSame('observer', $failed['hook_name']);
        $this->assertStringContainsString('observer failed', $failed['error']['message']);
    }

    public function testDomainEvents(): void
    {
        $rt = $this->runtime();
        $sub = $rt->subscribe(['kinds' => ['agent.*', 'task.*', 'knowledge.*', 'lifecycle.transition']]);
        $id = $rt->agents()->create(['name' => 'evented'])['id'];
        $rt->lifecycle()->transition($id, 'ACTIVE');
        $task = $rt->tasks()->submit(['title' => 'e', 'agent_id' => $id]);
        $rt->knowledge()->put(['namespace' => 'n', 'key' => 'k', 'text' => 't']);
        $events = iterator_to_array($sub->events(200), false);
        $kinds = array_column($events, 'kind');
        $this->assertSame(['agent.created', 'lifecycle.transition', 'task.submitted', 'knowledge.put'], array_values(array_filter($kinds, fn ($k) => $k !== 'task.assigned' && $k !== 'agent.updated')));
        $this->assertSame($id, $events[0]['agent']['id']);
        $byKind = array_column($events, null, 'kind');
        $this->assertSame('ACTIVE', $byKind['lifecycle.transition']['lifecycle']['new_state']);
        $this->assertSame($task['id'], $byKind['task.submitted']['task']['id']);
        // (filtering by `subjects`: the core ignores EventFilter.agent_ids for now)
        $only = $rt->subscribe(['kinds' => ['lifecycle.transition'], 'subjects' => [$id]]);
        $other = $rt->agents()->create(['name' => 'someone else'])['id'];
        $rt->lifecycle()->transition($other, 'ACTIVE');
        $rt->lifecycle()->transition($id, 'PAUSED');
        $mine = iterator_to_array($only->events(100), false);
        $this->assertSame([$id], array_column($mine, 'agent_id'));
        $this->assertSame('PAUSED', $mine[0]['lifecycle']['new_state']);
    }
}
