<?php

/**
 * opcache.preload script for production (ffi.enable=preload):
 *
 *     opcache.enable=1
 *     opcache.preload=/path/to/bindings/php/preload.php
 *     opcache.preload_user=www-data
 *     ffi.enable=preload
 *
 * It registers the FFI scope "HMS" over the library and declarations the
 * binding's search finds (README "Where the library is found": HMS_FFI_LIBRARY,
 * pkg-config, ...), and loads the binding's classes into shared memory. When PHP preloads as root (with
 * opcache.preload_user), FFI::load() is refused: add
 * ffi.preload=FILE, FILE written by `php bin/preload-header.php`, and this
 * script finds the scope already there. Requests still require autoload.php
 * (or Composer's autoloader); Hms\Runtime then finds the library with
 * FFI::scope('HMS').
 */

declare(strict_types=1);

require __DIR__ . '/autoload.php';

Hms\Native::preload();

// Load every class of the binding (the autoloader resolves parents first),
// so opcache keeps them in shared memory for all requests.
$src = __DIR__ . '/src/';
foreach (new RecursiveIteratorIterator(new RecursiveDirectoryIterator($src, FilesystemIterator::SKIP_DOTS)) as $file) {
    if ($file->getExtension() === 'php') {
        class_exists('Hms\\' . str_replace('/', '\\', substr($file->getPathname(), strlen($src), -4)));
    }
}
