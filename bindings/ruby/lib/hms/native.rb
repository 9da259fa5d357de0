# frozen_string_literal: true

require "fiddle"
require_relative "abi"
require_relative "errors"
require_relative "format"
require_relative "library_search"

module HMS
  # The thin native layer: finds and loads libhms_ffi, checks its ABI
  # version, picks the backend (Fiddle by default, the ffi gem with
  # HMS_BACKEND=ffi) and turns a status plus the hms.v1.Status in the error
  # buffer into the matching HMS::Error. Everything above it speaks Ruby.
  module Native
    ABI_MAJOR = ABI::CONSTANTS.fetch(:HMS_ABI_VERSION_MAJOR)
    ABI_MINOR = ABI::CONSTANTS.fetch(:HMS_ABI_VERSION_MINOR)

    # Functions that may wait (for a lock, an event, calls in flight, I/O):
    # the backends release the GVL around them, so other Ruby threads run and
    # handlers called back on this thread take the GVL again. The others are
    # short and keep it.
    BLOCKING = %i[
      hms_runtime_new hms_runtime_free hms_call hms_service_register hms_service_unregister
      hms_subscribe hms_poll hms_unsubscribe hms_schema_register hms_convert
      hms_method_call hms_call_batch hms_serve
    ].freeze

    # A response buffer whose capacity grew past this is released after its
    # answer was copied out, so one large answer does not pin memory for good.
    KEEP_CAPACITY = 1 << 20

    BACKENDS = %w[fiddle ffi].freeze
    ORIGIN = Format::ORIGIN

    @lock = Mutex.new
    @backend = nil

    class << self
      # The loaded backend (loading the library on first use).
      def backend
        @backend || load_library
      end

      def loaded?
        !@backend.nil?
      end

      # Loads libhms_ffi once per process. +path+: an absolute path; without
      # it, the search order of LibrarySearch ($HMS_FFI_LIBRARY,
      # $HMS_FFI_PYTHON, pkg-config, the loader path, a checkout's build).
      # +backend+: "fiddle" or "ffi" (default: $HMS_BACKEND, else "fiddle").
      # Raises HMS::LoadError, listing every place looked at, when nothing
      # loads. Loading again returns the loaded backend, unless another
      # backend or another explicit path is asked for (ArgumentError).
      def load_library(path = nil, backend: nil)
        @lock.synchronize do
          name = resolve_backend(backend)
          search = LibrarySearch.new(path)
          wanted = search.explicit
          if @backend
            return @backend if @backend.name == name && (wanted.nil? || wanted == @backend.path)

            raise ArgumentError,
                  "libhms_ffi is loaded already (#{@backend.path}, backend #{@backend.name}); " \
                  "cannot switch to #{wanted || @backend.path} with backend #{name} in this process"
          end
          klass = backend_class(name)
          @backend = search.open { |target| open_backend(klass, target) }
        end
      end

      # Raises IncompatibleError unless +version+ ((major << 16) | minor, as
      # hms_abi_version() returns it) has this binding's major and at least
      # its minor.
      def check_abi!(version, path = nil)
        major = version >> 16
        minor = version & 0xFFFF
        return if major == ABI_MAJOR && minor >= ABI_MINOR

        where = path ? " (#{path})" : ""
        raise IncompatibleError.new(
          "libhms_ffi#{where} has ABI #{major}.#{minor}, but this hms gem was built for ABI " \
          "#{ABI_MAJOR}.#{ABI_MINOR} (needs #{ABI_MAJOR}.x with x >= #{ABI_MINOR}): " \
          "a stale or foreign library is being loaded",
          details: { "library_abi" => "#{major}.#{minor}", "binding_abi" => "#{ABI_MAJOR}.#{ABI_MINOR}" },
          origin: ORIGIN
        )
      end

      # The exception for status +rc+, with the hms.v1.Status the library
      # wrote into the error buffer (+raw+, in +format+).
      def error_from(rc, raw, format)
        written = !(raw.nil? || raw.empty?)
        status = written ? decode_status(raw, format) : nil
        # A status the library could not write in the call's format is JSON
        # (e.g. that of an invalid method handle, whose format is unknown).
        if written && format != Format::JSON && (status.nil? || status["code"].to_i != rc)
          json = decode_status(raw, Format::JSON)
          status = json if json && json["code"].to_i == rc
        end
        message = ""
        details = nil
        origin = ""
        # A status whose code differs from rc is stale (left by an earlier call).
        if status && status["code"].to_i == rc
          message = status["message"].to_s
          details = status["details"]
          origin = status["origin"].to_s
        end
        message = (Status.name_of(rc) || "status #{rc}").to_s.downcase.tr("_", " ") if message.empty?
        Error.from_status(rc, message, details.is_a?(Hash) ? details : nil, origin)
      end

      # The hms.v1.Status in +raw+ as a Hash, nil when it does not decode.
      def decode_status(raw, format)
        status = case format
                 when Format::PROTOBUF then StatusProto.decode(raw)
                 when Format::CBOR then Format.cbor? ? ::CBOR.decode(raw) : nil
                 else ::JSON.parse(raw)
                 end
        status.is_a?(Hash) ? status : nil
      rescue StandardError
        nil
      end

      private

      def resolve_backend(name)
        name = ENV.fetch("HMS_BACKEND", "") if name.nil?
        name = name.to_s.strip.downcase
        name = "fiddle" if name.empty?
        return name if BACKENDS.include?(name)

        raise ArgumentError, "unknown HMS backend #{name.inspect} (HMS_BACKEND is fiddle or ffi)"
      end

      # Loading backend/ffi.rb raises HMS::LoadError without the ffi gem.
      def backend_class(name)
        if name == "ffi"
          require_relative "backend/ffi"
          Backend::FFI
        else
          require_relative "backend/fiddle"
          Backend::Fiddle
        end
      end

      # +target+: a path, or a bare name the system loader looks up. Both
      # backends report a library that does not dlopen, or lacks a function
      # of the ABI, the same way to the search.
      def open_backend(klass, target)
        klass.new(target)
      rescue ::LoadError, ::Fiddle::DLError => e
        # The ffi gem prefixes dlerror's text, which names the file already.
        raise LibrarySearch::Unloadable, e.message.sub(/\ACould not open library '[^']*': /, "")
      end
    end

    # Decodes an hms.v1.Status in protobuf without google-protobuf (the gem
    # needs nothing beyond the standard library): code (1, int32), message
    # (2), details (3, map<string,string>), origin (4).
    module StatusProto
      module_function

      def decode(raw)
        status = { "details" => {} }
        each_field(raw.b) do |field, value|
          case field
          when 1 then status["code"] = value >= 1 << 63 ? value - (1 << 64) : value
          when 2 then status["message"] = value.force_encoding(Encoding::UTF_8)
          when 3
            entry = {}
            each_field(value) { |f, v| entry[f] = v.force_encoding(Encoding::UTF_8) if v.is_a?(String) }
            status["details"][entry.fetch(1, "")] = entry.fetch(2, "")
          when 4 then status["origin"] = value.force_encoding(Encoding::UTF_8)
          end
        end
        status
      end

      def each_field(bytes)
        pos = 0
        while pos < bytes.bytesize
          key, pos = varint(bytes, pos)
          case key & 7
          when 0
            value, pos = varint(bytes, pos)
          when 2
            len, pos = varint(bytes, pos)
            raise ArgumentError, "truncated" if pos + len > bytes.bytesize

            value = bytes.byteslice(pos, len)
            pos += len
          when 1 then value = nil
                      pos += 8
          when 5 then value = nil
                      pos += 4
          else raise ArgumentError, "unsupported wire type"
          end
          yield key >> 3, value
        end
      end

      def varint(bytes, pos)
        result = 0
        shift = 0
        loop do
          byte = bytes.getbyte(pos) or raise ArgumentError, "truncated varint"
          pos += 1
          result |= (byte & 0x7F) << shift
          return [result, pos] if byte < 0x80

          shift += 7
          raise ArgumentError, "varint too long" if shift > 63
        end
      end
    end
  end
end
