<?php

declare(strict_types=1);

namespace Hms;

use FFI;
use Google\Protobuf\Internal\Message;
use Hms\Domain\Agents;
use Hms\Domain\Knowledge;
use Hms\Domain\Lifecycle;
use Hms\Domain\Tasks;
use Hms\Exception\CancelledException;
use Hms\Exception\ClosedException;
use Hms\Exception\FailedPreconditionException;
use Hms\Exception\InvalidArgumentException;
use Hms\Exception\NotFoundException;

/**
 * A runtime of the HMS core: one registry of services, one event bus, one
 * store.
 *
 *     $rt = new Hms\Runtime();
 *     $rt->call('hms.sys.v1.System/Echo', ['text' => 'hi']);        // array -> array (CBOR)
 *     $rt->call('hms.sys.v1.System/Echo', new EchoRequest([...]));  // message -> message
 *     $rt->callRaw('hms.sys.v1.System/Echo', $bytes, Format::JSON); // bytes -> bytes
 *     $echo = $rt->method('hms.sys.v1.System/Echo', Format::PROTOBUF); // resolved once (ABI 1.1)
 *     $echo->callRaw($bytes);                                       // 5 FFI arguments instead of 10
 *     $echo->batchRaw([$a, $b, $c]);                                // many calls, one crossing
 *     $rt->close();
 *
 * close() frees the runtime after closing the services and subscriptions
 * made through it; it is idempotent, and __destruct calls it as a backstop.
 * Any call after close() throws ClosedException (an InvalidHandleException).
 * PHP runs one thread per request: a Runtime is used from the thread that
 * made it.
 */
final class Runtime
{
    private const DESCRIBE = 'hms.registry.v1.Registry/DescribeService';

    /** Most method handles invoke() keeps resolved (beyond this, names go through hms_call). */
    private const RESOLVED_MAX = 256;
    /** Longest single wait inside hms_serve, so PHP sees signals between waits. */
    private const SERVE_SLICE_MS = 200;

    private readonly Native $native;
    private int $handle;
    private readonly int $fmt;
    private readonly string $format;
    private readonly int $maxDepth;
    /** @var array<int, Service|Subscription> children by object id */
    private array $children = [];
    /** @var array<string, class-string<Message>> output message class by method */
    private array $outTypes = [];
    /**
     * @var array<int, array<string, int>> method handles invoke() resolved
     *      for calls without options, by format number and method name
     */
    private array $resolved = [];
    private int $resolvedCount = 0;
    private ?Agents $agents = null;
    private ?Tasks $tasks = null;
    private ?Knowledge $knowledge = null;
    private ?Lifecycle $lifecycle = null;

    /**
     * @param array<string, mixed>|Message|string|null $config an hms.v1.RuntimeConfig:
     *        an array with proto field names (max_message_bytes, max_depth, data_dir,
     *        event_queue_capacity, name), a message, or bytes in $format
     * @param string|null $library absolute path of libhms_ffi.so (default: the search of
     *        README.md "Where the library is found": HMS_FFI_LIBRARY, HMS_FFI_PYTHON,
     *        pkg-config, the loader path); a path that names no file throws
     *        Hms\Exception\LibraryNotFoundException
     * @param string $format the format arrays travel in: Format::CBOR (default) or Format::JSON
     * @param Credentials|null $credentials the runtime's own identity for the calls it makes
     *        (security.default_credentials of $config, the rest of its security section kept);
     *        needs $config as an array or a message
     */
    public function __construct(
        array|Message|string|null $config = null,
        ?string $library = null,
        string $format = Format::CBOR,
        ?Credentials $credentials = null,
    ) {
        if ($format === Format::PROTOBUF) {
            throw new InvalidArgumentException(
                'arrays travel as Format::CBOR or Format::JSON; pass messages for protobuf',
                [],
                'hms-php',
            );
        }
        if ($credentials !== null) {
            $config = self::withDefaultCredentials($config, $credentials);
        }
        $this->native = Native::get($library);
        $this->format = $format;
        $this->fmt = Format::value($format);
        $configFmt = $this->fmt;
        $depth = 0;
        if ($config === null) {
            $raw = '';
        } elseif (is_string($config)) {
            $raw = $config;
        } elseif (is_array($config)) {
            $depth = (int) ($config['max_depth'] ?? 0);
            $raw = $this->encode($config, $this->fmt);
        } else {
            $depth = method_exists($config, 'getMaxDepth') ? (int) $config->getMaxDepth() : 0;
            $raw = Protobuf::serialize($config);
            $configFmt = Format::value(Format::PROTOBUF);
        }
        // Answers nest a little deeper than the requests the core accepts.
        $this->maxDepth = max($depth, 64) + 64;
        $out = $this->native->ffi->new('hms_runtime');
        [, , $err] = $this->native->pair();
        $rc = $this->native->ffi->hms_runtime_new($configFmt, $raw, strlen($raw), FFI::addr($out), $err);
        if ($rc !== 0) {
            throw $this->native->error($rc, $err, $configFmt);
        }
        $this->handle = $out->cdata;
    }

