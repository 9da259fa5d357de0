# frozen_string_literal: true

require_relative "errors"

module HMS
  # The protobuf side: the classes protoc generated from include/proto/hms
  # (lib/hms/gen, module Hms::...) when google-protobuf is installed
  # (Debian: ruby-google-protobuf). Everything else works without it.
  module Proto
    GEN_FILES = %w[
      v1/status v1/options v1/service sys/v1/system registry/v1/registry
      agent/lifecycle/v1/lifecycle agent/v1/agent events/v1/events
    ].freeze

    @loaded = nil

    class << self
      # True when google-protobuf and the generated classes are loaded.
      def available?
        return @loaded unless @loaded.nil?

        @loaded = begin
          require "google/protobuf"
          GEN_FILES.each { |f| require_relative "gen/hms/#{f}_pb" }
          true
        rescue ::LoadError # google-protobuf is not installed
          false
        end
      end

      # Whether +value+ is a protobuf message instance.
      def message?(value)
        defined?(::Google::Protobuf::MessageExts) && value.is_a?(::Google::Protobuf::MessageExts) ? true : false
      end

      # Whether +value+ is a protobuf message class.
      def message_class?(value)
        value.is_a?(Class) && defined?(::Google::Protobuf::MessageExts) &&
          value.include?(::Google::Protobuf::MessageExts) ? true : false
      end

      # The class of a full message name, e.g. "hms.sys.v1.EchoResponse".
      def message_class(full_name)
        unless available?
          raise NotFoundError.new("protobuf messages need google-protobuf (Debian: ruby-google-protobuf)",
                                  origin: Format::ORIGIN)
        end
        desc = ::Google::Protobuf::DescriptorPool.generated_pool.lookup(full_name)
        if desc.nil? || !desc.respond_to?(:msgclass)
          raise NotFoundError.new("#{full_name} is not in google-protobuf's generated pool: require its _pb file",
                                  origin: Format::ORIGIN)
        end
        desc.msgclass
      end

      def full_name(klass)
        klass.descriptor.name
      end
    end
  end
end
