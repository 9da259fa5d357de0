<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\Native;

/**
 * Production setup: ffi.enable=preload, the FFI scope "HMS" and the
 * binding's classes preloaded by opcache, requests using FFI::scope().
 */
final class PreloadTest extends HmsTestCase
{
    public function testRunsUnderFfiEnablePreload(): void
    {
        exec(escapeshellarg(PHP_BINARY) . ' -m', $modules, $rc);
        $this->assertSame(0, $rc);
        $this->assertContains('Zend OPcache', $modules, 'Zend OPcache is missing: install the Debian package php-opcache');

        $header = tempnam(sys_get_temp_dir(), 'hms_ffi_h_');
        $this->assertIsString($header);
        try {
            file_put_contents($header, Native::preloadHeader());
            $user = function_exists('posix_getpwuid') ? (posix_getpwuid(posix_geteuid())['name'] ?? 'root') : 'root';
            $command = implode(' ', array_map('escapeshellarg', [
                PHP_BINARY,
                '-d', 'opcache.enable=1',
                '-d', 'opcache.enable_cli=1',
                '-d', 'opcache.preload=' . dirname(__DIR__) . '/preload.php',
                '-d', 'opcache.preload_user=' . $user,
                '-d', 'ffi.enable=preload',
                '-d', 'ffi.preload=' . $header,
                __DIR__ . '/fixtures/preload_child.php',
            ])) . ' 2>&1';
            exec($command, $output, $rc);
        } finally {
            unlink($header);
        }
        $this->assertSame(0, $rc, implode("\n", $output));
        $this->assertCount(1, $output, implode("\n", $output));
        $this->assertSame(
            ['ffi_enable' => 'preload', 'scoped' => true, 'preloaded_class' => true, 'echo' => 'preloaded'],
            json_decode($output[0], true, 8, JSON_THROW_ON_ERROR),
        );
    }

    public function testPreloadHeaderHasTheScopeDirectives(): void
    {
        $header = Native::preloadHeader();
        $this->assertStringStartsWith("#define FFI_SCOPE \"HMS\"\n#define FFI_LIB \"" . Native::get()->library . "\"\n", $header);
        $this->assertStringContainsString(Native::declarations(), $header);
    }
}
