<?php

// Calls the Greeter another process exports (tests/remote/README.md):
//   php call.php NATS_URL SERVER

declare(strict_types=1);

require dirname(__DIR__, 3) . '/bindings/php/autoload.php';

use Hms\Exception\NotFoundException;
use Hms\Exception\PermissionDeniedException;
use Hms\Format;
use Hms\Runtime;

function check(string $what, mixed $got, mixed $want): void
{
    if ($got !== $want) {
        fwrite(STDERR, "php caller: {$what}: got " . var_export($got, true) . ', want ' . var_export($want, true) . "\n");
        exit(1);
    }
}

[, $url, $server] = $argv;
$rt = new Runtime(['name' => 'php-caller', 'nats' => ['servers' => [$url], 'request_timeout_ms' => 10000]]);
check('Greet (CBOR)', $rt->call('remote.v1.Greeter/Greet', ['text' => 'php']), ['text' => 'hello php']);
check(
    'Greet (JSON)',
    $rt->call('remote.v1.Greeter/Greet', ['text' => 'php'], format: Format::JSON),
    ['text' => 'hello php'],
);
try {
    $rt->call('remote.v1.Greeter/Refuse', ['text' => 'php']);
    check('Refuse', 'an answer', 'PermissionDeniedException');
} catch (PermissionDeniedException $e) {
    check('Refuse message', $e->getMessage(), 'php may not');
    check('Refuse details', $e->getDetails(), ['rule' => 'no-guests']);
    check('Refuse origin', $e->getOrigin(), $server);
}
try {
    $rt->call('remote.v1.Greeter/Missing', []);
    check('Missing', 'an answer', 'NotFoundException');
} catch (NotFoundException) {
}
$rt->close();
echo "php caller: ok\n";
