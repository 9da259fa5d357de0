<?php

declare(strict_types=1);

namespace Hms\Exception;

/**
 * libhms_ffi or its declarations (hms_ffi_cdef.h) could not be found, or an
 * explicit setting (the $library argument, HMS_FFI_LIBRARY, HMS_FFI_CDEF,
 * HMS_FFI_PYTHON) points at nothing.
 *
 * Not an HmsException: those carry a status code read from the declarations,
 * and this is thrown exactly when there may be none to read. The message
 * lists every place looked at and how to fix it; getPlaces() has the same
 * list for programs.
 */
final class LibraryNotFoundException extends \RuntimeException
{
    /**
     * @param list<string> $places what was looked at, each with why it did not do
     */
    public function __construct(string $message, private readonly array $places = [], ?\Throwable $previous = null)
    {
        parent::__construct($message, 0, $previous);
    }

    /** @return list<string> */
    public function getPlaces(): array
    {
        return $this->places;
    }
}
