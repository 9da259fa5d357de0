<?php

declare(strict_types=1);

namespace Hms;

use FFI;
use FFI\CData;
use Hms\Exception\IncompatibleException;
use Hms\Exception\InvalidArgumentException;
use Hms\Exception\LibraryNotFoundException;

/**
 * The thin native layer: loads libhms_ffi through FFI over hms_ffi_cdef.h
 * (both found by Locator), checks its ABI version, owns the reusable output
 * buffers and turns a status code plus error buffer into an HmsException.
 *
 * Everything above this class speaks PHP; everything below is the C ABI of
 * include/hms_ffi.h.
 *
 * @internal
 */
final class Native
{
    /** Name of the FFI scope that preload.php registers (FFI::scope). */
    public const SCOPE = 'HMS';

    /** Output buffers whose capacity grew past this are released after use. */
    public const KEEP_CAPACITY = 1 << 20;

    /** @var array<string, self> one instance per library path */
    private static array $instances = [];

    /** @var array<string, int>|null HMS_* constants parsed from the cdef file */
    private static ?array $constants = null;

    /** @var array{library: string, cdef: string, via: string}|null where get(null) loads from, found once */
    private static ?array $location = null;

    /** @var list<array{0: CData, 1: CData, 2: CData}> buffer pairs (array, out, err) per nesting depth */
    private array $pairs = [];

    /** How many host handlers are running on this thread right now. */
    public int $depth = 0;

    /** The out and err pointers of depth 0 (the hot path of every call). */
    public readonly CData $out0;
    public readonly CData $err0;

    /**
     * out0 seen as uintptr_t[3] (data, len, cap): reading a word is cheaper
     * than reading a field, and lets the hot path keep the data pointer.
     */
    public readonly CData $words0;
    /** The address $data0 points to (0: none yet). */
    public int $addr0 = 0;
    /**
     * out0->data as last read. Reading a pointer field makes a new CData each
     * time; the buffer moves only when the library grows or frees it, so the
     * hot path reads the address (a plain integer) and re-reads the pointer
     * only when it changed.
     */
    public ?CData $data0 = null;

    /** @var CData|null the one handler trampoline (an hms_handler_fn) of this library */
    public ?CData $trampoline = null;

    /** @var array<int, Service> live services by id (their user_data), for the trampoline */
    public array $services = [];

    /** @var list<int> runtimes whose handlers run on this thread right now (innermost last) */
    public array $serving = [];

    private int $nextServiceId = 0;

    /**
     * @param string $library the library's absolute path, or the soname the loader resolved
     * @param bool $scoped whether the declarations came from the FFI scope
     *                     preload.php registered (FFI::scope) rather than FFI::cdef
     * @param string $via the step of the search that found it (Locator), e.g. "pkg-config"
     */
    private function __construct(
        public readonly FFI $ffi,
        public readonly string $library,
        public readonly bool $scoped,
        public readonly string $via,
    ) {
        [, $this->out0, $this->err0] = $this->pair();
        $this->words0 = FFI::cast('uintptr_t *', $this->out0);
    }

    /**
     * Registers the FFI scope "HMS" for ffi.enable=preload: call from an
     * opcache.preload script (bindings/php/preload.php). Requests then get
     * the library through FFI::scope('HMS'), without parsing declarations.
     * Nothing to do when ffi.preload already loaded a preloadHeader() file
     * (the only way when PHP preloads as root with opcache.preload_user).
     */
    public static function preload(?string $path = null): void
    {
        $library = self::location($path)['library'];
        try {
            $ffi = FFI::scope(self::SCOPE);
        } catch (\FFI\Exception) {
            $file = tempnam(sys_get_temp_dir(), 'hms_ffi_') ?: throw new \RuntimeException('tempnam failed');
            try {
                file_put_contents($file, self::preloadHeader($library));
                $ffi = FFI::load($file) ?? throw new IncompatibleException(
                    "FFI::load could not load {$library} for preloading",
                    [],
                    'hms-php',
                );
            } finally {
                @unlink($file);
            }
        }
        self::checkAbi((int) $ffi->hms_abi_version(), $library);
    }

    /**
     * The declarations with the FFI_SCOPE and FFI_LIB directives, for
     * ffi.preload=FILE (write it with `php bindings/php/bin/preload-header.php`).
     */
    public static function preloadHeader(?string $path = null): string
    {
        $where = self::location($path);
        return '#define FFI_SCOPE "' . self::SCOPE . "\"\n"
            . '#define FFI_LIB "' . addcslashes($where['library'], '"\\') . "\"\n"
            . self::declarations($where['cdef']) . "\n";
    }

