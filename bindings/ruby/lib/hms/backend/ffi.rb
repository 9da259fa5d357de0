# frozen_string_literal: true

require_relative "../errors"
begin
  require "ffi"
rescue ::LoadError => e
  raise HMS::LoadError, "HMS_BACKEND=ffi needs the ffi gem (Debian: ruby-ffi; or unset HMS_BACKEND " \
                        "for Fiddle, from the standard library): #{e.message}"
end
require_relative "../abi"
require_relative "../native"
require_relative "common"

module HMS
  module Backend
    # The fast backend: the ffi gem (Debian ruby-ffi), selected with
    # HMS_BACKEND=ffi. Same Ruby API and semantics as the Fiddle backend;
    # a call costs about 70 ns instead of 600-750 ns. Strings are passed to
    # pointer parameters in place.
    class FFI
      include Common

      TYPES = {
        void: :void, int32: :int32, uint32: :uint32, int64: :int64, uint64: :uint64,
        size_t: :size_t, pointer: :pointer
      }.freeze

      BUF_SIZE = 8 * ABI::STRUCTS.fetch(:hms_buf).size
      PAIR_SIZE = (2 * BUF_SIZE) + 8
      # After an answer this large, the response buffer is freed, so one
      # large answer does not pin memory (Native::KEEP_CAPACITY).
      RELEASE_ABOVE = Native::KEEP_CAPACITY / 2

      # The memory of one fiber: the buffer pair and an 8-byte slot, and the
      # hot paths that use them (kept here so they read instance variables
      # instead of calling accessors).
      class Bufs
        attr_reader :mem, :out, :err, :slot

        def initialize(free_fn)
          @free = free_fn
          @mem = ::FFI::MemoryPointer.new(:uint8, PAIR_SIZE, true)
          @out = @mem
          @err = @mem + BUF_SIZE
          @slot = @mem + (2 * BUF_SIZE)
          # A Pointer at the response's data: the library reuses that memory
          # from call to call, so the Pointer is made again only when it moves.
          @data_addr = 0
          @data = nil
          ObjectSpace.define_finalizer(self, self.class.releaser(free_fn, @out, @err))
        end

        # hms_method_call of +method+ with +request+ (passed in place) into
        # this pair, through +lib+: the status.
        def method_call(lib, method, request)
          lib.hms_method_call(method, request, request.bytesize, @out, @err)
        end

        # The latest answer, copied out. A buffer that held a large answer
        # is released afterwards (as the Fiddle backend does).
        def answer
          len = @out.get_uint64(8)
          return "".b if len.zero?

          addr = @out.get_uint64(0)
          data = addr == @data_addr ? @data : (@data = ::FFI::Pointer.new(@data_addr = addr))
          bytes = data.get_bytes(0, len)
          @free.call(@out) if len > RELEASE_ABOVE
          bytes
        end

        # Frees what the library put in the pair; ffi frees the pair.
        def self.releaser(free_fn, out, err)
          proc do
            free_fn.call(out)
            free_fn.call(err)
          end
        end
      end

      def initialize(path)
        setup_common("ffi", path)
        @lib = Module.new { extend ::FFI::Library }
        @lib.ffi_lib(path)
        @lib.attach_function(:hms_abi_version, [], :uint32)
        Native.check_abi!(@lib.hms_abi_version, path)
        ABI::FUNCTIONS.each do |name, (ret, params)|
          next if name == :hms_abi_version

          @lib.attach_function(name, params.map { |_, kind| TYPES.fetch(kind) }, TYPES.fetch(ret),
                               blocking: Native::BLOCKING.include?(name))
        end
        @buf_free = @lib.method(:hms_buf_free)
        @handler = build_handler
      end

      def abi_version
        @lib.hms_abi_version
      end

      def version
        @lib.hms_version.read_string
      end

      # The attached functions (benchmarks, tests).
      def functions
        @lib
      end

      def new_bufs
        Bufs.new(@buf_free)
      end

      def call(rt, method, format, request, options)
        b = bufs
        out = b.out
        rc = @lib.hms_call(rt, method, method.bytesize, format, request, request.bytesize,
                           options, options.nil? ? 0 : options.bytesize, out, b.err)
        raise error(rc, b, format) unless rc.zero?

        b.answer
      end

      # hms_method_resolve: the handle of +name+ in +format+, or raises.
      def method_resolve(rt, name, format)
        b = bufs
        rc = @lib.hms_method_resolve(rt, name, name.bytesize, format, b.slot, b.err)
        raise error(rc, b, format) unless rc.zero?

        b.slot.get_uint64(0)
      end

      # One hms_method_call: the response bytes, or raises the status (in
      # +format+, the handle's).
      def method_call(method, format, request)
        b = Thread.current[@key] || bufs # #bufs, inlined: the hot path
        rc = b.method_call(@lib, method, request)
        raise error(rc, b, format) unless rc.zero?

        b.answer
      end

      # hms_method_free: the status (HMS_INVALID_HANDLE when not live).
      def method_free(method)
        @lib.hms_method_free(method)
      end

      # One hms_call_batch: the result frame, or raises the status of a
      # refused frame (its hms.v1.Status is JSON).
      def call_batch(frame)
        b = bufs
        rc = @lib.hms_call_batch(frame, frame.bytesize, b.out, b.err)
        raise error(rc, b, Format::JSON) unless rc.zero?

        b.answer
      end

      def runtime_new(format, config)
        b = bufs
        rc = @lib.hms_runtime_new(format, config, config.nil? ? 0 : config.bytesize, b.slot, b.err)
        raise error(rc, b, format) unless rc.zero?

        b.slot.get_uint64(0)
      end

      def runtime_free(rt)
        @lib.hms_runtime_free(rt)
      end

      def service_register(rt, format, descriptor, flags, user_data)
        b = bufs
        rc = @lib.hms_service_register(rt, format, descriptor, descriptor.bytesize, flags, @handler,
                                       ::FFI::Pointer.new(user_data), b.slot, b.err)
        raise error(rc, b, format) unless rc.zero?

        b.slot.get_uint64(0)
      end

      def service_unregister(svc)
        @lib.hms_service_unregister(svc)
      end

      # hms_serve: how many waiting exported calls ran on this thread.
      def serve(rt, timeout_ms)
        b = bufs
        rc = @lib.hms_serve(rt, timeout_ms, b.slot, b.err)
        raise error(rc, b, Format::JSON) unless rc.zero?

        b.slot.get_uint32(0)
      end

      def reply_set(reply, data)
        @lib.hms_reply_set(reply, data, data.bytesize)
      end

      def reply_error(reply, code, message)
        @lib.hms_reply_error(reply, code, message, message.bytesize)
      end

      def reply_remaining_ms(reply)
        @lib.hms_reply_remaining_ms(reply)
      end

      # hms_reply_context: the running handler's hms.v1.CallContext in
      # +format+, or raises.
      def reply_context(reply, format)
        b = bufs
        rc = @lib.hms_reply_context(reply, format, b.out, b.err)
        raise error(rc, b, format) unless rc.zero?

        b.answer
      end

      # hms_reply_status: the status code (non-zero when the Status was refused).
      def reply_status(reply, format, status)
        @lib.hms_reply_status(reply, format, status, status.bytesize)
      end

      def subscribe(rt, format, filter)
        b = bufs
        rc = @lib.hms_subscribe(rt, format, filter, filter.nil? ? 0 : filter.bytesize, b.slot, b.err)
        raise error(rc, b, format) unless rc.zero?

        b.slot.get_uint64(0)
      end

      def poll(sub, timeout_ms, format)
        b = bufs
        rc = @lib.hms_poll(sub, timeout_ms, b.out, b.err)
        return nil if rc == Status::DEADLINE_EXCEEDED
        raise error(rc, b, format) unless rc.zero?

        b.answer
      end

      def unsubscribe(sub)
        @lib.hms_unsubscribe(sub)
      end

      def schema_register(fds)
        b = bufs
        rc = @lib.hms_schema_register(fds, fds.bytesize, b.err)
        raise error(rc, b, Format::JSON) unless rc.zero?

        nil
      end

      def convert(type_name, from, data, to)
        b = bufs
        rc = @lib.hms_convert(type_name, type_name.bytesize, from, data, data.bytesize, to, b.out, b.err)
        raise error(rc, b, Format::JSON) unless rc.zero?

        b.answer
      end

      private

      def error(rc, b, format)
        err = b.err
        len = err.get_uint64(8)
        raw = len.zero? ? nil : err.get_pointer(0).get_bytes(0, len)
        Native.error_from(rc, raw, format)
      end

      def build_handler
        ret, params = ABI::CALLBACKS.fetch(:hms_handler_fn)
        backend = self
        types = params.map { |_, kind| TYPES.fetch(kind) }
        ::FFI::Function.new(TYPES.fetch(ret), types) do |reply, method, mlen, format, request, rlen, ud|
          backend.handle(reply,
                         mlen.zero? ? "".b : method.get_bytes(0, mlen),
                         format,
                         rlen.zero? ? "".b : request.get_bytes(0, rlen),
                         ud.address)
          nil
        rescue Exception # rubocop:disable Lint/RescueException -- never unwind into C
          nil # the reply stays unanswered: the caller gets HMS_HANDLER_ERROR
        end
      end
    end
  end
end
