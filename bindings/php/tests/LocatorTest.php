<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\Exception\IncompatibleException;
use Hms\Exception\LibraryNotFoundException;
use Hms\Locator;
use Hms\Native;
use Hms\Runtime;
use PHPUnit\Framework\TestCase;

/**
 * The search for the library and its declarations (Locator, README "Where
 * the library is found"). A process loads a library once, so every search
 * that must start afresh runs in a child PHP, with a copy of the package
 * outside the checkout (as Composer installs it) and an environment built
 * here: no HMS_FFI_*, and pkg-config blind to the system's .pc files.
 */
final class LocatorTest extends TestCase
{
    /** @var list<string> temporary directories to remove */
    private array $temporary = [];

    protected function tearDown(): void
    {
        foreach ($this->temporary as $dir) {
            exec('rm -rf ' . escapeshellarg($dir));
        }
        $this->temporary = [];
    }

    public function testNothingFoundListsEveryPlaceLookedAtAndTheFix(): void
    {
        $result = $this->child($this->packageCopy(withCdef: true), []);

        $this->assertSame(LibraryNotFoundException::class, $result['class'] ?? null, json_encode($result) ?: '');
        $this->assertSame([
            'HMS_FFI_LIBRARY: not set',
            'HMS_FFI_PYTHON: not set',
            'pkg-config hms_ffi: Package hms_ffi was not found in the pkg-config search path.',
        ], array_slice($result['places'], 0, 3));
        $this->assertStringStartsWith('the loader path', $result['places'][3]);
        $this->assertStringContainsString("libhms_ffi.so.1: Failed loading 'libhms_ffi.so.1'", $result['places'][3],
            'a libhms_ffi on the system loader path was found; this test needs a machine without one');
        $this->assertCount(4, $result['places'], 'outside a checkout there is no checkout build to look at');
        $this->assertStringStartsWith("libhms_ffi was not found. Looked at:\n  - HMS_FFI_LIBRARY: not set\n", $result['message']);
        $this->assertStringEndsWith("\nFix: " . Locator::FIX, $result['message']);
        $this->assertSame(5, $result['status_code'], 'the package\'s own declarations still give the status codes');
    }

    /** The package without its include/hms_ffi_cdef.h, as Composer installed it before: no recursion, one message. */
    public function testAPackageWithoutItsDeclarationsSaysSo(): void
    {
        $package = $this->packageCopy(withCdef: false);

        $alone = $this->child($package, ['HMS_FFI_LIBRARY' => self::library()]);
        $this->assertSame(LibraryNotFoundException::class, $alone['class'] ?? null, json_encode($alone) ?: '');
        $this->assertStringContainsString(
            "HMS_FFI_LIBRARY gives the library, but this package's declarations {$package}/include/hms_ffi_cdef.h are missing",
            $alone['message'],
        );
        $this->assertStringContainsString('Fix: set HMS_FFI_CDEF=', $alone['message']);
        $this->assertSame(LibraryNotFoundException::class, $alone['status_code']);

        $nothing = $this->child($package, []);
        $this->assertSame(LibraryNotFoundException::class, $nothing['class'] ?? null, json_encode($nothing) ?: '');
        $this->assertStringContainsString('pkg-config hms_ffi: Package hms_ffi was not found', $nothing['message']);
        $this->assertSame(LibraryNotFoundException::class, $nothing['status_code']);

        $given = $this->child($package, ['HMS_FFI_LIBRARY' => self::library(), 'HMS_FFI_CDEF' => Locator::packageCdef()]);
        $this->assertSame(
            ['via' => 'HMS_FFI_LIBRARY', 'library' => self::library(), 'cdef' => Locator::packageCdef(), 'echo' => 'found'],
            $given,
        );
    }