    /**
     * The library at $path, or the one the search finds (Locator: the
     * HMS_FFI_* settings, pkg-config, the loader path, this checkout's
     * build), loaded once per process.
     */
    public static function get(?string $path = null): self
    {
        if ($path === null && self::preloaded()) {
            // Under ffi.enable=preload a request may not search (FFI::cdef is refused): the scope is the library.
            $key = 'FFI scope ' . self::SCOPE;
            if (isset(self::$instances[$key])) {
                return self::$instances[$key];
            }
            try {
                $ffi = FFI::scope(self::SCOPE);
            } catch (\FFI\Exception) {
                $ffi = null;
            }
            if ($ffi !== null) {
                self::checkAbi((int) $ffi->hms_abi_version(), $key);
                return self::$instances[$key] = new self($ffi, $key, true, 'the preloaded FFI scope');
            }
        }
        $where = self::location($path);
        $library = $where['library'];
        if (isset(self::$instances[$library])) {
            return self::$instances[$library];
        }
        $found = "{$library} (found through {$where['via']})";
        try {
            // Its version first, through one declaration: a stale library is refused by
            // version, not by the first function of the declarations it lacks.
            $version = (int) FFI::cdef('uint32_t hms_abi_version(void);', $library)->hms_abi_version();
        } catch (\FFI\Exception $e) {
            throw new IncompatibleException(
                "cannot load {$found}: {$e->getMessage()}",
                ['library' => $library],
                'hms-php',
                $e,
            );
        }
        self::checkAbi($version, $library);
        self::checkDeclarations($where['cdef']);
        try {
            $ffi = FFI::cdef(self::declarations($where['cdef']), $library);
        } catch (\FFI\Exception $e) {
            throw new IncompatibleException(
                "cannot load {$found} over {$where['cdef']}: {$e->getMessage()}",
                ['library' => $library, 'cdef' => $where['cdef']],
                'hms-php',
                $e,
            );
        }
        return self::$instances[$library] = new self($ffi, $library, false, $where['via']);
    }

    /**
     * Where the library at $path, or the one the search finds, loads from
     * (the search runs once per process).
     *
     * @return array{library: string, cdef: string, via: string}
     */
    public static function location(?string $path = null): array
    {
        if ($path !== null && $path !== '') {
            return Locator::find($path);
        }
        return self::$location ??= Locator::find();
    }

    /** The library get($path) loads: an absolute path, or a soname the system loader resolves. */
    public static function libraryPath(?string $path = null): string
    {
        return self::location($path)['library'];
    }

    /** The declarations file get(null) loads the library with. */
    public static function cdefPath(): string
    {
        return self::location()['cdef'];
    }

    /**
     * The declarations of an hms_ffi_cdef.h ($path, default: the one get(null)
     * loads with) as PHP's FFI needs them.
     *
     * Two ABI-identical adaptations, applied mechanically (the file is never
     * copied by hand) and checked, so a changed header fails loudly:
     *  - input byte pointers of functions (`const uint8_t *`) are declared
     *    `const char *`: PHP FFI passes a PHP string to a char pointer
     *    without copying, but refuses it for uint8_t;
     *  - the handler's `const char *method` is declared `const uint8_t *`:
     *    PHP converts a `const char *` callback argument with strlen(), and
     *    the method name is not NUL-terminated.
     */
    public static function declarations(?string $path = null): string
    {
        $path ??= self::cdefPath();
        $source = @file_get_contents($path);
        if ($source === false) {
            throw new LibraryNotFoundException("cannot read {$path}\nFix: " . Locator::FIX, ["{$path} (unreadable)"]);
        }
        $lines = explode("\n", $source);
        $inputs = 0;
        $method = 0;
        foreach ($lines as $i => $line) {
            if (str_starts_with($line, 'typedef void (*hms_handler_fn)')) {
                $lines[$i] = str_replace('const char *method', 'const uint8_t *method', $line, $n);
                $method += $n;
            } elseif (!str_starts_with($line, 'typedef')) {
                $lines[$i] = str_replace('const uint8_t *', 'const char *', $line, $n);
                $inputs += $n;
            }
        }
        if ($method !== 1 || $inputs < 6) {
            throw new IncompatibleException(
                "{$path} no longer has the shape this binding adapts (handler method argument, "
                . 'input byte pointers): update bindings/php/src/Native.php',
                ['cdef' => $path],
                'hms-php',
            );
        }
        return implode("\n", $lines);
    }

