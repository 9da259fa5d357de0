<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\HmsException;
use Hms\Runtime;
use PHPUnit\Framework\TestCase;

abstract class HmsTestCase extends TestCase
{
    /** @var list<Runtime> */
    private array $runtimes = [];

    /** @param array<string, mixed>|\Google\Protobuf\Internal\Message|null $config */
    protected function runtime(
        array|\Google\Protobuf\Internal\Message|null $config = null,
        string $format = \Hms\Format::CBOR,
        ?\Hms\Credentials $credentials = null,
    ): Runtime {
        $rt = new Runtime($config, null, $format, $credentials);
        $this->runtimes[] = $rt;
        return $rt;
    }

    protected function tearDown(): void
    {
        foreach ($this->runtimes as $rt) {
            $rt->close();
        }
        $this->runtimes = [];
    }

    /**
     * Runs $fn, asserting it throws $class with status $status.
     *
     * @param class-string<HmsException> $class
     */
    protected function assertStatus(string $class, string $status, callable $fn, string $messagePart = ''): HmsException
    {
        try {
            $fn();
        } catch (HmsException $e) {
            $this->assertInstanceOf($class, $e, get_class($e) . ': ' . $e->getMessage());
            $this->assertSame(\Hms\Status::code($status), $e->getCode());
            $this->assertSame($status, $e->getStatusName());
            if ($messagePart !== '') {
                $this->assertStringContainsString($messagePart, $e->getMessage());
            }
            return $e;
        }
        $this->fail("expected {$class} ({$status})");
    }
}
