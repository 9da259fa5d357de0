# frozen_string_literal: true

require "json"
require_relative "abi"
require_relative "errors"

begin
  require "cbor"
rescue LoadError
  # CBOR is optional (Debian: ruby-cbor); without it hashes travel as JSON.
end

module HMS
  # Formats of the payloads that cross the boundary (HMS_FORMAT_*), and the
  # small codecs the binding needs for hashes: CBOR through the cbor gem
  # when it is installed, JSON from the standard library always.
  module Format
    PROTOBUF = ABI::CONSTANTS.fetch(:HMS_FORMAT_PROTOBUF)
    CBOR = ABI::CONSTANTS.fetch(:HMS_FORMAT_CBOR)
    JSON = ABI::CONSTANTS.fetch(:HMS_FORMAT_JSON)

    NAMES = { PROTOBUF => :protobuf, CBOR => :cbor, JSON => :json }.freeze
    BY_NAME = NAMES.invert.freeze

    ORIGIN = "hms (ruby)"

    module_function

    # True when the cbor gem is loaded.
    def cbor?
      defined?(::CBOR.encode) ? true : false
    end

    # The format of hashes when none is given: CBOR when the cbor gem is
    # installed, else JSON.
    def default
      cbor? ? CBOR : JSON
    end

    # An Integer format from :cbor / "json" / HMS::Format::PROTOBUF / 2.
    # Integers pass unchecked (the library answers an unknown one with
    # InvalidArgumentError); unknown names raise ArgumentError.
    def resolve(format)
      BY_NAME[format] || resolve_other(format) # :protobuf, :cbor, :json first: the common case
    end

    # Formats other than the three symbols (see #resolve).
    # @api private
    def resolve_other(format)
      case format
      when Integer then format
      when Symbol, String
        BY_NAME.fetch(format.to_s.downcase.to_sym) do
          raise ArgumentError, "unknown format #{format.inspect} (use :protobuf, :cbor or :json)"
        end
      else raise TypeError, "a format is :protobuf, :cbor, :json or an Integer, not #{format.inspect}"
      end
    end

    def name(format)
      NAMES.fetch(format) { "format #{format}" }
    end

    # A hash (or any CBOR/JSON value) as bytes in +format+ (CBOR or JSON).
    def encode(value, format)
      case format
      when CBOR
        raise ArgumentError, "CBOR needs the cbor gem (Debian: ruby-cbor); use format: :json" unless cbor?

        ::CBOR.encode(value)
      when JSON then ::JSON.generate(value, max_nesting: false)
      else raise ArgumentError, "a hash travels as CBOR or JSON, not as #{name(format)}"
      end
    rescue SystemStackError, ::JSON::GeneratorError, EncodingError, NoMethodError, TypeError => e
      raise InvalidArgumentError.new("cannot encode the value as #{name(format)}: #{e.class}: #{e.message}",
                                     origin: ORIGIN)
    end

    # Bytes in +format+ (CBOR or JSON) as Ruby values; empty bytes are {}.
    def decode(bytes, format)
      return {} if bytes.empty?

      case format
      when CBOR
        raise ArgumentError, "CBOR needs the cbor gem (Debian: ruby-cbor); use format: :json" unless cbor?

        ::CBOR.decode(bytes)
      when JSON then ::JSON.parse(bytes, max_nesting: false)
      else raise ArgumentError, "cannot decode #{name(format)} without a message type"
      end
    end
  end
end