    public function __destruct()
    {
        if ($this->handle !== 0 && !in_array($this->handle, $this->native->serving, true)) {
            $this->close();
        }
    }

    // -- calls ----------------------------------------------------------------

    /**
     * Calls $method ("package.Service/Method"), built-in or host service.
     *
     * - an array (or null, the empty message) travels as CBOR, or JSON with
     *   $format = Format::JSON, and the answer is an array (proto field names;
     *   enums as names; bytes as Bytes in CBOR, base64 strings in JSON);
     * - a protobuf message travels as protobuf and the answer is the method's
     *   output message (its class found through Registry/DescribeService).
     *
     * $options is an hms.v1.CallOptions (array or message): deadline_ms,
     * metadata, credentials, trace_id. $credentials replace the runtime's
     * default ones for this call. Throws the HmsException subclass of the
     * status.
     *
     * @param array<int|string, mixed>|Message|null $request
     * @param array<string, mixed>|Message|null $options
     */
    public function call(
        string $method,
        array|Message|null $request = null,
        array|Message|null $options = null,
        ?string $format = null,
        ?Credentials $credentials = null,
    ): mixed {
        $options = self::withCredentials($options, $credentials);
        if ($request instanceof Message) {
            if ($format !== null && $format !== Format::PROTOBUF) {
                throw new InvalidArgumentException('a protobuf message travels as Format::PROTOBUF', [], 'hms-php');
            }
            $class = $this->outputClass($method);
            $pb = Format::value(Format::PROTOBUF);
            $opts = $options === null ? '' : $this->protobufOptions($options);
            $reply = new $class();
            $reply->mergeFromString($this->invoke($method, Protobuf::serialize($request), $pb, $opts));
            return $reply;
        }
        $fmt = $format === null ? $this->fmt : Format::value($format);
        if ($fmt === Format::value(Format::PROTOBUF)) {
            throw new InvalidArgumentException(
                'an array travels as Format::CBOR or Format::JSON; pass a message for protobuf',
                [],
                'hms-php',
            );
        }
        $data = $this->encode($request ?? [], $fmt);
        $opts = '';
        if ($options instanceof Message) {
            throw new InvalidArgumentException('options of an array call are an array', [], 'hms-php');
        }
        if ($options !== null && $options !== []) {
            $opts = $this->encode($options, $fmt);
        }
        return $this->decode($this->invoke($method, $data, $fmt, $opts), $fmt);
    }

    /**
     * The fast path under call(): bytes in $format in, bytes out, one crossing.
     * $options are hms.v1.CallOptions bytes in the same format. $format is a
     * Format name, or an HMS_FORMAT_* number passed to the core as is.
     */
    public function callRaw(string $method, string $request, string|int $format, string $options = ''): string
    {
        return $this->invoke($method, $request, Format::value($format), $options);
    }

