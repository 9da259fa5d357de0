# frozen_string_literal: true

require_relative "errors"
require_relative "format"

module HMS
  # What a handler may ask about the call it serves: the second argument of
  # a handler that takes two. Valid only while the handler runs; afterwards
  # every question raises HMS::FailedPreconditionError.
  class Call
    attr_reader :service, :method

    def initialize(backend, reply, service, method)
      @backend = backend
      @reply = reply
      @service = service
      @method = method
      @context = nil
    end

    # Milliseconds left before the call's deadline: nil without one, 0 once
    # it passed (hms_reply_remaining_ms).
    def remaining_ms
      ms = @backend.reply_remaining_ms(live_reply)
      ms.negative? ? nil : ms
    end

    # The full method name, "package.Service/Method".
    def full_method
      context.fetch("method", "")
    end

    # The caller's CallOptions.metadata (String => String, frozen).
    def metadata
      context.fetch("metadata", {})
    end

    # The caller's CallOptions.trace_id ("" without one).
    def trace_id
      context.fetch("trace_id", "")
    end

    # The verified caller when the runtime authenticates calls
    # (docs/security.md), else "".
    def principal
      context.fetch("principal", "")
    end

    # The roles of the verified credential (the token file's, a JWT's
    # "roles" claim; frozen).
    def roles
      context.fetch("roles", [])
    end

    # The other string claims of a verified JWT (String => String, frozen).
    def principal_attributes
      context.fetch("principal_attributes", {})
    end

    # @api private: the reply is answered; the Call must not reach it again.
    def finish
      @reply = nil
    end

    private

    # The hms.v1.CallContext of the call (hms_reply_context, since ABI 1.2),
    # read once, on first use, as JSON (always available, unlike CBOR).
    def context
      @context ||= begin
        fields = ::JSON.parse(@backend.reply_context(live_reply, Format::JSON))
        strings = ->(map) { (map || {}).to_h { |k, v| [k.to_s.freeze, v.to_s.freeze] }.freeze }
        fields.merge("metadata" => strings.call(fields["metadata"]),
                     "principal_attributes" => strings.call(fields["principal_attributes"]),
                     "roles" => (fields["roles"] || []).map { |role| role.to_s.freeze }.freeze).freeze
      end
    end

    def live_reply
      return @reply unless @reply.nil?

      raise FailedPreconditionError.new("the call was answered: its HMS::Call is no longer valid",
                                        origin: Format::ORIGIN)
    end
  end

  # The registry of Ruby services (user_data -> state) and the trampoline
  # the backends' closures call.
  module Services
    HANDLER_ERROR = Status::HANDLER_ERROR
    UNKNOWN = Status::UNKNOWN
    RUNTIMES_KEY = :__hms_handler_runtimes

    @states = {}
    @next_id = 0
    @lock = Mutex.new

    class << self
      # Registers +state+; returns the integer passed as user_data.
      def add(state)
        @lock.synchronize do
          @next_id += 1
          @states[@next_id] = state
          @next_id
        end
      end

      def remove(id)
        @lock.synchronize { @states.delete(id) }
      end

      def size
        @states.size
      end

      # True when this thread runs a handler of runtime +handle+ right now.
      def in_handler_of?(handle)
        stack = Thread.current[RUNTIMES_KEY]
        !stack.nil? && stack.include?(handle)
      end

      # Runs one call of a Ruby service and answers +reply+. Nothing unwinds
      # into the library: exceptions become an error reply (HMS::Error keeps
      # its code, anything else is HMS_HANDLER_ERROR with "Class: message"),
      # and a throw or other non-local exit out of the handler is stopped
      # here and answered as HMS_HANDLER_ERROR.
      def dispatch(backend, reply, method, format, request, user_data)
        done = false
        saved = backend.stash_bufs
        stack = (Thread.current[RUNTIMES_KEY] ||= [])
        state = @states[user_data]
        stack.push(state&.runtime)
        begin
          raise UnavailableError, "the service was unregistered" if state.nil?

          answer = state.dispatch(method.force_encoding(Encoding::UTF_8), request, backend, reply)
          backend.reply_set(reply, answer)
          done = true
        rescue Error => e
          answer_status(backend, reply, e)
          done = true
        rescue Exception => e # rubocop:disable Lint/RescueException -- nothing may unwind into C
          answer_error(backend, reply, HANDLER_ERROR, "#{e.class}: #{e.message}")
          done = true
        ensure
          stack.pop
          backend.restore_bufs(saved)
          unless done
            answer_error(backend, reply, HANDLER_ERROR, "the handler left through throw or a non-local jump")
            return nil # rubocop:disable Lint/EnsureReturn -- stops the jump before it reaches C frames
          end
        end
        nil
      end

      private

      def answer_error(backend, reply, code, text)
        backend.reply_error(reply, code, text.to_s)
      rescue Exception # rubocop:disable Lint/RescueException
        nil # the reply stays unanswered; the library reports HMS_HANDLER_ERROR
      end

      # Answers with the whole hms.v1.Status of +error+ (hms_reply_status), so
      # the caller's HMS::Error gets its details and origin too (an empty
      # origin becomes the method's full name).
      def answer_status(backend, reply, error)
        code = error.code.zero? ? UNKNOWN : error.code
        if error.details.empty? && error.origin.empty?
          answer_error(backend, reply, code, error.status_message)
          return
        end
        status = ::JSON.generate({ code: code, message: error.status_message, details: error.details,
                                   origin: error.origin })
        return if backend.reply_status(reply, Format::JSON, status).zero?

        answer_error(backend, reply, code, error.status_message)
      rescue Exception # rubocop:disable Lint/RescueException
        answer_error(backend, reply, code, error.status_message)
      end
    end
  end

  # What a registered service's user_data stands for.
  class ServiceState
    attr_reader :name, :runtime, :format, :handlers

    def initialize(name, runtime, handlers, format, inputs, outputs, typed)
      @name = name
      @runtime = runtime
      @handlers = handlers
      @format = format
      @inputs = inputs
      @outputs = outputs
      @typed = typed # methods with an output type (nil answers {})
      @arity = handlers.transform_values { |h| arity_of(h) }
    end

    # The answer's bytes for one call of +method+ with the request bytes
    # +data+; +backend+ and +reply+ make the HMS::Call of two-argument handlers.
    def dispatch(method, data, backend, reply)
      handler = @handlers[method]
      raise UnimplementedError, "#{@name} has no handler for #{method.inspect}" if handler.nil?

      if @format == Format::PROTOBUF
        request = @inputs.fetch(method).decode(data)
        result = invoke(handler, method, request, backend, reply)
        encode_message(method, result)
      else
        request = data.empty? ? (@typed.include?(method) ? {} : nil) : Format.decode(data, @format)
        result = invoke(handler, method, request, backend, reply)
        result = {} if result.nil? && @typed.include?(method)
        begin
          Format.encode(result, @format)
        rescue InvalidArgumentError => e
          raise HandlerError, "#{@name}/#{method} returned a value that does not encode: #{e.status_message}"
        end
      end
    end

    private

    def invoke(handler, method, request, backend, reply)
      case @arity.fetch(method)
      when 0 then handler.call
      when 1 then handler.call(request)
      else
        call = Call.new(backend, reply, @name, method)
        begin
          handler.call(request, call)
        ensure
          call.finish
        end
      end
    end

    def encode_message(method, result)
      klass = @outputs.fetch(method)
      return "".b if result.nil?

      result = klass.new(result) if result.is_a?(Hash)
      unless result.is_a?(klass)
        raise HandlerError, "#{@name}/#{method} must return #{klass.descriptor.name}, not #{result.class}"
      end

      klass.encode(result)
    end

    # How many arguments to pass: 0, 1 (the request) or 2 (request, call).
    def arity_of(handler)
      callable = handler.is_a?(Proc) || handler.is_a?(Method) ? handler : handler.method(:call)
      arity = callable.arity
      arity.negative? || arity >= 2 ? 2 : arity
    end
  end

  # A service implemented in Ruby (Runtime#register_service). #close
  # unregisters it, waiting for calls in flight; it is idempotent. The
  # runtime keeps the service until either is closed.
  class Service
    include OwnedHandle

    attr_reader :name, :version, :handle

    def initialize(runtime_state, handle, id, state, version)
      @runtime = runtime_state
      @handle = handle
      @id = id
      @state = state
      @name = state.name
      @version = version
      @lock = Mutex.new
    end

    # Short names of the methods it serves.
    def method_names
      @state.handlers.keys.sort
    end

    # :protobuf, :cbor or :json: what handlers receive and return.
    def format
      Format.name(@state.format)
    end

    def closed?
      @handle.zero?
    end

    def close
      handle = take_handle
      return nil if handle.zero?

      @runtime.backend.service_unregister(handle)
      Services.remove(@id)
      @runtime.forget(self, service: true)
      nil
    end

    def inspect
      "#<HMS::Service #{@name} #{closed? ? 'closed' : Kernel.format('handle=0x%x', @handle)}>"
    end
  end
end
