<?php

/**
 * Benchmarks of the PHP binding: Echo of 64 B through the binding (raw bytes
 * in each format, arrays over CBOR and JSON, protobuf messages) beside a
 * bare FFI call of hms_abi_version() and a bare FFI hms_call in the same run.
 *
 *     php benchmarks/php/bench.php [iterations]      (HMS_FFI_LIBRARY honoured)
 *
 * Prints a Markdown table: ns per call (median of 5 rounds) and the ratio to
 * the bare hms_abi_version() call.
 */

declare(strict_types=1);

require dirname(__DIR__, 2) . '/bindings/php/autoload.php';

use Hms\Bytes;
use Hms\Cbor;
use Hms\Format;
use Hms\Native;
use Hms\Runtime;
use Hms\Sys\V1\EchoRequest;

$n = (int) ($argv[1] ?? 200_000);
$rounds = 5;
$rt = new Runtime();
$native = Native::get();
$ffi = $native->ffi;
$payload = str_repeat('a', 64);
$method = 'hms.sys.v1.System/Echo';
$pb = (new EchoRequest(['payload' => $payload]))->serializeToString();
$cbor = Cbor::encode(['payload' => new Bytes($payload)]);
$json = '{"payload":"' . base64_encode($payload) . '"}';
$handle = $rt->handle();
[, $out, $err] = $native->pair();
$ml = strlen($method);
$pl = strlen($pb);

$cases = [
    'bare FFI: hms_abi_version()' => static function (int $n) use ($ffi): void {
        for ($i = 0; $i < $n; $i++) {
            $ffi->hms_abi_version();
        }
    },
    'bare FFI: hms_call Echo (protobuf, no copy out)' => static function (int $n) use ($ffi, $handle, $method, $ml, $pb, $pl, $out, $err): void {
        for ($i = 0; $i < $n; $i++) {
            $ffi->hms_call($handle, $method, $ml, 1, $pb, $pl, null, 0, $out, $err);
        }
    },
    'Runtime::callRaw Echo 64 B, protobuf bytes' => static function (int $n) use ($rt, $method, $pb): void {
        for ($i = 0; $i < $n; $i++) {
            $rt->callRaw($method, $pb, Format::PROTOBUF);
        }
    },
    'Runtime::callRaw Echo 64 B, CBOR bytes' => static function (int $n) use ($rt, $method, $cbor): void {
        for ($i = 0; $i < $n; $i++) {
            $rt->callRaw($method, $cbor, Format::CBOR);
        }
    },
    'Runtime::callRaw Echo 64 B, JSON bytes' => static function (int $n) use ($rt, $method, $json): void {
        for ($i = 0; $i < $n; $i++) {
            $rt->callRaw($method, $json, Format::JSON);
        }
    },
    'Runtime::call Echo 64 B, array over CBOR' => static function (int $n) use ($rt, $method, $payload): void {
        for ($i = 0; $i < $n; $i++) {
            $rt->call($method, ['payload' => new Bytes($payload)]);
        }
    },
    'Runtime::call Echo 64 B, array over JSON' => static function (int $n) use ($rt, $method, $payload): void {
        for ($i = 0; $i < $n; $i++) {
            $rt->call($method, ['payload' => new Bytes($payload)], format: Format::JSON);
        }
    },
    'Runtime::call Echo 64 B, protobuf message' => static function (int $n) use ($rt, $method, $payload): void {
        $request = new EchoRequest(['payload' => $payload]);
        for ($i = 0; $i < intdiv($n, 10); $i++) {
            $rt->call($method, $request);
        }
    },
];

$results = [];
foreach ($cases as $name => $fn) {
    $iterations = str_contains($name, 'protobuf message') ? intdiv($n, 10) : $n;
    $fn(intdiv($n, 20)); // warm up
    $times = [];
    for ($r = 0; $r < $rounds; $r++) {
        $t = hrtime(true);
        $fn($n);
        $times[] = (hrtime(true) - $t) / $iterations;
    }
    sort($times);
    $results[$name] = $times[intdiv($rounds, 2)];
}
$bare = $results['bare FFI: hms_abi_version()'];
printf("PHP %s, %s, library %s, %d iterations x %d rounds (median)\n\n", PHP_VERSION, php_uname('m'), Runtime::libraryVersion(), $n, $rounds);
echo "| case | ns/call | x bare hms_abi_version() |\n|---|---:|---:|\n";
foreach ($results as $name => $ns) {
    printf("| %s | %.0f | %.1f |\n", $name, $ns, $ns / $bare);
}
$rt->close();
