<?php

// Exports the Greeter of the cross-process tests (tests/remote/README.md):
//   php serve.php NATS_URL
// prints "ready", then serves on this thread (PHP services run on the
// caller's thread: exported, their calls wait for serveUntil()) until stdin
// closes.

declare(strict_types=1);

require dirname(__DIR__, 3) . '/bindings/php/autoload.php';

use Hms\Exception\PermissionDeniedException;
use Hms\Runtime;

[, $url] = $argv;
$rt = new Runtime(['name' => 'php-server', 'nats' => ['servers' => [$url], 'request_timeout_ms' => 10000]]);
$echo = ['hms.sys.v1.EchoRequest', 'hms.sys.v1.EchoResponse'];
$rt->registerService(
    'remote.v1.Greeter',
    [
        'Greet' => fn (array $request): array => ['text' => 'hello ' . ($request['text'] ?? '')],
        'Refuse' => function (array $request): never {
            throw new PermissionDeniedException(($request['text'] ?? '') . ' may not', ['rule' => 'no-guests']);
        },
    ],
    types: ['Greet' => $echo, 'Refuse' => $echo],
    export: true,
);
echo "ready\n";
stream_set_blocking(STDIN, false);
$rt->serveUntil(static function (): bool {
    // Drains what came (nothing is expected) to see the end of stdin.
    while (($chunk = fread(STDIN, 8192)) !== false && $chunk !== '') {
    }
    return feof(STDIN);
}, 100);
$rt->close();
