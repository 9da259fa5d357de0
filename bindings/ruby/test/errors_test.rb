# frozen_string_literal: true

require_relative "test_helper"
require "open3"
require "tmpdir"

# Every error path reaches Ruby as the HMS::Error subclass of its status,
# with the library's message, details and origin, and leaves the runtime
# usable.
class ErrorsTest < Minitest::Test
  include HMSTest
  include HMSTest::RuntimeFixture

  FORMATS = %i[protobuf cbor json].freeze

  def teardown
    # Whatever failed, the runtime still answers.
    assert_equal({ "text" => "still here" }, @rt.call(ECHO, { "text" => "still here" })) unless @rt.closed?
    super
  end

  def test_unknown_method_service_and_malformed_name
    error = assert_hms_error(HMS::NotFoundError) { @rt.call("demo.v1.Nope/Call", {}) }
    assert_equal({ "service" => "demo.v1.Nope" }, error.details)
    assert_equal "registry", error.origin
    assert_match(/\A\[NOT_FOUND\] .*demo\.v1\.Nope.* \(origin: registry\)\z/, error.message)
    assert_equal :NOT_FOUND, error.code_name
    assert_hms_error(HMS::NotFoundError) { @rt.call("hms.sys.v1.System/Nope", {}) }
    assert_hms_error(HMS::InvalidArgumentError) { @rt.call("no-slash", {}) }
    assert_hms_error(HMS::InvalidArgumentError) { @rt.call("", {}) }
  end

  def test_error_status_decodes_in_every_format
    FORMATS.each do |format|
      request = format == :protobuf ? "".b : (format == :cbor ? CBOR.encode({}) : "{}")
      error = assert_hms_error(HMS::NotFoundError) { @rt.call("demo.v1.Nope/Call", request, format: format) }
      assert_equal({ "service" => "demo.v1.Nope" }, error.details, format)
      assert_equal "registry", error.origin, format
      assert_includes error.status_message, "demo.v1.Nope", format
    end
  end

  def test_bad_utf8_method_name
    error = assert_hms_error(HMS::InvalidArgumentError) { @rt.call("hms.sys.v1.System/Ec\xffho".b, {}) }
    assert_includes error.status_message, "UTF-8"
    assert_equal({ "argument" => "method" }, error.details)
  end

  def test_unknown_format
    [0, 4, -1, 99].each do |format|
      error = assert_hms_error(HMS::InvalidArgumentError) { @rt.call_raw(ECHO, "", format) }
      assert_equal format.to_s, error.details["format"]
    end
    assert_hms_error(HMS::InvalidArgumentError) { HMS::Runtime.new(format: 9) }
    assert_raises(ArgumentError) { @rt.call(ECHO, {}, format: :yaml) }
  end

  def test_garbage_payloads_per_format
    garbage = { protobuf: "\xff\xff\xff\xff".b, cbor: "\xff\xfe\x00".b, json: "{nope" }
    garbage.each do |format, bytes|
      error = assert_hms_error(HMS::DecodeError) { @rt.call(ECHO, bytes, format: format) }
      assert_equal ECHO, error.origin, format
    end
    assert_hms_error(HMS::DecodeError) { @rt.call(ECHO, { "text" => 5 }) }
    assert_hms_error(HMS::DecodeError) { @rt.call(ECHO, { "payload" => "not base64!" }, format: :json) }
  end

  def test_truncated_payloads_per_format
    truncated = { protobuf: "\x12\x05ab".b, cbor: "\xa2\x64text".b, json: '{"text": "ab' }
    truncated.each do |format, bytes|
      assert_hms_error(HMS::DecodeError) { @rt.call(ECHO, bytes, format: format) }
    end
  end

  def test_every_truncation_of_a_valid_payload
    full = {
      protobuf: Hms::Sys::V1::EchoRequest.encode(Hms::Sys::V1::EchoRequest.new(payload: "\0" * 40, text: "t" * 40)),
      cbor: CBOR.encode({ "payload" => ("\0" * 40).b, "text" => "t" * 40 }),
      json: '{"payload": "AAAAAAAA", "text": "tttttttttt"}',
    }
    full.each do |format, bytes|
      outcomes = (1...bytes.bytesize).map do |cut|
        @rt.call(ECHO, bytes.byteslice(0, cut), format: format)
        :ok
      rescue HMS::DecodeError, HMS::ResourceExhaustedError => e
        e.class
      end
      assert_includes outcomes, HMS::DecodeError, format
      assert_equal({ "text" => "t" * 40 }, @rt.call(ECHO, { "text" => "t" * 40 }, format: format == :json ? :json : :cbor))
    end
  end

  def test_protobuf_huge_length_prefix_and_overlong_varint
    [2**63, 2**64 - 1, 2**32, 5 * 2**20].each do |length|
      hostile = "\x0a".b + varint(length) + "abc".b
      assert_raises(HMS::DecodeError, HMS::ResourceExhaustedError) { @rt.call(ECHO, hostile, format: :protobuf) }
    end
    assert_hms_error(HMS::DecodeError) { @rt.call(ECHO, "\x0a".b + ("\xff".b * 10) + "\x01".b, format: :protobuf) }
  end

  def test_deep_nesting_is_refused_before_an_untyped_ruby_handler
    calls = []
    @rt.register_service("hostile.v1.Any", "Id" => ->(req) { calls << req; req })
    depth = 100_000
    { cbor: ("\x81".b * depth) + "\x00".b, json: ("[" * depth) + ("]" * depth) }.each do |format, bytes|
      assert_raises(HMS::DecodeError, HMS::ResourceExhaustedError) { @rt.call("hostile.v1.Any/Id", bytes, format: format) }
    end
    assert_empty calls
  end

  # 100,000 levels of a recursive message, each a nested length-delimited
  # field: through hms_convert and into a typed Ruby service.
  def test_deep_protobuf_length_delimited_nesting
    Dir.mktmpdir do |dir|
      File.write(File.join(dir, "node.proto"),
                 "syntax = \"proto3\";\npackage hostile.v1;\nmessage Node { string name = 1; Node child = 2; }\n")
      fds = File.join(dir, "node.pb")
      _out, err, status = Open3.capture3("protoc", "-I", dir, "--descriptor_set_out=#{fds}", File.join(dir, "node.proto"))
      assert status.success?, err
      HMS.register_schema(File.binread(fds))
    end
    # level k wraps the k levels inside it: "\x12", varint(their size), them
    sizes = [0]
    100_000.times { sizes << (1 + varint(sizes.last).bytesize + sizes.last) }
    deep = sizes[0...-1].reverse.map { |inner| "\x12".b + varint(inner) }.join
    assert_equal sizes.last, deep.bytesize
    assert_operator deep.bytesize, :<, 4 << 20
    %i[json cbor].each do |to|
      assert_raises(HMS::DecodeError, HMS::ResourceExhaustedError) { HMS.convert("hostile.v1.Node", deep, from: :protobuf, to: to) }
    end
    calls = []
    @rt.register_service("hostile.v1.Tree", { "Walk" => ->(req) { calls << req; {} } },
                         input_types: { "Walk" => "hostile.v1.Node" }, output_types: { "Walk" => "hostile.v1.Node" })
    assert_raises(HMS::DecodeError, HMS::ResourceExhaustedError) { @rt.call("hostile.v1.Tree/Walk", deep, format: :protobuf) }
    assert_empty calls, "refused before the handler"
    assert_equal({}, @rt.call("hostile.v1.Tree/Walk", { "name" => "a", "child" => { "name" => "b" } }))
    assert_equal [{ "name" => "a", "child" => { "name" => "b" } }], calls
  end

  def test_response_over_the_limit_is_resource_exhausted
    small = open_runtime(max_message_bytes: 4096)
    small.register_service("big.v1.Out", "Big" => ->(_) { { "blob" => ("\0" * 10_000).b } })
    assert_hms_error(HMS::ResourceExhaustedError) { small.call("big.v1.Out/Big", {}) }
    assert_equal({ "text" => "x" }, small.call(ECHO, { "text" => "x" }))
  end

  def test_cbor_length_prefix_of_two_to_the_64
    [
      "\xa1\x67payload\x5b".b + ("\xff".b * 8), # byte string of 2^64-1 bytes
      "\xa1\x64text\x7b".b + ("\xff".b * 8),    # text string
      "\x9b".b + ("\xff".b * 8),                # array of 2^64-1 items
      "\xbb".b + ("\xff".b * 8),                # map
    ].each do |bytes|
      error = assert_raises(HMS::DecodeError, HMS::ResourceExhaustedError) { @rt.call(ECHO, bytes, format: :cbor) }
      assert_includes [HMS::Status::DECODE_ERROR, HMS::Status::RESOURCE_EXHAUSTED], error.code
    end
  end

  def test_hundred_thousand_levels_of_nesting_per_format
    depth = 100_000
    cbor = "\xa1\x64text".b + ("\x81".b * depth) + "\x00".b
    json = "{\"text\":#{'[' * depth}#{']' * depth}}"
    error = assert_hms_error(HMS::ResourceExhaustedError) { @rt.call(ECHO, cbor, format: :cbor) }
    assert_equal "64", error.details["max_depth"]
    assert_hms_error(HMS::ResourceExhaustedError) { @rt.call(ECHO, json, format: :json) }
    # protobuf: 100,000 nested groups of an unknown field
    protobuf = ("\x7b".b * depth) + ("\x7c".b * depth)
    assert_raises(HMS::DecodeError, HMS::ResourceExhaustedError) { @rt.call(ECHO, protobuf, format: :protobuf) }
    # a Ruby value nested that deep does not encode: a typed error, before the call
    value = 1
    depth.times { value = [value] }
    %i[cbor json].each do |format|
      assert_hms_error(HMS::InvalidArgumentError) { @rt.call(ECHO, { "text" => value }, format: format) }
    end
  end

  def test_sixty_four_mib_payload
    big = "x".b * (64 << 20)
    error = assert_hms_error(HMS::ResourceExhaustedError) { @rt.call(ECHO, { "payload" => big }) }
    assert_equal "4194304", error.details["max_message_bytes"]
    pb = "\x0a".b + varint(big.bytesize) + big
    assert_hms_error(HMS::ResourceExhaustedError) { @rt.call(ECHO, pb, format: :protobuf) }
    assert_hms_error(HMS::ResourceExhaustedError) { @rt.call(ECHO, "{\"text\": \"#{big}\"}", format: :json) }
    cbor = "\xa1\x67payload\x5a".b + [big.bytesize].pack("N") + big
    assert_hms_error(HMS::ResourceExhaustedError) { @rt.call(ECHO, cbor, format: :cbor) }
    roomy = open_runtime(max_message_bytes: 80 << 20)
    reply = roomy.call(ECHO, { "payload" => big })
    assert_equal big.bytesize, reply["payload"].bytesize
    assert reply["payload"] == big, "64 MiB came back intact (CBOR)"
    echoed = roomy.call_raw(ECHO, pb, :protobuf)
    assert_equal pb.bytesize, echoed.bytesize
    assert echoed == pb, "64 MiB came back intact (protobuf)"
  end

  def varint(value)
    out = +"".b
    loop do
      byte = value & 0x7F
      value >>= 7
      out << (value.zero? ? byte : byte | 0x80).chr
      return out if value.zero?
    end
  end

  def test_zero_made_up_stale_and_double_freed_handles
    backend = HMS::Native.backend
    invalid = HMS::Status::INVALID_HANDLE
    [0, 1, 0xdead_beef_1234_5678, (1 << 64) - 1].each do |handle|
      assert_hms_error(HMS::InvalidHandleError) { backend.call(handle, ECHO, HMS::Format::CBOR, "".b, nil) }
      assert_equal invalid, backend.runtime_free(handle)
      assert_equal invalid, backend.service_unregister(handle)
      assert_equal invalid, backend.unsubscribe(handle)
      assert_hms_error(HMS::InvalidHandleError) { backend.poll(handle, 0, HMS::Format::CBOR) }
      assert_hms_error(HMS::InvalidHandleError) { backend.subscribe(handle, HMS::Format::CBOR, nil) }
    end
    stale = HMS::Runtime.new
    handle = stale.handle
    stale.close
    assert_hms_error(HMS::InvalidHandleError) { backend.call(handle, ECHO, HMS::Format::CBOR, "".b, nil) }
    assert_equal invalid, backend.runtime_free(handle), "a double free is reported, every time"
    assert_equal invalid, backend.runtime_free(handle)
    # services: a double unregister is reported too
    service = @rt.register_service("demo.v1.Twice", "A" => ->(_) { {} })
    service_handle = service.handle
    service.close
    assert_equal invalid, backend.service_unregister(service_handle)
    assert_equal invalid, backend.service_unregister(service_handle)
    # a handle of the wrong kind
    sub = @rt.subscribe
    assert_hms_error(HMS::InvalidHandleError) { backend.call(sub.handle, ECHO, HMS::Format::CBOR, "".b, nil) }
    assert_equal invalid, backend.service_unregister(sub.handle)
    assert_hms_error(HMS::InvalidHandleError) { backend.poll(@rt.handle, 0, HMS::Format::CBOR) }
    # a newer runtime never answers to the stale handle
    fresh = open_runtime
    refute_equal handle, fresh.handle
    assert_hms_error(HMS::InvalidHandleError) { backend.call(handle, ECHO, HMS::Format::CBOR, "".b, nil) }
  end

  def test_closed_objects_raise_closed_error
    rt = HMS::Runtime.new
    service = rt.register_service("demo.v1.Gone", "Ping" => ->(_) { {} })
    sub = rt.subscribe
    rt.close
    assert service.closed?
    assert sub.closed?
    error = assert_raises(HMS::ClosedError) { rt.call(ECHO, {}) }
    assert_kind_of HMS::InvalidHandleError, error
    assert_equal HMS::Status::INVALID_HANDLE, error.code
    assert_raises(HMS::ClosedError) { sub.next(0) }
    assert_raises(HMS::ClosedError) { rt.register_service("demo.v1.X", "A" => ->(_) {}) }
    assert_raises(HMS::ClosedError) { rt.subscribe }
    assert_nil service.close
    assert_nil sub.close
    assert_nil rt.close
  end

  def test_error_objects
    error = HMS::Error.from_status(HMS::Status::ABORTED, "stale revision", { "revision" => 3 }, "store")
    assert_instance_of HMS::AbortedError, error
    assert_equal({ "revision" => "3" }, error.details)
    assert_equal "[ABORTED] stale revision (origin: store)", error.message
    assert_equal({ code: 10, message: "stale revision", details: { "revision" => "3" }, origin: "store" }, error.to_h)
    unknown = HMS::Error.from_status(77, "future code")
    assert_instance_of HMS::Error, unknown
    assert_equal 77, unknown.code
    assert_equal 77, unknown.code_name
    assert_instance_of HMS::UnknownError, HMS::Error.from_status(0)
    assert_equal "[NOT_FOUND]", HMS::NotFoundError.new.message
    assert_equal HMS::Status::NOT_FOUND, HMS::NotFoundError.new("x").code
  end

  def test_status_without_detail_gets_a_message
    error = HMS::Native.error_from(HMS::Status::UNAVAILABLE, nil, HMS::Format::CBOR)
    assert_instance_of HMS::UnavailableError, error
    assert_equal "unavailable", error.status_message
    # a status left by an earlier call (another code) is not reused
    stale = CBOR.encode({ "code" => 5, "message" => "old" })
    assert_equal "unavailable", HMS::Native.error_from(HMS::Status::UNAVAILABLE, stale, HMS::Format::CBOR).status_message
    # garbage in the error buffer never raises while raising
    assert_instance_of HMS::DecodeError, HMS::Native.error_from(101, "\xff".b, HMS::Format::PROTOBUF)
  end

  def test_protobuf_status_decoder_without_google_protobuf
    status = Hms::V1::Status.new(code: 9, message: "nope ✓", details: { "rule" => "r", "a" => "b" }, origin: "o")
    decoded = HMS::Native::StatusProto.decode(Hms::V1::Status.encode(status))
    assert_equal({ "code" => 9, "message" => "nope ✓", "details" => { "rule" => "r", "a" => "b" }, "origin" => "o" },
                 decoded)
    negative = HMS::Native::StatusProto.decode(Hms::V1::Status.encode(Hms::V1::Status.new(code: -2)))
    assert_equal(-2, negative["code"])
    assert_raises(ArgumentError) { HMS::Native::StatusProto.decode("\x12\x09ab".b) }
  end
end
