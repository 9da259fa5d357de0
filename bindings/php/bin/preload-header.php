<?php

/**
 * Prints the declarations (hms_ffi_cdef.h, as the binding's search finds it)
 * with the FFI_SCOPE "HMS" and FFI_LIB directives, for `ffi.preload=FILE`:
 *
 *     HMS_FFI_LIBRARY=/abs/libhms_ffi.so php bin/preload-header.php > /etc/php/hms_ffi.h
 *     php -d ffi.enable=preload -d ffi.preload=/etc/php/hms_ffi.h app.php
 *
 * An optional argument gives the library path instead of the search.
 */

declare(strict_types=1);

require dirname(__DIR__) . '/autoload.php';

echo Hms\Native::preloadHeader($argv[1] ?? null);
