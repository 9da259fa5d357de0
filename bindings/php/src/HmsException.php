<?php

declare(strict_types=1);

namespace Hms;

/**
 * An HMS call failed. Mirrors hms.v1.Status: getCode() is the HMS_* status
 * code, getMessage() its text, getDetails() machine-readable facts
 * (string => string) and getOrigin() the component or method that raised it.
 *
 * Every status code has a subclass under Hms\Exception (NotFoundException,
 * InvalidHandleException, ...): catch one to branch on one code, or this
 * class for all of them.
 */
class HmsException extends \RuntimeException
{
    /**
     * @param array<string, string> $details
     */
    public function __construct(
        string $message,
        int $code,
        private readonly array $details = [],
        private readonly string $origin = '',
        ?\Throwable $previous = null,
    ) {
        parent::__construct($message, $code, $previous);
    }

    /** @return array<string, string> */
    public function getDetails(): array
    {
        return $this->details;
    }

    public function getOrigin(): string
    {
        return $this->origin;
    }

    /** The status name of getCode(), e.g. "NOT_FOUND". */
    public function getStatusName(): string
    {
        return Status::name($this->getCode());
    }

    /**
     * The exception of status $code: its subclass when the header names the
     * code, this class otherwise.
     *
     * @param array<string, string> $details
     */
    public static function fromStatus(int $code, string $message, array $details = [], string $origin = ''): self
    {
        $class = self::classFor($code);
        if ($class === null) {
            return new self($message, $code, $details, $origin);
        }
        return new $class($message, $details, $origin);
    }

    /**
     * The subclass of a status code, e.g. Hms\Exception\NotFoundException
     * for HMS_NOT_FOUND, DecodeException for HMS_DECODE_ERROR (named after
     * the header's constant).
     *
     * @return class-string<HmsException>|null
     */
    public static function classFor(int $code): ?string
    {
        $name = Status::all()[$code] ?? null;
        if ($name === null || $name === 'OK') {
            return null;
        }
        // DECODE_ERROR -> DecodeException, NOT_FOUND -> NotFoundException
        $base = str_ends_with($name, '_ERROR') ? substr($name, 0, -6) : $name;
        $class = 'Hms\\Exception\\' . str_replace('_', '', ucwords(strtolower($base), '_')) . 'Exception';
        return class_exists($class) ? $class : null;
    }
}
