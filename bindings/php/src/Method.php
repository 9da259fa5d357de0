<?php

declare(strict_types=1);

namespace Hms;

use FFI;
use FFI\CData;
use Google\Protobuf\Internal\Message;
use Hms\Exception\BatchException;
use Hms\Exception\ClosedException;
use Hms\Exception\InvalidArgumentException;

/**
 * A method resolved once (hms_method_resolve, ABI 1.1): one method of one
 * runtime, bound to one format. Calls through it skip the method name, so a
 * call crosses the FFI with five arguments instead of ten.
 *
 *     $echo = $rt->method('hms.sys.v1.System/Echo', Format::PROTOBUF);
 *     $bytes = $echo->callRaw($request);              // bytes -> bytes, one crossing
 *     $list  = $echo->batchRaw([$r1, $r2, $r3]);      // many calls, one crossing
 *     $echo->close();                                 // idempotent; __destruct is a backstop
 *
 * call() mirrors Runtime::call(): arrays in a CBOR or JSON method, protobuf
 * messages in a protobuf one. A method handle carries no CallOptions (no
 * deadline, metadata or credentials): use Runtime::call() for those.
 *
 * After close(), or once its runtime is closed, every call throws
 * ClosedException (an InvalidHandleException). A Method names the method,
 * not one registration of its service: while the service behind it is
 * unregistered, calls throw NotFoundException, as a call by name would, and
 * they reach the service again once one of that name is registered anew. A
 * Method is used from the thread that made it.
 */
final class Method
{
    private int $handle;
    private readonly FFI $ffi;
    /** Native's depth-0 buffers (out, err, out as uintptr_t[3]), held here for the hot path. */
    private readonly CData $out0;
    private readonly CData $err0;
    private readonly CData $words0;
    /** The address $data points to, and out0->data as last read (see Native::$data0). */
    private int $addr = 0;
    private ?CData $data = null;
    /** @var class-string<Message>|null output message class (protobuf methods), found on first call() */
    private ?string $outClass = null;
    /** Whether requests and answers are protobuf, JSON (else CBOR): call() picks its codec by them. */
    private readonly bool $protobuf;
    private readonly bool $json;
    /** Nesting limit of decoded answers (the runtime's). */
    private readonly int $maxDepth;

    /**
     * @internal made by Runtime::method()
     *
     * @param string $name the full method name, "package.Service/Method"
     * @param int $fmt the HMS_FORMAT_* number of every request and answer
     */
    public function __construct(
        private readonly Native $native,
        private readonly Runtime $runtime,
        int $handle,
        public readonly string $name,
        private readonly int $fmt,
    ) {
        $this->handle = $handle;
        $this->ffi = $native->ffi;
        $this->out0 = $native->out0;
        $this->err0 = $native->err0;
        $this->words0 = $native->words0;
        $this->protobuf = $fmt === Format::value(Format::PROTOBUF);
        $this->json = $fmt === Format::value(Format::JSON);
        $this->maxDepth = $runtime->maxDepth();
    }

    public function __destruct()
    {
        $this->close();
    }

    /**
     * One call: $request in the method's format in, the answer's bytes out,
     * one FFI crossing (hms_method_call) into the binding's reused buffers.
     * Throws the HmsException subclass of the status; ClosedException after
     * close() or once the runtime is closed.
     */
    public function callRaw(string $request): string
    {
        if ($this->native->depth === 0) {
            // The hot path: four FFI operations (the call, two words of the
            // output buffer, the copy), and the data pointer re-read only
            // when the buffer moved.
            $rc = $this->ffi->hms_method_call($this->handle, $request, strlen($request), $this->out0, $this->err0);
            if ($rc === 0) {
                $words = $this->words0;
                $len = $words[1];
                if ($len !== 0 && $len <= 1 << 20) {
                    if ($words[0] !== $this->addr) {
                        $this->addr = $words[0];
                        $this->data = $this->out0->data;
                    }
                    return FFI::string($this->data, $len);
                }
                return $this->native->take0();
            }
            throw $this->failure($rc, $this->err0);
        }
        // Inside a handler: the buffers of this nesting depth.
        [, $out, $err] = $this->native->pair();
        $rc = $this->ffi->hms_method_call($this->handle, $request, strlen($request), $out, $err);
        if ($rc !== 0) {
            throw $this->failure($rc, $err);
        }
        return $this->native->take($out);
    }