    /**
     * The HMS_* constants of the declarations this binding was generated
     * with (the package's include/hms_ffi_cdef.h; if that file is gone, the
     * declarations the search finds), parsed once. They are the binding's
     * ABI version too, so they never come from a library's own copy.
     *
     * Throws only LibraryNotFoundException (status exceptions need these
     * constants, so anything else would recurse).
     *
     * @return array<string, int>
     */
    public static function constants(): array
    {
        if (self::$constants !== null) {
            return self::$constants;
        }
        $path = is_file(Locator::packageCdef()) ? Locator::packageCdef() : self::cdefPath();
        $constants = self::parseConstants($path);
        if ($constants === null) {
            throw new LibraryNotFoundException(
                "no enum of HMS_* constants in {$path}: not hms_ffi_cdef.h\nFix: " . Locator::FIX,
                ["{$path} (no HMS_* enum)"],
            );
        }
        return self::$constants = $constants;
    }

    /**
     * The HMS_* constants of the enum of a declarations file, or null when it
     * cannot be read or has none.
     *
     * @return array<string, int>|null
     */
    private static function parseConstants(string $path): ?array
    {
        $source = @file_get_contents($path);
        if ($source === false || !preg_match('/\benum\s*\{(.*?)\}\s*;/s', $source, $m)) {
            return null;
        }
        preg_match_all('/\b(HMS_[A-Z0-9_]+)\s*=\s*(-?\d+)/', $m[1], $all, PREG_SET_ORDER);
        $constants = [];
        foreach ($all as [, $name, $value]) {
            $constants[$name] = (int) $value;
        }
        return $constants;
    }

    /** One HMS_* constant (name without the HMS_ prefix, e.g. "FORMAT_CBOR"). */
    public static function constant(string $name): int
    {
        $constants = self::constants();
        $key = 'HMS_' . $name;
        if (!isset($constants[$key])) {
            throw new InvalidArgumentException("include/hms_ffi_cdef.h has no {$key}", [], 'hms-php');
        }
        return $constants[$key];
    }

    /**
     * Refuses declarations (an installed hms_ffi_cdef.h, HMS_FFI_CDEF) of
     * another major or an older minor ABI than the binding's own: the
     * binding would call functions they do not declare.
     */
    public static function checkDeclarations(string $cdef): void
    {
        $theirs = self::parseConstants($cdef) ?? [];
        $major = $theirs['HMS_ABI_VERSION_MAJOR'] ?? null;
        $minor = $theirs['HMS_ABI_VERSION_MINOR'] ?? null;
        $wantMajor = self::constant('ABI_VERSION_MAJOR');
        $wantMinor = self::constant('ABI_VERSION_MINOR');
        if ($major !== $wantMajor || $minor === null || $minor < $wantMinor) {
            $got = $major === null || $minor === null ? 'no ABI version' : "ABI {$major}.{$minor}";
            throw new IncompatibleException(
                "the declarations {$cdef} have {$got}; the HMS PHP binding needs ABI {$wantMajor}.x with "
                . "x >= {$wantMinor}: an older hms_ffi_cdef.h is installed (unset HMS_FFI_CDEF, or install the new one)",
                ['cdef' => $cdef, 'binding_abi' => "{$wantMajor}.{$wantMinor}"],
                'hms-php',
            );
        }
    }

    /**
     * Refuses a library of another major ABI version, or of an older minor
     * than the header this binding reads. Versions are packed as
     * hms_abi_version() returns them (major << 16 | minor); $built defaults
     * to the header's HMS_ABI_VERSION_MAJOR/MINOR (tests pass other values).
     */
    public static function checkAbi(int $loaded, string $library, ?int $built = null): void
    {
        $major = $loaded >> 16;
        $minor = $loaded & 0xFFFF;
        $wantMajor = $built === null ? self::constant('ABI_VERSION_MAJOR') : $built >> 16;
        $wantMinor = $built === null ? self::constant('ABI_VERSION_MINOR') : $built & 0xFFFF;
        if ($major !== $wantMajor || $minor < $wantMinor) {
            throw new IncompatibleException(
                "libhms_ffi ABI {$major}.{$minor} ({$library}) is incompatible with the HMS PHP binding "
                . "built for ABI {$wantMajor}.{$wantMinor} (needs {$wantMajor}.x with x >= {$wantMinor}): "
                . 'a stale library is being loaded',
                ['library_abi' => "{$major}.{$minor}", 'binding_abi' => "{$wantMajor}.{$wantMinor}", 'library' => $library],
                'hms-php',
            );
        }
    }

