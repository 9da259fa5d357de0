<?php

declare(strict_types=1);

namespace Hms;

use FFI;
use Hms\Exception\BatchException;
use Hms\Exception\InternalException;

/**
 * Runs a batch frame through hms_call_batch and splits its result frame
 * (include/hms_ffi.h, "Fast paths"): both are little-endian uint64 words,
 * count, then one word per call (method handle / status code), then one end
 * offset per call, then the payload area. pack('P*') and implode() build a
 * batch frame; a result frame is copied out once, its ends read as uint64
 * words and its answers cut with substr(): the only loop per call is the
 * slicing.
 *
 * @internal used by Method::batchRaw() and Runtime::batchRaw()
 */
final class Batch
{
    private function __construct()
    {
    }

    /**
     * A batch frame of count($payloads) calls: count, handles, ends, payloads.
     *
     * @param string $handles the method handle of each call, packed ('P*')
     * @param array<array-key, string> $payloads in call order
     */
    public static function frame(string $handles, array $payloads): string
    {
        $ends = [];
        $end = 0;
        foreach ($payloads as $payload) {
            $end += strlen($payload);
            $ends[] = $end;
        }
        return pack('P', count($payloads)) . $handles . pack('P*', ...$ends) . implode('', $payloads);
    }

    /**
     * Runs $frame ($n calls) and returns the answers by index, or throws a
     * BatchException when any call failed (each failure decoded in its
     * method's format by $methods[$i]->failure()). A frame refused as a
     * whole throws the exception of that status (err is JSON).
     *
     * @param list<Method> $methods the method of each call
     * @return list<string>
     */
    public static function run(Native $native, string $frame, int $n, array $methods): array
    {
        if ($native->depth === 0) {
            $out = $native->out0;
            $err = $native->err0;
        } else {
            [, $out, $err] = $native->pair();
        }
        $rc = $native->ffi->hms_call_batch($frame, strlen($frame), $out, $err);
        if ($rc !== 0) {
            throw $native->error($rc, $err, Format::value(Format::JSON));
        }
        // One copy of the whole result frame; the ends are read as uint64
        // words straight from the library's buffer (cheaper than unpack(),
        // which builds an array with a string key per word), then each
        // answer is a substr() of the copy.
        $len = $out->len;
        $data = $out->data;
        $base = 8 + 16 * $n;
        $raw = $len === 0 ? '' : FFI::string($data, $len);
        if ($len < $base || unpack('P', $raw)[1] !== $n) {
            throw new InternalException("the result frame of a batch of {$n} calls is malformed", [], 'hms-php');
        }
        $words = FFI::cast('uint64_t *', $data);
        $results = [];
        $start = 0;
        for ($i = $n + 1, $last = 2 * $n; $i <= $last; $i++) {
            $end = $words[$i];
            $results[] = substr($raw, $base + $start, $end - $start);
            $start = $end;
        }
        if ($len > Native::KEEP_CAPACITY) {
            $native->ffi->hms_buf_free($out);
        }
        // All codes 0 (HMS_OK): 8n zero bytes, compared (memcmp) without
        // unpacking them.
        if (substr_compare($raw, str_repeat("\0", 8 * $n), 8, 8 * $n) === 0) {
            return $results;
        }
        $failed = array_filter(unpack("P{$n}", $raw, 8));
        $failures = [];
        foreach ($failed as $i => $code) {
            $failures[$i - 1] = $methods[$i - 1]->failure($code, null, $results[$i - 1]);
        }
        throw new BatchException(array_replace($results, $failures), $failures);
    }
}