    /**
     * One call with PHP values, like Runtime::call() without options:
     *
     * - a CBOR or JSON method takes an array (null or [] is the empty
     *   message) and answers an array (proto field names, enums as names,
     *   bytes as Bytes in CBOR and base64 in JSON);
     * - a protobuf method takes a protobuf message (null is the empty
     *   message) and answers the method's output message (its class found
     *   once through Registry/DescribeService).
     *
     * @param array<int|string, mixed>|Message|null $request
     */
    public function call(array|Message|null $request = null): mixed
    {
        if (!$this->protobuf) {
            if ($request instanceof Message) {
                throw new InvalidArgumentException(
                    "{$this->name} was resolved for an array format: resolve it with Format::PROTOBUF to pass messages",
                    [],
                    'hms-php',
                );
            }
            // As Runtime::call(): null and [] are the empty message (a map).
            if ($this->json) {
                $answer = $this->callRaw($request === null || $request === [] ? '{}' : Json::encode($request));
                return $answer === '' ? [] : Json::decode($answer, $this->maxDepth);
            }
            $answer = $this->callRaw($request === null || $request === [] ? "\xa0" : Cbor::encode($request));
            return $answer === '' ? [] : Cbor::decode($answer, $this->maxDepth);
        }
        if (is_array($request)) {
            throw new InvalidArgumentException(
                "{$this->name} was resolved for Format::PROTOBUF: pass a protobuf message",
                [],
                'hms-php',
            );
        }
        if ($this->handle === 0) {
            throw new ClosedException('the method handle is closed', [], 'hms-php');
        }
        $class = $this->outClass ??= $this->runtime->outputClass($this->name);
        $reply = new $class();
        $reply->mergeFromString($this->callRaw($request === null ? '' : Protobuf::serialize($request)));
        return $reply;
    }

    /**
     * Many calls of this method in one crossing (hms_call_batch): requests in
     * the method's format in, their answers out, in the same order (a list,
     * whatever the keys of $requests). Calls run in order; a failing call
     * does not stop the ones after it, and when any failed a BatchException
     * carries every outcome. A frame the core refuses as a whole (more than
     * HMS_BATCH_MAX_CALLS calls) throws its own exception (e.g.
     * ResourceExhaustedException) and nothing ran. [] answers [] without
     * crossing.
     *
     * @param array<array-key, string> $requests
     * @return list<string>
     *
     * @throws BatchException when one or more calls failed
     */
    public function batchRaw(array $requests): array
    {
        $this->checkOpen();
        $n = count($requests);
        if ($n === 0) {
            return [];
        }
        $frame = Batch::frame(str_repeat(pack('P', $this->handle), $n), $requests);
        return Batch::run($this->native, $frame, $n, array_fill(0, $n, $this));
    }

    /** The format of requests and answers: a Format name, or the number given to Runtime::method(). */
    public function format(): string|int
    {
        foreach ([Format::PROTOBUF, Format::CBOR, Format::JSON] as $name) {
            if (Format::value($name) === $this->fmt) {
                return $name;
            }
        }
        return $this->fmt;
    }

    public function isClosed(): bool
    {
        return $this->handle === 0 || $this->runtime->isClosed();
    }

    /**
     * Frees the handle (hms_method_free). Idempotent; harmless after the
     * runtime was closed (which invalidated the handle already).
     */
    public function close(): void
    {
        if ($this->handle === 0) {
            return;
        }
        $handle = $this->handle;
        $this->handle = 0;
        $this->ffi->hms_method_free($handle);
    }

    /**
     * The hms_method handle (0 once closed), for tests and tools.
     *
     * @internal
     */
    public function handle(): int
    {
        return $this->handle;
    }

    /**
     * The exception of a failed call of this method: ClosedException when it
     * or its runtime is closed, else the status the core wrote.
     *
     * @internal also used by Batch for the calls of a batch
     */
    public function failure(int $rc, ?CData $err, string $raw = ''): HmsException
    {
        if ($rc === Native::constant('INVALID_HANDLE')) {
            if ($this->handle === 0) {
                return new ClosedException('the method handle is closed', [], 'hms-php');
            }
            if ($this->runtime->isClosed()) {
                return new ClosedException('the runtime is closed', [], 'hms-php');
            }
        }
        return $err !== null ? $this->native->error($rc, $err, $this->fmt) : Native::errorFrom($rc, $raw, $this->fmt);
    }

    /** @internal */
    public function checkOpen(): void
    {
        if ($this->handle === 0) {
            throw new ClosedException('the method handle is closed', [], 'hms-php');
        }
        $this->runtime->checkOpen();
    }
}
