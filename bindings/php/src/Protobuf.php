<?php

declare(strict_types=1);

namespace Hms;

use Google\Protobuf\Internal\Message;

/**
 * Protobuf helpers over the pure-PHP runtime.
 *
 * @internal
 */
final class Protobuf
{
    private function __construct()
    {
    }

    /**
     * $message->serializeToString(), minus one known deprecation: the
     * protobuf runtime 3.21 (Debian bookworm) creates a dynamic property in
     * MapFieldIter, which PHP 8.2 reports as E_DEPRECATED whenever a message
     * with a map field is serialized. Only that notice is dropped.
     */
    public static function serialize(Message $message): string
    {
        $previous = null;
        $previous = set_error_handler(
            static function (int $no, string $str, string $file = '', int $line = 0) use (&$previous): bool {
                if ($no === E_DEPRECATED && str_ends_with($file, 'MapFieldIter.php')
                    && str_contains($str, 'Creation of dynamic property')) {
                    return true;
                }
                return is_callable($previous) ? (bool) $previous($no, $str, $file, $line) : false;
            },
        );
        try {
            return $message->serializeToString();
        } finally {
            restore_error_handler();
        }
    }
}
