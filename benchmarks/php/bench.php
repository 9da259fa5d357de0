<?php

/**
 * Every PHP benchmark case in one process, measured as benchmarks/CASES.md
 * says; writes benchmarks/out/php.json.
 *
 *     php benchmarks/php/bench.php [OUT.json]          (or benchmarks/php/run.sh)
 *     php benchmarks/php/bench.php --only echo_raw_64,floor
 *     php benchmarks/php/bench.php --loop echo_raw_64 --seconds 10   (for perf)
 *
 * OUT.json: the first argument, else HMS_BENCH_OUT_FILE, else
 * $HMS_BENCH_OUT/php.json, else benchmarks/out/php.json. HMS_FFI_LIBRARY is
 * honoured; HMS_BENCH_QUICK=1 gives 3 short rounds.
 *
 * - each case is calibrated (a loop of `iterations` calls lasting about
 *   0.1 s, 5 ms with HMS_BENCH_QUICK=1) and warmed up by one round;
 * - then `rounds` rounds (15, or 3 quick) of every case, interleaved: round
 *   r of every case runs before round r+1 of any, so a change of load on a
 *   shared machine hits every case alike;
 * - a round is a `for` loop of `iterations` calls timed with hrtime(), after
 *   gc_collect_cycles(); the figure is ns per call (per call inside the
 *   batch for batch_echo_raw_64);
 * - median and quartiles (linear interpolation, Python's
 *   statistics.quantiles(method="inclusive"));
 * - each case checks its answer once, outside the timed loop.
 */

declare(strict_types=1);

require dirname(__DIR__, 2) . '/bindings/php/autoload.php';

use Hms\Bytes;
use Hms\Format;
use Hms\Native;
use Hms\Runtime;
use Hms\Sys\V1\EchoRequest;
use Hms\Sys\V1\EchoResponse;

const ECHO_METHOD = 'hms.sys.v1.System/Echo';
const BATCH = 1000;
const SIZES = ['64' => 64, '1k' => 1024, '64k' => 65536];

$quick = getenv('HMS_BENCH_QUICK') === '1';
$roundNs = $quick ? 5_000_000 : 100_000_000;
$rounds = $quick ? 3 : 15;

// -- arguments ------------------------------------------------------------

$args = array_slice($argv, 1);
$only = null;
$loop = null;
$seconds = 10.0;
$out = null;
for ($i = 0; $i < count($args); $i++) {
    match ($args[$i]) {
        '--only' => $only = explode(',', (string) ($args[++$i] ?? '')),
        '--loop' => $loop = (string) ($args[++$i] ?? ''),
        '--seconds' => $seconds = (float) ($args[++$i] ?? '10'),
        default => $out = $args[$i],
    };
}
if ($out === null) {
    $env = getenv('HMS_BENCH_OUT_FILE');
    $dir = getenv('HMS_BENCH_OUT');
    $out = is_string($env) && $env !== ''
        ? $env
        : (is_string($dir) && $dir !== '' ? $dir : dirname(__DIR__) . '/out') . '/php.json';
}

// -- the cases --------------------------------------------------------------

/**
 * A case: $loop(int $n) runs n calls; $check() makes one call and says
 * whether its answer is right; $fresh (optional) runs before every round.
 */
final class BenchCase
{
    public int $iterations = 0;
    /** @var list<float> ns per call, one per round */
    public array $samples = [];

    public function __construct(
        public readonly string $id,
        public readonly string $label,
        public readonly \Closure $loop,
        public readonly \Closure $check,
        public readonly ?string $baseline = 'floor',
        public readonly int $perCall = 1,
        public readonly ?\Closure $fresh = null,
    ) {
    }

    public function round(): float
    {
        if ($this->fresh !== null) {
            ($this->fresh)();
        }
        return self::timed($this->loop, $this->iterations) / $this->iterations / $this->perCall;
    }

    /** Sizes a round to about $roundNs, then runs the warm-up round. */
    public function calibrate(int $roundNs): void
    {
        if ($this->fresh !== null) {
            ($this->fresh)();
        }
        $n = 1;
        while (true) {
            $t = self::timed($this->loop, $n);
            if ($t >= intdiv($roundNs, 20) || $n >= 1 << 30) {
                break;
            }
            $n *= $t < intdiv($roundNs, 200) ? 4 : 2;
        }
        $this->iterations = max(1, (int) round($n * $roundNs / max($t, 1)));
        $this->round();
    }

    private static function timed(\Closure $loop, int $n): int
    {
        gc_collect_cycles();
        $t = hrtime(true);
        $loop($n);
        return hrtime(true) - $t;
    }

