<?php

/**
 * A PSR-4 autoloader for the HMS PHP binding, for use without Composer
 * (Composer users get the same mapping from composer.json):
 *   Hms\             -> src/, then gen/Hms/ (generated protobuf classes)
 *   GPBMetadata\Hms\ -> gen/GPBMetadata/Hms/
 * and, when the protobuf runtime is installed outside Composer (Debian's
 * php-google-protobuf under /usr/share/php), Google\Protobuf\ and
 * GPBMetadata\Google\ through the include_path.
 *
 *     require '/path/to/bindings/php/autoload.php';
 */

declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    static $map = [
        'Hms\\' => [__DIR__ . '/src/', __DIR__ . '/gen/Hms/'],
        'GPBMetadata\\Hms\\' => [__DIR__ . '/gen/GPBMetadata/Hms/'],
    ];
    foreach ($map as $prefix => $dirs) {
        if (!str_starts_with($class, $prefix)) {
            continue;
        }
        $relative = str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        foreach ($dirs as $dir) {
            if (is_file($dir . $relative)) {
                require $dir . $relative;
                return;
            }
        }
    }
    if (str_starts_with($class, 'Google\\Protobuf\\') || str_starts_with($class, 'GPBMetadata\\Google\\')) {
        $file = stream_resolve_include_path(str_replace('\\', '/', $class) . '.php');
        if ($file !== false) {
            require $file;
        }
    }
});
