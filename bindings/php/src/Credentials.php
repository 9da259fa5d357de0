<?php

declare(strict_types=1);

namespace Hms;

use Hms\Exception\InvalidArgumentException;

/**
 * What a caller presents to a runtime that authenticates calls
 * (docs/security.md): a JWT (bearer()) or an API token (apiKey()). Give
 * them to a runtime once, new Runtime(credentials: ...), or to one call,
 * $rt->call(..., credentials: ...).
 *
 * The token is kept outside the object's properties, so echo, var_dump,
 * print_r, var_export, json_encode and serialize never show it.
 */
final class Credentials implements \JsonSerializable
{
    /** @var \WeakMap<Credentials, string>|null tokens by owner, out of sight of every dump */
    private static ?\WeakMap $tokens = null;

    /**
     * @param string $scheme 'bearer' or 'api-key'
     * @param string $principal the principal the token must belong to ('' for any)
     */
    private function __construct(
        public readonly string $scheme,
        #[\SensitiveParameter] string $token,
        public readonly string $principal,
    ) {
        if ($token === '') {
            throw new InvalidArgumentException('the credentials\' token is empty', [], 'hms-php');
        }
        self::$tokens ??= new \WeakMap();
        self::$tokens[$this] = $token;
    }

    /** Immutable: a clone would have no token (it lives beside the object, not in it). */
    private function __clone()
    {
    }

    /** Credentials carrying a JWT (scheme "bearer"). */
    public static function bearer(#[\SensitiveParameter] string $jwt, string $principal = ''): self
    {
        return new self('bearer', $jwt, $principal);
    }

    /** Credentials carrying an API token, its salted hash in the runtime's API tokens file (scheme "api-key"). */
    public static function apiKey(#[\SensitiveParameter] string $token, string $principal = ''): self
    {
        return new self('api-key', $token, $principal);
    }

    public function __toString(): string
    {
        return sprintf('Hms\Credentials(scheme: %s, token: <redacted>, principal: %s)', $this->scheme, $this->principal);
    }

    /** @return array<string, string> */
    public function __debugInfo(): array
    {
        return ['scheme' => $this->scheme, 'token' => '<redacted>', 'principal' => $this->principal];
    }

    /** @return array<string, string> */
    public function jsonSerialize(): array
    {
        return $this->__debugInfo();
    }

    /** @return array<string, string> */
    public function __serialize(): array
    {
        throw new InvalidArgumentException('credentials are not serializable: their token would be', [], 'hms-php');
    }

    /**
     * @internal the hms.v1.Credentials fields the core reads, empty ones left out
     * @return array<string, string>
     */
    public function toArray(): array
    {
        $token = self::$tokens[$this] ?? '';
        return array_filter(['scheme' => $this->scheme, 'token' => $token, 'principal' => $this->principal], fn (string $v): bool => $v !== '');
    }

    /** @internal the hms.v1.Credentials message */
    public function toMessage(): \Hms\V1\Credentials
    {
        return new \Hms\V1\Credentials($this->toArray());
    }
}
