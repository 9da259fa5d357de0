# frozen_string_literal: true

require_relative "test_helper"
require "open3"

# The fast paths of ABI 1.1: method handles (hms_method_resolve,
# hms_method_call, hms_method_free) and batches (hms_call_batch), through
# HMS::MethodHandle, Runtime#batch_raw, the runtime's own handle cache, and
# the backend's externs with hand-made frames.
class FastPathsTest < Minitest::Test
  include HMSTest
  include HMSTest::RuntimeFixture

  MAX_CALLS = HMS::ABI::CONSTANTS.fetch(:HMS_BATCH_MAX_CALLS)
  HEALTH = "hms.sys.v1.System/Health"

  def setup
    super
    @echo = @rt.method_handle(ECHO, format: :protobuf)
  end

  def pb(text, payload = "".b)
    Hms::Sys::V1::EchoRequest.encode(Hms::Sys::V1::EchoRequest.new(text: text, payload: payload))
  end

  def text_of(bytes)
    Hms::Sys::V1::EchoResponse.decode(bytes).text
  end

  def backend
    HMS::Native.backend
  end

  # A Ruby service counting its calls, and a protobuf handle to it.
  def counter
    calls = []
    @rt.register_service("demo.v1.Counter", "Hit" => ->(req) { calls << req; {} })
    [calls, @rt.method_handle("demo.v1.Counter/Hit", format: :json)]
  end

  def frame(handles, requests)
    HMS::Batch.frame(handles, requests)
  end

  # hms_call_batch with raw pointers (NULL where nil), as a C caller would
  # make it: the status only.
  def raw_call_batch_null
    if backend.name == "fiddle"
      backend.function(:hms_call_batch).call(0, 8, 0, 0)
    else
      backend.functions.hms_call_batch(nil, 8, nil, nil)
    end
  end

  # -- method handles --------------------------------------------------

  def test_call_raw_in_each_format
    assert_equal pb("hi"), @echo.call_raw(pb("hi"))
    assert_equal Encoding::BINARY, @echo.call_raw(pb("hi")).encoding
    assert_equal "".b, @echo.call_raw("".b), "the empty request is the default message"
    cbor = @rt.method_handle(ECHO, format: :cbor)
    assert_equal "\xA1dtextbhi".b, cbor.call_raw("\xA1dtextbhi".b)
    json = @rt.method_handle(ECHO, format: :json)
    assert_equal '{"text":"hi"}', json.call_raw('{"text":"hi"}')
    big = pb("big", "\x01".b * ((64 << 10) + 3)) # past the Fiddle backend's scratch memory
    assert_equal big, @echo.call_raw(big)
    assert_raises(TypeError) { @echo.call_raw(nil) }
    assert_raises(TypeError) { @echo.call_raw(Hms::Sys::V1::EchoRequest.new) }
  end

  def test_handle_attributes_and_default_format
    assert_equal ECHO, @echo.name
    assert_equal :protobuf, @echo.format
    assert_equal HMS::Format::PROTOBUF, @echo.format_code
    assert_same @rt, @echo.runtime
    refute @echo.closed?
    refute_equal 0, @echo.handle
    assert_match(/#<HMS::MethodHandle hms\.sys\.v1\.System\/Echo handle=0x\h+ format=protobuf>/, @echo.inspect)
    assert_equal HMS::Format.name(@rt.format), @rt.method_handle(ECHO).format
    name = +"hms.sys.v1.System/Echo"
    handle = @rt.method_handle(name)
    name << "x"
    assert_equal ECHO, handle.name, "the handle keeps its own copy of the name"
  end

  def test_typed_call_mirrors_runtime_call
    reply = @echo.call(Hms::Sys::V1::EchoRequest.new(text: "pb", payload: "\x00\xff".b))
    assert_instance_of Hms::Sys::V1::EchoResponse, reply
    assert_equal ["pb", "\x00\xff".b], [reply.text, reply.payload]
    assert_equal "kw", @echo.call({ text: "kw" }).text
    assert_equal "", @echo.call.text
    assert_equal "raw", text_of(@echo.call(pb("raw"))), "a String is raw bytes"
    assert_raises(TypeError) { @echo.call(Hms::Sys::V1::HealthRequest.new) }

    hashes = @rt.method_handle(ECHO)
    assert_equal({ "text" => "h", "payload" => "\x01".b }, hashes.call({ "text" => "h", "payload" => "\x01".b }))
    assert_equal({}, hashes.call)
    assert_raises(ArgumentError) { hashes.call(Hms::Sys::V1::EchoRequest.new) }
    json = @rt.method_handle(ECHO, format: :json)
    assert_equal({ "text" => "j", "payload" => "AQ==" }, json.call({ "text" => "j", "payload" => "AQ==" }))
    health = @rt.method_handle(HEALTH, format: :protobuf).call
    assert_equal :SERVING, health.status
  end

  def test_untyped_host_method_through_a_handle
    @rt.register_service("demo.v1.Any", "Id" => ->(value) { value })
    id = @rt.method_handle("demo.v1.Any/Id")
    assert_equal [1, "two"], id.call([1, "two"])
    assert_raises(TypeError) { @rt.method_handle("demo.v1.Any/Id", format: :protobuf).call({}) }
  end

  def test_block_form_closes_the_handle
    kept = nil
    value = @rt.method_handle(ECHO, format: :protobuf) do |echo|
      kept = echo
      text_of(echo.call_raw(pb("scoped")))
    end
    assert_equal "scoped", value
    assert kept.closed?
  end

  def test_resolve_errors
    error = assert_hms_error(HMS::NotFoundError) { @rt.method_handle("demo.v1.Nope/Call") }
    assert_equal({ "service" => "demo.v1.Nope" }, error.details)
    assert_hms_error(HMS::NotFoundError) { @rt.method_handle("hms.sys.v1.System/Nope", format: :protobuf) }
    assert_hms_error(HMS::InvalidArgumentError) { @rt.method_handle("no-slash") }
    assert_hms_error(HMS::InvalidArgumentError) { @rt.method_handle("") }
    assert_hms_error(HMS::InvalidArgumentError) { @rt.method_handle("hms.sys.v1.System/Ec\xffho".b) }
    error = assert_hms_error(HMS::InvalidArgumentError) { @rt.method_handle(ECHO, format: 9) }
    assert_equal "9", error.details["format"], "the status of an unknown format is JSON, and decodes"
    assert_raises(ArgumentError) { @rt.method_handle(ECHO, format: :yaml) }
    assert_raises(TypeError) { @rt.method_handle(:"hms.sys.v1.System/Echo") }
  end

  def test_call_errors_keep_their_code_and_status
    error = assert_hms_error(HMS::DecodeError) { @echo.call_raw("\xff\xff".b) }
    assert_equal ECHO, error.origin
    cbor = @rt.method_handle(ECHO, format: :cbor)
    error = assert_hms_error(HMS::DecodeError) { cbor.call_raw("\xff\xfe".b) }
    assert_equal ECHO, error.origin, "the status decodes in the handle's format"
    assert_equal pb("after"), @echo.call_raw(pb("after"))
  end

  def test_closed_handle_raises_closed_error
    h = @echo.handle
    @echo.close
    @echo.close # idempotent
    assert @echo.closed?
    assert_equal 0, @echo.handle
    error = assert_raises(HMS::ClosedError) { @echo.call_raw(pb("x")) }
    assert_equal HMS::Status::INVALID_HANDLE, error.code
    assert_includes error.message, "method handle is closed"
    assert_raises(HMS::ClosedError) { @echo.call }
    assert_raises(HMS::ClosedError) { @echo.batch_raw([pb("x")]) }
    assert_raises(HMS::ClosedError) { @rt.batch_raw([[@echo, pb("x")]]) }
    assert_match(/closed/, @echo.inspect)
    # The freed handle itself: stale for good.
    assert_equal HMS::Status::INVALID_HANDLE, backend.method_free(h)
    assert_hms_error(HMS::InvalidHandleError) { backend.method_call(h, HMS::Format::PROTOBUF, pb("x")) }
  end

  def test_zero_wrong_kind_and_made_up_handles
    [0, @rt.handle, 0x7fff_0000_0000_0001].each do |h|
      error = assert_hms_error(HMS::InvalidHandleError) { backend.method_call(h, HMS::Format::PROTOBUF, pb("x")) }
      # The library's own text: its status is JSON (a dead handle has no
      # format), and decodes although the call asked for protobuf.
      assert_includes error.status_message, "method handle"
      assert_equal HMS::Status::INVALID_HANDLE, backend.method_free(h)
    end
    # A method handle is no runtime either.
    assert_equal HMS::Status::INVALID_HANDLE, backend.runtime_free(@echo.handle)
    assert_equal pb("ok"), @echo.call_raw(pb("ok"))
  end

  def test_runtime_close_invalidates_its_handles
    rt = open_runtime
    echo = rt.method_handle(ECHO, format: :protobuf)
    h = echo.handle
    rt.close
    assert echo.closed?
    error = assert_raises(HMS::ClosedError) { echo.call_raw(pb("x")) }
    assert_includes error.message, "runtime of this method handle is closed"
    assert_raises(HMS::ClosedError) { echo.batch_raw([pb("x")]) }
    assert_raises(HMS::ClosedError) { rt.method_handle(ECHO) }
    assert_raises(HMS::ClosedError) { rt.batch_raw([[echo, pb("x")]]) }
    assert_hms_error(HMS::InvalidHandleError) { backend.method_call(h, HMS::Format::PROTOBUF, pb("x")) }
    echo.close # nothing left to free; no error
  end

  # A handle names the method, not one registration of its service: once
  # the service is gone it answers what hms_call answers, and it reaches the
  # service registered anew under the name.
  def test_host_service_handle_after_unregister
    service = @rt.register_service("demo.v1.Gone", "Ping" => ->(_) { { "pong" => true } })
    ping = @rt.method_handle("demo.v1.Gone/Ping")
    assert_equal({ "pong" => true }, ping.call)
    service.close
    error = assert_hms_error(HMS::NotFoundError) { ping.call }
    assert_equal({ "service" => "demo.v1.Gone" }, error.details)
    assert_equal error.message, assert_raises(HMS::NotFoundError) { @rt.call("demo.v1.Gone/Ping", {}) }.message
    assert_raises(HMS::BatchError) { ping.batch_raw(["{}"]) }
    @rt.register_service("demo.v1.Gone", "Ping" => ->(_) { { "pong" => "again" } })
    assert_equal({ "pong" => "again" }, ping.call)
  end

  def test_handles_from_many_threads
    threads = Array.new(4) do |t|
      Thread.new { Array.new(200) { |i| text_of(@echo.call_raw(pb("#{t}-#{i}"))) } }
    end
    threads.each_with_index do |thread, t|
      assert_equal Array.new(200) { |i| "#{t}-#{i}" }, thread.value
    end
  end

  def test_dropped_handles_are_freed_by_the_finalizer
    script = <<~RUBY
      require "hms"
      rt = HMS::Runtime.new
      def resolve(rt) = rt.method_handle("hms.sys.v1.System/Echo").handle
      handles = Array.new(3) { resolve(rt) }
      4.times { GC.start(full_mark: true, immediate_sweep: true) }
      backend = HMS::Native.backend
      puts handles.count { |h| backend.method_free(h) == HMS::Status::INVALID_HANDLE }
      rt.close
    RUBY
    out, err, status = Open3.capture3(ruby_binary, "-w", "-I", File.join(GEM_ROOT, "lib"), "-e", script)
    assert status.success?, err
    assert_empty err
    assert_operator out.to_i, :>=, 2, "finalizers freed the dropped handles (conservative GC may keep one)"
  end

  # -- batches ---------------------------------------------------------

  def test_batch_of_1000_in_order
    requests = Array.new(1000) { |i| pb("n#{i}", "\x00".b * (i % 7)) }
    results = @echo.batch_raw(requests)
    assert_equal requests, results
    assert(results.all? { |r| r.encoding == Encoding::BINARY })
  end

  def test_batch_failures_in_the_middle_do_not_stop_later_calls
    calls, hit = counter
    requests = Array.new(10) { |i| pb("n#{i}") }
    requests[3] = "\xff\xff".b # not an EchoRequest
    requests[7] = "\x0a".b # truncated
    error = assert_raises(HMS::BatchError) { @echo.batch_raw(requests) }
    assert_kind_of HMS::Error, error
    assert_equal HMS::Status::DECODE_ERROR, error.code
    assert_equal ECHO, error.origin
    assert_match(/\A\[DECODE_ERROR\] 2 of 10 calls of the batch failed; the first, call 3: /, error.message)
    assert_equal [3, 7], error.failures.keys
    error.failures.each_value do |failure|
      assert_instance_of HMS::DecodeError, failure
      assert_equal ECHO, failure.origin
    end
    assert_equal 10, error.results.size
    (0...10).each do |i|
      if [3, 7].include?(i)
        assert_same error.failures[i], error.results[i]
      else
        assert_equal "n#{i}", text_of(error.results[i])
      end
    end

    # Side effects: a failing call between two calls of a Ruby service.
    mixed = [[hit, "{}"], [@echo, "\xff".b], [hit, '{"n":2}']]
    error = assert_raises(HMS::BatchError) { @rt.batch_raw(mixed) }
    assert_equal [1], error.failures.keys
    assert_equal [{}, { "n" => 2 }], calls, "the call after the failure ran"
  end

  def test_mixed_methods_and_formats
    @rt.register_service("demo.v1.Twice", "Twice" => ->(req) { { "n" => req["n"] * 2 } })
    twice = @rt.method_handle("demo.v1.Twice/Twice", format: :json)
    health = @rt.method_handle(HEALTH, format: :protobuf)
    cbor = @rt.method_handle(ECHO, format: :cbor)
    results = @rt.batch_raw([[@echo, pb("a")], [health, ""], [twice, '{"n":21}'], [cbor, CBOR.encode({ "text" => "c" })],
                             [@echo, pb("b")]])
    assert_equal "a", text_of(results[0])
    assert_equal :SERVING, Hms::Sys::V1::HealthResponse.decode(results[1]).status
    assert_equal({ "n" => 42 }, JSON.parse(results[2]))
    assert_equal({ "text" => "c" }, CBOR.decode(results[3]))
    assert_equal "b", text_of(results[4])

    # Each failure's status decodes in its own handle's format.
    error = assert_raises(HMS::BatchError) do
      @rt.batch_raw([[cbor, "\xff\xfe".b], [twice, "{nope"], [@echo, "\xff".b], [twice, '{"n":null}']])
    end
    assert_equal [0, 1, 2, 3], error.failures.keys
    assert_equal HMS::Status::DECODE_ERROR, error.code
    assert_equal [ECHO, "demo.v1.Twice/Twice", ECHO], error.failures.values_at(0, 1, 2).map(&:origin)
    assert_instance_of HMS::HandlerError, error.failures[3], "the handler raised (nil * 2)"
  end

  def test_empty_batches
    assert_equal [], @echo.batch_raw([])
    assert_equal [], @rt.batch_raw([])
    # The core's answer to an empty frame: an empty result frame.
    assert_equal [0].pack("Q<"), backend.call_batch([0].pack("Q<"))
  end

  def test_batch_argument_errors
    other = open_runtime.method_handle(ECHO, format: :protobuf)
    assert_raises(ArgumentError) { @rt.batch_raw([[other, pb("x")]]) }
    assert_raises(TypeError) { @rt.batch_raw([[ECHO, pb("x")]]) }
    assert_raises(ArgumentError) { @rt.batch_raw([[@echo]]) }
    assert_raises(ArgumentError) { @rt.batch_raw([[@echo, pb("x"), 1]]) }
    assert_raises(ArgumentError) { @rt.batch_raw([@echo]) }
    assert_raises(TypeError) { @echo.batch_raw([pb("x"), nil]) }
    assert_raises(TypeError) { @echo.batch_raw([1]) }
    # Strings of any encoding go in as their bytes.
    utf8 = Hms::Sys::V1::EchoRequest.encode(Hms::Sys::V1::EchoRequest.new(text: "é")).force_encoding(Encoding::UTF_8)
    assert_equal ["é", "x"], @echo.batch_raw([utf8, pb("x")]).map { |r| text_of(r) }
  end

  def test_freed_and_zero_handles_inside_a_frame_fail_only_their_calls
    stale = @rt.method_handle(ECHO, format: :protobuf)
    stale_handle = stale.handle
    stale.close
    results = backend.call_batch(frame([@echo.handle, 0, stale_handle, @rt.handle, @echo.handle],
                                       [pb("a"), pb("b"), pb("c"), pb("d"), pb("e")]))
    codes = HMS::Batch.codes(results, 5)
    payloads = HMS::Batch.split(results, 5)
    refute HMS::Batch.ok?(results, 5)
    invalid = HMS::Status::INVALID_HANDLE
    assert_equal [0, invalid, invalid, invalid, 0], codes
    assert_equal %w[a e], payloads.values_at(0, 4).map { |p| text_of(p) }
    status = JSON.parse(payloads[1]) rescue nil # rubocop:disable Style/RescueModifier
    assert(status.nil? || status["code"] == invalid)
  end

  def test_oversize_batch_is_refused_before_anything_runs
    calls, hit = counter
    error = assert_hms_error(HMS::ResourceExhaustedError) { hit.batch_raw(Array.new(MAX_CALLS + 1, "{}")) }
    assert_equal (MAX_CALLS + 1).to_s, error.details["calls"]
    assert_empty calls

    # The core refuses such a frame too (built by hand, past the binding's check).
    n = MAX_CALLS + 1
    handles = Array.new(n, @echo.handle)
    handles[0] = hit.handle
    requests = Array.new(n, "".b)
    requests[0] = "{}"
    big = frame(handles, requests)
    assert_hms_error(HMS::ResourceExhaustedError) { backend.call_batch(big) }
    assert_empty calls, "nothing ran"
  end

  def test_malformed_frames_are_refused_and_nothing_runs
    calls, hit = counter
    h = hit.handle
    malformed = {
      "count larger than the buffer" => [1000, h, 2].pack("Q<*") + "{}",
      "shorter than its count" => [1].pack("Q<"),
      "truncated count" => "\x01\x00".b,
      "ends past the payload area" => [1, h, 10].pack("Q<*") + "{}",
      "last end short of the area" => [1, h, 1].pack("Q<*") + "{}",
      "ends decreasing" => [2, h, h, 2, 1].pack("Q<*") + "{}",
      "empty" => "".b,
    }
    malformed.each do |what, bytes|
      error = assert_raises(HMS::InvalidArgumentError, what) { backend.call_batch(bytes) }
      assert_equal HMS::Status::INVALID_ARGUMENT, error.code, what
    end
    assert_equal HMS::Status::INVALID_ARGUMENT, raw_call_batch_null, "NULL pointers"
    assert_empty calls, "no call of a refused frame ran"
    assert_equal [{}], hit.batch_raw(["{}"]).map { |r| JSON.parse(r) }
  end

  # -- Runtime#call through the runtime's cached handles ---------------

  def test_calls_without_options_keep_their_errors
    3.times do
      error = assert_hms_error(HMS::NotFoundError) { @rt.call("demo.v1.Nope/Call", {}) }
      assert_equal({ "service" => "demo.v1.Nope" }, error.details)
      assert_equal "registry", error.origin
    end
    assert_hms_error(HMS::InvalidArgumentError) { @rt.call_raw(ECHO, "", 9) }
    assert_hms_error(HMS::DecodeError) { @rt.call_raw(ECHO, "\xff\xff".b, :protobuf) }
    assert_equal pb("x"), @rt.call_raw(ECHO, pb("x"), :protobuf)
  end

  def test_cached_calls_follow_services_leaving_and_coming_back
    service = @rt.register_service("demo.v1.Flip", "Get" => ->(_) { { "v" => 1 } })
    2.times { assert_equal({ "v" => 1 }, @rt.call("demo.v1.Flip/Get", {})) }
    service.close
    error = assert_hms_error(HMS::NotFoundError) { @rt.call("demo.v1.Flip/Get", {}) }
    assert_equal({ "service" => "demo.v1.Flip" }, error.details)
    @rt.register_service("demo.v1.Flip", "Get" => ->(_) { { "v" => 2 } })
    2.times { assert_equal({ "v" => 2 }, @rt.call("demo.v1.Flip/Get", {})) }
  end

  def test_cache_under_threads_and_past_its_bound
    threads = Array.new(4) { |t| Thread.new { Array.new(100) { |i| @rt.call(ECHO, { "text" => "#{t}.#{i}" })["text"] } } }
    threads.each_with_index { |thread, t| assert_equal(Array.new(100) { |i| "#{t}.#{i}" }, thread.value) }
    names = Array.new(HMS::RuntimeState::METHOD_CACHE_MAX + 20) { |i| "M#{i}" }
    @rt.register_service("demo.v1.Many", methods: names) { |_, call| { "m" => call.method } }
    names.each { |m| assert_equal({ "m" => m }, @rt.call("demo.v1.Many/#{m}", {})) }
  end

  def test_cached_calls_after_runtime_close_raise_closed_error
    rt = open_runtime
    rt.call(ECHO, {})
    rt.close
    assert_raises(HMS::ClosedError) { rt.call(ECHO, {}) }
    assert_raises(HMS::ClosedError) { rt.call_raw(ECHO, "", :protobuf) }
  end
end