    /**
     * Whether ffi.preload or an opcache.preload script may have registered
     * the FFI scope (both resolve the library the same way as get(null)).
     */
    private static function preloaded(): bool
    {
        foreach (['ffi.preload', 'opcache.preload'] as $setting) {
            $value = ini_get($setting);
            if (is_string($value) && $value !== '') {
                return true;
            }
        }
        return false;
    }

    /**
     * The output/error buffer pair of the current nesting depth: a handler
     * calling back into the library gets its own pair, because the outer
     * call still owns the one below.
     *
     * @return array{0: CData, 1: CData, 2: CData} (hms_buf[2], out pointer, err pointer)
     */
    public function pair(): array
    {
        if (!isset($this->pairs[$this->depth])) {
            $bufs = $this->ffi->new('hms_buf[2]');
            $this->pairs[$this->depth] = [$bufs, $bufs + 0, $bufs + 1];
        }
        return $this->pairs[$this->depth];
    }

    /** A new id for a service's user_data. */
    public function serviceId(): int
    {
        return ++$this->nextServiceId;
    }

    /**
     * The one hms_handler_fn of this library: every PHP service is
     * registered with it, and its user_data (a pointer to the service's id)
     * picks the Service. One closure for the process, so registering
     * services does not pile up FFI callback trampolines.
     */
    public function trampoline(): CData
    {
        if ($this->trampoline === null) {
            $slot = $this->ffi->new('hms_handler_fn[1]');
            $slot[0] = function (
                CData $reply,
                ?CData $method,
                int $methodLen,
                int $format,
                ?CData $request,
                int $requestLen,
                ?CData $userData,
            ): void {
                $this->dispatch($reply, $method, $methodLen, $request, $requestLen, $userData);
            };
            $this->trampoline = $slot[0];
        }
        return $this->trampoline;
    }

    /**
     * Runs one call of a PHP service. PHP forbids throwing through an FFI
     * callback: every Throwable is caught here and answered as an error.
     */
    private function dispatch(
        CData $reply,
        ?CData $method,
        int $methodLen,
        ?CData $request,
        int $requestLen,
        ?CData $userData,
    ): void {
        $this->depth++;
        $service = null;
        try {
            $id = $userData === null ? 0 : FFI::cast('int64_t *', $userData)[0];
            $service = $this->services[$id] ?? null;
            if ($service === null) {
                $this->replyError($reply, self::constant('UNAVAILABLE'), 'the PHP service is closed');
                return;
            }
            $this->serving[] = $service->runtimeHandle();
            $name = $method === null || $methodLen === 0 ? '' : FFI::string($method, $methodLen);
            $data = $request === null || $requestLen === 0 ? '' : FFI::string($request, $requestLen);
            $answer = $service->handle($name, $data, fn (): CallContext => $this->callContext($reply));
            if ($answer[0] === 0) {
                $this->ffi->hms_reply_set($reply, $answer[1], strlen($answer[1]));
            } elseif (($answer[2] ?? []) !== [] || ($answer[3] ?? '') !== '') {
                $this->replyStatus($reply, $answer[0], $answer[1], $answer[2] ?? [], $answer[3] ?? '');
            } else {
                $this->replyError($reply, $answer[0], $answer[1]);
            }
        } catch (\Throwable $e) {
            try {
                $this->replyError($reply, self::constant('HANDLER_ERROR'), $e::class . ': ' . $e->getMessage());
            } catch (\Throwable) {
                // Nothing may leave the callback; the core answers HMS_HANDLER_ERROR.
            }
        } finally {
            if ($service !== null) {
                array_pop($this->serving);
            }
            $this->depth--;
        }
    }

    private function replyError(CData $reply, int $code, string $message): void
    {
        $this->ffi->hms_reply_error($reply, $code, $message, strlen($message));
    }

    /**
     * Answers with a whole hms.v1.Status, so the caller gets the details and
     * origin too (an empty origin becomes the method's full name); falls
     * back to code and message if the core refuses it.
     *
     * @param array<string, string> $details
     */
    private function replyStatus(CData $reply, int $code, string $message, array $details, string $origin): void
    {
        $status = Cbor::encode([
            'code' => $code,
            'message' => $message,
            'details' => $details === [] ? new \stdClass() : $details,
            'origin' => $origin,
        ]);
        $rc = $this->ffi->hms_reply_status($reply, self::constant('FORMAT_CBOR'), $status, strlen($status));
        if ($rc !== 0) {
            $this->replyError($reply, $code, $message);
        }
    }