    /**
     * One call, one crossing. Without options it goes through a method
     * handle resolved on first use and kept per (format, name), so repeated
     * calls skip the name lookup and cross with five arguments. A handle
     * answers exactly what hms_call would (a handle names the method, not
     * one registration of its service), and a name that does not resolve
     * goes through hms_call, so errors are the same either way.
     */
    private function invoke(string $method, string $request, int $fmt, string $options): string
    {
        $native = $this->native;
        if ($native->depth === 0) {
            $out = $native->out0;
            $err = $native->err0;
        } else {
            [, $out, $err] = $native->pair();
        }
        if ($options === '' && ($resolved = $this->resolved[$fmt][$method] ?? $this->resolve($method, $fmt)) !== 0) {
            $rc = $native->ffi->hms_method_call($resolved, $request, strlen($request), $out, $err);
        } else {
            $rc = $native->ffi->hms_call(
                $this->handle,
                $method,
                strlen($method),
                $fmt,
                $request,
                strlen($request),
                $options,
                strlen($options),
                $out,
                $err,
            );
        }
        if ($rc !== 0) {
            throw $this->failure($rc, $err, $fmt);
        }
        return $native->depth === 0 ? $native->take0() : $native->take($out);
    }

    /** A method handle for invoke(), cached; 0 when the name does not resolve (or the cache is full). */
    private function resolve(string $method, int $fmt): int
    {
        if ($this->handle === 0 || $this->resolvedCount >= self::RESOLVED_MAX) {
            return 0;
        }
        $out = $this->native->ffi->new('hms_method');
        if ($this->native->ffi->hms_method_resolve($this->handle, $method, strlen($method), $fmt, FFI::addr($out), null) !== 0) {
            return 0;
        }
        $this->resolvedCount++;
        return $this->resolved[$fmt][$method] = $out->cdata;
    }

    // -- method handles and batches (ABI 1.1) ---------------------------------

    /**
     * Resolves $name ("package.Service/Method") once, for calls in $format
     * (a Format name or an HMS_FORMAT_* number; default: the runtime's
     * format). The Method calls it without looking the name up again:
     * callRaw() bytes in and out, call() PHP values, batchRaw() many calls in
     * one crossing. Close it when done (close() is idempotent; __destruct is
     * a backstop); closing the runtime invalidates it too.
     *
     * Throws NotFoundException (no such service or method),
     * InvalidArgumentException (bad name or format), ClosedException.
     */
    public function method(string $name, string|int|null $format = null): Method
    {
        $this->checkOpen();
        $fmt = $format === null ? $this->fmt : Format::value($format);
        $ffi = $this->native->ffi;
        $out = $ffi->new('hms_method');
        [, , $err] = $this->native->pair();
        $rc = $ffi->hms_method_resolve($this->handle, $name, strlen($name), $fmt, FFI::addr($out), $err);
        if ($rc !== 0) {
            throw $this->failure($rc, $err, $fmt);
        }
        return new Method($this->native, $this, $out->cdata, $name, $fmt);
    }

    /**
     * Many calls of any methods in one crossing (hms_call_batch). $calls is
     * a list of [Method, request bytes in that method's format]; the answers
     * come back as a list in the same order. Calls run in order; a failing
     * call does not stop the ones after it, and when any failed a
     * BatchException carries every outcome (results(), failures()). A frame
     * the core refuses as a whole (more than HMS_BATCH_MAX_CALLS calls)
     * throws its own exception and nothing ran. [] answers [].
     *
     * @param array<array-key, array{0: Method, 1: string}> $calls
     * @return list<string>
     *
     * @throws \Hms\Exception\BatchException when one or more calls failed
     */
    public function batchRaw(array $calls): array
    {
        $this->checkOpen();
        $handles = [];
        $requests = [];
        $methods = [];
        foreach ($calls as $i => $call) {
            if (!is_array($call) || !(($call[0] ?? null) instanceof Method) || !is_string($call[1] ?? null)) {
                throw new InvalidArgumentException("call {$i} of the batch is not [Method, string]", [], 'hms-php');
            }
            $methods[] = $call[0];
            $handles[] = $call[0]->handle();
            $requests[] = $call[1];
        }
        if ($methods === []) {
            return [];
        }
        return Batch::run($this->native, Batch::frame(pack('P*', ...$handles), $requests), count($methods), $methods);
    }

