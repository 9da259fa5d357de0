<?php

declare(strict_types=1);

namespace Hms\Tests;

use FFI;
use Hms\Exception\IncompatibleException;
use Hms\Native;
use Hms\Runtime;
use PHPUnit\Framework\TestCase;

/**
 * Version refusal (tests/versions/README.md, ABI.md): a library of another
 * major ABI version, or an older minor, is refused at load time with an
 * IncompatibleException naming both versions.
 *
 * The refusal logic is tested with fake version numbers always; loading a
 * real other-ABI build runs when HMS_FFI_OTHER_ABI_LIBRARY names one:
 *
 *     HMS_FFI_OTHER_ABI_LIBRARY="$(tests/versions/build_other_abi.sh | tail -n1)" \
 *         bindings/php/run_tests.sh
 */
final class VersionsTest extends TestCase
{
    private const LIBRARY = '/fake/libhms_ffi.so';

    private static function pack(int $major, int $minor): int
    {
        return $major << 16 | $minor;
    }

    /** The header's version, packed like hms_abi_version(). */
    private static function headerVersion(): int
    {
        return self::pack(Native::constant('ABI_VERSION_MAJOR'), Native::constant('ABI_VERSION_MINOR'));
    }

    public function testTheLoadedLibraryHasTheHeadersVersion(): void
    {
        [$major, $minor] = Runtime::abiVersion();
        $this->assertSame(self::headerVersion(), self::pack($major, $minor));
        Native::checkAbi(self::headerVersion(), self::LIBRARY);
    }

    /** @return array<string, array{0: int, 1: int}> built (major, minor) => loaded (major, minor) */
    public function accepted(): array
    {
        return [
            'same version' => [self::pack(1, 3), self::pack(1, 3)],
            'newer minor' => [self::pack(1, 3), self::pack(1, 4)],
            'largest minor' => [self::pack(1, 3), self::pack(1, 0xFFFF)],
            'minor 0 takes any minor' => [self::pack(2, 0), self::pack(2, 7)],
        ];
    }

    /** @dataProvider accepted */
    public function testCompatibleVersionsAreAccepted(int $built, int $loaded): void
    {
        Native::checkAbi($loaded, self::LIBRARY, $built);
        $this->addToAssertionCount(1);
    }

    /** @return array<string, array{0: int, 1: int, 2: string, 3: string}> */
    public function refused(): array
    {
        return [
            'older minor' => [self::pack(1, 3), self::pack(1, 2), '1.2', '1.3'],
            'newer major' => [self::pack(1, 3), self::pack(2, 0), '2.0', '1.3'],
            'newer major, newer minor' => [self::pack(1, 3), self::pack(2, 5), '2.5', '1.3'],
            'older major' => [self::pack(1, 0), self::pack(0, 9), '0.9', '1.0'],
            'major 0 is not major 1' => [self::pack(1, 0), self::pack(0, 0), '0.0', '1.0'],
        ];
    }

    /** @dataProvider refused */
    public function testIncompatibleVersionsAreRefusedNamingBoth(int $built, int $loaded, string $got, string $want): void
    {
        try {
            Native::checkAbi($loaded, self::LIBRARY, $built);
            $this->fail("ABI {$got} was accepted by a binding built for {$want}");
        } catch (IncompatibleException $e) {
            $this->assertSame('INCOMPATIBLE', $e->getStatusName());
            $this->assertStringContainsString("ABI {$got}", $e->getMessage());
            $this->assertStringContainsString("ABI {$want}", $e->getMessage());
            $this->assertStringContainsString(self::LIBRARY, $e->getMessage());
            $this->assertSame(
                ['library_abi' => $got, 'binding_abi' => $want, 'library' => self::LIBRARY],
                $e->getDetails(),
            );
        }
    }

    /**
     * Method handles and batches (hms_method_*, hms_call_batch) came with
     * ABI 1.1: the binding reads a 1.1 header and refuses a 1.0 library.
     */
    public function testTheBindingRequiresAbi11(): void
    {
        $this->assertSame(1, Native::constant('ABI_VERSION_MAJOR'));
        $this->assertGreaterThanOrEqual(1, Native::constant('ABI_VERSION_MINOR'));
        [$major, $minor] = Runtime::abiVersion();
        $this->assertSame(1, $major);
        $this->assertGreaterThanOrEqual(1, $minor);
        try {
            Native::checkAbi(self::pack(1, 0), self::LIBRARY);
            $this->fail('a 1.0 library was accepted');
        } catch (IncompatibleException $e) {
            $this->assertStringContainsString('ABI 1.0', $e->getMessage());
            $this->assertStringContainsString('built for ABI 1.' . Native::constant('ABI_VERSION_MINOR'), $e->getMessage());
        }
        Native::checkAbi(self::pack(1, 1), self::LIBRARY, self::pack(1, 1));
        foreach (['hms_method_resolve', 'hms_method_call', 'hms_method_free', 'hms_call_batch'] as $function) {
            $this->assertStringContainsString(" {$function}(", Native::declarations());
        }
    }

    public function testTheHeadersVersionRefusesAnotherMajor(): void
    {
        $other = self::headerVersion() + self::pack(1, 0);
        $this->expectException(IncompatibleException::class);
        $this->expectExceptionMessageMatches('/ABI \d+\.\d+ .* built for ABI \d+\.\d+/');
        Native::checkAbi($other, self::LIBRARY);
    }

    /**
     * The real thing: a core built by tests/versions/build_other_abi.sh,
     * loaded through the binding, is refused at load time (before any call).
     */
    public function testLoadingTheOtherAbiBuildIsRefused(): void
    {
        $other = getenv('HMS_FFI_OTHER_ABI_LIBRARY');
        if (!is_string($other) || $other === '') {
            $this->markTestSkipped(
                'HMS_FFI_OTHER_ABI_LIBRARY is not set: the refusal of a real other-ABI library is not run. '
                . 'Build one with HMS_FFI_OTHER_ABI_LIBRARY="$(tests/versions/build_other_abi.sh | tail -n1)" '
                . '(the version check itself is tested above with fake version numbers)',
            );
        }
        $this->assertFileExists($other, 'HMS_FFI_OTHER_ABI_LIBRARY names no file');
        // Its version, read straight from the library (not through the binding).
        $raw = FFI::cdef('uint32_t hms_abi_version(void);', $other)->hms_abi_version();
        $got = ($raw >> 16) . '.' . ($raw & 0xFFFF);
        $want = Native::constant('ABI_VERSION_MAJOR') . '.' . Native::constant('ABI_VERSION_MINOR');
        $this->assertNotSame($want, $got, "{$other} reports the binding's own ABI {$want}");

        try {
            new Runtime(library: $other);
            $this->fail("{$other} (ABI {$got}) was loaded");
        } catch (IncompatibleException $e) {
            $this->assertStringContainsString("libhms_ffi ABI {$got}", $e->getMessage());
            $this->assertStringContainsString("built for ABI {$want}", $e->getMessage());
            $this->assertSame($got, $e->getDetails()['library_abi']);
            $this->assertSame($want, $e->getDetails()['binding_abi']);
        }
        // Refused every time, also without a runtime, and the good library still works.
        $this->expectException(IncompatibleException::class);
        try {
            Runtime::abiVersion($other);
        } finally {
            $rt = new Runtime();
            $this->assertSame(['text' => 'still here'], $rt->call('hms.sys.v1.System/Echo', ['text' => 'still here']));
            $rt->close();
        }
    }
}
