# frozen_string_literal: true

require_relative "abi"
require_relative "errors"
require_relative "format"
require_relative "native"
require_relative "proto"

module HMS
  # A method resolved once (ABI 1.1, +hms_method_resolve+): one method of one
  # runtime, bound to the format its requests and answers travel in. A call
  # through it crosses the boundary once with five arguments
  # (+hms_method_call+) where Runtime#call takes ten and a name to look up,
  # which is most of the cost of a call from Ruby. Make one with
  # Runtime#method_handle:
  #
  #   echo = rt.method_handle("hms.sys.v1.System/Echo", format: :protobuf)
  #   echo.call_raw(Hms::Sys::V1::EchoRequest.encode(request))   # bytes in, bytes out
  #   echo.call(Hms::Sys::V1::EchoRequest.new(text: "hi"))       # => Hms::Sys::V1::EchoResponse
  #   echo.batch_raw(requests)                                   # many calls, one crossing
  #   echo.close
  #
  # Calls through a handle take no CallOptions (no deadline, metadata or
  # trace id): use Runtime#call for those.
  #
  # #close frees the handle; it is idempotent, and a finalizer is the
  # backstop for a handle dropped unclosed. A handle is freed with its
  # runtime too. Using it afterwards raises ClosedError. A handle names the
  # method, not one registration of its service: once a host service is
  # unregistered, calls answer what Runtime#call would (NotFoundError), and
  # reach the service again when one of that name is registered anew.
  #
  # Every method may be called from any Ruby thread, several at once.
  class MethodHandle
    include OwnedHandle

    # Thread#raise, Thread#kill and signals wait while a call may run Ruby
    # handlers (as in Runtime#call).
    DEFER = { Object => :never }.freeze

    # The full method name, "package.Service/Method".
    attr_reader :name
    # The Runtime the method belongs to.
    attr_reader :runtime

    # Resolves +name+ in +format+ (an Integer, HMS::Format::*). Use
    # Runtime#method_handle, which checks its arguments.
    # @api private
    def initialize(runtime, state, name, format)
      @runtime = runtime
      @state = state
      @backend = state.backend
      @name = name.dup.freeze
      @format = format
      @handle = @backend.method_resolve(state.handle, @name, format)
      @lock = Mutex.new
      @types = nil
      ObjectSpace.define_finalizer(self, self.class.releaser(@backend, @handle))
    end

    # The backstop of a handle dropped without #close (captures the handle,
    # never the object). Freeing a handle that is gone already (closed, or
    # freed with its runtime) answers HMS_INVALID_HANDLE and does nothing.
    # @api private
    def self.releaser(backend, handle)
      proc do
        backend.method_free(handle)
      rescue StandardError
        nil
      end
    end

    # :protobuf, :cbor or :json: the format of every request and answer.
    def format
      Format.name(@format)
    end

    # The format as an Integer (HMS::Format::PROTOBUF, ...).
    def format_code
      @format
    end

    # The raw hms_method handle (0 once closed).
    def handle
      @handle
    end

    # True after #close, or once the runtime is closed.
    def closed?
      @handle.zero? || @state.closed?
    end

    # One call, raw: +request+ (a String: the method's input message in the
    # handle's format, "" for the default message) in, the response bytes
    # (a binary String) out. One crossing into the fiber's reused buffers.
    #
    # @param request [String]
    # @return [String] the response, binary
    # @raise [HMS::Error] the call's status (ClosedError after #close or
    #   once the runtime is closed)
    def call_raw(request)
      # As little Ruby as possible around the crossing: a closed handle (0)
      # and a request that is no String are found out by the call itself.
      if @state.services.zero?
        @backend.method_call(@handle, @format, request)
      else
        Thread.handle_interrupt(DEFER) { @backend.method_call(@handle, @format, request) }
      end
    rescue InvalidHandleError
      raise closed_error if closed?

      raise
    rescue NoMethodError, TypeError
      raise TypeError, "a raw request is a String, not #{request.class}" unless request.is_a?(String)

      raise
    end

    # One call with Ruby values, as Runtime#call makes it:
    #
    # - a :protobuf handle takes a protobuf message (or a Hash of its
    #   fields, or nil for the default message) and answers the method's
    #   output message (both classes found once, through
    #   Registry/DescribeService);
    # - a :cbor or :json handle takes a Hash (or nil, or any CBOR/JSON
    #   value for an untyped method) and answers a Hash with string keys;
    # - a String is raw bytes either way (see #call_raw).
    #
    # @param request [Google::Protobuf::MessageExts, Hash, Object, String, nil]
    # @return [Google::Protobuf::MessageExts, Hash, Object, String] the answer
    # @raise [HMS::Error] the call's status
    # @raise [TypeError, ArgumentError] a request this handle cannot send
    def call(request = nil)
      return call_raw(request) if request.is_a?(String)

      if @format == Format::PROTOBUF
        input, output = message_types
        message = case request
                  when nil then input.new
                  when Hash then input.new(request)
                  else
                    unless request.is_a?(input)
                      raise TypeError, "#{@name} takes #{Proto.full_name(input)}, not #{request.class}"
                    end

                    request
                  end
        return output.decode(call_raw(input.encode(message)))
      end

      if Proto.message?(request)
        raise ArgumentError, "a protobuf message travels as :protobuf; this handle is #{format.inspect}"
      end

      Format.decode(call_raw(Format.encode(request.nil? ? {} : request, @format)), @format)
    end

    # Many calls of this method in one crossing (+hms_call_batch+): one raw
    # request (String) per call, one response (binary String) per call, in
    # order. Calls run in order on this thread; a failing call does not stop
    # the ones after it.
    #
    # @param requests [Array<String>]
    # @return [Array<String>] the responses
    # @raise [HMS::BatchError] when any call failed: it carries every
    #   outcome (#results, #failures)
    # @raise [HMS::ResourceExhaustedError] more than HMS_BATCH_MAX_CALLS
    #   calls (nothing ran)
    def batch_raw(requests)
      h = @handle
      raise closed_error if closed?
      return [] if requests.empty?

      Batch.run(@backend, @state, h, requests, @format)
    rescue InvalidHandleError
      raise closed_error if closed?

      raise
    end

    # Frees the handle. Idempotent; calls through it raise ClosedError
    # afterwards.
    def close
      handle = take_handle
      return nil if handle.zero?

      ObjectSpace.undefine_finalizer(self)
      @backend.method_free(handle) # HMS_INVALID_HANDLE once the runtime is closed: nothing to free
      nil
    end

    def inspect
      state = closed? ? "closed" : Kernel.format("handle=0x%x", @handle)
      "#<HMS::MethodHandle #{@name} #{state} format=#{format}>"
    end

    private

    # [input class, output class] of a :protobuf handle.
    def message_types
      @types ||= @runtime.message_types(@name)
    end

    def closed_error
      what = @handle.zero? ? "the method handle is closed" : "the runtime of this method handle is closed"
      ClosedError.new("#{what} (#{@name})", origin: Format::ORIGIN)
    end
  end

  # Batch frames of hms_call_batch: flat little-endian uint64 words, built
  # with Array#pack and split with String#unpack and byteslice.
  #
  #   batch frame:   count, method[count], end[count], payload area
  #   result frame:  count, code[count],   end[count], payload area
  #
  # @api private
  module Batch
    MAX_CALLS = ABI::CONSTANTS.fetch(:HMS_BATCH_MAX_CALLS)
    DEFER = MethodHandle::DEFER
    WORD = "Q<"
    WORDS = "Q<*"
    PAYLOAD = "a*"

    module_function

    # Runs +requests+ (Strings) through +handles+ (an Integer: one handle
    # for every call; or an Array, one per call) and returns the responses,
    # or raises BatchError. +formats+: the format of every call (an Integer)
    # or of each (an Array), to decode the hms.v1.Status of a failed call.
    # +state+: the RuntimeState, whose Ruby services decide whether
    # interrupts wait.
    def run(backend, state, handles, requests, formats)
      count = requests.size
      if count > MAX_CALLS
        raise ResourceExhaustedError.new("a batch holds at most #{MAX_CALLS} calls, not #{count}",
                                         details: { "calls" => count.to_s, "max_calls" => MAX_CALLS.to_s },
                                         origin: Format::ORIGIN)
      end

      batch = frame(handles, requests)
      results = if state.services.zero?
                  backend.call_batch(batch)
                else
                  Thread.handle_interrupt(DEFER) { backend.call_batch(batch) }
                end
      payloads = split(results, count)
      return payloads if ok?(results, count)

      raise failure(codes(results, count), payloads, formats)
    end

    # The batch frame: +handles+ an Integer (the same handle for every
    # call, its word repeated with String#*) or an Array of them. Written
    # into one String of the frame's final size (Array#pack's buffer:), with
    # plain while loops where Ruby must visit every call (they cost less
    # than a block per call).
    def frame(handles, requests)
      count = requests.size
      ends = Array.new(count)
      offset = 0
      i = 0
      while i < count
        ends[i] = (offset += requests[i].bytesize)
        i += 1
      end
      buffer = String.new(capacity: 8 * (1 + (2 * count)) + offset, encoding: Encoding::BINARY)
      [count].pack(WORD, buffer: buffer)
      if handles.is_a?(Integer)
        buffer << ([handles].pack(WORD) * count)
      else
        handles.pack(WORDS, buffer: buffer)
      end
      ends.pack(WORDS, buffer: buffer)
      requests.pack(PAYLOAD * count, buffer: buffer)
    rescue NoMethodError, TypeError
      bad = requests.find_index { |r| !r.is_a?(String) }
      raise if bad.nil?

      raise TypeError, "a raw request is a String, not #{requests[bad].class} (call #{bad})"
    end

    # The payloads of a result frame of +count+ calls, in order (binary
    # Strings): one slice of the payload area per call.
    def split(frame, count)
      base = 8 * (1 + (2 * count))
      if frame.bytesize < base || frame.unpack1(WORD) != count
        raise InternalError.new("the result frame does not hold #{count} calls", origin: Format::ORIGIN)
      end

      area = frame.byteslice(base, frame.bytesize - base) # the tail: shares the frame's memory
      slices = frame.unpack("@#{8 * (1 + count)}#{WORD}#{count}")
      start = 0
      i = 0
      while i < count
        stop = slices[i]
        slices[i] = area.byteslice(start, stop - start)
        start = stop
        i += 1
      end
      slices
    end

    # True when every code of the result frame is HMS_OK (all its bytes 0).
    def ok?(frame, count)
      frame.byteslice(8, 8 * count).count("^\0").zero?
    end

    # The status code of each call of a result frame.
    def codes(frame, count)
      frame.unpack("@8#{WORD}#{count}")
    end

    # The BatchError of a frame with failed calls: each failed call's
    # payload is its hms.v1.Status, decoded as every status is.
    def failure(codes, results, formats)
      failures = {}
      codes.each_with_index do |code, i|
        next if code.zero?

        format = formats.is_a?(Array) ? formats[i] : formats
        failures[i] = results[i] = Native.error_from(code, results[i], format)
      end
      BatchError.new(results, failures)
    end
  end
end
