<?php

declare(strict_types=1);

namespace Hms;

/**
 * Conversion of one message between formats by the core (hms_convert), with
 * its default limits (4 MiB, depth 64).
 *
 *     Convert::convert('hms.sys.v1.EchoRequest', $json, Format::JSON, Format::CBOR);
 *     Convert::convert('', $cbor, Format::CBOR, Format::JSON);   // any value, structurally
 */
final class Convert
{
    private function __construct()
    {
    }

    public static function convert(string $type, string $data, string $from, string $to, ?string $library = null): string
    {
        $native = Native::get($library);
        [, $out, $err] = $native->pair();
        $rc = $native->ffi->hms_convert($type, strlen($type), Format::value($from), $data, strlen($data), Format::value($to), $out, $err);
        if ($rc !== 0) {
            throw $native->error($rc, $err, Format::value(Format::JSON));
        }
        return $native->take($out);
    }
}
