<?php

declare(strict_types=1);

namespace Hms;

use FFI;
use Hms\Exception\LibraryNotFoundException;

/**
 * Finds libhms_ffi and the declarations to load it with, in the one order
 * every binding uses (docs/install.md):
 *
 *  1. an explicit setting: the $library argument, else HMS_FFI_LIBRARY; and
 *     HMS_FFI_CDEF for the declarations. One that points at nothing is an
 *     error, never skipped;
 *  2. HMS_FFI_PYTHON=<python>: the copy inside that interpreter's hms_cffi
 *     package (`<python> -m hms_cffi.paths library`, `... include`);
 *  3. pkg-config hms_ffi: <libdir>/libhms_ffi.so, with the declarations its
 *     `cdef` variable names (else <includedir>/hms_ffi_cdef.h);
 *  4. the system loader path: libhms_ffi.so.1, then libhms_ffi.so, by name;
 *  5. only inside a checkout of the repository: its rust_core/target/release
 *     build, so the in-repo tests run without installing (never before 1-4).
 *
 * Declarations come from the same place as the library unless HMS_FFI_CDEF
 * says otherwise; where that place has none (an explicit library, the loader
 * path, an install without the file) the copy this package carries,
 * include/hms_ffi_cdef.h, is used.
 *
 * Throws only LibraryNotFoundException: status exceptions read their codes
 * from the declarations, which may be what is missing.
 *
 * @internal
 */
final class Locator
{
    /** The one command (or setting) that fixes a miss. */
    public const FIX = 'run `make install PREFIX=/usr/local` in a checkout of HMS FFI (for another prefix also set '
        . 'PKG_CONFIG_PATH=PREFIX/lib/pkgconfig), or set HMS_FFI_LIBRARY=/path/to/libhms_ffi.so';

    /** Names tried on the system loader path, the versioned soname first. */
    public const LOADER_NAMES = ['libhms_ffi.so.1', 'libhms_ffi.so'];

    private function __construct()
    {
    }

    /**
     * The library (an absolute path, or a soname the loader resolves) and
     * its declarations file, with the step that found them ($via).
     *
     * @param string|null $library an explicit library path (the Runtime's $library argument)
     * @return array{library: string, cdef: string, via: string}
     */
    public static function find(?string $library = null): array
    {
        $cdef = self::env('HMS_FFI_CDEF');
        if ($cdef !== null) {
            $cdef = self::explicitFile('HMS_FFI_CDEF', $cdef, 'the declarations file hms_ffi_cdef.h');
        }

        [$setting, $explicit] = $library !== null && $library !== ''
            ? ['the $library argument', $library]
            : ['HMS_FFI_LIBRARY', self::env('HMS_FFI_LIBRARY')];
        if ($explicit !== null) {
            $path = self::explicitFile($setting, $explicit, 'libhms_ffi.so');
            return ['library' => $path, 'cdef' => $cdef ?? self::packageCdefOrFail($setting), 'via' => $setting];
        }

        $python = self::env('HMS_FFI_PYTHON');
        if ($python !== null) {
            return self::fromPython($python, $cdef);
        }

        $places = ['HMS_FFI_LIBRARY: not set', 'HMS_FFI_PYTHON: not set'];
        $found = self::fromPkgConfig($cdef, $places)
            ?? self::fromLoaderPath($cdef, $places)
            ?? self::fromCheckout($cdef, $places);
        if ($found !== null) {
            return $found;
        }
        throw new LibraryNotFoundException(
            "libhms_ffi was not found. Looked at:\n  - " . implode("\n  - ", $places) . "\nFix: " . self::FIX,
            $places,
        );
    }

    /** include/hms_ffi_cdef.h of this package: the declarations the binding was generated with. */
    public static function packageCdef(): string
    {
        return dirname(__DIR__) . '/include/hms_ffi_cdef.h';
    }

    /**
     * The root of the repository checkout this package sits in, or null when
     * it was installed elsewhere (e.g. copied into a project's vendor/).
     */
    public static function checkoutRoot(): ?string
    {
        $root = dirname(__DIR__, 3);
        return is_file("{$root}/rust_core/Cargo.toml") && is_file("{$root}/include/hms_ffi_cdef.h") ? $root : null;
    }

    /**
     * @return array{library: string, cdef: string, via: string}
     */
    private static function fromPython(string $python, ?string $cdef): array
    {
        $setting = "HMS_FFI_PYTHON={$python}";
        $ask = static function (string $what) use ($python, $setting): string {
            [$rc, $out, $err] = self::run([$python, '-m', 'hms_cffi.paths', $what]);
            if ($rc !== 0 || $out === '') {
                $why = $err !== '' ? self::firstLine($err) : "exit status {$rc}";
                $place = "{$setting}: `{$python} -m hms_cffi.paths {$what}` failed: {$why}";
                throw new LibraryNotFoundException(
                    "{$place}\nFix: install the Python package into that interpreter (`{$python} -m pip install "
                    . '/path/to/checkout`), or unset HMS_FFI_PYTHON',
                    [$place],
                );
            }
            return $out;
        };
        $library = self::explicitFile($setting, $ask('library'), 'the library of the Python package');
        $cdef ??= self::explicitFile(
            $setting,
            $ask('include') . '/hms_ffi_cdef.h',
            'the declarations of the Python package',
        );
        return ['library' => $library, 'cdef' => $cdef, 'via' => 'HMS_FFI_PYTHON'];
    }

