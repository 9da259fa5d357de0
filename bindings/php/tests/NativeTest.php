<?php

declare(strict_types=1);

namespace Hms\Tests;

use Hms\Exception\IncompatibleException;
use Hms\Locator;
use Hms\Native;
use Hms\Runtime;
use Hms\Status;

final class NativeTest extends HmsTestCase
{
    public function testLoadsTheLibraryTheSearchFinds(): void
    {
        $native = Native::get();
        $env = getenv('HMS_FFI_LIBRARY');
        if (is_string($env) && $env !== '') {
            $this->assertSame(realpath($env), $native->library);
            $this->assertSame('HMS_FFI_LIBRARY', $native->via);
            $this->assertSame(Locator::packageCdef(), Native::cdefPath(), 'an explicit library takes the package\'s declarations');
        } else {
            $this->assertSame(Native::location()['library'], $native->library);
        }
        $this->assertSame($native, Native::get($native->library));
        $this->assertSame('the $library argument', Native::location($native->library)['via']);
    }

    public function testAbiVersionMatchesTheHeader(): void
    {
        [$major, $minor] = Runtime::abiVersion();
        $this->assertSame(Native::constant('ABI_VERSION_MAJOR'), $major);
        $this->assertGreaterThanOrEqual(Native::constant('ABI_VERSION_MINOR'), $minor);
        $this->assertMatchesRegularExpression('/^\d+\.\d+\.\d+/', Runtime::libraryVersion());
    }

    public function testRefusesAnIncompatibleLibrary(): void
    {
        $want = Native::constant('ABI_VERSION_MAJOR') . '.' . Native::constant('ABI_VERSION_MINOR');
        $otherMajor = (Native::constant('ABI_VERSION_MAJOR') + 1) << 16;
        $e = $this->assertStatus(IncompatibleException::class, 'INCOMPATIBLE', fn () => Native::checkAbi($otherMajor, '/x/libhms_ffi.so'));
        $this->assertStringContainsString('ABI ' . (Native::constant('ABI_VERSION_MAJOR') + 1) . '.0', $e->getMessage());
        $this->assertStringContainsString("built for ABI {$want}", $e->getMessage());
        $this->assertSame($want, $e->getDetails()['binding_abi']);
        // an older minor: a 1.0 library has no method handles or batches
        $this->assertGreaterThanOrEqual(1, Native::constant('ABI_VERSION_MINOR'));
        $older = (Native::constant('ABI_VERSION_MAJOR') << 16) | (Native::constant('ABI_VERSION_MINOR') - 1);
        $this->assertStatus(IncompatibleException::class, 'INCOMPATIBLE', fn () => Native::checkAbi($older, '/x'));
        $this->assertStatus(IncompatibleException::class, 'INCOMPATIBLE', fn () => Native::checkAbi(1 << 16, '/x'), 'ABI 1.0');
        // a newer minor is fine
        Native::checkAbi((Native::constant('ABI_VERSION_MAJOR') << 16) | (Native::constant('ABI_VERSION_MINOR') + 1), '/x');
    }

    public function testConstantsComeFromThePackagesCdefEnum(): void
    {
        $cdef = (string) file_get_contents(Locator::packageCdef());
        foreach (Native::constants() as $name => $value) {
            $this->assertMatchesRegularExpression("/\\b{$name} = {$value}\\b/", $cdef);
        }
        $this->assertSame(0, Status::code('OK'));
        $this->assertSame('NOT_FOUND', Status::name(Status::code('HMS_NOT_FOUND')));
        $this->assertSame('STATUS_999', Status::name(999));
        $this->assertCount(22, Status::all());
    }

    public function testDeclarationsAreTheCdefFileAdaptedForPhp(): void
    {
        $cdef = explode("\n", (string) file_get_contents(Native::cdefPath()));
        $adapted = explode("\n", Native::declarations());
        $this->assertCount(count($cdef), $adapted);
        foreach ($cdef as $i => $line) {
            $expected = str_starts_with($line, 'typedef void (*hms_handler_fn)')
                ? str_replace('const char *method', 'const uint8_t *method', $line)
                : (str_starts_with($line, 'typedef') ? $line : str_replace('const uint8_t *', 'const char *', $line));
            $this->assertSame($expected, $adapted[$i]);
        }
    }

    public function testZeroMadeUpStaleAndDoubleFreedHandles(): void
    {
        $ffi = Native::get()->ffi;
        [, $out, $err] = Native::get()->pair();
        $invalid = Status::code('INVALID_HANDLE');
        $m = 'hms.sys.v1.System/Echo';
        $call = fn (int $h): int => $ffi->hms_call($h, $m, strlen($m), 2, '', 0, null, 0, $out, $err);
        $poll = fn (int $h): int => $ffi->hms_poll($h, 0, $out, $err);

        // zero and made-up
        foreach ([0, 1, 12345, PHP_INT_MAX, -1] as $h) {
            $this->assertSame($invalid, $call($h), "hms_call({$h})");
            $this->assertSame($invalid, $ffi->hms_runtime_free($h));
            $this->assertSame($invalid, $ffi->hms_service_unregister($h));
            $this->assertSame($invalid, $ffi->hms_unsubscribe($h));
            $this->assertSame($invalid, $poll($h));
        }
        // stale and double-freed
        $rt = new Runtime();
        $h = $rt->handle();
        $sub = $rt->subscribe();
        $subHandle = (new \ReflectionProperty($sub, 'handle'))->getValue($sub);
        $svc = $rt->registerService('demo.v1.H', ['A' => fn () => 1]);
        $svcHandle = (new \ReflectionProperty($svc, 'handle'))->getValue($svc);
        // wrong kind
        $this->assertSame($invalid, $call($subHandle));
        $this->assertSame($invalid, $ffi->hms_unsubscribe($h));
        $this->assertSame($invalid, $ffi->hms_service_unregister($subHandle));
        $this->assertSame(0, $call($h));
        $rt->close();
        $this->assertSame($invalid, $call($h));
        $this->assertSame($invalid, $ffi->hms_runtime_free($h));
        $this->assertSame($invalid, $ffi->hms_service_unregister($svcHandle));
        $this->assertSame($invalid, $ffi->hms_unsubscribe($subHandle));
        $this->assertSame($invalid, $poll($subHandle));
        // a new runtime does not revive the old handle
        $fresh = $this->runtime();
        $this->assertNotSame($h, $fresh->handle());
        $this->assertSame($invalid, $call($h));
        $e = Native::get()->error($invalid, $err, 2);
        $this->assertInstanceOf(\Hms\Exception\InvalidHandleException::class, $e);
    }

    public function testBufferFreeIsIdempotent(): void
    {
        $native = Native::get();
        $buf = $native->ffi->new('hms_buf');
        $m = 'hms.sys.v1.System/Echo';
        $rt = $this->runtime();
        $this->assertSame(0, $native->ffi->hms_call($rt->handle(), $m, strlen($m), 3, '{"text":"x"}', 12, null, 0, \FFI::addr($buf), null));
        $this->assertSame('{"text":"x"}', \FFI::string($buf->data, $buf->len));
        $native->ffi->hms_buf_free(\FFI::addr($buf));
        $this->assertNull($buf->data);
        $this->assertSame(0, $buf->len);
        $native->ffi->hms_buf_free(\FFI::addr($buf));
        $native->ffi->hms_buf_free(null);
        $this->assertSame(0, $buf->cap);
    }
}
