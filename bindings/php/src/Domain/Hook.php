<?php

declare(strict_types=1);

namespace Hms\Domain;

use Hms\HmsException;
use Hms\Runtime;
use Hms\Service;

/** A lifecycle hook implemented in PHP (Lifecycle::registerHook()). */
final class Hook
{
    private bool $closed = false;

    /** @internal */
    public function __construct(
        private readonly Runtime $runtime,
        public readonly string $id,
        public readonly Service $service,
    ) {
    }

    /** Unregisters the hook, then its service. Idempotent. */
    public function close(): void
    {
        if ($this->closed) {
            return;
        }
        $this->closed = true;
        try {
            if (!$this->runtime->isClosed()) {
                $this->runtime->lifecycle()->unregisterHook($this->id);
            }
        } catch (HmsException) {
            // The runtime may have dropped the hook already; its service goes anyway.
        } finally {
            $this->service->close();
        }
    }
}
