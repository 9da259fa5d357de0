<?php

declare(strict_types=1);

namespace Hms;

/**
 * What a PHP handler knows of the call it serves (hms.v1.CallContext, ABI
 * 1.2), from the caller's CallOptions. A handler receives it as its third
 * argument when it declares one: fn(mixed $request, string $method,
 * CallContext $call).
 */
final class CallContext
{
    /**
     * @param string $method full method name, "package.Service/Method"
     * @param array<string, string> $metadata the caller's CallOptions.metadata
     * @param string $traceId the caller's CallOptions.trace_id ('' without one)
     * @param int|null $deadlineNs hrtime(true) of the caller's deadline, null without one
     * @param string $principal the verified caller when the runtime authenticates calls (docs/security.md), else ''
     * @param list<string> $roles the roles of the verified credential (the token file's, a JWT's "roles" claim)
     * @param array<string, string> $principalAttributes the other string claims of a verified JWT
     */
    public function __construct(
        public readonly string $method,
        public readonly array $metadata,
        public readonly string $traceId,
        public readonly ?int $deadlineNs,
        public readonly string $principal = '',
        public readonly array $roles = [],
        public readonly array $principalAttributes = [],
    ) {
    }

    /** Milliseconds left before the deadline (0 once passed), null without one. */
    public function remainingMs(): ?int
    {
        if ($this->deadlineNs === null) {
            return null;
        }
        return max(0, intdiv($this->deadlineNs - hrtime(true), 1_000_000));
    }

    /**
     * @internal built by the trampoline from the CBOR the core wrote
     */
    public static function fromCbor(string $raw, int $readAtNs, int $maxDepth): self
    {
        $fields = $raw === '' ? [] : Cbor::decode($raw, $maxDepth);
        if (!is_array($fields)) {
            $fields = [];
        }
        $roles = [];
        foreach (is_array($fields['roles'] ?? null) ? $fields['roles'] : [] as $role) {
            $roles[] = is_scalar($role) ? (string) $role : '';
        }
        $remaining = $fields['remaining_ms'] ?? null;
        return new self(
            is_string($fields['method'] ?? null) ? $fields['method'] : '',
            self::strings($fields['metadata'] ?? null),
            is_string($fields['trace_id'] ?? null) ? $fields['trace_id'] : '',
            is_int($remaining) ? $readAtNs + $remaining * 1_000_000 : null,
            is_string($fields['principal'] ?? null) ? $fields['principal'] : '',
            $roles,
            self::strings($fields['principal_attributes'] ?? null),
        );
    }

    /** @return array<string, string> a CBOR map of strings, anything else left empty */
    private static function strings(mixed $map): array
    {
        $strings = [];
        foreach (is_array($map) ? $map : [] as $key => $value) {
            $strings[(string) $key] = is_scalar($value) ? (string) $value : '';
        }
        return $strings;
    }
}
