<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\Exception\NotFoundException;
use Hms\Exception\PanicException;
use Hms\Format;
use Hms\Runtime;
use Hms\Sys\V1\EchoRequest;
use Hms\Sys\V1\EchoResponse;

/**
 * A panic inside the core comes back as PanicException (HMS_PANIC), and the
 * binding's reused output and error buffers stay good for the next call.
 *
 * The fault-injection copy of the core (tests/faults/build_fault_library.sh,
 * Cargo feature fault-injection) has the built-in untyped service
 * hms.test.v1.Faults: Panic panics before answering, PanicWhileAnswering
 * grows the caller's response buffer by 1 MiB and then panics. CI passes its
 * path in HMS_FFI_FAULT_LIBRARY; it is loaded by path beside the release
 * library, as VersionsTest loads the other-ABI build:
 *
 *     HMS_FFI_FAULT_LIBRARY="$(tests/faults/build_fault_library.sh | tail -n1)" \
 *         bindings/php/run_tests.sh
 */
final class FaultsTest extends HmsTestCase
{
    private const PANIC = 'hms.test.v1.Faults/Panic';
    private const PANIC_WHILE_ANSWERING = 'hms.test.v1.Faults/PanicWhileAnswering';
    private const ECHO = 'hms.sys.v1.System/Echo';
    private const ROUNDS = 3;
    /** Big enough that the echo answer needs more than a fresh buffer. */
    private const ECHO_PAYLOAD_BYTES = 96 * 1024;
    /** Call options make a call go by name (hms_call), never through a cached method handle. */
    private const BY_NAME = ['trace_id' => 'faults'];

    private static function inCi(): bool
    {
        return in_array(strtolower((string) getenv('CI')), ['true', '1'], true);
    }

    /** HMS_FFI_FAULT_LIBRARY; skips without it, but fails in CI, where the test must run. */
    private function faultLibrary(): string
    {
        $library = getenv('HMS_FFI_FAULT_LIBRARY');
        if (!is_string($library) || $library === '') {
            $reason = 'HMS_FFI_FAULT_LIBRARY is not set: build the fault-injection core with '
                . 'HMS_FFI_FAULT_LIBRARY="$(bash tests/faults/build_fault_library.sh | tail -n1)"';
            if (self::inCi()) {
                $this->fail("{$reason} (CI=true: this test must run)");
            }
            $this->markTestSkipped($reason);
        }
        $this->assertFileExists($library, 'HMS_FFI_FAULT_LIBRARY names no file');
        return $library;
    }

    public function testAPanicInsideTheCoreThenCallAgainWithTheSameBuffers(): void
    {
        $rt = new Runtime(null, $this->faultLibrary());
        try {
            $byHandle = [
                self::PANIC => $rt->method(self::PANIC, Format::CBOR),
                self::PANIC_WHILE_ANSWERING => $rt->method(self::PANIC_WHILE_ANSWERING, Format::CBOR),
            ];
            $echoHandle = $rt->method(self::ECHO, Format::PROTOBUF);
            // Three ways in, each followed by an echo the same way, all
            // through the binding's one pair of reused buffers: by name
            // (hms_call), a plain call (through the handle Runtime caches
            // per name) and an explicit Method.
            $paths = [
                'by name' => [
                    static fn (string $name): mixed => $rt->call($name, [], self::BY_NAME),
                    static fn (EchoRequest $request): mixed => $rt->call(self::ECHO, $request, self::BY_NAME),
                ],
                'plain call' => [
                    static fn (string $name): mixed => $rt->call($name, []),
                    static fn (EchoRequest $request): mixed => $rt->call(self::ECHO, $request),
                ],
                'by Method' => [
                    static fn (string $name): mixed => $byHandle[$name]->call([]),
                    static fn (EchoRequest $request): mixed => $echoHandle->call($request),
                ],
            ];
            $panics = 0;
            for ($round = 0; $round < self::ROUNDS; $round++) {
                foreach ([self::PANIC, self::PANIC_WHILE_ANSWERING] as $name) {
                    foreach ($paths as $way => [$panic, $echo]) {
                        $label = "{$name} {$way}, round {$round}";
                        $e = $this->assertStatus(PanicException::class, 'PANIC', static fn () => $panic($name), 'fault injected');
                        $this->assertSame(104, $e->getCode(), $label);
                        $panics++;
                        $text = "after {$label}";
                        $payload = str_repeat(chr($panics), self::ECHO_PAYLOAD_BYTES);
                        $reply = $echo(new EchoRequest(['text' => $text, 'payload' => $payload]));
                        $this->assertInstanceOf(EchoResponse::class, $reply, $label);
                        $this->assertSame($text, $reply->getText(), $label);
                        $this->assertSame($payload, $reply->getPayload(), "{$label}: the payload came back changed");
                    }
                }
            }
            $this->assertSame(self::ROUNDS * 2 * count($paths), $panics);
            foreach ([...array_values($byHandle), $echoHandle] as $method) {
                $method->close();
            }
        } finally {
            $rt->close();
        }
    }

    /** The release library of the normal suite never has the service that panics on purpose. */
    public function testTheReleaseLibraryHasNoFaultsService(): void
    {
        $rt = $this->runtime();
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', static fn () => $rt->call(self::PANIC, []));
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', static fn () => $rt->call(self::PANIC, [], self::BY_NAME));
        $this->assertStatus(NotFoundException::class, 'NOT_FOUND', static fn () => $rt->method(self::PANIC_WHILE_ANSWERING));
    }
}