    /** @return array<string, mixed> */
    public function result(): array
    {
        [$q1, $median, $q3] = quartiles($this->samples);
        return [
            'id' => $this->id,
            'label' => $this->label,
            'median_ns' => round($median, 2),
            'q1_ns' => round($q1, 2),
            'q3_ns' => round($q3, 2),
            'rounds' => count($this->samples),
            'iterations' => $this->iterations,
            'baseline' => $this->baseline,
        ];
    }
}

/**
 * Quartiles as Python's statistics.quantiles(data, n=4, method="inclusive").
 *
 * @param list<float> $data
 * @return array{0: float, 1: float, 2: float}
 */
function quartiles(array $data): array
{
    sort($data);
    $m = count($data) - 1;
    $at = static function (float $p) use ($data, $m): float {
        $x = $p * $m;
        $lo = (int) floor($x);
        $hi = min($lo + 1, $m);
        return $data[$lo] + ($data[$hi] - $data[$lo]) * ($x - $lo);
    };
    return [$at(0.25), $at(0.5), $at(0.75)];
}

function payload(int $size): string
{
    $s = '';
    for ($i = 0; $i < $size; $i++) {
        $s .= chr($i % 251);
    }
    return $s;
}

$rt = new Runtime();
$native = Native::get();
$ffi = $native->ffi;
[, $outBuf, $errBuf] = $native->pair();

$echo = $rt->method(ECHO_METHOD, Format::PROTOBUF);
$echoCbor = $rt->method(ECHO_METHOD, Format::CBOR);
$payloads = array_map('payload', SIZES);
$req = array_map(static fn (string $p): string => (new EchoRequest(['payload' => $p]))->serializeToString(), $payloads);
$arrays = array_map(static fn (string $p): array => ['payload' => new Bytes($p)], $payloads);
$messages = array_map(static fn (string $p): EchoRequest => new EchoRequest(['payload' => $p]), $payloads);

/** @var list<BenchCase> $cases */
$cases = [];

$cases[] = new BenchCase(
    'floor',
    'bare hms_abi_version() through PHP FFI',
    static function (int $n) use ($ffi): void {
        for ($i = 0; $i < $n; $i++) {
            $ffi->hms_abi_version();
        }
    },
    static fn (): bool => $ffi->hms_abi_version() === (1 << 16 | Native::constant('ABI_VERSION_MINOR')),
    null,
);

$h = $rt->handle();
$name = ECHO_METHOD;
$nameLen = strlen($name);
$r64 = $req['64'];
$r64Len = strlen($r64);
$cases[] = new BenchCase(
    'bare_call_64',
    '$ffi->hms_call Echo 64 B (ten arguments), no binding code, answer not copied out',
    static function (int $n) use ($ffi, $h, $name, $nameLen, $r64, $r64Len, $outBuf, $errBuf): void {
        for ($i = 0; $i < $n; $i++) {
            $ffi->hms_call($h, $name, $nameLen, 1, $r64, $r64Len, null, 0, $outBuf, $errBuf);
        }
    },
    static fn (): bool => $ffi->hms_call($h, $name, $nameLen, 1, $r64, $r64Len, null, 0, $outBuf, $errBuf) === 0
        && $native->take($outBuf) === $r64,
);

$mh = $echo->handle();
$cases[] = new BenchCase(
    'bare_method_call_64',
    '$ffi->hms_method_call Echo 64 B (five arguments), no binding code, answer not copied out',
    static function (int $n) use ($ffi, $mh, $r64, $r64Len, $outBuf, $errBuf): void {
        for ($i = 0; $i < $n; $i++) {
            $ffi->hms_method_call($mh, $r64, $r64Len, $outBuf, $errBuf);
        }
    },
    static fn (): bool => $ffi->hms_method_call($mh, $r64, $r64Len, $outBuf, $errBuf) === 0 && $native->take($outBuf) === $r64,
);

foreach (SIZES as $size => $bytes) {
    $r = $req[$size];
    $cases[] = new BenchCase(
        "echo_raw_{$size}",
        "Method::callRaw: Echo {$bytes} B payload, protobuf bytes in and out",
        static function (int $n) use ($echo, $r): void {
            for ($i = 0; $i < $n; $i++) {
                $echo->callRaw($r);
            }
        },
        static fn (): bool => $echo->callRaw($r) === $r,
    );
}

$cases[] = new BenchCase(
    'echo_raw_by_name_64',
    'Runtime::callRaw(name, bytes, Format::PROTOBUF): Echo 64 B by name (the runtime\'s cached handle)',
    static function (int $n) use ($rt, $r64): void {
        for ($i = 0; $i < $n; $i++) {
            $rt->callRaw(ECHO_METHOD, $r64, Format::PROTOBUF);
        }
    },
    static fn (): bool => $rt->callRaw(ECHO_METHOD, $r64, Format::PROTOBUF) === $r64,
);

