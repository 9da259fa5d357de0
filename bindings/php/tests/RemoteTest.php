<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\Exception\FailedPreconditionException;
use Hms\Exception\NotFoundException;
use Hms\Runtime;

/**
 * Calls through the NATS transport, against a real nats-server started here
 * on a free loopback port. PHP services run on the caller's thread
 * (HMS_SERVICE_CALLER_THREAD): exported, their calls from other processes
 * wait until this thread serves them (serve(), serveUntil()).
 */
final class RemoteTest extends HmsTestCase
{
    private const AGENTS = 'hms.agent.v1.AgentService';

    /** @var resource|null */
    private $server = null;
    private string $url = '';

    protected function setUp(): void
    {
        $probe = stream_socket_server('tcp://127.0.0.1:0');
        $this->assertNotFalse($probe);
        $address = (string) stream_socket_get_name($probe, false);
        $port = (int) substr($address, strrpos($address, ':') + 1);
        fclose($probe);
        $binary = is_executable('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : 'nats-server';
        $null = ['file', '/dev/null', 'w'];
        $server = proc_open([$binary, '-a', '127.0.0.1', '-p', (string) $port], [1 => $null, 2 => $null], $pipes);
        $this->assertNotFalse($server, "cannot start {$binary} (apt-get install nats-server)");
        $this->server = $server;
        $deadline = microtime(true) + 10;
        while (($conn = @stream_socket_client("tcp://127.0.0.1:{$port}", $errno, $error, 0.2)) === false) {
            $this->assertLessThan($deadline, microtime(true), "nats-server did not listen on port {$port}");
            usleep(20_000);
        }
        fclose($conn);
        $this->url = "nats://127.0.0.1:{$port}";
    }

    protected function tearDown(): void
    {
        parent::tearDown();
        if ($this->server !== null) {
            proc_terminate($this->server, 9);
            proc_close($this->server);
            $this->server = null;
        }
    }

    /** @param list<string> $exports @param list<string> $remote */
    private function onNats(string $name, array $exports = [], array $remote = []): Runtime
    {
        return $this->runtime(['name' => $name, 'nats' => [
            'servers' => [$this->url],
            'export_services' => $exports,
            'remote_services' => $remote,
            'request_timeout_ms' => 5000,
        ]]);
    }

    public function testCallsReachAServiceAnotherRuntimeExports(): void
    {
        $exporter = $this->onNats('php-exporter', exports: [self::AGENTS]);
        $caller = $this->onNats('php-caller', remote: [self::AGENTS]);
        $created = $caller->call(self::AGENTS . '/CreateAgent', ['agent' => ['name' => 'remote php']]);
        $id = $created['id'];
        $this->assertSame('remote php', $created['name']);
        $this->assertSame($created, $exporter->call(self::AGENTS . '/GetAgent', ['id' => $id]));
        $this->assertSame($created, $caller->call(self::AGENTS . '/GetAgent', ['id' => $id]));
        $e = $this->assertStatus(NotFoundException::class, 'NOT_FOUND', fn () => $caller->call(self::AGENTS . '/GetAgent', ['id' => 'nobody']));
        $this->assertSame('php-exporter', $e->getOrigin());
    }

    /**
     * Starts a second PHP process that calls $calls (method => request) on a
     * runtime of its own and prints what each answered, as JSON.
     *
     * @param array<string, array<string, mixed>> $calls
     * @return array{0: resource, 1: resource} the process and its stdout
     */
    private function remoteCaller(array $calls): array
    {
        $script = <<<'PHP'
            require getenv('HMS_TEST_AUTOLOAD');
            $rt = new Hms\Runtime(['name' => 'php-remote-caller', 'nats' => [
                'servers' => [getenv('HMS_TEST_NATS')], 'request_timeout_ms' => 20000,
            ]]);
            $answers = [];
            foreach (json_decode(getenv('HMS_TEST_CALLS'), true) as $method => $request) {
                try {
                    $answers[] = ['ok' => $rt->call($method, $request)];
                } catch (Hms\HmsException $e) {
                    $answers[] = ['status' => $e->getStatusName(), 'message' => $e->getMessage(),
                        'details' => $e->getDetails(), 'origin' => $e->getOrigin()];
                }
            }
            $rt->close();
            echo json_encode($answers);
            PHP;
        $env = getenv() + [
            'HMS_TEST_AUTOLOAD' => dirname(__DIR__) . '/autoload.php',
            'HMS_TEST_NATS' => $this->url,
            'HMS_TEST_CALLS' => json_encode($calls, JSON_THROW_ON_ERROR),
        ];
        $process = proc_open([PHP_BINARY, '-d', 'ffi.enable=1', '-r', $script], [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, $env);
        $this->assertNotFalse($process, 'cannot start a second PHP process');
        fclose($pipes[2]);
        return [$process, $pipes[1]];
    }

    /**
     * Serves $rt until the process ends; returns what it printed, decoded,
     * and how many calls were served.
     *
     * @param resource $process
     * @param resource $stdout
     * @return array{0: list<array<string, mixed>>, 1: int}
     */
    private function serveWhileRunning(Runtime $rt, $process, $stdout): array
    {
        $deadline = microtime(true) + 30;
        $served = $rt->serveUntil(function () use ($process, $deadline): bool {
            $this->assertLessThan($deadline, microtime(true), 'the remote caller did not finish');
            return !proc_get_status($process)['running'];
        }, 50);
        $output = (string) stream_get_contents($stdout);
        fclose($stdout);
        proc_close($process);
        $answers = json_decode($output, true);
        $this->assertIsArray($answers, "the remote caller printed: {$output}");
        return [$answers, $served];
    }

    public function testAnExportedPhpServiceAnswersAnotherProcessWhileThisThreadServes(): void
    {
        $exporter = $this->onNats('php-exporter');
        $exporter->registerService('php.v1.Greeter', [
            'Greet' => fn (array $request): array => ['greeting' => "Hello, {$request['name']}!"],
            'Refuse' => function (array $request): never {
                throw new FailedPreconditionException("no greeting for {$request['name']}", ['reason' => 'testing']);
            },
        ], export: true);
        [$process, $stdout] = $this->remoteCaller([
            'php.v1.Greeter/Greet' => ['name' => 'Ada'],
            'php.v1.Greeter/Refuse' => ['name' => 'Bob'],
        ]);
        [$answers, $served] = $this->serveWhileRunning($exporter, $process, $stdout);
        $this->assertSame(2, $served);
        $this->assertSame(['ok' => ['greeting' => 'Hello, Ada!']], $answers[0]);
        // The handler's status crosses unchanged, naming the runtime that answered.
        $this->assertSame('FAILED_PRECONDITION', $answers[1]['status']);
        $this->assertSame('no greeting for Bob', $answers[1]['message']);
        $this->assertSame(['reason' => 'testing'], $answers[1]['details']);
        $this->assertSame('php-exporter', $answers[1]['origin']);
    }

    public function testAPhpServiceNamedForExportIsServedTheSameWay(): void
    {
        $exporter = $this->onNats('php-exporter', exports: ['php.v1.Local']);
        $exporter->registerService('php.v1.Local', ['Ping' => fn (): array => ['pong' => true]]);
        $this->assertSame(['pong' => true], $exporter->call('php.v1.Local/Ping'));
        [$process, $stdout] = $this->remoteCaller(['php.v1.Local/Ping' => []]);
        [$answers, $served] = $this->serveWhileRunning($exporter, $process, $stdout);
        $this->assertSame(1, $served);
        $this->assertSame([['ok' => ['pong' => true]]], $answers);
    }

    public function testServeReturnsZeroWhenNothingComesInTime(): void
    {
        $exporter = $this->onNats('php-exporter');
        $exporter->registerService('php.v1.Idle', ['Ping' => fn (): array => []], export: true);
        $this->assertSame(0, $exporter->serve(0));
        $this->assertSame(0, $exporter->serve(30));
        $this->assertSame(0, $exporter->serveUntil(fn (): bool => true));
    }

    public function testExportAndServeWithoutTransportAreRefused(): void
    {
        $alone = $this->runtime();
        $this->assertStatus(
            FailedPreconditionException::class,
            'FAILED_PRECONDITION',
            fn () => $alone->registerService('php.v1.Lonely', ['Ping' => fn (): array => []], export: true),
            'no transport',
        );
        // Nothing stayed registered: the name is free.
        $alone->registerService('php.v1.Lonely', ['Ping' => fn (): array => ['pong' => 1]]);
        $this->assertSame(['pong' => 1], $alone->call('php.v1.Lonely/Ping'));
        $this->assertStatus(FailedPreconditionException::class, 'FAILED_PRECONDITION', fn () => $alone->serve(0), 'no transport');
    }

    public function testServeUntilRefusesANegativeTick(): void
    {
        $exporter = $this->onNats('php-exporter');
        $this->assertStatus(
            \Hms\Exception\InvalidArgumentException::class,
            'INVALID_ARGUMENT',
            fn () => $exporter->serveUntil(fn (): bool => false, -1),
            'tickMs',
        );
    }
}
