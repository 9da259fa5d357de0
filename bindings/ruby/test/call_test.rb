# frozen_string_literal: true

require_relative "test_helper"
require "base64"
require "open3"
require "tmpdir"

class CallTest < Minitest::Test
  include HMSTest
  include HMSTest::RuntimeFixture

  def test_hash_travels_as_cbor_by_default_with_native_bytes
    assert_equal HMS::Format::CBOR, @rt.format
    payload = "\x00\xff\x10".b
    reply = @rt.call(ECHO, { "text" => "héllo", "payload" => payload })
    assert_equal({ "text" => "héllo", "payload" => payload }, reply)
    assert_equal Encoding::BINARY, reply["payload"].encoding
    assert_equal Encoding::UTF_8, reply["text"].encoding
  end

  def test_symbol_keys_and_nil_request
    assert_equal({ "text" => "sym" }, @rt.call(ECHO, { text: "sym" }))
    assert_equal({}, @rt.call(ECHO))
    assert_equal({}, @rt.call(ECHO, nil, format: :json))
  end

  def test_json_format_uses_proto3_json_mapping
    reply = @rt.call(ECHO, { "text" => "j", "payload" => Base64.strict_encode64("\x01\x02") }, format: :json)
    assert_equal({ "text" => "j", "payload" => "AQI=" }, reply)
    health = @rt.call("hms.sys.v1.System/Health", {}, format: :json)
    assert_kind_of String, health["uptime_ms"], "uint64 is a string in proto3 JSON" if health.key?("uptime_ms")
    assert_equal "SERVING", health["status"]
  end

  def test_json_runtime
    rt = open_runtime(format: :json, name: "json-rt")
    assert_equal HMS::Format::JSON, rt.format
    assert_equal "json-rt", rt.health["runtime_name"]
    assert_equal({ "text" => "x" }, rt.call(ECHO, { "text" => "x" }))
  end

  def test_protobuf_messages
    reply = @rt.call(ECHO, Hms::Sys::V1::EchoRequest.new(text: "pb", payload: "\x01".b))
    assert_instance_of Hms::Sys::V1::EchoResponse, reply
    assert_equal "pb", reply.text
    assert_equal "\x01".b, reply.payload
    version = @rt.call("hms.sys.v1.System/Version", Hms::Sys::V1::VersionRequest.new)
    assert_equal HMS.library_version, version.library_version
    assert_equal HMS::Native::ABI_MAJOR, version.abi_major
    assert_includes version.formats.to_a, "cbor"
    assert_raises(ArgumentError) { @rt.call(ECHO, Hms::Sys::V1::EchoRequest.new, format: :json) }
  end

  def test_protobuf_config_and_options_messages
    rt = open_runtime(Hms::V1::RuntimeConfig.new(name: "pb-config"))
    assert_equal HMS::Format.default, rt.format, "hashes never travel as protobuf"
    assert_equal "pb-config", rt.call("hms.sys.v1.System/Health", Hms::Sys::V1::HealthRequest.new).runtime_name
    reply = rt.call(ECHO, Hms::Sys::V1::EchoRequest.new(text: "o"),
                    options: Hms::V1::CallOptions.new(trace_id: "t-1"), timeout: 5)
    assert_equal "o", reply.text
  end

  def test_raw_bytes_in_each_format
    assert_equal "\xA1dtextbhi".b, @rt.call(ECHO, "\xA1dtextbhi".b, format: :cbor)
    assert_equal '{"text":"hi"}', @rt.call(ECHO, '{"text":"hi"}', format: :json)
    assert_equal "\x12\x02hi".b, @rt.call(ECHO, "\x12\x02hi".b, format: :protobuf)
    assert_equal "\x12\x02hi".b, @rt.call_raw(ECHO, "\x12\x02hi".b, HMS::Format::PROTOBUF)
    assert_equal "".b, @rt.call_raw(ECHO, "".b, :protobuf)
    assert_raises(ArgumentError) { @rt.call(ECHO, "\x12\x02hi".b) }
  end

  def test_format_names
    assert_equal HMS::Format::JSON, HMS::Format.resolve("JSON")
    assert_equal HMS::Format::CBOR, HMS::Format.resolve(:cbor)
    assert_equal 7, HMS::Format.resolve(7)
    assert_raises(ArgumentError) { HMS::Format.resolve(:xml) }
    assert_raises(TypeError) { HMS::Format.resolve(1.5) }
    assert_raises(TypeError) { @rt.call(ECHO, Object.new) }
  end

  def test_call_options_and_timeout
    reply = @rt.call(ECHO, { "text" => "t" }, options: { "metadata" => { "k" => "v" }, "trace_id" => "abc" })
    assert_equal({ "text" => "t" }, reply)
    assert_equal({ "text" => "t" }, @rt.call(ECHO, { "text" => "t" }, timeout: 0.25, format: :json))
    assert_raises(HMS::DecodeError) { @rt.call(ECHO, {}, options: { "deadline_ms" => "soon" }) }
  end

  def test_untyped_values_beyond_hashes
    @rt.register_service("demo.v1.Any", "Id" => ->(value) { value })
    assert_equal [1, "two", nil], @rt.call("demo.v1.Any/Id", [1, "two", nil])
    assert_equal 42, @rt.call("demo.v1.Any/Id", 42)
    assert_equal [true], @rt.call("demo.v1.Any/Id", [true], format: :json)
  end

  def test_convert_between_formats
    cbor = HMS.convert("hms.sys.v1.EchoRequest", '{"text":"c","payload":"AQ=="}', from: :json, to: :cbor)
    assert_equal({ "text" => "c", "payload" => "\x01".b }, CBOR.decode(cbor))
    pb = HMS.convert("hms.sys.v1.EchoRequest", cbor, from: :cbor, to: :protobuf)
    assert_equal "c", Hms::Sys::V1::EchoRequest.decode(pb).text
    json = HMS.convert("hms.sys.v1.EchoRequest", pb, from: :protobuf, to: :json)
    assert_equal({ "text" => "c", "payload" => "AQ==" }, JSON.parse(json))
    assert_equal [1, { "a" => "b" }], JSON.parse(HMS.convert("", CBOR.encode([1, { "a" => "b" }]), from: :cbor, to: :json))
    assert_raises(HMS::NotFoundError) { HMS.convert("hms.sys.v1.Nope", "{}", from: :json, to: :cbor) }
    assert_raises(HMS::DecodeError) { HMS.convert("hms.sys.v1.EchoRequest", "{", from: :json, to: :cbor) }
  end

  # A host service typed with a schema of its own: the FileDescriptorSet goes
  # to the core, callers use any format, the Ruby handler gets hashes.
  def test_registered_schema_types_a_host_service
    Dir.mktmpdir do |dir|
      File.write(File.join(dir, "greeter.proto"), <<~PROTO)
        syntax = "proto3";
        package rubytest.v1;
        message GreetRequest { string name = 1; int64 times = 2; }
        message GreetReply { string text = 1; }
      PROTO
      fds = File.join(dir, "greeter.pb")
      _out, err, status = Open3.capture3("protoc", "-I", dir, "--include_imports", "--descriptor_set_out=#{fds}",
                                         File.join(dir, "greeter.proto"))
      assert status.success?, err
      HMS.register_schema(File.binread(fds))
      HMS.register_schema(File.binread(fds)) # identical files are skipped
    end
    seen = []
    @rt.register_service("rubytest.v1.Greeter",
                         { "Greet" => ->(req) { seen << req; { "text" => "hi #{req['name']} x#{req['times']}" } } },
                         input_types: { "Greet" => "rubytest.v1.GreetRequest" },
                         output_types: { "Greet" => "rubytest.v1.GreetReply" })
    assert_equal({ "text" => "hi ann x3" }, @rt.call("rubytest.v1.Greeter/Greet", { "name" => "ann", "times" => 3 }))
    assert_equal({ "text" => "hi bo x2" },
                 @rt.call("rubytest.v1.Greeter/Greet", { "name" => "bo", "times" => "2" }, format: :json))
    assert_equal({ "name" => "ann", "times" => 3 }, seen.first)
    assert_raises(HMS::DecodeError) { @rt.call("rubytest.v1.Greeter/Greet", { "name" => 5 }) }
    assert_raises(HMS::DecodeError) { HMS.register_schema("\xff\xff".b) }
  end

  def test_runtime_open_returns_the_block_value_and_closes
    kept = nil
    value = HMS::Runtime.open(name: "scoped") do |rt|
      kept = rt
      rt.health["runtime_name"]
    end
    assert_equal "scoped", value
    assert kept.closed?
    assert_raises(HMS::ClosedError) { kept.call(ECHO, {}) }
    kept.close # idempotent
    rt = HMS::Runtime.open
    refute rt.closed?
    rt.close
  end

  def test_persistent_runtime_with_data_dir
    Dir.mktmpdir do |dir|
      rt = HMS::Runtime.new(data_dir: dir)
      assert_equal "sqlite", rt.health["storage"]
      id = rt.agents.create(name: "persisted")["id"]
      rt.close
      HMS::Runtime.open(data_dir: dir) do |again|
        assert_equal "persisted", again.agents.get(id)["name"]
      end
    end
  end

  def test_list_and_describe_services
    names = @rt.list_services.map { |s| s["name"] }
    assert_includes names, "hms.sys.v1.System"
    assert_equal ["hms.sys.v1.System"], @rt.list_services("hms.sys.").map { |s| s["name"] }
    methods = @rt.describe_service("hms.sys.v1.System")["methods"].map { |m| m["name"] }
    assert_equal %w[Echo Health Version], methods.sort
    assert_equal Hms::Sys::V1::EchoResponse, @rt.output_type(ECHO)
    assert_raises(HMS::NotFoundError) { @rt.output_type("nope") }
    assert_raises(HMS::NotFoundError) { @rt.output_type("hms.sys.v1.System/Nope") }
  end