foreach (SIZES as $size => $bytes) {
    $a = $arrays[$size];
    $p = $payloads[$size];
    $cases[] = new BenchCase(
        "echo_typed_{$size}",
        "Method::call: ['payload' => Bytes({$bytes} B)] in, array out (CBOR, the binding's codec)",
        static function (int $n) use ($echoCbor, $a): void {
            for ($i = 0; $i < $n; $i++) {
                $echoCbor->call($a);
            }
        },
        static fn (): bool => $echoCbor->call($a)['payload']->value === $p,
    );
}

foreach (SIZES as $size => $bytes) {
    $msg = $messages[$size];
    $p = $payloads[$size];
    $cases[] = new BenchCase(
        "echo_typed_pb_{$size}",
        "Method::call: EchoRequest({$bytes} B) in, EchoResponse out (pure-PHP protobuf runtime)",
        static function (int $n) use ($echo, $msg): void {
            for ($i = 0; $i < $n; $i++) {
                $echo->call($msg);
            }
        },
        static function () use ($echo, $msg, $p): bool {
            $reply = $echo->call($msg);
            return $reply instanceof EchoResponse && $reply->getPayload() === $p;
        },
    );
}

// CreateAgent: an empty in-memory runtime per round, so every round writes
// into a store of the same size.
$agentRt = null;
$agents = null;
$freshAgents = static function () use (&$agentRt, &$agents): void {
    $agentRt?->close();
    $agentRt = new Runtime();
    $agents = $agentRt->agents();
};
$agent = ['name' => 'bench', 'capabilities' => ['x'], 'labels' => ['k' => 'v']];
$freshAgents();
$cases[] = new BenchCase(
    'create_agent_typed',
    '$rt->agents()->create([name, capabilities, labels]): array in, Agent array out (CBOR)',
    static function (int $n) use (&$agents, $agent): void {
        $a = $agents;
        for ($i = 0; $i < $n; $i++) {
            $a->create($agent);
        }
    },
    static function () use (&$agents, $agent): bool {
        $created = $agents->create($agent);
        return $created['state'] === 'INITIALIZED' && $created['labels'] === ['k' => 'v'];
    },
    fresh: $freshAgents,
);

$lifecycle = $rt->lifecycle();
$agentId = $rt->agents()->create(['name' => 'bench-transition'])['id'];
$lifecycle->transition($agentId, 'ACTIVE');
$next = 'PAUSED';
$cases[] = new BenchCase(
    'transition_typed',
    '$rt->lifecycle()->transition(id, target): ACTIVE and PAUSED in turn (CBOR arrays)',
    static function (int $n) use ($lifecycle, $agentId, &$next): void {
        for ($i = 0; $i < $n; $i++) {
            $lifecycle->transition($agentId, $next);
            $next = $next === 'PAUSED' ? 'ACTIVE' : 'PAUSED';
        }
    },
    static function () use ($lifecycle, $agentId, &$next): bool {
        $reply = $lifecycle->transition($agentId, $next);
        $ok = $reply['current_state'] === $next && $reply['event']['new_state'] === $next;
        $next = $next === 'PAUSED' ? 'ACTIVE' : 'PAUSED';
        return $ok;
    },
);

$batch = array_fill(0, BATCH, $r64);
$cases[] = new BenchCase(
    'batch_echo_raw_64',
    'Method::batchRaw: ' . number_format(BATCH) . ' Echo 64 B in one hms_call_batch; per call',
    static function (int $n) use ($echo, $batch): void {
        for ($i = 0; $i < $n; $i++) {
            $echo->batchRaw($batch);
        }
    },
    static fn (): bool => $echo->batchRaw($batch) === $batch,
    'echo_raw_64',
    BATCH,
);

if ($only !== null) {
    $cases = array_values(array_filter($cases, static fn (BenchCase $c): bool => in_array($c->id, $only, true)));
}
foreach ($cases as $case) {
    if (!($case->check)()) {
        fwrite(STDERR, "bench.php: {$case->id}: wrong answer\n");
        exit(1);
    }
}

// -- a loop for profilers ----------------------------------------------------