    /**
     * @param list<string> $places
     * @return array{library: string, cdef: string, via: string}|null
     */
    private static function fromPkgConfig(?string $cdef, array &$places): ?array
    {
        [$rc, $libdir, $err] = self::run(['pkg-config', '--print-errors', '--variable=libdir', 'hms_ffi']);
        if ($rc !== 0 || $libdir === '') {
            $places[] = 'pkg-config hms_ffi: ' . ($err !== '' ? self::firstLine($err) : "exit status {$rc}");
            return null;
        }
        $library = "{$libdir}/libhms_ffi.so";
        if (!is_file($library)) {
            $places[] = "pkg-config hms_ffi: {$library} (no such file)";
            return null;
        }
        if ($cdef === null) {
            // `cdef` is the variable for exactly this; older .pc files only have includedir.
            [, $named] = self::run(['pkg-config', '--variable=cdef', 'hms_ffi']);
            [, $includedir] = self::run(['pkg-config', '--variable=includedir', 'hms_ffi']);
            $candidates = [$named, $includedir === '' ? '' : "{$includedir}/hms_ffi_cdef.h", self::packageCdef()];
            foreach ($candidates as $candidate) {
                if ($candidate !== '' && is_file($candidate)) {
                    $cdef = $candidate;
                    break;
                }
            }
            if ($cdef === null) {
                $places[] = "pkg-config hms_ffi: {$library}, but no hms_ffi_cdef.h (neither its `cdef` variable, "
                    . "{$includedir}/hms_ffi_cdef.h nor this package's " . self::packageCdef() . ')';
                return null;
            }
        }
        return ['library' => self::real($library), 'cdef' => $cdef, 'via' => 'pkg-config'];
    }

    /**
     * @param list<string> $places
     * @return array{library: string, cdef: string, via: string}|null
     */
    private static function fromLoaderPath(?string $cdef, array &$places): ?array
    {
        $misses = [];
        foreach (self::LOADER_NAMES as $name) {
            try {
                // The smallest declaration there is: asks the loader for the file, nothing more.
                FFI::cdef('uint32_t hms_abi_version(void);', $name);
            } catch (\FFI\Exception $e) {
                $misses[] = "{$name}: {$e->getMessage()}";
                continue;
            }
            $cdef ??= is_file(self::packageCdef()) ? self::packageCdef() : null;
            if ($cdef === null) {
                $places[] = "the loader path: {$name}, but no declarations (this package's "
                    . self::packageCdef() . ' is missing; set HMS_FFI_CDEF)';
                return null;
            }
            return ['library' => $name, 'cdef' => $cdef, 'via' => 'the loader path'];
        }
        $places[] = 'the loader path (LD_LIBRARY_PATH, ld.so.cache, /usr/lib): ' . implode('; ', $misses);
        return null;
    }

    /**
     * @param list<string> $places
     * @return array{library: string, cdef: string, via: string}|null
     */
    private static function fromCheckout(?string $cdef, array &$places): ?array
    {
        $root = self::checkoutRoot();
        if ($root === null) {
            return null;
        }
        $library = "{$root}/rust_core/target/release/libhms_ffi.so";
        if (!is_file($library)) {
            $places[] = "this checkout: {$library} (not built: "
                . '`cargo build --release --manifest-path rust_core/Cargo.toml`)';
            return null;
        }
        $cdef ??= "{$root}/include/hms_ffi_cdef.h";
        return ['library' => self::real($library), 'cdef' => $cdef, 'via' => 'the checkout'];
    }

    /**
     * The file an explicit setting names, as an absolute real path; anything
     * else is an error, so a typo never falls through to another library.
     */
    private static function explicitFile(string $setting, string $path, string $what): string
    {
        if (!str_starts_with($path, '/')) {
            $place = "{$setting}: '{$path}' is not an absolute path (a bare name would be looked up through "
                . 'LD_LIBRARY_PATH and the loader path, which is step 4 of the search)';
            throw new LibraryNotFoundException("{$place}\nFix: give the absolute path of {$what}", [$place]);
        }
        if (!is_file($path)) {
            $place = "{$setting}: {$path} (no such file)";
            throw new LibraryNotFoundException(
                "{$place}\nAn explicit setting is never skipped. Fix: point it at {$what}, "
                . 'or drop it to let the search run (docs/install.md)',
                [$place],
            );
        }
        return self::real($path);
    }

    private static function packageCdefOrFail(string $setting): string
    {
        $cdef = self::packageCdef();
        if (!is_file($cdef)) {
            $place = "{$setting} gives the library, but this package's declarations {$cdef} are missing";
            throw new LibraryNotFoundException(
                "{$place}\nFix: set HMS_FFI_CDEF=/path/to/hms_ffi_cdef.h (installed next to hms_ffi.h), "
                . 'or reinstall the hms/ffi package',
                [$place],
            );
        }
        return $cdef;
    }

    /**
     * Runs a command without a shell.
     *
     * @param list<string> $command
     * @return array{0: int, 1: string, 2: string} exit status, stdout and stderr (trimmed)
     */
    private static function run(array $command): array
    {
        $pipes = [];
        $proc = @proc_open($command, [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']], $pipes);
        if (!is_resource($proc)) {
            return [127, '', "cannot run {$command[0]}"];
        }
        $out = (string) stream_get_contents($pipes[1]);
        $err = (string) stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        $rc = proc_close($proc);
        if ($rc === 127 && $err === '') {
            $err = "{$command[0]}: command not found";
        }
        return [$rc, trim($out), trim($err)];
    }

    private static function env(string $name): ?string
    {
        $value = getenv($name);
        return is_string($value) && $value !== '' ? $value : null;
    }

    private static function real(string $path): string
    {
        $real = realpath($path);
        return $real === false ? $path : $real;
    }

    private static function firstLine(string $text): string
    {
        return strtok($text, "\n") ?: $text;
    }
}
