# frozen_string_literal: true

require_relative "test_helper"
require "base64"
require "digest"
require "json"

# The shared golden vectors (tests/vectors/, protocol in
# tests/vectors/README.md), every case, every comparison byte for byte:
#
# - the files match the manifest;
# - the core converts each of the three files into each format with the
#   vector's bytes as result (six directions plus the three identities);
# - what Ruby produces from the vector is accepted by the core and converts
#   to exactly the vector: the canonical JSON read with JSON.parse into
#   hashes and written again by the cbor gem and by JSON.generate; the hash a
#   Ruby program would write by hand (Integers for 64-bit integers, binary
#   Strings for bytes, Floats for doubles, enums by name, Timestamps as
#   their RFC 3339 strings) through the cbor gem; and google-protobuf's
#   classes (JSON parser, binary serializer).
class VectorsTest < Minitest::Test
  include HMSTest

  VECTORS = File.join(ROOT, "tests", "vectors")
  MANIFEST = JSON.parse(File.read(File.join(VECTORS, "manifest.json"), encoding: "UTF-8"))
  CASES = MANIFEST.fetch("cases")
  FORMATS = { "json" => :json, "cbor" => :cbor, "pb" => :protobuf }.freeze
  INT64 = %i[int64 uint64 sint64 fixed64 sfixed64].freeze
  FLOATS = %i[double float].freeze
  SPECIAL_FLOATS = { "NaN" => Float::NAN, "Infinity" => Float::INFINITY, "-Infinity" => -Float::INFINITY }.freeze

  # The vector's three files as binary Strings.
  def self.load(vector)
    vector.fetch("files").transform_values { |rel| File.binread(File.join(VECTORS, rel)).freeze }
  end

  def self.test_name(kind, vector)
    "test_#{kind}__#{vector['type']}/#{vector['case']}"
  end

  # --- the manifest itself -------------------------------------------------

  def test_manifest_covers_the_required_types_and_edge_cases
    types = CASES.map { |c| c["type"] }.uniq
    required = %w[hms.sys.v1.EchoRequest hms.agent.v1.Agent hms.agent.v1.Task hms.agent.v1.KnowledgeEntry
                  hms.agent.lifecycle.v1.LifecycleEvent hms.v1.Status hms.v1.RuntimeConfig]
    assert_empty required - types
    assert_equal MANIFEST.fetch("types").sort, types.sort
    tags = CASES.flat_map { |c| c["tags"] }.uniq
    assert_empty %w[empty unicode extremes bytes nul maps repeated unknown_enum nan] - tags
  end

  def test_every_file_on_disk_is_listed
    listed = CASES.flat_map { |c| c["files"].values }.sort
    on_disk = Dir.glob("*/*", base: VECTORS).sort
    assert_equal listed, on_disk
    assert_operator CASES.size, :>=, 61 # the count when this test was written
  end

  # --- per case ------------------------------------------------------------

  CASES.each do |vector|
    type = vector.fetch("type")

    define_method(test_name("files_match_the_manifest", vector)) do
      self.class.load(vector).each do |ext, data|
        assert_equal vector.fetch("sha256").fetch(ext), Digest::SHA256.hexdigest(data), "#{ext} file"
      end
      assert_equal "#{type}/#{vector['case']}.json", vector["files"]["json"]
    end

    define_method(test_name("core_converts_in_every_direction", vector)) do
      want = self.class.load(vector)
      FORMATS.each do |src, from|
        FORMATS.each do |dst, to|
          assert_bytes want[dst], HMS.convert(type, want[src], from: from, to: to), "#{src} -> #{dst}"
        end
      end
    end

    # JSON.parse of the canonical JSON, written again by JSON.generate.
    define_method(test_name("json_parse_hash_through_json_generate", vector)) do
      want = self.class.load(vector)
      data = JSON.generate(JSON.parse(want["json"].dup))
      assert_converts_to_vector(type, data, :json, want)
    end

    next unless HMS::Format.cbor?

    # JSON.parse of the canonical JSON, written by the cbor gem (strings stay
    # as proto3 JSON spells them: 64-bit integers and bytes as text).
    define_method(test_name("json_parse_hash_through_cbor_gem", vector)) do
      want = self.class.load(vector)
      data = CBOR.encode(JSON.parse(want["json"].dup))
      assert_converts_to_vector(type, data, :cbor, want)
    end

    next unless HMS::Proto.available?

    # The hash a Ruby program would write by hand, through the cbor gem.
    define_method(test_name("native_hash_through_cbor_gem", vector)) do
      want = self.class.load(vector)
      value = native(JSON.parse(want["json"].dup), descriptor(type))
      data = CBOR.encode(value)
      assert_converts_to_vector(type, data, :cbor, want)
      # The vector's CBOR decodes to exactly that hash (NaN is never equal).
      assert_equal value, CBOR.decode(want["cbor"]) unless vector["tags"].include?("nan")
    end

    # google-protobuf's classes read both files alike and write bytes the
    # core turns into the vector.
    define_method(test_name("protobuf_classes_read_and_write_the_vector", vector)) do
      want = self.class.load(vector)
      klass = HMS::Proto.message_class(type)
      from_json = klass.decode_json(want["json"].dup)
      assert_equal from_json, klass.decode(want["pb"].dup)
      assert_converts_to_vector(type, klass.encode(from_json), :protobuf, want)
      printed = klass.encode_json(from_json, preserve_proto_fieldnames: true)
      assert_bytes want["cbor"], HMS.convert(type, printed, from: :json, to: :cbor), "encode_json -> cbor"
    end
  end

  private

  def assert_bytes(want, got, what)
    assert_equal Encoding::BINARY, got.encoding, "#{what}: the core's answer is binary"
    assert want.b == got.b, "#{what}: #{got.b.inspect[0, 300]} != #{want.b.inspect[0, 300]}"
  end

  # +data+ (in +from+) converts through the core to each of the vector's files.
  def assert_converts_to_vector(type, data, from, want)
    FORMATS.each do |dst, to|
      assert_bytes want[dst], HMS.convert(type, data, from: from, to: to), "#{from} -> #{dst}"
    end
  end

  def descriptor(type)
    HMS::Proto.message_class(type).descriptor
  end

  # A JSON.parse'd message as native Ruby values, guided by +desc+.
  def native(json, desc)
    json.to_h do |name, value|
      field = desc.lookup(name) or flunk("#{desc.name} has no field #{name.inspect}")
      [name, native_field(field, value)]
    end
  end

  def native_field(field, value)
    if field.label == :repeated && value.is_a?(Hash) # a map: key and value fields of its entry
      entry = field.subtype
      value.to_h { |k, v| [native_scalar(entry.lookup("key"), k), native_scalar(entry.lookup("value"), v)] }
    elsif field.label == :repeated
      value.map { |v| native_scalar(field, v) }
    else
      native_scalar(field, value)
    end
  end

  def native_scalar(field, value)
    case field.type
    when :message
      # Well-known types (Timestamp, FieldMask) keep their JSON strings.
      field.subtype.name.start_with?("google.protobuf.") ? value : native(value, field.subtype)
    when *INT64 then Integer(value, 10)
    when *FLOATS then value.is_a?(String) ? SPECIAL_FLOATS.fetch(value) : Float(value)
    when :bytes then Base64.strict_decode64(value)
    else value # strings, bools, 32-bit integers, enums (names; unknown numbers stay Integers)
    end
  end
end
