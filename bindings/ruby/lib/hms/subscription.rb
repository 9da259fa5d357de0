# frozen_string_literal: true

require_relative "errors"
require_relative "format"

module HMS
  # A polled subscription to a runtime's events (Runtime#subscribe).
  #
  #   sub.next(500)          # the next event, or nil after 500 ms
  #   sub.each_event(100).first(3)
  #
  # Events are hashes (CBOR or JSON subscriptions) or Hms::Events::V1::Event
  # messages (format: :protobuf). #close is idempotent.
  class Subscription
    include OwnedHandle

    # Longest single wait inside hms_poll, so Ruby sees Thread#raise,
    # Thread#kill and Ctrl-C between waits.
    SLICE_MS = 200

    attr_reader :handle

    def initialize(runtime_state, handle, format)
      @runtime = runtime_state
      @backend = runtime_state.backend
      @handle = handle
      @format = format
      @lock = Mutex.new
    end

    def format
      Format.name(@format)
    end

    def closed?
      @handle.zero?
    end

    # The next event, waiting up to +timeout_ms+ milliseconds (nil: until
    # one comes; 0: do not wait). Returns nil when none came in time.
    # Raises CancelledError when the runtime closed the subscription,
    # ClosedError after #close.
    def next(timeout_ms = nil)
      deadline = timeout_ms.nil? ? nil : now_ms + [Integer(timeout_ms), 0].max
      loop do
        wait = deadline.nil? ? SLICE_MS : (deadline - now_ms).clamp(0, SLICE_MS)
        handle = @handle
        raise ClosedError.new("the subscription is closed", origin: Format::ORIGIN) if handle.zero?

        begin
          raw = @backend.poll(handle, wait, @format)
        rescue InvalidHandleError
          raise ClosedError.new("the subscription is closed", origin: Format::ORIGIN) if @handle.zero?

          raise
        end
        return decode(raw) unless raw.nil?
        return nil if !deadline.nil? && now_ms >= deadline
      end
    end

    # Yields events until none comes within +timeout_ms+ (nil: wait for
    # ever) or the subscription closes. Without a block, an Enumerator.
    def each_event(timeout_ms = nil)
      return enum_for(:each_event, timeout_ms) unless block_given?

      loop do
        event = begin
          self.next(timeout_ms)
        rescue CancelledError, ClosedError
          nil
        end
        break if event.nil?

        yield event
      end
      self
    end

    def close
      handle = take_handle
      return nil if handle.zero?

      @backend.unsubscribe(handle)
      @runtime.forget(self)
      nil
    end

    def inspect
      "#<HMS::Subscription #{closed? ? 'closed' : Kernel.format('handle=0x%x', @handle)}>"
    end

    private

    def decode(raw)
      return Proto.message_class("hms.events.v1.Event").decode(raw) if @format == Format::PROTOBUF

      Format.decode(raw, @format)
    end

    def now_ms
      Process.clock_gettime(Process::CLOCK_MONOTONIC, :millisecond)
    end
  end
end