if ($loop !== null) {
    $case = null;
    foreach ($cases as $c) {
        $case = $c->id === $loop ? $c : $case;
    }
    if ($case === null) {
        fwrite(STDERR, "bench.php: no case '{$loop}'\n");
        exit(2);
    }
    $case->calibrate(10_000_000);
    $end = hrtime(true) + (int) ($seconds * 1e9);
    $calls = 0;
    while (hrtime(true) < $end) {
        ($case->loop)($case->iterations);
        $calls += $case->iterations;
    }
    printf("%s: %d calls in %.1f s\n", $case->id, $calls * $case->perCall, $seconds);
    exit(0);
}

// -- measure ---------------------------------------------------------------

foreach ($cases as $case) {
    $case->calibrate($roundNs);
}
for ($r = 0; $r < $rounds; $r++) {
    foreach ($cases as $case) {
        $case->samples[] = $case->round();
    }
}
$agentRt?->close();

$jit = function_exists('opcache_get_status') ? (opcache_get_status(false)['jit'] ?? null) : null;
$jitOn = is_array($jit) && ($jit['on'] ?? false);
$jitMode = (string) ini_get('opcache.jit');
[$abiMajor, $abiMinor] = Runtime::abiVersion();
$results = array_map(static fn (BenchCase $c): array => $c->result(), $cases);
$byId = array_column($results, null, 'id');
$notes = [
    'PHP ' . PHP_VERSION . ' CLI, ' . ($jitOn ? "opcache JIT on (opcache.jit={$jitMode})" : 'JIT off')
    . ', ' . (extension_loaded('protobuf') ? 'protobuf C extension' : 'pure-PHP protobuf runtime (php-google-protobuf)')
    . ', ' . php_uname('m') . ', ' . (int) shell_exec('nproc') . ' CPUs',
    'echo_raw_*: Method::callRaw over a method handle resolved once (hms_method_call, five FFI arguments), '
    . 'protobuf EchoRequest bytes with a payload of 64 B / 1 KiB / 64 KiB; the answer is copied into a PHP string.',
    'echo_typed_*: the binding\'s typed path, PHP arrays through its own pure-PHP CBOR codec '
    . '(Method::call with [\'payload\' => new Bytes(...)], the default format of Hms\\Runtime); '
    . 'echo_typed_pb_* is the same with generated protobuf message objects (pure-PHP protobuf runtime, much slower).',
    'create_agent_typed and transition_typed go through the domain API ($rt->agents()->create(), '
    . '$rt->lifecycle()->transition()): Runtime::call by name with CBOR arrays, which reuses a method handle '
    . 'the runtime resolved on first use. CreateAgent gets an empty in-memory runtime per round.',
    'Extra ids: echo_raw_by_name_64 (Runtime::callRaw by name) and echo_typed_pb_* (protobuf messages).',
    'opcache\'s tracing JIT aborts every trace that reaches an FFI call (a "trampoline call"), so code that '
    . 'crosses the FFI runs in the interpreter whatever the JIT mode; JIT helps the codecs and the batch slicing.',
    'The 64 KiB typed cases are dominated by memcpy between buffers of different alignment (CBOR head + payload): '
    . 'glibc\'s rep-movsb copy is slow for that on this CPU; GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=4194304 '
    . 'cuts echo_typed_64k about 5x (benchmarks/php/README.md).',
];
if ($quick) {
    $notes[] = 'HMS_BENCH_QUICK=1: 3 rounds of about 5 ms: indicative only.';
}
$report = [
    'language' => 'PHP',
    'version' => 'PHP ' . PHP_VERSION . ($jitOn ? " (opcache JIT {$jitMode})" : ' (no JIT)')
        . ', FFI, library ' . Runtime::libraryVersion() . " (ABI {$abiMajor}.{$abiMinor})",
    'notes' => $notes,
    'cases' => $results,
    'memory' => [],
];
if (!is_dir(dirname($out)) && !@mkdir(dirname($out), 0777, true) && !is_dir(dirname($out))) {
    fwrite(STDERR, "bench.php: cannot create " . dirname($out) . "\n");
    exit(1);
}
file_put_contents($out, json_encode($report, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES) . "\n");

printf("%s\n\n| case | median ns | q1 | q3 | iterations | x baseline |\n|---|---:|---:|---:|---:|---|\n", $report['version']);
foreach ($results as $c) {
    $ratio = '';
    if ($c['baseline'] !== null && isset($byId[$c['baseline']])) {
        $ratio = sprintf('%.2fx %s', $c['median_ns'] / $byId[$c['baseline']]['median_ns'], $c['baseline']);
    }
    printf("| %s | %.1f | %.1f | %.1f | %d | %s |\n", $c['id'], $c['median_ns'], $c['q1_ns'], $c['q3_ns'], $c['iterations'], $ratio);
}
fwrite(STDERR, "bench.php: wrote {$out}\n");