    /**
     * The message class of $method's output (cached per method).
     *
     * @return class-string<Message>
     */
    public function outputClass(string $method): string
    {
        if (isset($this->outTypes[$method])) {
            return $this->outTypes[$method];
        }
        $slash = strrpos($method, '/');
        if ($slash === false || $slash === 0 || $slash === strlen($method) - 1) {
            throw new NotFoundException("not a full method name: '{$method}'", [], 'hms-php');
        }
        $service = substr($method, 0, $slash);
        $short = substr($method, $slash + 1);
        $reply = $this->call(self::DESCRIBE, ['name' => $service]);
        $type = null;
        foreach ($reply['service']['methods'] ?? [] as $m) {
            if (($m['name'] ?? '') === $short) {
                $type = (string) ($m['output_type'] ?? '');
                break;
            }
        }
        if ($type === null) {
            throw new NotFoundException("{$service} has no method '{$short}'", [], 'hms-php');
        }
        if ($type === '') {
            throw new InvalidArgumentException("{$method} takes and returns any CBOR/JSON value: pass an array", [], 'hms-php');
        }
        $class = self::messageClass($type);
        return $this->outTypes[$method] = $class;
    }

    /**
     * The generated PHP class of a protobuf message name, e.g.
     * Hms\Sys\V1\EchoResponse for hms.sys.v1.EchoResponse.
     *
     * @return class-string<Message>
     */
    public static function messageClass(string $type): string
    {
        $class = implode('\\', array_map('ucfirst', explode('.', $type)));
        if (!class_exists(Message::class) || !class_exists($class) || !is_subclass_of($class, Message::class)) {
            throw new NotFoundException(
                "no PHP class {$class} for {$type}: generate it with protoc --php_out and autoload it "
                . '(the protobuf runtime, google/protobuf or Debian php-google-protobuf, must be installed)',
                ['type' => $type],
                'hms-php',
            );
        }
        return $class;
    }

    // -- services -------------------------------------------------------------

    /**
     * Registers a service implemented in PHP (HMS_SERVICE_CALLER_THREAD).
     *
     * $handlers maps short method names to callables fn(mixed $request,
     * string $method): mixed. Requests and answers are PHP values in CBOR's
     * data model: without $types any CBOR/JSON value; with $types
     * (method => [input type, output type], full protobuf names known to the
     * core) callers may use any format and the core converts, and the handler
     * gets and returns arrays with proto field names.
     *
     * A handler that declares a third parameter receives the CallContext of
     * its call: fn(mixed $request, string $method, CallContext $call), with
     * the full method name, the caller's metadata, trace id and deadline
     * (decided once, here, from the handler's signature).
     *
     * A handler throwing an HmsException answers with its code, message,
     * details and origin (an empty origin becomes the method's full name),
     * which the caller's exception carries; any other
     * Throwable answers HMS_HANDLER_ERROR with "Class: message" (nothing is
     * thrown through the FFI callback). Handlers run on this thread, inside
     * the library call that reached them (a call from PHP, or a hook of a
     * transition PHP started, or serve()), and may call the runtime again; a
     * call from a library thread gets HMS_UNAVAILABLE.
     *
     * $export (ABI 1.4, HMS_SERVICE_EXPORT) also serves the service to other
     * processes over the runtime's NATS transport until it is closed, as
     * if nats.export_services named it: their calls wait until this thread
     * runs them with serve() or serveUntil(). Without a transport it throws
     * FailedPreconditionException and nothing stays registered.
     *
     * @param array<string, callable> $handlers
     * @param array<string, array{0: string, 1: string}> $types
     */
    public function registerService(
        string $name,
        array $handlers,
        array $types = [],
        string $version = '',
        string $description = '',
        bool $export = false,
    ): Service {
        $this->checkOpen();
        $unknown = array_diff(array_keys($types), array_keys($handlers));
        if ($unknown !== []) {
            throw new InvalidArgumentException(
                'types given for methods without a handler: ' . implode(', ', $unknown),
                [],
                'hms-php',
            );
        }
        $methods = [];
        $typed = [];
        foreach ($handlers as $method => $handler) {
            if (!is_callable($handler)) {
                throw new InvalidArgumentException("the handler of {$method} is not callable", [], 'hms-php');
            }
            [$in, $out] = $types[$method] ?? ['', ''];
            $methods[] = ['name' => (string) $method, 'input_type' => $in, 'output_type' => $out];
            $typed[(string) $method] = $out !== '';
        }
        $descriptor = Cbor::encode([
            'name' => $name,
            'version' => $version,
            'description' => $description,
            'methods' => $methods,
        ]);
        $service = new Service($this->native, $this, $name, $version, $handlers, $typed, $this->maxDepth);
        $cbor = Format::value(Format::CBOR);
        $ffi = $this->native->ffi;
        $out = $ffi->new('hms_service');
        [, , $err] = $this->native->pair();
        $this->native->services[$service->id] = $service;
        $rc = $ffi->hms_service_register(
            $this->handle,
            $cbor,
            $descriptor,
            strlen($descriptor),
            Native::constant('SERVICE_CALLER_THREAD') | ($export ? Native::constant('SERVICE_EXPORT') : 0),
            $this->native->trampoline(),
            FFI::addr($service->userData),
            FFI::addr($out),
            $err,
        );
        if ($rc !== 0) {
            unset($this->native->services[$service->id]);
            throw $this->failure($rc, $err, $cbor);
        }
        $service->attach($out->cdata);
        $this->children[spl_object_id($service)] = $service;
        return $service;
    }

