# frozen_string_literal: true

require_relative "test_helper"
require "open3"

# Version refusal against a real core of another ABI (tests/versions/README.md):
# tests/versions/build_other_abi.sh builds rust_core/target/abi-test/release/
# libhms_ffi.so, whose hms_abi_version() reports 2.0. Loading it through the
# binding, on both backends, by explicit path and through $HMS_FFI_LIBRARY,
# raises HMS::IncompatibleError naming both versions, at load time.
# (abi_test.rb refuses a compiled stub library the same way.)
#
# The library: $HMS_FFI_OTHER_ABI_LIBRARY (run_tests.sh passes it through),
# else that default build when it exists.
class VersionsTest < Minitest::Test
  include HMSTest

  DEFAULT_OTHER = File.join(ROOT, "rust_core", "target", "abi-test", "release", "libhms_ffi.so")

  def other_library
    path = ENV.fetch("HMS_FFI_OTHER_ABI_LIBRARY", "")
    unless path.empty?
      path = File.expand_path(path)
      assert File.file?(path), "HMS_FFI_OTHER_ABI_LIBRARY=#{path} does not exist"
      return path
    end
    return DEFAULT_OTHER if File.file?(DEFAULT_OTHER)

    skip "no library of another ABI: build one with tests/versions/build_other_abi.sh " \
         "and set HMS_FFI_OTHER_ABI_LIBRARY to the path it prints"
  end

  # Runs +body+ in a fresh `ruby -w` (the library is loaded once per
  # process); it prints the message of the IncompatibleError and exits 3.
  def refuse(body, env = {})
    script = <<~RUBY
      require "hms"
      require "fiddle"
      begin
        #{body}
        puts "loaded without error"
        exit 1
      rescue HMS::IncompatibleError => e
        raise "code \#{e.code}" unless e.code == HMS::Status::INCOMPATIBLE
        puts e.message
        exit 3
      end
    RUBY
    out, err, status = Open3.capture3(env, ruby_binary, "-w", "-I", File.join(GEM_ROOT, "lib"), "-e", script)
    assert_equal 3, status.exitstatus, "#{out} #{err}"
    assert_empty err
    out
  end

  # "2.0": what the other library's hms_abi_version() reports.
  def reported_version(path)
    script = 'require "fiddle"; v = Fiddle::Function.new(Fiddle.dlopen(ARGV[0])["hms_abi_version"], [], ' \
             'Fiddle::TYPE_INT).call & 0xFFFFFFFF; print "#{v >> 16}.#{v & 0xFFFF}"'
    out, err, status = Open3.capture3(ruby_binary, "-e", script, path)
    assert status.success?, err
    out
  end

  def test_the_other_build_reports_another_major
    major, = reported_version(other_library).split(".").map(&:to_i)
    refute_equal HMS::Native::ABI_MAJOR, major
  end

  def test_explicit_load_of_another_abi_raises_incompatible_on_both_backends
    path = other_library
    theirs = reported_version(path)
    %w[fiddle ffi].each do |backend|
      out = refuse("HMS.load_library(#{path.inspect}, backend: #{backend.inspect})")
      assert_includes out, "ABI #{theirs}", backend
      assert_includes out, "ABI #{HMS::Native::ABI_MAJOR}.#{HMS::Native::ABI_MINOR}", backend
      assert_includes out, path, backend
    end
  end

  # Through $HMS_FFI_LIBRARY the first use (here opening a runtime) loads the
  # library and refuses it before any runtime exists.
  def test_library_from_the_environment_is_refused_on_first_use
    path = other_library
    theirs = reported_version(path)
    %w[fiddle ffi].each do |backend|
      env = { "HMS_FFI_LIBRARY" => path, "HMS_BACKEND" => backend }
      out = refuse("HMS::Runtime.new", env)
      assert_includes out, "ABI #{theirs}", backend
      assert_includes out, "ABI #{HMS::Native::ABI_MAJOR}.#{HMS::Native::ABI_MINOR}", backend
    end
  end
end
