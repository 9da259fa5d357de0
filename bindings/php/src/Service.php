<?php

declare(strict_types=1);

namespace Hms;

use FFI\CData;

/**
 * A service implemented in PHP, registered with Runtime::registerService().
 *
 * close() unregisters it (new calls get NOT_FOUND); it is idempotent. The
 * runtime keeps the service until either is closed.
 */
final class Service
{
    /** @internal the id the trampoline finds this service by */
    public readonly int $id;
    /** @internal an int64_t holding $id; its address is the user_data */
    public readonly CData $userData;
    private int $handle = 0;
    /** @var array<string, bool> methods whose handler declares a CallContext parameter */
    private readonly array $withContext;

    /**
     * @internal created by Runtime::registerService()
     *
     * @param array<string, callable> $handlers
     * @param array<string, bool> $typed methods with an output type (an empty answer is {})
     */
    public function __construct(
        private readonly Native $native,
        private readonly Runtime $runtime,
        public readonly string $name,
        public readonly string $version,
        private readonly array $handlers,
        private readonly array $typed,
        private readonly int $maxDepth,
    ) {
        $withContext = [];
        foreach ($handlers as $method => $handler) {
            $withContext[(string) $method] = self::takesContext($handler);
        }
        $this->withContext = $withContext;
        $this->id = $native->serviceId();
        $this->userData = $native->ffi->new('int64_t');
        $this->userData->cdata = $this->id;
    }

    /** @internal */
    public function attach(int $handle): void
    {
        $this->handle = $handle;
    }

    /** @return list<string> the short method names */
    public function methods(): array
    {
        return array_map('strval', array_keys($this->handlers));
    }

    public function isClosed(): bool
    {
        return $this->handle === 0;
    }

    /** Unregisters the service, waiting for calls in flight. Idempotent. */
    public function close(): void
    {
        if ($this->handle === 0) {
            return;
        }
        $handle = $this->handle;
        $this->handle = 0;
        $this->native->ffi->hms_service_unregister($handle);
        unset($this->native->services[$this->id]);
        $this->runtime->forget($this);
    }

    /** @internal */
    public function runtimeHandle(): int
    {
        return $this->runtime->handle();
    }

    /**
     * Whether $handler declares a third parameter (or a variadic one), the
     * CallContext: decided once, so handlers that do not read their call
     * never pay the crossing that reads it.
     */
    private static function takesContext(callable $handler): bool
    {
        try {
            $function = new \ReflectionFunction(\Closure::fromCallable($handler));
        } catch (\ReflectionException) {
            return false;
        }
        return $function->getNumberOfParameters() >= 3 || $function->isVariadic();
    }

    /**
     * One call: [0, answer bytes] or [status code, message, details, origin].
     *
     * @internal run by the trampoline
     *
     * @param \Closure(): CallContext $context reads the call's context (only
     *        while the handler runs)
     *
     * @return array{0: int, 1: string, 2?: array<string, string>, 3?: string}
     */
    public function handle(string $method, string $data, \Closure $context): array
    {
        $handler = $this->handlers[$method] ?? null;
        if ($handler === null) {
            return [Status::code('UNIMPLEMENTED'), "{$this->name} has no handler for '{$method}'"];
        }
        $typed = $this->typed[$method] ?? false;
        try {
            $request = $data === '' ? ($typed ? [] : null) : Cbor::decode($data, $this->maxDepth);
        } catch (HmsException $e) {
            return [$e->getCode(), $e->getMessage()];
        }
        try {
            $result = ($this->withContext[$method] ?? false)
                ? $handler($request, $method, $context())
                : $handler($request, $method);
        } catch (HmsException $e) {
            $code = $e->getCode() !== 0 ? $e->getCode() : Status::code('UNKNOWN');
            return [$code, $e->getMessage(), $e->getDetails(), $e->getOrigin()];
        } catch (\Throwable $e) {
            return [Status::code('HANDLER_ERROR'), $e::class . ': ' . $e->getMessage()];
        }
        if ($typed && ($result === null || $result === [])) {
            return [0, "\xa0"];
        }
        try {
            return [0, Cbor::encode($result)];
        } catch (HmsException $e) {
            return [Status::code('HANDLER_ERROR'), "{$this->name}/{$method} returned a value CBOR cannot carry: {$e->getMessage()}"];
        }
    }
}
