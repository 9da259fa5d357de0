# frozen_string_literal: true

require_relative "lib/hms/version"

Gem::Specification.new do |spec|
  spec.name = "hms"
  spec.version = HMS::VERSION
  spec.summary = "HMS FFI from Ruby: the HMS agent platform's Rust core through its C ABI"
  spec.description = <<~TEXT
    Binds libhms_ffi (include/hms_ffi.h) with Fiddle from Ruby's standard
    library, or the ffi gem with HMS_BACKEND=ffi: calls with hashes (CBOR or
    JSON) or protobuf messages, method handles and batches of calls (ABI
    1.1), host services as Ruby blocks, polled events, and typed helpers for
    agents, tasks, knowledge and lifecycle hooks.
  TEXT
  spec.authors = ["HMS FFI contributors"]
  spec.license = "Apache-2.0"
  spec.required_ruby_version = ">= 3.1"
  spec.files = Dir.glob("lib/**/*.rb") + Dir.glob("tools/*.rb") + %w[README.md hms.gemspec generate.sh]
  spec.require_paths = ["lib"]
  spec.metadata["rubygems_mfa_required"] = "true"
  # Nothing beyond the standard library is required. Optional, used when
  # installed: cbor (hashes as CBOR), ffi (HMS_BACKEND=ffi), google-protobuf
  # (protobuf messages, lib/hms/gen).
end