    /** An installed layout (make install) found through pkg-config gives both files. */
    public function testPkgConfigGivesTheLibraryAndItsDeclarations(): void
    {
        $prefix = $this->temporaryDir();
        mkdir("{$prefix}/lib/pkgconfig", 0o777, true);
        mkdir("{$prefix}/include/hms", 0o777, true);
        symlink(self::library(), "{$prefix}/lib/libhms_ffi.so");
        copy(Locator::packageCdef(), "{$prefix}/include/hms/hms_ffi_cdef.h");
        copy(Locator::packageCdef(), "{$prefix}/include/hms_ffi_cdef.h");
        $pc = "prefix={$prefix}\nlibdir=\${prefix}/lib\nincludedir=\${prefix}/include\n"
            . "cdef=\${includedir}/hms/hms_ffi_cdef.h\n\n"
            . "Name: hms_ffi\nDescription: test\nVersion: 1.2.0\nLibs: -L\${libdir} -lhms_ffi\n";
        file_put_contents("{$prefix}/lib/pkgconfig/hms_ffi.pc", $pc);
        $package = $this->packageCopy(withCdef: false);

        $result = $this->child($package, ['PKG_CONFIG_PATH' => "{$prefix}/lib/pkgconfig"]);
        $this->assertSame(
            ['via' => 'pkg-config', 'library' => self::library(), 'cdef' => "{$prefix}/include/hms/hms_ffi_cdef.h", 'echo' => 'found'],
            $result,
        );

        // A .pc without the cdef variable (older installs): includedir/hms_ffi_cdef.h.
        file_put_contents("{$prefix}/lib/pkgconfig/hms_ffi.pc", str_replace("cdef=\${includedir}/hms/hms_ffi_cdef.h\n", '', $pc));
        $result = $this->child($package, ['PKG_CONFIG_PATH' => "{$prefix}/lib/pkgconfig"]);
        $this->assertSame("{$prefix}/include/hms_ffi_cdef.h", $result['cdef'] ?? null, json_encode($result) ?: '');

        // An explicit setting that points at nothing is an error, never skipped for pkg-config's library.
        $result = $this->child($package, ['PKG_CONFIG_PATH' => "{$prefix}/lib/pkgconfig", 'HMS_FFI_LIBRARY' => "{$prefix}/nothing.so"]);
        $this->assertSame(LibraryNotFoundException::class, $result['class'] ?? null, json_encode($result) ?: '');
        $this->assertStringStartsWith("HMS_FFI_LIBRARY: {$prefix}/nothing.so (no such file)\n", $result['message']);
    }

    /** Without pkg-config, the loader path (here LD_LIBRARY_PATH), by soname, with the package's declarations. */
    public function testTheLoaderPathFindsTheSoname(): void
    {
        $lib = $this->temporaryDir();
        symlink(self::library(), "{$lib}/libhms_ffi.so.1");
        $package = $this->packageCopy(withCdef: true);

        $result = $this->child($package, ['LD_LIBRARY_PATH' => $lib]);
        $this->assertSame(
            ['via' => 'the loader path', 'library' => 'libhms_ffi.so.1', 'cdef' => "{$package}/include/hms_ffi_cdef.h", 'echo' => 'found'],
            $result,
        );

        // Only the unversioned name (a development install): the second name tried.
        rename("{$lib}/libhms_ffi.so.1", "{$lib}/libhms_ffi.so");
        $result = $this->child($package, ['LD_LIBRARY_PATH' => $lib]);
        $this->assertSame('libhms_ffi.so', $result['library'] ?? null, json_encode($result) ?: '');
    }

    public function testExplicitSettingsThatPointAtNothingAreErrors(): void
    {
        $this->assertMiss(
            "the \$library argument: /nonexistent/libhms_ffi.so (no such file)\nAn explicit setting is never skipped.",
            fn () => new Runtime(null, '/nonexistent/libhms_ffi.so'),
        );
        $this->assertMiss("the \$library argument: 'libhms_ffi.so' is not an absolute path", fn () => new Runtime(null, 'libhms_ffi.so'));
        foreach ([
            'HMS_FFI_LIBRARY: /nonexistent/libhms_ffi.so (no such file)' => ['HMS_FFI_LIBRARY' => '/nonexistent/libhms_ffi.so'],
            'HMS_FFI_CDEF: /nonexistent/hms_ffi_cdef.h (no such file)' => ['HMS_FFI_CDEF' => '/nonexistent/hms_ffi_cdef.h'],
            // (an empty HMS_FFI_LIBRARY is unset: the search goes on to HMS_FFI_PYTHON)
            'HMS_FFI_PYTHON=/nonexistent/python3: `/nonexistent/python3 -m hms_cffi.paths library` failed'
                => ['HMS_FFI_LIBRARY' => '', 'HMS_FFI_PYTHON' => '/nonexistent/python3'],
        ] as $expected => $vars) {
            $saved = [];
            foreach ($vars as $name => $value) {
                $saved[$name] = getenv($name);
                putenv("{$name}={$value}");
            }
            try {
                $this->assertMiss($expected, fn () => Locator::find());
            } finally {
                foreach ($saved as $name => $value) {
                    putenv($value === false ? $name : "{$name}={$value}");
                }
            }
        }
    }