end

class FinalizerTest < Minitest::Test
  include HMSTest

  # A runtime dropped without #close is freed by its finalizer, services
  # and subscriptions included.
  def test_dropped_runtime_is_freed_by_the_finalizer
    script = <<~RUBY
      require "hms"
      def handler = ->(_) { {} } # closes over nothing that holds a runtime
      def open_and_drop(i)
        rt = HMS::Runtime.new
        rt.register_service("demo.v1.Drop\#{i}", "A" => handler)
        rt.subscribe
        rt.handle
      end
      handles = Array.new(3) { |i| open_and_drop(i) }
      4.times { GC.start(full_mark: true, immediate_sweep: true) }
      backend = HMS::Native.backend
      freed = handles.count { |h| backend.runtime_free(h) == HMS::Status::INVALID_HANDLE }
      puts freed
      puts HMS::Services.size
    RUBY
    out, err, status = Open3.capture3(ruby_binary, "-w", "-I", File.join(GEM_ROOT, "lib"), "-e", script)
    assert status.success?, err
    freed, services = out.lines.map(&:to_i)
    assert_operator freed, :>=, 2, "finalizers freed the dropped runtimes (conservative GC may keep one)"
    assert_operator services, :<=, 3 - freed, "their services left the registry"
  end
end

class MethodNameTest < Minitest::Test
  include HMSTest
  include HMSTest::RuntimeFixture

  def test_method_name_must_be_a_string
    assert_raises(TypeError) { @rt.call(:"hms.sys.v1.System/Echo", {}) }
    assert_raises(TypeError) { @rt.call_raw(nil, "", :json) }
  end
end