    /**
     * Runs, on this thread, the calls that other processes made to this
     * runtime's exported PHP services (hms_serve, ABI 1.4), waiting up to
     * $timeoutMs for the first (negative: until one came; 0: only those
     * waiting already); returns how many ran. Between waits of at most
     * 200 ms it dispatches pending signals (pcntl), as Subscription::next()
     * does. Throws CancelledException when the runtime is being freed,
     * FailedPreconditionException without a transport (or when another
     * thread serves it) and ClosedException after close().
     */
    public function serve(int $timeoutMs = -1): int
    {
        $this->checkOpen();
        $ffi = $this->native->ffi;
        [, , $err] = $this->native->pair();
        $served = $ffi->new('uint32_t');
        $deadline = $timeoutMs < 0 ? null : hrtime(true) + $timeoutMs * 1_000_000;
        while (true) {
            $wait = $deadline === null
                ? self::SERVE_SLICE_MS
                : max(0, min(self::SERVE_SLICE_MS, intdiv($deadline - hrtime(true) + 999_999, 1_000_000)));
            $rc = $ffi->hms_serve($this->handle, $wait, FFI::addr($served), $err);
            if ($rc !== 0) {
                throw $this->failure($rc, $err, Format::value(Format::JSON));
            }
            if ($served->cdata > 0 || ($deadline !== null && hrtime(true) >= $deadline)) {
                return $served->cdata;
            }
            if (function_exists('pcntl_signal_dispatch')) {
                pcntl_signal_dispatch();
            }
        }
    }

    /**
     * Serves the exported PHP services until $stop() returns true, asking
     * it after every wait of at most $tickMs (so a loop may watch stdin, a
     * signal flag or a clock), or until the runtime is closed or freed.
     * Returns how many calls ran.
     *
     * @param callable(): bool $stop
     */
    public function serveUntil(callable $stop, int $tickMs = self::SERVE_SLICE_MS): int
    {
        if ($tickMs < 0) {
            throw new InvalidArgumentException("tickMs is {$tickMs}; give 0 or more", [], 'hms-php');
        }
        $total = 0;
        while (!$this->isClosed() && !$stop()) {
            try {
                $total += $this->serve($tickMs);
            } catch (CancelledException) {
                break;
            }
        }
        return $total;
    }

    // -- events ---------------------------------------------------------------

