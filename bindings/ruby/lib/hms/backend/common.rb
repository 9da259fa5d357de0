# frozen_string_literal: true

module HMS
  module Backend
    # What both backends share: per-fiber buffer pairs, the stash that
    # gives a handler's nested calls a pair of their own, and the handler
    # trampoline's entry into Ruby.
    module Common
      attr_reader :name, :path

      # The buffer pair of the current fiber (made on first use, reused by
      # every later call, freed by a finalizer when the fiber is gone).
      def bufs
        Thread.current[@key] || (Thread.current[@key] = (Thread.current[@spare_key]&.pop || new_bufs))
      end

      # Detaches the current pair while a handler runs: the outer call still
      # owns it, so calls the handler makes get another one.
      def stash_bufs
        saved = Thread.current[@key]
        Thread.current[@key] = nil
        saved
      end

      def restore_bufs(saved)
        used = Thread.current[@key]
        Thread.current[@key] = saved
        return if used.nil?

        spares = (Thread.current[@spare_key] ||= [])
        spares.push(used) if spares.size < 4
      end

      # Called by the library, through the backend's closure, for every call
      # of a Ruby service. Nothing may unwind into C from here.
      def handle(reply, method, format, request, user_data)
        Services.dispatch(self, reply, method, format, request, user_data)
      end

      private

      def setup_common(name, path)
        @name = name
        @path = path
        @key = :"__hms_#{name}_bufs"
        @spare_key = :"__hms_#{name}_spare_bufs"
      end
    end
  end
end
