# frozen_string_literal: true

require "fiddle"
require_relative "../abi"
require_relative "../native"
require_relative "common"

module HMS
  module Backend
    # The default backend: Fiddle, from Ruby's standard library.
    #
    # Speed matters here, since every Fiddle call costs 600-750 ns before it
    # does anything: each operation is one crossing (hms_method_call, or
    # hms_call when it has options), into a fiber's hms_buf pair allocated
    # once (the library reuses the memory; nothing crosses back to free it).
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
      # unpack formats of the pair's fields: the response's data and len,
      # the error's data and len, the handle slot.
      OUT_DATA = "J"
      OUT_LEN = "@8J"
      ERR_FIELDS = "@#{BUF_SIZE}J2"
      SLOT = "@#{2 * BUF_SIZE}Q"
      # The slot read as hms_serve's uint32_t count.
      SERVED = "@#{2 * BUF_SIZE}L"
      # After an answer this large, the response buffer is freed (its
      # capacity is at least this, and Native::KEEP_CAPACITY is the bound).
      RELEASE_ABOVE = Native::KEEP_CAPACITY / 2

      # Bytes of the String holding a pair: more than any Ruby embeds in an
      # object slot (23 bytes in 3.1, up to 640 with 3.2's variable-width
      # slots), so the bytes live in malloc'd memory that GC never moves.
      PAIR_STRING_SIZE = 1024

      # The memory of one fiber: the buffer pair and the scratch, and the
      # hot paths that use them (kept here so they read instance variables
      # instead of calling accessors: a Ruby method call costs about as much
      # as copying a small answer).
      #
      # The pair lives in a binary String of this object's own (never
      # exposed, never resized, never embedded, so its bytes stay at one
      # address for its whole life): the library writes the hms_buf fields
      # there, and Ruby reads them with String#unpack1, with no Fiddle call
      # and no object allocated.
      class Bufs
        attr_reader :pair, :out, :err, :slot, :scratch, :scratch_addr

        def initialize(free_fn)
          @free = free_fn
          @pair = "\0".b * PAIR_STRING_SIZE
          @out = ::Fiddle::Pointer[@pair].to_i
          @err = @out + BUF_SIZE
          @slot = @err + BUF_SIZE
          # The response's data address as the pair holds it (8 bytes) and
          # a Pointer there: the library reuses that memory from call to
          # call, so the Pointer is made again only when the address changes.
          @data_key = "\xFF".b * 8 # no buffer lives there
          @data = nil
          grow(256)
          ObjectSpace.define_finalizer(self, self.class.releaser(free_fn, @pair, @out, @err))
        end

        # hms_method_call (+fn+) of +method+ with +request+ into this pair:
        # the status. A request up to SCRATCH_MAX is copied into the scratch
        # (Fiddle then gets integers only); a larger one is passed in place.
        def method_call(fn, method, request)
          rl = request.bytesize
          if rl <= @scratch_cap || (rl <= SCRATCH_MAX && grow(rl))
            @scratch[0, rl] = request
            return fn.call(method, @scratch_addr, rl, @out, @err)
          end

          rp = ::Fiddle::Pointer[request]
          fn.call(method, rp.to_i, rl, @out, @err)
        end

        # The latest answer, copied out. A buffer that held a large answer
        # is released afterwards.
        def answer
          len = @pair.unpack1(OUT_LEN)
          return "".b if len.zero?

          out = (@pair.start_with?(@data_key) ? @data : locate)[0, len]
          @free.call(@out) if len > RELEASE_ABOVE
          out
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

        # Frees what the library put in the pair; the String goes with GC.
        def self.releaser(free_fn, pair, out, err)
          proc do
            free_fn.call(out)
            free_fn.call(err)
            pair.clear # keeps the pair alive until its buffers are freed
          end
        end

        private

        # The Pointer at the response's (new) data address.
        def locate
          @data_key = @pair.byteslice(0, 8)
          @data = ::Fiddle::Pointer.new(@pair.unpack1(OUT_DATA))
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
        @method_call = @fn.fetch(:hms_method_call)
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

        b.answer
      end

      # hms_method_resolve: the handle of +name+ in +format+, or raises.
      def method_resolve(rt, name, format)
        b = bufs
        with_input(name) do |addr, len|
          rc = @fn.fetch(:hms_method_resolve).call(rt, addr, len, format, b.slot, b.err)
          raise error(rc, b, format) unless rc.zero?
        end
        b.pair.unpack1(SLOT)
      end

      # One hms_method_call (five arguments where hms_call takes ten):
      # returns the response bytes or raises the status (in +format+, the
      # handle's).
      def method_call(method, format, request)
        b = Thread.current[@key] || bufs # #bufs, inlined: the hot path
        rc = b.method_call(@method_call, method, request)
        raise error(rc, b, format) unless rc.zero?

        b.answer
      end

      # hms_method_free: the status (HMS_INVALID_HANDLE when not live).
      def method_free(method)
        @fn.fetch(:hms_method_free).call(method)
      end

      # One hms_call_batch: the result frame, or raises the status of a
      # refused frame (its hms.v1.Status is JSON).
      def call_batch(frame)
        b = bufs
        with_input(frame) do |addr, len|
          rc = @fn.fetch(:hms_call_batch).call(addr, len, b.out, b.err)
          raise error(rc, b, Format::JSON) unless rc.zero?
        end
        b.answer
      end

      def runtime_new(format, config)
        b = bufs
        with_input(config) do |addr, len|
          rc = @fn.fetch(:hms_runtime_new).call(format, addr, len, b.slot, b.err)
          raise error(rc, b, format) unless rc.zero?
        end
        b.pair.unpack1(SLOT)
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
        b.pair.unpack1(SLOT)
      end

      def service_unregister(svc)
        @fn.fetch(:hms_service_unregister).call(svc)
      end

      # hms_serve: how many waiting exported calls ran on this thread.
      def serve(rt, timeout_ms)
        b = bufs
        rc = @fn.fetch(:hms_serve).call(rt, timeout_ms, b.slot, b.err)
        raise error(rc, b, Format::JSON) unless rc.zero?

        b.pair.unpack1(SERVED)
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

      # hms_reply_context: the running handler's hms.v1.CallContext in
      # +format+, or raises.
      def reply_context(reply, format)
        b = bufs
        rc = @fn.fetch(:hms_reply_context).call(reply, format, b.out, b.err)
        raise error(rc, b, format) unless rc.zero?

        b.answer
      end

      # hms_reply_status: the status code (non-zero when the Status was refused).
      def reply_status(reply, format, status)
        @fn.fetch(:hms_reply_status).call(reply, format, ::Fiddle::Pointer[status].to_i, status.bytesize)
      end

      def subscribe(rt, format, filter)
        b = bufs
        with_input(filter) do |addr, len|
          rc = @fn.fetch(:hms_subscribe).call(rt, format, addr, len, b.slot, b.err)
          raise error(rc, b, format) unless rc.zero?
        end
        b.pair.unpack1(SLOT)
      end

      # The next event's bytes, nil on timeout; raises any other status.
      def poll(sub, timeout_ms, format)
        b = bufs
        rc = @fn.fetch(:hms_poll).call(sub, timeout_ms, b.out, b.err)
        return nil if rc == Status::DEADLINE_EXCEEDED
        raise error(rc, b, format) unless rc.zero?

        b.answer
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

        b.answer
      end

      private

      def with_input(bytes)
        return yield(0, 0) if bytes.nil? || bytes.empty?

        ptr = ::Fiddle::Pointer[bytes]
        yield(ptr.to_i, bytes.bytesize)
      end

      def error(rc, b, format)
        data, len = b.pair.unpack(ERR_FIELDS)
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
