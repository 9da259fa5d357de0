<?php

declare(strict_types=1);

namespace Hms;

/**
 * The HMS_* status codes, read from include/hms_ffi_cdef.h (never restated):
 * 0..16 are gRPC's canonical codes, 100+ the bridge's own.
 *
 *     Status::code('NOT_FOUND');   // 5
 *     Status::name(5);             // 'NOT_FOUND'
 */
final class Status
{
    /** @var array<int, string>|null */
    private static ?array $names = null;

    private function __construct()
    {
    }

    /** The number of a status name ("NOT_FOUND" or "HMS_NOT_FOUND"). */
    public static function code(string $name): int
    {
        return Native::constant(str_starts_with($name, 'HMS_') ? substr($name, 4) : $name);
    }

    /** The name of a status code ("NOT_FOUND"), or "STATUS_<n>" for a code the header does not know. */
    public static function name(int $code): string
    {
        return self::all()[$code] ?? "STATUS_{$code}";
    }

    /**
     * Every status code of the header, code => name.
     *
     * @return array<int, string>
     */
    public static function all(): array
    {
        if (self::$names === null) {
            $names = [];
            $skip = '/^HMS_(ABI_|BATCH_|FORMAT_|SERVICE_)/';
            foreach (Native::constants() as $constant => $value) {
                if (!preg_match($skip, $constant)) {
                    $names[$value] = substr($constant, 4);
                }
            }
            self::$names = $names;
        }
        return self::$names;
    }
}
