# frozen_string_literal: true

# HMS FFI from Ruby: the Rust core of the HMS agent platform through its C
# ABI (include/hms_ffi.h), with Fiddle from the standard library (default)
# or the ffi gem (HMS_BACKEND=ffi).
#
#   require "hms"
#   HMS::Runtime.open do |rt|
#     rt.call("hms.sys.v1.System/Echo", { "text" => "hi" })  # => {"text"=>"hi"}
#   end

require_relative "hms/version"
require_relative "hms/abi"
require_relative "hms/errors"
require_relative "hms/format"
require_relative "hms/native"
require_relative "hms/proto"
require_relative "hms/credentials"
require_relative "hms/owned_handle"
require_relative "hms/services"
require_relative "hms/method_handle"
require_relative "hms/subscription"
require_relative "hms/runtime"
require_relative "hms/domain"

# The generated protobuf classes (Hms::...), when google-protobuf is installed.
HMS::Proto.available?

module HMS
  class << self
    # Loads libhms_ffi (see Native.load_library): +path+ absolute, default
    # the search order of HMS::LibrarySearch ($HMS_FFI_LIBRARY, pkg-config,
    # the loader path, ...; HMS::LoadError when nothing loads); +backend+
    # "fiddle" (default) or "ffi" (default $HMS_BACKEND). Checks the ABI
    # version and raises IncompatibleError naming both versions. Without
    # this call the library loads on first use (HMS::Runtime.new).
    def load_library(path = nil, backend: nil)
      Native.load_library(path, backend: backend)
    end

    # "fiddle" or "ffi".
    def backend
      Native.backend.name
    end

    # [major, minor] of the loaded library's ABI.
    def abi_version
      v = Native.backend.abi_version
      [v >> 16, v & 0xFFFF]
    end

    # Semantic version of the loaded library (hms_version()).
    def library_version
      Native.backend.version
    end

    # Where the loaded library came from: its path, or the name the system
    # loader resolved ("libhms_ffi.so.1").
    def library_path
      Native.backend.path
    end

    # Adds the message types of a google.protobuf.FileDescriptorSet
    # (protobuf bytes, e.g. from protoc --descriptor_set_out
    # --include_imports) to the core's schema pool.
    def register_schema(file_descriptor_set)
      Native.backend.schema_register(file_descriptor_set.to_s)
    end

    # Converts one message between formats (+type_name+ "" converts any
    # value structurally between CBOR and JSON).
    def convert(type_name, data, from:, to:)
      Native.backend.convert(type_name.to_s, Format.resolve(from), data, Format.resolve(to))
    end
  end
end
