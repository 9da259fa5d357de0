<?php

declare(strict_types=1);

error_reporting(E_ALL);

require dirname(__DIR__) . '/autoload.php';

spl_autoload_register(static function (string $class): void {
    if (str_starts_with($class, 'Hms\\Tests\\')) {
        $file = __DIR__ . '/' . str_replace('\\', '/', substr($class, strlen('Hms\\Tests\\'))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
