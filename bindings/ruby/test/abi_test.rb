# frozen_string_literal: true

require_relative "test_helper"
require "open3"
require "rbconfig"
require "tmpdir"
require_relative "../tools/gen_abi"

class AbiTest < Minitest::Test
  include HMSTest

  def test_generated_abi_table_is_fresh
    cdef = File.join(ROOT, "include", "hms_ffi_cdef.h")
    assert_equal HMSGen.generate(cdef), File.binread(File.join(GEM_ROOT, "lib", "hms", "abi.rb")),
                 "lib/hms/abi.rb is stale: run bindings/ruby/generate.sh"
  end

  # lib/hms/gen is what generate.sh makes of include/proto today.
  def test_generated_protobuf_classes_are_fresh
    Dir.mktmpdir do |dir|
      protos = Dir.glob("hms/**/*.proto", base: File.join(ROOT, "include", "proto")).sort
      _out, err, status = Open3.capture3("protoc", "--ruby_out=#{dir}", *protos, chdir: File.join(ROOT, "include", "proto"))
      assert status.success?, err
      _out, err, status = Open3.capture3(ruby_binary, File.join(GEM_ROOT, "tools", "fix_requires.rb"), dir)
      assert status.success?, err
      fresh = Dir.glob("**/*_pb.rb", base: dir).sort
      committed = Dir.glob("**/*_pb.rb", base: File.join(GEM_ROOT, "lib", "hms", "gen")).sort
      assert_equal fresh, committed
      fresh.each do |rel|
        assert File.binread(File.join(dir, rel)) == File.binread(File.join(GEM_ROOT, "lib", "hms", "gen", rel)),
               "lib/hms/gen/#{rel} is stale: run bindings/ruby/generate.sh"
      end
    end
  end

  def test_constants_match_the_header_macros
    header = File.read(File.join(ROOT, "include", "hms_ffi.h"))
    macros = header.scan(/^#define (HMS_\w+) (\d+)u?\b/).to_h { |name, value| [name.to_sym, Integer(value, 10)] }
    refute_empty macros
    assert_equal macros, HMS::ABI::CONSTANTS
  end

  def test_every_header_function_is_declared_and_callable
    header = File.read(File.join(ROOT, "include", "hms_ffi.h"))
    declared = header.scan(/^\w[\w\s*]*?\b(hms_\w+)\(/).flatten.uniq.map(&:to_sym).sort
    assert_equal declared, HMS::ABI::FUNCTIONS.keys.sort
  end

  def test_status_codes_and_error_classes_come_from_the_enum
    assert_equal 5, HMS::Status::NOT_FOUND
    assert_equal 104, HMS::Status::PANIC
    expected = %w[CancelledError UnknownError InvalidArgumentError DeadlineExceededError NotFoundError
                  AlreadyExistsError PermissionDeniedError ResourceExhaustedError FailedPreconditionError
                  AbortedError OutOfRangeError UnimplementedError InternalError UnavailableError DataLossError
                  UnauthenticatedError InvalidHandleError DecodeError HandlerError IncompatibleError PanicError]
    expected.each do |name|
      klass = HMS.const_get(name)
      assert_operator klass, :<, HMS::Error
      assert_equal klass, HMS::Error.from_status(klass.code, "x").class
    end
    assert_equal HMS::Status::CODES.size - 1, HMS::Error::BY_CODE.size
  end

  def test_loaded_library_version
    assert_equal [HMS::Native::ABI_MAJOR, HMS::Native::ABI_MINOR], HMS.abi_version
    assert_match(/\A\d+\.\d+\.\d+/, HMS.library_version)
    assert_equal (ENV["HMS_BACKEND"].to_s.empty? ? "fiddle" : ENV["HMS_BACKEND"]), HMS.backend
  end

  def test_check_abi_refuses_another_major_naming_both_versions
    error = assert_raises(HMS::IncompatibleError) { HMS::Native.check_abi!((2 << 16) | 3, "/x/libhms_ffi.so") }
    assert_equal HMS::Status::INCOMPATIBLE, error.code
    assert_includes error.message, "ABI 2.3"
    assert_includes error.message, "ABI #{HMS::Native::ABI_MAJOR}.#{HMS::Native::ABI_MINOR}"
    assert_equal({ "library_abi" => "2.3", "binding_abi" => "1.4" }, error.details)
    assert_raises(HMS::IncompatibleError) { HMS::Native.check_abi!(0) }
    assert_nil HMS::Native.check_abi!((1 << 16) | 7)
    assert_nil HMS::Native.check_abi!((1 << 16) | 4)
  end

  # This gem is generated from the ABI 1.4 header (method handles and
  # batches of 1.1, call context and status replies of 1.2,
  # HMS_SERVICE_EXPORT of 1.3, hms_serve of 1.4): a 1.3 library is too old.
  def test_binding_requires_abi_1_4
    assert_equal [1, 4], [HMS::Native::ABI_MAJOR, HMS::Native::ABI_MINOR]
    error = assert_raises(HMS::IncompatibleError) { HMS::Native.check_abi!((1 << 16) | 3, "/x/libhms_ffi.so") }
    assert_includes error.message, "has ABI 1.3"
    assert_includes error.message, "needs 1.x with x >= 4"
    assert_equal({ "library_abi" => "1.3", "binding_abi" => "1.4" }, error.details)
    %i[hms_method_resolve hms_method_call hms_method_free hms_call_batch hms_reply_context
       hms_reply_status hms_serve].each do |name|
      assert HMS::ABI::FUNCTIONS.key?(name), name
    end
  end

  # A foreign library reporting ABI 2.3, and an older one reporting 1.0,
  # are refused at load, by both backends.
  def test_loading_a_library_of_another_abi_raises_incompatible
    { "2.3" => "(2u << 16) | 3u", "1.0" => "1u << 16" }.each do |version, value|
      refuse_stub(version, value)
    end
  end

  def refuse_stub(version, value)
    Dir.mktmpdir do |dir|
      src = File.join(dir, "stub.c")
      lib = File.join(dir, "libhms_stub.so")
      File.write(src, "#include <stdint.h>\nuint32_t hms_abi_version(void) { return #{value}; }\n")
      _out, err, status = Open3.capture3("cc", "-shared", "-fPIC", "-o", lib, src)
      assert status.success?, "cc failed: #{err}"
      %w[fiddle ffi].each do |backend|
        script = <<~RUBY
          require "hms"
          begin
            HMS.load_library(#{lib.inspect}, backend: #{backend.inspect})
          rescue HMS::IncompatibleError => e
            puts e.message
            exit 3
          end
        RUBY
        out, err, status = Open3.capture3(ruby_binary, "-w", "-I", File.join(GEM_ROOT, "lib"), "-e", script)
        assert_equal 3, status.exitstatus, "#{backend}: #{out} #{err}"
        assert_includes out, "has ABI #{version}"
        assert_includes out, "built for ABI 1.4"
        assert_empty err
      end
    end
  end

  def test_library_path_rules
    assert_raises(ArgumentError) { HMS::Native.load_library("relative/libhms_ffi.so") }
    assert_raises(HMS::LoadError) { HMS::Native.load_library("/nonexistent/libhms_ffi.so") }
    other = HMS::Native.backend.name == "ffi" ? "fiddle" : "ffi"
    assert_raises(ArgumentError) { HMS::Native.load_library(HMS::Native.backend.path, backend: other) }
    assert_same HMS::Native.backend, HMS::Native.load_library(HMS::Native.backend.path)
    assert File.absolute_path?(HMS::Native.backend.path)
  end

  def test_environment_selects_library_and_backend
    script = 'require "hms"; HMS.load_library; print HMS.backend, " ", HMS::Native.backend.path'
    env = { "HMS_FFI_LIBRARY" => HMS::Native.backend.path, "HMS_BACKEND" => "ffi" }
    out, err, status = Open3.capture3(env, ruby_binary, "-w", "-I", File.join(GEM_ROOT, "lib"), "-e", script)
    assert status.success?, err
    assert_equal "ffi #{HMS::Native.backend.path}", out

    env = { "HMS_BACKEND" => "cobol" }
    _out, err, status = Open3.capture3(env, ruby_binary, "-I", File.join(GEM_ROOT, "lib"), "-e", script)
    refute status.success?
    assert_includes err, 'unknown HMS backend "cobol"'
  end
end
