# frozen_string_literal: true

require_relative "errors"
require_relative "format"
require_relative "method_handle"
require_relative "native"
require_relative "proto"
require_relative "services"
require_relative "subscription"

module HMS
  # What a Runtime shares with its services, subscriptions and finalizer
  # (never the Runtime itself, so the finalizer can run).
  class RuntimeState
    # Method handles cached per format for Runtime#call and #call_raw
    # without options; names past this many go through hms_call.
    METHOD_CACHE_MAX = 256

    attr_reader :backend, :handle, :services

    def initialize(backend, handle)
      @backend = backend
      @handle = handle
      @children = {}
      @services = 0
      @lock = Mutex.new
      @methods = Format::NAMES.keys.to_h { |format| [format, {}] }.freeze
    end

    # The cached hms_method handle of +name+ in +format+, resolved on first
    # use; nil when the name does not resolve (hms_call then reports the
    # error, exactly as it always did), for an unknown format, or when the
    # cache is full.
    def method_for(name, format)
      table = @methods[format]
      return nil if table.nil?

      table[name] || resolve_cached(table, name, format)
    end

    def adopt(child, service: false)
      @lock.synchronize do
        @children[child.object_id] = child
        @services += 1 if service
      end
    end

    # Counted before hms_service_register, so a call racing the registration
    # already runs with interrupts deferred.
    def expect_service
      @lock.synchronize { @services += 1 }
    end

    def unexpect_service
      @lock.synchronize { @services -= 1 }
    end

    def forget(child, service: false)
      @lock.synchronize do
        @children.delete(child.object_id)
        @services -= 1 if service && @services.positive?
      end
    end

    def closed?
      @handle.zero?
    end

    # Closes the services and subscriptions made through the runtime, then
    # frees it. Idempotent.
    def close
      children = @lock.synchronize do
        return false if @handle.zero?

        @children.values
      end
      children.each(&:close)
      handle = @lock.synchronize do
        h = @handle
        @handle = 0
        @methods.each_value(&:clear) # freed with the runtime
        h
      end
      @backend.runtime_free(handle) unless handle.zero?
      true
    end

    # The backstop of a runtime dropped without #close. Runs at a GC safe
    # point, where a lock this thread holds cannot be taken again: whatever
    # fails then is left for process exit.
    def self.finalizer(state)
      proc do
        state.close
      rescue StandardError
        nil
      end
    end

    private

    def resolve_cached(table, name, format)
      return nil if table.size >= METHOD_CACHE_MAX || @handle.zero?

      handle = begin
        @backend.method_resolve(@handle, name, format)
      rescue Error
        return nil
      end
      cached = @lock.synchronize do
        return nil if @handle.zero? # closed meanwhile: the runtime took the handle with it

        table[name] ||= handle
      end
      @backend.method_free(handle) unless cached == handle # another thread was first
      cached
    end
  end

  # A runtime of the HMS core: one registry of services, one event bus, one
  # store.
  #
  #   HMS::Runtime.open(name: "demo") do |rt|
  #     rt.call("hms.sys.v1.System/Echo", { "text" => "hi" })  # => {"text"=>"hi"}
  #   end
  #
  # +config+ is an hms.v1.RuntimeConfig: a Hash with proto field names, an
  # Hms::V1::RuntimeConfig message, or bytes in +format+ (:protobuf, :cbor
  # or :json). Keyword arguments
  # are config fields too. #close frees the runtime after closing its
  # services and subscriptions; it is idempotent, and a finalizer is the
  # backstop. Any call on a closed runtime raises ClosedError.
  #
  # Every method may be called from any Ruby thread.
  class Runtime
    DESCRIBE = "hms.registry.v1.Registry/DescribeService"
    CALLER_THREAD = ABI::CONSTANTS.fetch(:HMS_SERVICE_CALLER_THREAD)
    EXPORT = ABI::CONSTANTS.fetch(:HMS_SERVICE_EXPORT)
    # Longest single wait inside hms_serve, so interrupts and signals
    # deferred while handlers may run are taken between waits.
    SERVE_SLICE_MS = 200
    # Thread#raise, Thread#kill and signals wait while a call may run Ruby
    # handlers, so they never unwind through the library's frames.
    DEFER = { Object => :never }.freeze

    # Opens a runtime, yields it and closes it (the block's value is
    # returned). Without a block, the same as new.
    def self.open(config = nil, **kwargs)
      rt = new(config, **kwargs)
      return rt unless block_given?

      begin
        yield rt
      ensure
        rt.close
      end
    end

    attr_reader :format

    # +format+: of the config, and of hashes in #call unless it is
    # :protobuf (default CBOR when the cbor gem is installed, else JSON).
    # +library+: absolute path of libhms_ffi (see HMS.load_library). Other
    # keywords are config fields (name:, max_message_bytes:, max_depth:,
    # data_dir:, event_queue_capacity:). +credentials+ (HMS::Credentials)
    # become the config's security.default_credentials: the runtime's own
    # identity for the calls it makes; the rest of its security section is
    # kept.
    def initialize(config = nil, format: nil, library: nil, credentials: nil, **fields)
      config = with_default_credentials(config, credentials) unless credentials.nil?
      @backend = library.nil? ? Native.backend : Native.load_library(library)
      config_format = format.nil? ? Format.default : Format.resolve(format)
      config_format = Format::PROTOBUF if Proto.message?(config)
      # Hashes travel as CBOR or JSON; protobuf is only ever the config's format.
      @format = config_format == Format::PROTOBUF ? Format.default : config_format
      raw = config_bytes(config, fields, config_format)
      handle = @backend.runtime_new(config_format, raw)
      @state = RuntimeState.new(@backend, handle)
      @cbor = @format == Format::CBOR && Format.cbor?
      @msg_types = {}
      ObjectSpace.define_finalizer(self, RuntimeState.finalizer(@state))
    end

    # The raw hms_runtime handle (0 once closed).
    def handle
      @state.handle
    end

    def closed?
      @state.closed?
    end

    # Calls +method+ ("package.Service/Method"), built-in or host service.
    #
    # - a Hash (or nil, the empty message; or any CBOR/JSON value for an
    #   untyped method) travels as CBOR, or JSON with format: :json, and the
    #   answer is a Hash with string keys;
    # - a protobuf message travels as protobuf and the answer is the
    #   method's output message (its class found once per method through
    #   Registry/DescribeService and google-protobuf's generated pool);
    # - a String is raw bytes in +format+ (required) and the answer is the
    #   raw bytes of the response.
    #
    # +options+: an hms.v1.CallOptions (Hash or message); +timeout+ (seconds)
    # sets its deadline_ms and +credentials+ (HMS::Credentials) its
    # credentials, in place of the runtime's default ones. Raises the
    # HMS::Error subclass of the status.
    def call(method, request = nil, format: nil, options: nil, timeout: nil, credentials: nil)
      # The common case first, with as little Ruby around the crossing as
      # possible: a Hash in the runtime's format, no options.
      if request.is_a?(Hash) && format.nil? && options.nil? && timeout.nil? && credentials.nil?
        if @cbor
          raw = begin
            ::CBOR.encode(request)
          rescue StandardError, SystemStackError
            Format.encode(request, Format::CBOR) # raises the typed error
          end
          answer = invoke(method, Format::CBOR, raw, nil)
          return answer.empty? ? {} : ::CBOR.decode(answer)
        end
        return Format.decode(invoke(method, @format, Format.encode(request, @format), nil), @format)
      end

      case request
      when String
        raise ArgumentError, "raw bytes need an explicit format: (:protobuf, :cbor or :json)" if format.nil?

        fmt = Format.resolve(format)
        invoke(method, fmt, request, options_bytes(options, timeout, credentials, fmt))
      when nil, Hash, Array, Numeric, true, false
        fmt = format.nil? ? @format : Format.resolve(format)
        raw = Format.encode(request.nil? ? {} : request, fmt)
        Format.decode(invoke(method, fmt, raw, options_bytes(options, timeout, credentials, fmt)), fmt)
      else
        unless Proto.message?(request)
          raise TypeError, "request must be a Hash, a protobuf message or bytes, not #{request.class}"
        end

        if !format.nil? && Format.resolve(format) != Format::PROTOBUF
          raise ArgumentError, "a protobuf message travels as :protobuf"
        end

        klass = output_type(method)
        klass.decode(invoke(method, Format::PROTOBUF, request.class.encode(request),
                            options_bytes(options, timeout, credentials, Format::PROTOBUF)))
      end
    end

    # The fast path under #call: bytes in, bytes out, one crossing. Without
    # +options+ the call goes through a method handle the runtime resolves
    # on first use and keeps (see #method_handle); errors are the same
    # either way.
    def call_raw(method, request, format, options = nil)
      invoke(method, Format.resolve(format), request, options)
    end

    # Resolves +method+ ("package.Service/Method") once, for calls that skip
    # its name: the fastest way to call one method many times
    # (+hms_method_resolve+, ABI 1.1).
    #
    #   echo = rt.method_handle("hms.sys.v1.System/Echo", format: :protobuf)
    #   echo.call_raw(bytes)           # => response bytes
    #   echo.call(request_message)     # => response message
    #   echo.batch_raw([a, b, c])      # => [response, response, response], one crossing
    #
    # +format+: of every request and answer through the handle (:protobuf,
    # :cbor or :json; default the runtime's format, that of its hashes).
    # With a block, yields the handle, closes it when the block ends and
    # returns the block's value.
    #
    # (Named method_handle, not method: Object#method stays Ruby's.)
    #
    # @return [HMS::MethodHandle]
    # @raise [HMS::NotFoundError] no such service or method
    # @raise [HMS::InvalidArgumentError] a malformed name or format
    def method_handle(method, format: nil)
      unless method.is_a?(String)
        raise TypeError, "a method name is a String like \"package.Service/Method\", not #{method.inspect}"
      end

      check_open
      handle = begin
        MethodHandle.new(self, @state, method, format.nil? ? @format : Format.resolve(format))
      rescue InvalidHandleError
        check_open
        raise
      end
      return handle unless block_given?

      begin
        yield handle
      ensure
        handle.close
      end
    end

    # Many calls, of any methods of this runtime, in one crossing
    # (+hms_call_batch+): +calls+ is an Array of [MethodHandle, request]
    # pairs, each request raw bytes (a String) in its handle's format. Calls
    # run in order on this thread; a failing call does not stop the ones
    # after it.
    #
    #   rt.batch_raw([[echo, a], [health, ""], [echo, b]])   # => [bytes, bytes, bytes]
    #
    # @return [Array<String>] the responses, in order
    # @raise [HMS::BatchError] when any call failed: it carries every
    #   outcome (#results, #failures)
    # @raise [HMS::ResourceExhaustedError] more than HMS_BATCH_MAX_CALLS
    #   calls (nothing ran)
    def batch_raw(calls)
      check_open
      return [] if calls.empty?

      methods, requests = batch_columns(calls)
      methods.uniq.each do |m|
        raise TypeError, "a batch call is [MethodHandle, String], not [#{m.class}, ...]" unless m.is_a?(MethodHandle)
        raise ArgumentError, "#{m.inspect} belongs to another runtime" unless m.runtime.equal?(self)
        raise ClosedError.new("the method handle is closed (#{m.name})", origin: Format::ORIGIN) if m.handle.zero?
      end
      Batch.run(@backend, @state, methods.map(&:handle), requests, methods.map(&:format_code))
    rescue InvalidHandleError => e
      check_open
      raise e
    end

    # The protobuf class of +method+'s output (cached per method).
    def output_type(method)
      message_types(method)[1]
    end

    # [input class, output class] of +method+: its protobuf message classes,
    # found through Registry/DescribeService (cached per method).
    def message_types(method)
      cached = @msg_types[method]
      return cached if cached

      service, sep, short = method.rpartition("/")
      if sep.empty? || service.empty? || short.empty?
        raise NotFoundError.new("not a full method name: #{method.inspect}", origin: Format::ORIGIN)
      end

      found = describe_service(service).fetch("methods", []).find { |m| m["name"] == short }
      raise NotFoundError.new("#{service} has no method #{short.inspect}", origin: Format::ORIGIN) if found.nil?

      names = found.values_at("input_type", "output_type").map(&:to_s)
      raise TypeError, "#{method} takes and returns any CBOR/JSON value: pass a Hash" if names.any?(&:empty?)

      @msg_types[method] = names.map { |name| Proto.message_class(name) }.freeze
    end

    # hms.registry.v1.Registry/DescribeService: the ServiceDescriptor as a Hash.
    def describe_service(name)
      call(DESCRIBE, { "name" => name }).fetch("service", {})
    end

    # hms.registry.v1.Registry/ListServices: ServiceDescriptor hashes.
    def list_services(name_prefix = "")
      call("hms.registry.v1.Registry/ListServices", { "name_prefix" => name_prefix }).fetch("services", [])
    end

    # hms.sys.v1.System/Health as a Hash.
    def health
      call("hms.sys.v1.System/Health", {})
    end

    # Registers a service implemented in Ruby.
    #
    #   rt.register_service("demo.v1.Greeter",
    #                       "Greet" => ->(req) { { "text" => "hello #{req['name']}" } })
    #   rt.register_service("demo.v1.Greeter", Greet: method(:greet))
    #   rt.register_service("demo.v1.Echo", methods: %w[Ping Pong]) { |req, call| ... }
    #
    # +handlers+ maps short method names to callables (a block serves every
    # name in +methods+). A handler gets the request (and, when it takes two
    # arguments, an HMS::Call) and returns the response. Without types,
    # requests and responses are any CBOR/JSON value (hashes); when
    # +input_types+ and +output_types+ give protobuf classes for every
    # method, the service runs in protobuf and handlers get and return
    # messages (the types must be known to the core: the built-in ones, or
    # registered with HMS.register_schema). Types given as full names
    # (strings) must be known to the core; those handlers get hashes.
    # Callers may use any format either way.
    #
    # A handler raising an HMS::Error answers with its code; any other
    # exception answers HMS_HANDLER_ERROR with "Class: message". Handlers
    # run on the Ruby thread that made the call (HMS_SERVICE_CALLER_THREAD)
    # and may call the runtime again.
    #
    # +export+ (ABI 1.4, HMS_SERVICE_EXPORT) also serves the service to
    # other processes over the runtime's NATS transport until it is closed,
    # as if nats.export_services named it: their calls wait until a thread
    # of this process runs them with #serve or #serve_until. Without a
    # transport it raises HMS::FailedPreconditionError and nothing stays
    # registered.
    def register_service(name, handlers = nil, methods: nil, version: "", description: "",
                         input_types: nil, output_types: nil, export: false, **named, &block)
      check_open
      table = collect_handlers((handlers || {}).merge(named), methods, block)
      inputs = (input_types || {}).transform_keys(&:to_s)
      outputs = (output_types || {}).transform_keys(&:to_s)
      unknown = (inputs.keys | outputs.keys) - table.keys
      raise ArgumentError, "types given for methods without a handler: #{unknown.sort.join(', ')}" unless unknown.empty?

      names = table.keys.sort
      typed_pb = !names.empty? && names.all? { |m| Proto.message_class?(inputs[m]) && Proto.message_class?(outputs[m]) }
      fmt = typed_pb ? Format::PROTOBUF : @format
      descriptor = {
        "name" => name.to_s, "version" => version.to_s, "description" => description.to_s,
        "methods" => names.map do |m|
          { "name" => m, "input_type" => type_name(inputs[m]), "output_type" => type_name(outputs[m]) }
        end,
      }
      typed = names.reject { |m| type_name(outputs[m]).empty? }
      state = ServiceState.new(name.to_s, handle, table, fmt,
                               typed_pb ? inputs : {}, typed_pb ? outputs : {}, typed.freeze)
      raw = if fmt == Format::PROTOBUF
              Proto.message_class("hms.v1.ServiceDescriptor").new(descriptor).to_proto
            else
              Format.encode(descriptor, fmt)
            end
      id = Services.add(state)
      @state.expect_service
      begin
        svc_handle = @backend.service_register(handle, fmt, raw, CALLER_THREAD | (export ? EXPORT : 0), id)
      rescue StandardError
        @state.unexpect_service
        Services.remove(id)
        raise
      end
      service = Service.new(@state, svc_handle, id, state, version.to_s)
      @state.adopt(service)
      @msg_types.delete_if { |k, _| k.start_with?("#{name}/") }
      service
    end

    # Runs, on this Ruby thread, the calls other processes made to this
    # runtime's exported Ruby services (hms_serve, ABI 1.4), waiting up to
    # +timeout_ms+ for the first (nil: until one came; 0: only those waiting
    # already). Returns how many ran. Raises HMS::CancelledError when the
    # runtime is being freed, HMS::FailedPreconditionError without a
    # transport or while another thread serves it, ClosedError after #close.
    def serve(timeout_ms = nil)
      deadline = timeout_ms.nil? ? nil : now_ms + [Integer(timeout_ms), 0].max
      loop do
        h = @state.handle
        raise ClosedError.new("the runtime is closed", origin: Format::ORIGIN) if h.zero?

        wait = deadline.nil? ? SERVE_SLICE_MS : (deadline - now_ms).clamp(0, SERVE_SLICE_MS)
        served = Thread.handle_interrupt(DEFER) { @backend.serve(h, wait) }
        return served if served.positive? || (!deadline.nil? && now_ms >= deadline)
      end
    rescue InvalidHandleError => e
      raise ClosedError.new("the runtime is closed", origin: Format::ORIGIN) if @state.closed?

      raise e
    end

    # Serves the exported Ruby services until the block returns true, asking
    # it after every wait of at most +tick_ms+ (so a loop may watch stdin,
    # a signal flag or a clock), or until the runtime is closed or freed.
    # Returns how many calls ran.
    #
    #   rt.serve_until { stopping }
    def serve_until(tick_ms: SERVE_SLICE_MS)
      raise ArgumentError, "serve_until needs a block that says when to stop" unless block_given?

      tick = Integer(tick_ms)
      raise ArgumentError, "tick_ms is #{tick}; give 0 or more" if tick.negative?

      total = 0
      until closed? || yield
        begin
          total += serve(tick)
        rescue CancelledError
          break
        end
      end
      total
    end

    # Subscribes to this runtime's events (hms.events.v1.EventFilter; empty
    # lists match everything): +kinds+ such as "registry.service_registered"
    # or "lifecycle.*", +subjects+, +agent_ids+, +states+ and
    # +transition_types+ (names). With a NATS transport (docs/transport.md,
    # "Events over NATS"), +include_remote+ adds other runtimes' events and
    # +origins+ only those of the runtimes so named, each with its +origin+;
    # +replay_from_sequence+ or +replay_from_time+ (a Time or an RFC 3339
    # string) first replays the configured JetStream event_stream. Without a
    # transport or a stream these raise HMS::FailedPreconditionError. Poll it
    # with Subscription#next or #each_event.
    def subscribe(kinds: nil, subjects: nil, agent_ids: nil, states: nil, transition_types: nil,
                  include_remote: false, origins: nil, replay_from_sequence: nil, replay_from_time: nil,
                  format: nil)
      check_open
      fmt = format.nil? ? @format : Format.resolve(format)
      filter = {
        "kinds" => list(kinds), "subjects" => list(subjects), "agent_ids" => list(agent_ids),
        "states" => list(states).map(&:to_s), "transition_types" => list(transition_types).map(&:to_s),
        "origins" => list(origins),
      }.reject { |_, v| v.empty? }
      filter["include_remote"] = true if include_remote
      filter["replay_from_sequence"] = Integer(replay_from_sequence) unless replay_from_sequence.nil?
      filter["replay_from_time"] = Domain.timestamp(replay_from_time) unless replay_from_time.nil?
      # The protobuf form is read from the JSON mapping, which takes enum
      # names and RFC 3339 times as they are.
      raw = if fmt == Format::PROTOBUF
              Proto.message_class("hms.events.v1.EventFilter").decode_json(JSON.generate(filter)).to_proto
            else
              Format.encode(filter, fmt)
            end
      sub = Subscription.new(@state, @backend.subscribe(handle, fmt, raw), fmt)
      @state.adopt(sub)
      sub
    end

    # The domain services, as typed helpers.
    def agents
      @agents ||= Domain::Agents.new(self)
    end

    def tasks
      @tasks ||= Domain::Tasks.new(self)
    end

    def knowledge
      @knowledge ||= Domain::Knowledge.new(self)
    end

    def lifecycle
      @lifecycle ||= Domain::Lifecycle.new(self)
    end

    # Closes the services and subscriptions made through this runtime, then
    # frees it. Idempotent. Not allowed from inside one of its handlers.
    def close
      return nil if @state.closed?

      if Services.in_handler_of?(@state.handle)
        raise FailedPreconditionError.new("a runtime cannot be closed from inside one of its own handlers",
                                          origin: Format::ORIGIN)
      end
      @state.close
      ObjectSpace.undefine_finalizer(self)
      nil
    end

    def inspect
      "#<HMS::Runtime #{closed? ? 'closed' : Kernel.format('handle=0x%x', handle)} format=#{Format.name(@format)}>"
    end

    private

    def invoke(method, fmt, raw, options)
      unless method.is_a?(String)
        raise TypeError, "a method name is a String like \"package.Service/Method\", not #{method.inspect}"
      end

      h = @state.handle
      raise ClosedError.new("the runtime is closed", origin: Format::ORIGIN) if h.zero?

      # Without options, through the runtime's cached handle of the name:
      # the same call and the same answers as hms_call (a handle names the
      # method, not one registration of its service), with five arguments
      # instead of ten and no name to look up.
      if options.nil? && (m = @state.method_for(method, fmt))
        return @backend.method_call(m, fmt, raw) if @state.services.zero?

        return Thread.handle_interrupt(DEFER) { @backend.method_call(m, fmt, raw) }
      end
      if @state.services.zero?
        @backend.call(h, method, fmt, raw, options)
      else
        Thread.handle_interrupt(DEFER) { @backend.call(h, method, fmt, raw, options) }
      end
    rescue InvalidHandleError => e
      raise ClosedError.new("the runtime is closed", origin: Format::ORIGIN) if @state.closed?

      raise e
    end

    def check_open
      raise ClosedError.new("the runtime is closed", origin: Format::ORIGIN) if @state.closed?
    end

    def now_ms
      Process.clock_gettime(Process::CLOCK_MONOTONIC, :millisecond)
    end

    # [handles, requests] of the [MethodHandle, request] pairs of a batch.
    def batch_columns(calls)
      columns = calls.transpose
      return columns if columns.size == 2

      raise ArgumentError, "a batch call is a [MethodHandle, request] pair"
    rescue IndexError, TypeError
      raise ArgumentError, "a batch call is a [MethodHandle, request] pair"
    end

    def with_default_credentials(config, credentials)
      raise TypeError, "credentials: must be an HMS::Credentials" unless credentials.is_a?(Credentials)

      case config
      when nil, Hash
        config = (config || {}).transform_keys(&:to_s)
        security = (config["security"] || {}).transform_keys(&:to_s)
        config.merge("security" => security.merge("default_credentials" => credentials.to_h))
      when String
        raise ArgumentError, "credentials: need the config as a Hash or a message, not bytes: " \
                             "put security.default_credentials in the bytes"
      else
        raise TypeError, "config must be a Hash, an Hms::V1::RuntimeConfig or bytes" unless Proto.message?(config)

        # A deep copy: dup would share the security message with the caller's.
        merged = config.class.decode(config.class.encode(config))
        merged.security ||= Proto.message_class("hms.v1.SecurityConfig").new
        merged.security.default_credentials =
          Proto.message_class("hms.v1.Credentials").new(**credentials.to_h.transform_keys(&:to_sym))
        merged
      end
    end

    def config_bytes(config, fields, format)
      config = (config || {}).merge(fields.transform_keys(&:to_s)) if config.nil? || config.is_a?(Hash)
      case config
      when String then config
      when Hash
        return nil if config.empty?

        if format == Format::PROTOBUF
          Proto.message_class("hms.v1.RuntimeConfig").new(config.transform_keys(&:to_sym)).to_proto
        else
          Format.encode(config.transform_keys(&:to_s), format)
        end
      else
        raise TypeError, "config must be a Hash, an Hms::V1::RuntimeConfig or bytes" unless Proto.message?(config)
        raise ArgumentError, "config fields go into the message, not keywords" unless fields.empty?

        config.to_proto
      end
    end

    def options_bytes(options, timeout, credentials, fmt)
      return nil if options.nil? && timeout.nil? && credentials.nil?
      return options if options.is_a?(String) && credentials.nil?
      raise ArgumentError, "credentials: need the options as a Hash or a message, not bytes" if options.is_a?(String)

      values = Proto.message?(options) ? options.to_h.transform_keys(&:to_s) : (options || {}).transform_keys(&:to_s)
      values["deadline_ms"] = [(timeout * 1000).ceil, 1].max unless timeout.nil?
      values["credentials"] = credentials unless credentials.nil?
      values["credentials"] = values["credentials"].to_h if values["credentials"].is_a?(Credentials)
      if fmt == Format::PROTOBUF
        return Proto.message_class("hms.v1.CallOptions").new(values.transform_keys(&:to_sym)).to_proto
      end

      Format.encode(values, fmt)
    end

    def collect_handlers(handlers, methods, block)
      table = {}
      (handlers || {}).each do |name, handler|
        raise TypeError, "the handler of #{name} does not respond to #call" unless handler.respond_to?(:call)

        table[name.to_s] = handler
      end
      if block
        raise ArgumentError, "a block handler needs methods: [...] naming the methods it serves" if methods.nil?

        Array(methods).each { |m| table[m.to_s] = block }
      elsif !methods.nil?
        raise ArgumentError, "methods: is for a block handler; pass a block"
      end
      raise ArgumentError, "a service needs at least one method handler" if table.empty?

      table
    end

    def type_name(ref)
      case ref
      when nil then ""
      when String then ref
      else
        unless Proto.message_class?(ref)
          raise TypeError, "a type is a protobuf message class or a full name, not #{ref.inspect}"
        end

        Proto.full_name(ref)
      end
    end

    def list(value)
      value.nil? ? [] : Array(value)
    end
  end
end
