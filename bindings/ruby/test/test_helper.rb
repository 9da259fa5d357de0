# frozen_string_literal: true

# Shared setup of the minitest suite. run_tests.sh runs it once per backend
# (HMS_BACKEND=fiddle, then ffi) under `ruby -w`.

$LOAD_PATH.unshift(File.expand_path("../lib", __dir__))
require "minitest/autorun"
require "hms"
require "rbconfig"

HMS.load_library

module HMSTest
  ECHO = "hms.sys.v1.System/Echo"
  ROOT = File.expand_path("../../..", __dir__)
  GEM_ROOT = File.expand_path("..", __dir__)

  # A fresh runtime per test, closed afterwards; more with #open_runtime.
  module RuntimeFixture
    def setup
      super
      @runtimes = []
      @rt = open_runtime
    end

    def teardown
      @runtimes.each(&:close)
      super
    end

    def open_runtime(config = nil, **kwargs)
      rt = HMS::Runtime.new(config, **kwargs)
      @runtimes << rt
      rt
    end

    # Asserts the block raises +klass+ and returns the exception, checking
    # that its code is the class's code.
    def assert_hms_error(klass, &block)
      error = assert_raises(klass, &block)
      assert_equal klass.code, error.code if klass < HMS::Error && klass.respond_to?(:code)
      error
    end
  end

  def ruby_binary
    File.join(RbConfig::CONFIG["bindir"], RbConfig::CONFIG["ruby_install_name"])
  end
end
