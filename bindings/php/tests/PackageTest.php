<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\Locator;
use PHPUnit\Framework\TestCase;

/**
 * What the Composer package carries stays in step with the repository it is
 * cut from (tests/install/php.sh installs it for real).
 */
final class PackageTest extends TestCase
{
    public function testTheComposerVersionIsTheCores(): void
    {
        $composer = json_decode((string) file_get_contents(dirname(__DIR__) . '/composer.json'), true, 16, JSON_THROW_ON_ERROR);
        $cargo = (string) file_get_contents(dirname(__DIR__, 3) . '/rust_core/Cargo.toml');
        $this->assertSame(1, preg_match('/^\[package\][^\[]*?^version\s*=\s*"([^"]+)"/ms', $cargo, $m), 'no [package] version in Cargo.toml');
        $this->assertSame($m[1], $composer['version'], 'composer.json "version" must be the core\'s (rust_core/Cargo.toml)');
        $this->assertSame('library', $composer['type']);
        $this->assertArrayHasKey('ext-ffi', $composer['require']);
        $this->assertArrayHasKey('google/protobuf', $composer['require']);
    }

    public function testTheCarriedDeclarationsAreTheRepositorysOwn(): void
    {
        $this->assertFileEquals(
            dirname(__DIR__, 3) . '/include/hms_ffi_cdef.h',
            Locator::packageCdef(),
            'bindings/php/include/hms_ffi_cdef.h is stale: run bindings/php/generate.sh',
        );
    }
}
