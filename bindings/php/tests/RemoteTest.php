<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\Exception\NotFoundException;
use Hms\Exception\UnavailableException;
use Hms\Runtime;

/**
 * Calls through the NATS transport, against a real nats-server started here
 * on a free loopback port. PHP services run on the caller's thread
 * (HMS_SERVICE_CALLER_THREAD), so PHP calls remote services but cannot
 * export its own: the tests show both.
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

    public function testAPhpServiceNamedForExportIsNotServedRemotelyAndSaysWhy(): void
    {
        $exporter = $this->onNats('php-exporter', exports: ['php.v1.Local']);
        $exporter->registerService('php.v1.Local', ['Ping' => fn (): array => ['pong' => true]]);
        $this->assertSame(['pong' => true], $exporter->call('php.v1.Local/Ping'));
        $caller = $this->onNats('php-caller');
        $this->assertStatus(UnavailableException::class, 'UNAVAILABLE', fn () => $caller->call('php.v1.Local/Ping'), 'thread');
    }
}