    public function testOlderInstalledDeclarationsAreRefused(): void
    {
        $dir = $this->temporaryDir();
        $minor = Native::constant('ABI_VERSION_MINOR');
        $older = str_replace(
            "HMS_ABI_VERSION_MINOR = {$minor},",
            'HMS_ABI_VERSION_MINOR = ' . ($minor - 1) . ',',
            (string) file_get_contents(Locator::packageCdef()),
        );
        file_put_contents("{$dir}/hms_ffi_cdef.h", $older);
        file_put_contents("{$dir}/empty.h", "void f(void);\n");
        Native::checkDeclarations(Locator::packageCdef());
        foreach (["{$dir}/hms_ffi_cdef.h" => 'ABI 1.' . ($minor - 1), "{$dir}/empty.h" => 'no ABI version'] as $cdef => $got) {
            try {
                Native::checkDeclarations($cdef);
                $this->fail("{$cdef} was accepted");
            } catch (IncompatibleException $e) {
                $this->assertStringContainsString("the declarations {$cdef} have {$got}", $e->getMessage());
            }
        }
    }

    /** @param callable(): mixed $fn */
    private function assertMiss(string $expected, callable $fn): void
    {
        try {
            $fn();
            $this->fail("no LibraryNotFoundException, expected: {$expected}");
        } catch (LibraryNotFoundException $e) {
            $this->assertStringStartsWith($expected, $e->getMessage());
            $this->assertCount(1, $e->getPlaces());
        }
    }

    /** The library this suite runs against (run_tests.sh sets HMS_FFI_LIBRARY). */
    private static function library(): string
    {
        return Native::get()->library;
    }

    /**
     * Runs tests/fixtures/locate_child.php over $package with only PATH,
     * pkg-config blind to the system and $env; decodes its one JSON line.
     *
     * @param array<string, string> $env
     * @return array<string, mixed>
     */
    private function child(string $package, array $env): array
    {
        $env += [
            'PATH' => (string) getenv('PATH'),
            'PKG_CONFIG_LIBDIR' => $this->temporaryDir(),
        ];
        $command = [PHP_BINARY, '-d', 'memory_limit=32M', '-d', 'display_errors=stderr', __DIR__ . '/fixtures/locate_child.php', $package];
        $pipes = [];
        $proc = proc_open($command, [1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes, null, $env);
        $this->assertIsResource($proc);
        $out = (string) stream_get_contents($pipes[1]);
        $err = (string) stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        $this->assertSame(0, proc_close($proc), "child failed:\n{$out}{$err}");
        $this->assertSame('', $err);
        $result = json_decode($out, true, 8, JSON_THROW_ON_ERROR);
        $this->assertIsArray($result);
        return $result;
    }

    /** A copy of the package's PHP sources in a temporary directory, with or without include/. */
    private function packageCopy(bool $withCdef): string
    {
        $dir = $this->temporaryDir();
        $here = dirname(__DIR__);
        exec('cp -R ' . escapeshellarg("{$here}/src") . ' ' . escapeshellarg("{$here}/autoload.php") . ' ' . escapeshellarg($dir), $output, $rc);
        $this->assertSame(0, $rc);
        if ($withCdef) {
            mkdir("{$dir}/include");
            copy(Locator::packageCdef(), "{$dir}/include/hms_ffi_cdef.h");
        }
        return realpath($dir) ?: $dir;
    }

    private function temporaryDir(): string
    {
        $dir = sys_get_temp_dir() . '/hms-php-locator-' . bin2hex(random_bytes(6));
        mkdir($dir);
        return $this->temporary[] = $dir;
    }
}
