# frozen_string_literal: true

require_relative "test_helper"
require "open3"

# A panic inside the core comes back as HMS::PanicError (HMS_PANIC), and the
# binding's reused buffers stay good for the next call.
#
# The fault-injection copy of the core (tests/faults/build_fault_library.sh,
# Cargo feature fault-injection) has the built-in untyped service
# hms.test.v1.Faults: Panic panics before answering, PanicWhileAnswering
# grows the caller's response buffer by 1 MiB and then panics. CI passes its
# path in $HMS_FFI_FAULT_LIBRARY (run_tests.sh passes it through).
#
# The library is loaded once per process, so, as versions_test.rb does for
# the other-ABI build, this file runs again in a fresh `ruby -w` with
# HMS_FFI_LIBRARY naming the fault copy (and the suite's HMS_BACKEND); that
# process runs the panics.
class FaultsTest < Minitest::Test
  include HMSTest
  include HMSTest::RuntimeFixture

  PANIC = "hms.test.v1.Faults/Panic"
  PANIC_WHILE_ANSWERING = "hms.test.v1.Faults/PanicWhileAnswering"
  ROUNDS = 3
  # Big enough that the echo answer needs more than a fresh buffer.
  ECHO_PAYLOAD_BYTES = 96 * 1024
  # Set in the environment of the run against the fault library.
  CHILD = "HMS_RUBY_FAULT_CHILD"
  # Call options make a call go by name (hms_call), never through the
  # method handle a runtime caches per name.
  BY_NAME = { "trace_id" => "faults" }.freeze

  def test_a_panic_inside_the_core_then_call_again_with_the_same_buffers
    return survive_panics if ENV[CHILD] == "1"

    library = fault_library
    env = {
      "HMS_FFI_LIBRARY" => library,
      "HMS_FFI_FAULT_LIBRARY" => library,
      "HMS_BACKEND" => HMS::Native.backend.name,
      CHILD => "1",
      # The core's panic message on stderr is expected; keep it short.
      "RUST_BACKTRACE" => "0"
    }
    out, err, status = Open3.capture3(env, ruby_binary, "-w", "-I", File.join(GEM_ROOT, "lib"),
                                      "-I", File.join(GEM_ROOT, "test"), __FILE__,
                                      "-n", __method__.to_s, chdir: GEM_ROOT)
    assert status.success?, "the run against #{library} failed:\n#{out}\n#{err}"
    assert_includes out, "survived #{ROUNDS * 6} panics", out
    assert_match(/1 runs, \d+ assertions, 0 failures, 0 errors, 0 skips/, out)
    refute_match(/warning:/, err, "ruby -w warned in the run against #{library}")
  end

  # The release library of the normal suite never has the service that
  # panics on purpose.
  def test_the_release_library_has_no_faults_service
    assert_hms_error(HMS::NotFoundError) { @rt.call(PANIC, {}) }
    assert_hms_error(HMS::NotFoundError) { @rt.call(PANIC, {}, options: BY_NAME) }
    assert_hms_error(HMS::NotFoundError) { @rt.method_handle(PANIC_WHILE_ANSWERING) }
  end

  private

  def in_ci?
    %w[true 1].include?(ENV.fetch("CI", "").downcase)
  end

  # $HMS_FFI_FAULT_LIBRARY; skips without it, but fails in CI, where a
  # missing library must never let the test pass unnoticed.
  def fault_library
    path = ENV.fetch("HMS_FFI_FAULT_LIBRARY", "")
    if path.empty?
      reason = "HMS_FFI_FAULT_LIBRARY is not set: build the fault-injection core with " \
               'HMS_FFI_FAULT_LIBRARY="$(bash tests/faults/build_fault_library.sh | tail -n1)"'
      flunk "#{reason} (CI=true: this test must run)" if in_ci?
      skip reason
    end
    path = File.realpath(File.expand_path(path, ROOT))
    assert File.file?(path), "HMS_FFI_FAULT_LIBRARY=#{path} is no file"
    path
  end

  # Runs in the process that loaded the fault library.
  def survive_panics
    library = File.realpath(ENV.fetch("HMS_FFI_FAULT_LIBRARY"))
    assert_equal library, File.realpath(HMS::Native.backend.path)
    mapped = File.readlines("/proc/self/maps").grep(/libhms_ffi/).map { |line| line.split(" ", 6).last.strip }
    assert_equal [library], mapped.uniq, "another libhms_ffi is mapped into the process"

    panics = 0
    by_handle = [PANIC, PANIC_WHILE_ANSWERING].to_h { |name| [name, @rt.method_handle(name)] }
    echo_handle = @rt.method_handle(ECHO, format: :protobuf)
    # Three ways in, each followed by an echo the same way, through the
    # binding's reused buffers: by name (hms_call), a plain call (through
    # the handle the runtime caches per name) and an explicit MethodHandle.
    paths = {
      "by name" => [->(name) { @rt.call(name, {}, options: BY_NAME) },
                    ->(request) { @rt.call(ECHO, request, options: Hms::V1::CallOptions.new(**BY_NAME)) }],
      "plain call" => [->(name) { @rt.call(name, {}) }, ->(request) { @rt.call(ECHO, request) }],
      "by MethodHandle" => [->(name) { by_handle.fetch(name).call({}) }, ->(request) { echo_handle.call(request) }]
    }
    ROUNDS.times do |round|
      [PANIC, PANIC_WHILE_ANSWERING].each do |name|
        paths.each do |way, (panic, echo)|
          label = "#{name} #{way}, round #{round}"
          error = assert_raises(HMS::PanicError, label) { panic.call(name) }
          assert_equal HMS::Status::PANIC, error.code, label
          assert_equal 104, error.code, label
          assert_includes error.status_message, "fault injected", label
          panics += 1
          text = "after #{label}"
          payload = panics.chr.b * ECHO_PAYLOAD_BYTES
          reply = echo.call(Hms::Sys::V1::EchoRequest.new(text: text, payload: payload))
          assert_equal text, reply.text, label
          assert_equal payload, reply.payload, "#{label}: the payload came back changed"
        end
      end
    end
    (by_handle.values + [echo_handle]).each(&:close)
    puts "survived #{panics} panics"
  end
end