    /**
     * Subscribes to this runtime's events for polling. $filter is an
     * hms.events.v1.EventFilter: kinds ("registry.service_registered",
     * "agent.*", ...), subjects, agent_ids, states, transition_types; empty
     * matches all. Events are arrays (CBOR or JSON) or
     * Hms\Events\V1\Event messages ($format = Format::PROTOBUF).
     *
     * @param array<string, list<int|string>> $filter
     */
    public function subscribe(array $filter = [], ?string $format = null): Subscription
    {
        $this->checkOpen();
        $format ??= $this->format;
        $fmt = Format::value($format);
        if ($format === Format::PROTOBUF) {
            $raw = Protobuf::serialize(new \Hms\Events\V1\EventFilter($filter));
        } else {
            $raw = $this->encode($filter, $fmt);
        }
        $out = $this->native->ffi->new('hms_subscription');
        [, , $err] = $this->native->pair();
        $rc = $this->native->ffi->hms_subscribe($this->handle, $fmt, $raw, strlen($raw), FFI::addr($out), $err);
        if ($rc !== 0) {
            throw $this->failure($rc, $err, $fmt);
        }
        $sub = new Subscription($this->native, $this, $out->cdata, $format, $this->maxDepth);
        $this->children[spl_object_id($sub)] = $sub;
        return $sub;
    }

    // -- built-in conveniences and the domain ---------------------------------

    /** hms.sys.v1.System/Health. @return array<string, mixed> */
    public function health(): array
    {
        return $this->call('hms.sys.v1.System/Health');
    }

    /** hms.sys.v1.System/Version. @return array<string, mixed> */
    public function version(): array
    {
        return $this->call('hms.sys.v1.System/Version');
    }

    /**
     * hms.registry.v1.Registry/ListServices: the service descriptors.
     *
     * @return list<array<string, mixed>>
     */
    public function listServices(string $namePrefix = ''): array
    {
        $reply = $this->call('hms.registry.v1.Registry/ListServices', $namePrefix === '' ? [] : ['name_prefix' => $namePrefix]);
        return $reply['services'] ?? [];
    }

    /** Agents: hms.agent.v1.AgentService. */
    public function agents(): Agents
    {
        return $this->agents ??= new Agents($this);
    }

    /** Tasks: hms.agent.v1.TaskService. */
    public function tasks(): Tasks
    {
        return $this->tasks ??= new Tasks($this);
    }

    /** Knowledge: hms.agent.v1.KnowledgeService. */
    public function knowledge(): Knowledge
    {
        return $this->knowledge ??= new Knowledge($this);
    }

    /** Lifecycle and hooks: hms.agent.lifecycle.v1.LifecycleService. */
    public function lifecycle(): Lifecycle
    {
        return $this->lifecycle ??= new Lifecycle($this);
    }

    /** (major, minor) of the loaded library's ABI. @return array{0: int, 1: int} */
    public static function abiVersion(?string $library = null): array
    {
        $v = (int) Native::get($library)->ffi->hms_abi_version();
        return [$v >> 16, $v & 0xFFFF];
    }

    /** Semantic version of the loaded library (hms_version()). */
    public static function libraryVersion(?string $library = null): string
    {
        return (string) Native::get($library)->ffi->hms_version();
    }

    // -- lifetime -------------------------------------------------------------

    /**
     * Closes the services and subscriptions made through this runtime, then
     * frees it. Idempotent. Not allowed from inside one of its own handlers.
     */
    public function close(): void
    {
        if ($this->handle === 0) {
            return;
        }
        if (in_array($this->handle, $this->native->serving, true)) {
            throw new FailedPreconditionException(
                'a runtime cannot be closed from inside one of its own handlers',
                [],
                'hms-php',
            );
        }
        foreach ($this->children as $child) {
            $child->close();
        }
        $this->children = [];
        // Freeing the runtime invalidates its method handles.
        $this->resolved = [];
        $this->resolvedCount = 0;
        $handle = $this->handle;
        $this->handle = 0;
        $this->native->ffi->hms_runtime_free($handle);
    }

    public function isClosed(): bool
    {
        return $this->handle === 0;
    }

    /**
     * The runtime's hms_runtime handle (0 once closed), for tests and tools.
     *
     * @internal
     */
    public function handle(): int
    {
        return $this->handle;
    }

    /** @internal called by a child when it closes */
    public function forget(Service|Subscription $child): void
    {
        unset($this->children[spl_object_id($child)]);
        if ($child instanceof Service) {
            $prefix = $child->name . '/';
            foreach (array_keys($this->outTypes) as $method) {
                if (str_starts_with($method, $prefix)) {
                    unset($this->outTypes[$method]);
                }
            }
        }
    }