    /**
     * The context of the handler call $reply answers (hms_reply_context);
     * the reply, and so this, is only valid while the handler runs.
     */
    private function callContext(CData $reply): CallContext
    {
        [, $out, $err] = $this->pair();
        $cbor = self::constant('FORMAT_CBOR');
        $readAt = hrtime(true);
        $rc = $this->ffi->hms_reply_context($reply, $cbor, $out, $err);
        if ($rc !== 0) {
            throw $this->error($rc, $err, $cbor);
        }
        return CallContext::fromCbor($this->take($out), $readAt, 64);
    }

    /**
     * Copies the latest output of out0 out (the depth-0 answer of a call
     * that just succeeded). Callers on the hot path inline the same steps.
     */
    public function take0(): string
    {
        $words = $this->words0;
        $len = $words[1];
        if ($len === 0) {
            return '';
        }
        if ($len > self::KEEP_CAPACITY) {
            return $this->take($this->out0);
        }
        if ($words[0] !== $this->addr0) {
            $this->addr0 = $words[0];
            $this->data0 = $this->out0->data;
        }
        return FFI::string($this->data0, $len);
    }

    /** Copies the latest output out of an hms_buf pointer. */
    public function take(CData $buf): string
    {
        $len = $buf->len;
        if ($len === 0) {
            return '';
        }
        $data = FFI::string($buf->data, $len);
        // The capacity grows only with a long answer, so its length tells.
        if ($len > self::KEEP_CAPACITY) {
            $this->ffi->hms_buf_free($buf);
        }
        return $data;
    }

    /**
     * The exception for status $rc, with the hms.v1.Status the library wrote
     * into $err in format $format (a stale status of another code is ignored).
     */
    public function error(int $rc, ?CData $err, int $format): HmsException
    {
        $raw = '';
        if ($err !== null && $err->len > 0) {
            $raw = FFI::string($err->data, $err->len);
        }
        return self::errorFrom($rc, $raw, $format);
    }

    /**
     * The exception for status $rc from the bytes of an hms.v1.Status in
     * $format (e.g. a failed call's answer in a batch result frame); a
     * status of another code, or bytes that do not parse, are ignored.
     */
    public static function errorFrom(int $rc, string $raw, int $format): HmsException
    {
        $message = '';
        $details = [];
        $origin = '';
        $status = $raw === '' ? null : self::decodeStatus($raw, $format);
        if ($status !== null && $status['code'] === $rc) {
            [$message, $details, $origin] = [$status['message'], $status['details'], $status['origin']];
        }
        if ($message === '') {
            $message = strtolower(str_replace('_', ' ', Status::name($rc)));
        }
        return HmsException::fromStatus($rc, $message, $details, $origin);
    }

    /**
     * An hms.v1.Status in any format, without the protobuf runtime.
     *
     * @return array{code: int, message: string, details: array<string, string>, origin: string}|null
     */
    public static function decodeStatus(string $raw, int $format): ?array
    {
        try {
            if ($format === self::constant('FORMAT_PROTOBUF')) {
                $value = Wire::decodeStatus($raw);
            } elseif ($format === self::constant('FORMAT_CBOR')) {
                $value = Cbor::decode($raw);
            } else {
                $value = json_decode($raw, true, 64, JSON_THROW_ON_ERROR | JSON_BIGINT_AS_STRING);
            }
        } catch (\Throwable) {
            return null;
        }
        if (!is_array($value)) {
            return null;
        }
        $details = [];
        foreach (is_array($value['details'] ?? null) ? $value['details'] : [] as $k => $v) {
            $details[(string) $k] = is_scalar($v) ? (string) $v : json_encode($v);
        }
        return [
            'code' => (int) ($value['code'] ?? 0),
            'message' => (string) ($value['message'] ?? ''),
            'details' => $details,
            'origin' => (string) ($value['origin'] ?? ''),
        ];
    }

    public function __destruct()
    {
        foreach ($this->pairs as [, $out, $err]) {
            $this->ffi->hms_buf_free($out);
            $this->ffi->hms_buf_free($err);
        }
        $this->pairs = [];
    }
}
