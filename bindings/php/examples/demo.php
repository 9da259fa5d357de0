<?php

/**
 * A tour of the HMS PHP binding:  php bindings/php/examples/demo.php
 * (the library is found as README.md "Where the library is found" says: HMS_FFI_LIBRARY,
 * pkg-config, the loader path, or this checkout's build).
 */

declare(strict_types=1);

require dirname(__DIR__) . '/autoload.php';

use Hms\Exception\NotFoundException;
use Hms\Exception\PermissionDeniedException;
use Hms\Format;
use Hms\Runtime;

$rt = new Runtime(['name' => 'php-demo']);
try {
    [$major, $minor] = Runtime::abiVersion();
    printf("libhms_ffi %s (ABI %d.%d), runtime %s\n", Runtime::libraryVersion(), $major, $minor, $rt->health()['runtime_name']);

    // Calls: arrays over CBOR (default) or JSON, protobuf messages, raw bytes.
    echo 'echo (CBOR):  ', json_encode($rt->call('hms.sys.v1.System/Echo', ['text' => 'hello'])), "\n";
    echo 'echo (JSON):  ', $rt->callRaw('hms.sys.v1.System/Echo', '{"text":"raw json"}', Format::JSON), "\n";
    if (class_exists(Google\Protobuf\Internal\Message::class)) {
        $reply = $rt->call('hms.sys.v1.System/Echo', new Hms\Sys\V1\EchoRequest(['text' => 'protobuf']));
        echo 'echo (proto): ', $reply->getText(), "\n";
    }

    // Method handles (ABI 1.1): resolved once, then five FFI arguments a call;
    // a batch runs many calls in one crossing.
    $echo = $rt->method('hms.sys.v1.System/Echo', Format::JSON);
    echo 'method:       ', $echo->callRaw('{"text":"by handle"}'), "\n";
    try {
        $echo->batchRaw(['{"text":"one"}', '{"text":', '{"text":"three"}']);
    } catch (Hms\Exception\BatchException $e) {
        printf("batch:        %d of 3 failed, call 2 answered %s\n", count($e->failures()), $e->results()[2]);
    }
    $echo->close();

    // Errors are typed exceptions carrying the status.
    try {
        $rt->call('hms.sys.v1.System/Nope');
    } catch (NotFoundException $e) {
        printf("error:        %s (code %d, origin %s)\n", $e->getMessage(), $e->getCode(), $e->getOrigin());
    }

    // A service implemented in PHP, callable like a built-in one.
    $rt->registerService('demo.v1.Greeter', [
        'Greet' => fn (array $req): array => ['greeting' => "Hello, {$req['name']}!"],
    ]);
    echo 'greeter:      ', $rt->call('demo.v1.Greeter/Greet', ['name' => 'PHP'])['greeting'], "\n";

    // Events by polling.
    $events = $rt->subscribe(['kinds' => ['agent.*', 'lifecycle.*', 'task.*']]);

    // The domain: agents, lifecycle with a PHP hook, tasks, knowledge.
    $agent = $rt->agents()->create(['name' => 'builder', 'capabilities' => ['compile']]);
    $hook = $rt->lifecycle()->registerHook(function (array $invocation): void {
        if ($invocation['event']['new_state'] === 'MAINTENANCE') {
            throw new PermissionDeniedException('no maintenance during the demo');
        }
    }, ['blocking' => true, 'name' => 'demo-guard']);
    $rt->lifecycle()->transition($agent['id'], 'ACTIVE', ['reason' => 'demo']);
    try {
        $rt->lifecycle()->transition($agent['id'], 'MAINTENANCE');
    } catch (PermissionDeniedException $e) {
        echo 'vetoed:       ', $e->getMessage(), "\n";
    }
    $hook->close();
    $task = $rt->tasks()->submit(['title' => 'compile', 'agent_id' => $agent['id']]);
    $rt->tasks()->start($task['id']);
    $done = $rt->tasks()->complete($task['id'], 'ok', 'text/plain');
    echo "task:         {$done['title']} -> {$done['status']}\n";
    $rt->knowledge()->put(['namespace' => 'demo', 'key' => 'language', 'text' => 'PHP', 'confidence' => 1.0]);
    echo 'knowledge:    ', $rt->knowledge()->getByKey('demo', 'language')['text'], "\n";

    foreach ($events->events(100) as $event) {
        echo "event:        {$event['kind']} {$event['subject']}\n";
    }
} finally {
    $rt->close();
}
