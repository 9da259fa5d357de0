<?php

/**
 * Conformance runner of the PHP binding (protocol: tests/conformance/README.md).
 *
 * Runs every scenario of tests/conformance/scenarios.json through the
 * binding's public API and prints one JSON line per scenario:
 *
 *     {"lang":"php","scenario":"unknown_method","step":0,"code":"NOT_FOUND",
 *      "error":"Hms\\Exception\\NotFoundException","message":"..."}
 *
 * Usage: php bindings/php/conformance/run.php [SCENARIOS_JSON]
 * (default: HMS_CONFORMANCE_SCENARIOS, then tests/conformance/scenarios.json).
 * Loads the library the binding loads (HMS_FFI_LIBRARY when set).
 * Exit status 0 when every scenario ran (whatever its code), 2 on a runner bug.
 */

declare(strict_types=1);

namespace Hms\Conformance;

use Hms\Convert;
use Hms\Format;
use Hms\HmsException;
use Hms\Runtime;
use Hms\Service;
use Hms\Status;

require dirname(__DIR__) . '/autoload.php';

const LANG = 'php';
const FORMATS = ['protobuf' => Format::PROTOBUF, 'cbor' => Format::CBOR, 'json' => Format::JSON];

/** A scenario's format: a Format name, or an integer sent to the core as is. */
function format(string|int $value): string|int
{
    if (is_int($value)) {
        return $value;
    }
    return FORMATS[$value] ?? throw new \UnexpectedValueException("unknown format '{$value}'");
}

/**
 * The bytes of a payload spec: text (with ${var} replaced), {"hex"},
 * {"concat": [...]}, {"repeat": spec, "times": n}.
 *
 * @param array<string, string> $env
 */
function payload(mixed $spec, array $env): string
{
    if (is_string($spec)) {
        return preg_replace_callback(
            '/\$\{(\w+)\}/',
            static fn (array $m): string => $env[$m[1]] ?? throw new \UnexpectedValueException("no variable {$m[1]}"),
            $spec,
        );
    }
    if (is_array($spec) && isset($spec['hex'])) {
        $bytes = hex2bin($spec['hex']);
        return $bytes === false ? throw new \UnexpectedValueException("bad hex {$spec['hex']}") : $bytes;
    }
    if (is_array($spec) && isset($spec['concat'])) {
        return implode('', array_map(static fn (mixed $part): string => payload($part, $env), $spec['concat']));
    }
    if (is_array($spec) && array_key_exists('repeat', $spec)) {
        return str_repeat(payload($spec['repeat'], $env), (int) $spec['times']);
    }
    throw new \UnexpectedValueException('unknown payload spec ' . json_encode($spec));
}

/**
 * A PHP callable doing what a method of a scenario service says.
 *
 * @param array<string, mixed> $behaviour
 */
function handler(array $behaviour): callable
{
    $message = (string) ($behaviour['message'] ?? '');
    return match ($behaviour['behaviour']) {
        'echo' => static fn (mixed $request): mixed => $request,
        // An ordinary bug in PHP: a plain exception.
        'raise' => static function () use ($message): never {
            throw new \RuntimeException($message);
        },
        // The binding's own error for the status.
        'raise_status' => static function () use ($behaviour, $message): never {
            throw HmsException::fromStatus(Status::code((string) $behaviour['code']), $message);
        },
        'sleep' => static function () use ($behaviour): array {
            usleep((int) $behaviour['ms'] * 1000);
            return [];
        },
        default => throw new \UnexpectedValueException("unknown behaviour {$behaviour['behaviour']}"),
    };
}

/** @param array<string, mixed> $services */
function register(Runtime $rt, string $name, array $services): Service
{
    $methods = $services[$name]['methods'] ?? throw new \UnexpectedValueException("no service {$name}");
    return $rt->registerService($name, array_map(handler(...), $methods));
}

function dig(mixed $value, string $path): string
{
    foreach (explode('.', $path) as $part) {
        $value = is_array($value) && array_key_exists($part, $value)
            ? $value[$part]
            : throw new \UnexpectedValueException("no field {$path} in the response");
    }
    return (string) $value;
}

/**
 * @param array<string, mixed> $step
 * @param array<string, string> $env
 * @param array<string, mixed> $doc
 */
function runStep(array $step, Runtime $rt, array &$env, array $doc): void
{
    switch ($step['op']) {
        case 'call':
            $request = payload($step['request'] ?? '', $env);
            $options = isset($step['options']) ? payload($step['options'], $env) : '';
            $answer = $rt->callRaw($step['method'], $request, format($step['format']), $options);
            foreach ($step['save'] ?? [] as $var => $path) {
                $env[$var] = dig(json_decode($answer, true, 512, JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING), $path);
            }
            break;
        case 'convert':
            Convert::convert($step['type'], payload($step['data'], $env), format($step['from']), format($step['to']));
            break;
        case 'runtime_new':
            (new Runtime(payload($step['config'], $env), format: format($step['format'])))->close();
            break;
        case 'register_service':
            register($rt, $step['service'], $doc['services']);
            break;
        case 'close_runtime':
            $rt->close();
            break;
        default:
            throw new \UnexpectedValueException("unknown op {$step['op']}");
    }
}

/**
 * @param array<string, mixed> $scenario
 * @param array<string, mixed> $doc
 * @return array<string, mixed>
 */
function run(array $scenario, array $doc): array
{
    // Remote mode (tests/conformance/README.md): the scenario's services are
    // served by another process, reached with this config.
    $remoteIds = preg_split('/\s+/', (string) getenv('HMS_CONFORMANCE_REMOTE'), -1, PREG_SPLIT_NO_EMPTY);
    $remote = in_array($scenario['id'], $remoteIds, true);
    $config = $remote ? (string) getenv('HMS_CONFORMANCE_REMOTE_CONFIG') : $scenario['runtime_config'] ?? null;
    $rt = $config !== null ? new Runtime($config, format: Format::JSON) : new Runtime();
    $env = [];
    $line = ['lang' => LANG, 'scenario' => $scenario['id']];
    try {
        foreach ($remote ? [] : $scenario['services'] ?? [] as $name) {
            register($rt, $name, $doc['services']);
        }
        foreach ($scenario['steps'] as $index => $step) {
            $line['step'] = $index;
            try {
                runStep($step, $rt, $env, $doc);
            } catch (HmsException $e) {
                return $line + ['code' => $e->getStatusName(), 'error' => $e::class, 'message' => $e->getMessage(), 'origin' => $e->getOrigin()];
            }
        }
        return $line + ['code' => 'OK', 'error' => '', 'message' => '', 'origin' => ''];
    } finally {
        $rt->close();
    }
}

function main(array $argv): int
{
    $path = $argv[1] ?? (getenv('HMS_CONFORMANCE_SCENARIOS') ?: dirname(__DIR__, 3) . '/tests/conformance/scenarios.json');
    $text = file_get_contents($path);
    if ($text === false) {
        fwrite(STDERR, "run.php: cannot read {$path}\n");
        return 2;
    }
    $doc = json_decode($text, true, 512, JSON_THROW_ON_ERROR);
    foreach ($doc['scenarios'] as $scenario) {
        echo json_encode(run($scenario, $doc), JSON_THROW_ON_ERROR | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
    }
    return 0;
}

try {
    exit(main($argv));
} catch (\Throwable $e) {
    fwrite(STDERR, 'run.php: ' . $e::class . ': ' . $e->getMessage() . "\n" . $e->getTraceAsString() . "\n");
    exit(2);
}
