<?php

declare(strict_types=1);

namespace Hms\Exception;

/** A Runtime, Service or Subscription was used after close(): HMS_INVALID_HANDLE. */
final class ClosedException extends InvalidHandleException
{
}