    /** @internal the exception of a failed call ($rc), ClosedException once closed */
    public function failure(int $rc, \FFI\CData $err, int $fmt): HmsException
    {
        if ($this->handle === 0 && $rc === Native::constant('INVALID_HANDLE')) {
            return new ClosedException('the runtime is closed', [], 'hms-php');
        }
        return $this->native->error($rc, $err, $fmt);
    }

    /** @internal the nesting limit of decoded answers */
    public function maxDepth(): int
    {
        return $this->maxDepth;
    }

    /** @internal */
    public function checkOpen(): void
    {
        if ($this->handle === 0) {
            throw new ClosedException('the runtime is closed', [], 'hms-php');
        }
    }

    /**
     * $config with security.default_credentials set to $credentials.
     *
     * @param array<string, mixed>|Message|string|null $config
     * @return array<string, mixed>|Message
     */
    private static function withDefaultCredentials(array|Message|string|null $config, Credentials $credentials): array|Message
    {
        if (is_string($config)) {
            throw new InvalidArgumentException(
                'credentials need the config as an array or a message, not bytes: put security.default_credentials in the bytes',
                [],
                'hms-php',
            );
        }
        if ($config instanceof Message) {
            if (!$config instanceof \Hms\V1\RuntimeConfig) {
                throw new InvalidArgumentException('the config message must be an hms.v1.RuntimeConfig', [], 'hms-php');
            }
            $merged = new \Hms\V1\RuntimeConfig();
            $merged->mergeFrom($config);
            $security = $merged->getSecurity() ?? new \Hms\V1\SecurityConfig();
            $security->setDefaultCredentials($credentials->toMessage());
            $merged->setSecurity($security);
            return $merged;
        }
        $config ??= [];
        $security = is_array($config['security'] ?? null) ? $config['security'] : [];
        $config['security'] = ['default_credentials' => $credentials->toArray()] + $security;
        return $config;
    }

    /**
     * $options with their credentials given as Credentials made plain, and
     * $credentials, when given, in their place.
     *
     * @param array<string, mixed>|Message|null $options
     * @return array<string, mixed>|Message|null
     */
    private static function withCredentials(array|Message|null $options, ?Credentials $credentials): array|Message|null
    {
        if ($options instanceof Message) {
            if ($credentials === null) {
                return $options;
            }
            if (!$options instanceof \Hms\V1\CallOptions) {
                throw new InvalidArgumentException('the options message must be an hms.v1.CallOptions', [], 'hms-php');
            }
            $merged = new \Hms\V1\CallOptions();
            $merged->mergeFrom($options);
            $merged->setCredentials($credentials->toMessage());
            return $merged;
        }
        $given = $credentials ?? ($options['credentials'] ?? null);
        if ($given instanceof Credentials) {
            $options ??= [];
            $options['credentials'] = $given->toArray();
        }
        return $options;
    }

    /** A request or option array in CBOR or JSON; [] is the empty message (a map). */
    private function encode(mixed $value, int $fmt): string
    {
        if ($value === []) {
            return $fmt === Format::value(Format::JSON) ? '{}' : "\xa0";
        }
        return $fmt === Format::value(Format::JSON) ? Json::encode($value) : Cbor::encode($value);
    }

    private function decode(string $data, int $fmt): mixed
    {
        if ($data === '') {
            return [];
        }
        return $fmt === Format::value(Format::JSON) ? Json::decode($data, $this->maxDepth) : Cbor::decode($data, $this->maxDepth);
    }

    /** @param array<string, mixed>|Message $options */
    private function protobufOptions(array|Message $options): string
    {
        if (is_array($options)) {
            // The protobuf runtime takes a nested message only as a message.
            if (is_array($options['credentials'] ?? null)) {
                $options['credentials'] = new \Hms\V1\Credentials($options['credentials']);
            }
            $options = new \Hms\V1\CallOptions($options);
        }
        return Protobuf::serialize($options);
    }
}
