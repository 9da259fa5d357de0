# frozen_string_literal: true

module HMS
  # What every object owning one library handle (a service, a subscription,
  # a method handle) does on close: take the handle exactly once, under the
  # object's lock, so concurrent closes free it once. Expects @lock and
  # @handle.
  module OwnedHandle
    private

    # The handle, leaving 0 behind; 0 when it was taken already.
    def take_handle
      @lock.synchronize do
        handle = @handle
        @handle = 0
        handle
      end
    end
  end
end
