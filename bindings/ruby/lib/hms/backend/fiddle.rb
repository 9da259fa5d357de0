# frozen_string_literal: true

require "fiddle"
require_relative "../abi"
require_relative "../native"
require_relative "common"

module HMS
  module Backend
    # The default backend: Fiddle, from Ruby's standard library.
    #
    # Speed matters here, since every Fiddle call costs about 750 ns: each
    # operation is one hms_call, into a fiber's hms_buf pair allocated once
    # (the library reuses the memory; nothing crosses back to free it).
    # Pointer parameters are declared as uintptr_t (same ABI on every
    # platform Ruby's Fiddle supports) and passed as integers: small inputs
    # are copied into the fiber's scratch memory, large ones passed in place,
    # which spares Fiddle one Pointer object and two method calls per argument.
    class Fiddle
      include Common

      TYPES = {
        void: ::Fiddle::TYPE_VOID,
        int32: ::Fiddle::TYPE_INT32_T,
        uint32: -::Fiddle::TYPE_INT32_T,
        int64: ::Fiddle::TYPE_INT64_T,
        uint64: -::Fiddle::TYPE_INT64_T,
        size_t: ::Fiddle::TYPE_SIZE_T,
        pointer: ::Fiddle::TYPE_UINTPTR_T,
      }.freeze

      BUF_SIZE = 8 * ABI::STRUCTS.fetch(:hms_buf).size # data, len, cap
      # out buffer, err buffer, one 8-byte slot for handle outputs
      PAIR_SIZE = (2 * BUF_SIZE) + 8
      # Inputs up to this size are copied into scratch memory; larger ones
      # are passed in place.
      SCRATCH_MAX = 64 * 1024
      # After an answer this large, the response buffer is freed (its
      # capacity is at least this, and Native::KEEP_CAPACITY is the bound).
      RELEASE_ABOVE = Native::KEEP_CAPACITY / 2

      # The memory of one fiber: the buffer pair and the scratch.
      class Bufs
        attr_reader :ptr, :len_ptr, :out, :err, :slot, :scratch, :scratch_addr

        def initialize(free_fn)
          @ptr = ::Fiddle::Pointer.malloc(PAIR_SIZE, ::Fiddle::RUBY_FREE)
          @ptr[0, PAIR_SIZE] = "\0" * PAIR_SIZE
          @len_ptr = @ptr + 8 # the response's len field
          @out = @ptr.to_i
          @err = @out + BUF_SIZE
          @slot = @err + BUF_SIZE
          grow(256)
          ObjectSpace.define_finalizer(self, self.class.releaser(free_fn, @ptr, @out, @err))
        end

        # Scratch memory of at least +size+ bytes.
        def grow(size)
          cap = 256
          cap *= 2 while cap < size
          @scratch = ::Fiddle::Pointer.malloc(cap, ::Fiddle::RUBY_FREE)
          @scratch_addr = @scratch.to_i
          @scratch_cap = cap
          @scratch
        end

        def scratch_for(size)
          size <= @scratch_cap ? @scratch : grow(size)
        end

        # Frees what the library put in the pair; Fiddle frees the pair.
        def self.releaser(free_fn, ptr, out, err)
          proc do
            free_fn.call(out)
            free_fn.call(err)
            ptr.to_i # keeps the pair's memory alive until the buffers are freed
          end
        end
      end

      def initialize(path)
        setup_common("fiddle", path)
        @handle = ::Fiddle.dlopen(path)
        # The version first: a foreign library may lack the other symbols.
        abi = function(:hms_abi_version)
        Native.check_abi!(abi.call, path)
        @fn = ABI::FUNCTIONS.keys.to_h { |name| [name, function(name)] }
        @call = @fn.fetch(:hms_call)
        @buf_free = @fn.fetch(:hms_buf_free)
        @reply_set = @fn.fetch(:hms_reply_set)
        @reply_error = @fn.fetch(:hms_reply_error)
        @handler = build_handler
      end

      def abi_version
        @fn.fetch(:hms_abi_version).call
      end

      def version
        ::Fiddle::Pointer.new(@fn.fetch(:hms_version).call).to_s
      end

      # A raw Fiddle::Function of the ABI (benchmarks, tests).
      def function(name, need_gvl: !Native::BLOCKING.include?(name))
        ret, params = ABI::FUNCTIONS.fetch(name)
        ret_type = ret == :pointer ? ::Fiddle::TYPE_UINTPTR_T : TYPES.fetch(ret)
        ::Fiddle::Function.new(@handle[name.to_s], params.map { |_, kind| TYPES.fetch(kind) }, ret_type,
                               name: name.to_s, need_gvl: need_gvl)
      end

      def new_bufs
        Bufs.new(@buf_free)
      end

      # One hms_call: returns the response bytes or raises the status.
      def call(rt, method, format, request, options)
        b = bufs
        ml = method.bytesize
        rl = request.bytesize
        ol = options.nil? ? 0 : options.bytesize
        total = ml + rl + ol
        if total <= SCRATCH_MAX
          s = b.scratch_for(total)
          base = b.scratch_addr
          s[0, ml] = method
          s[ml, rl] = request if rl.positive?
          s[ml + rl, ol] = options if ol.positive?
          rc = @call.call(rt, base, ml, format, base + ml, rl, base + ml + rl, ol, b.out, b.err)
        else
          mp = ::Fiddle::Pointer[method]
          rp = ::Fiddle::Pointer[request]
          op = options.nil? || ol.zero? ? nil : ::Fiddle::Pointer[options]
          rc = @call.call(rt, mp.to_i, ml, format, rp.to_i, rl, op.nil? ? 0 : op.to_i, ol, b.out, b.err)
        end
        raise error(rc, b, format) unless rc.zero?

        copy_out(b)
      end

      def runtime_new(format, config)
        b = bufs
        with_input(config) do |addr, len|
          rc = @fn.fetch(:hms_runtime_new).call(format, addr, len, b.slot, b.err)
          raise error(rc, b, format) unless rc.zero?
        end
        b.ptr[2 * BUF_SIZE, 8].unpack1("Q")
      end

      def runtime_free(rt)
        @fn.fetch(:hms_runtime_free).call(rt)
      end

      def service_register(rt, format, descriptor, flags, user_data)
        b = bufs
        with_input(descriptor) do |addr, len|
          rc = @fn.fetch(:hms_service_register).call(rt, format, addr, len, flags, @handler.to_i, user_data,
                                                     b.slot, b.err)
          raise error(rc, b, format) unless rc.zero?
        end
        b.ptr[2 * BUF_SIZE, 8].unpack1("Q")
      end

      def service_unregister(svc)
        @fn.fetch(:hms_service_unregister).call(svc)
      end

      def reply_set(reply, data)
        @reply_set.call(reply, ::Fiddle::Pointer[data].to_i, data.bytesize)
      end

      def reply_error(reply, code, message)
        @reply_error.call(reply, code, ::Fiddle::Pointer[message].to_i, message.bytesize)
      end

      def reply_remaining_ms(reply)
        @fn.fetch(:hms_reply_remaining_ms).call(reply)
      end

      def subscribe(rt, format, filter)
        b = bufs
        with_input(filter) do |addr, len|
          rc = @fn.fetch(:hms_subscribe).call(rt, format, addr, len, b.slot, b.err)
          raise error(rc, b, format) unless rc.zero?
        end
        b.ptr[2 * BUF_SIZE, 8].unpack1("Q")
      end

      # The next event's bytes, nil on timeout; raises any other status.
      def poll(sub, timeout_ms, format)
        b = bufs
        rc = @fn.fetch(:hms_poll).call(sub, timeout_ms, b.out, b.err)
        return nil if rc == Status::DEADLINE_EXCEEDED
        raise error(rc, b, format) unless rc.zero?

        copy_out(b)
      end

      def unsubscribe(sub)
        @fn.fetch(:hms_unsubscribe).call(sub)
      end

      def schema_register(fds)
        b = bufs
        with_input(fds) do |addr, len|
          rc = @fn.fetch(:hms_schema_register).call(addr, len, b.err)
          raise error(rc, b, Format::JSON) unless rc.zero?
        end
        nil
      end

      def convert(type_name, from, data, to)
        b = bufs
        tp = ::Fiddle::Pointer[type_name]
        dp = ::Fiddle::Pointer[data]
        rc = @fn.fetch(:hms_convert).call(tp.to_i, type_name.bytesize, from, dp.to_i, data.bytesize, to,
                                          b.out, b.err)
        raise error(rc, b, Format::JSON) unless rc.zero?

        copy_out(b)
      end

      private

      # The latest answer, copied out. Reads len and data through
      # Pointer#ptr (an integer each), the cheapest way Fiddle offers. A
      # buffer that held a large answer is released afterwards.
      def copy_out(b)
        len = b.len_ptr.ptr.to_i
        return "".b if len.zero?

        out = b.ptr.ptr[0, len]
        @buf_free.call(b.out) if len > RELEASE_ABOVE
        out
      end

      def with_input(bytes)
        return yield(0, 0) if bytes.nil? || bytes.empty?

        ptr = ::Fiddle::Pointer[bytes]
        yield(ptr.to_i, bytes.bytesize)
      end

      def error(rc, b, format)
        data, len = b.ptr[BUF_SIZE, 16].unpack("J2")
        raw = len.zero? ? nil : ::Fiddle::Pointer.new(data)[0, len]
        Native.error_from(rc, raw, format)
      end

      # Closures the library holds by address. Fiddle 1.1's closures do not
      # follow GC.compact, so each is kept as a key of an identity hash,
      # which pins it in place.
      PINNED = {}.compare_by_identity

      def build_handler
        ret, params = ABI::CALLBACKS.fetch(:hms_handler_fn)
        types = params.map { |_, kind| TYPES.fetch(kind) }
        backend = self
        ::Fiddle::Closure::BlockCaller.new(TYPES.fetch(ret), types) do |reply, method, mlen, format, request, rlen, ud|
          backend.handle(reply,
                         mlen.zero? ? "".b : ::Fiddle::Pointer.new(method)[0, mlen],
                         format,
                         rlen.zero? ? "".b : ::Fiddle::Pointer.new(request)[0, rlen],
                         ud)
          nil
        rescue Exception # rubocop:disable Lint/RescueException -- never unwind into C
          nil # the reply stays unanswered: the caller gets HMS_HANDLER_ERROR
        end.tap { |closure| PINNED[closure] = true }
      end
    end
  end
end
