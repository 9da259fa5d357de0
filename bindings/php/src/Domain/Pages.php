<?php

declare(strict_types=1);

namespace Hms\Domain;

/** @internal walks page tokens */
final class Pages
{
    /**
     * @param callable(array<string, mixed>): array<string, mixed> $fetch
     * @param array<string, mixed> $filter
     * @return \Generator<int, array<string, mixed>>
     */
    public static function walk(callable $fetch, array $filter, string $field): \Generator
    {
        while (true) {
            $page = $fetch($filter);
            foreach ($page[$field] ?? [] as $item) {
                yield $item;
            }
            $token = (string) ($page['next_page_token'] ?? '');
            if ($token === '') {
                return;
            }
            $filter['page_token'] = $token;
        }
    }
}
