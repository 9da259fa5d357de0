# frozen_string_literal: true

require_relative "lib/hms/version"

Gem::Specification.new do |spec|
  spec.name = "hms"
  spec.version = HMS::VERSION
  spec.summary = "HMS FFI from Ruby: the HMS agent platform's Rust core through its C ABI"
  spec.description = <<~TEXT
    Binds libhms_ffi (include/hms_ffi.h) with Fiddle from Ruby's standard
    library, or the ffi gem with HMS_BACKEND=ffi: calls with hashes (CBOR or
    JSON) or protobuf messages, method handles and batches of calls, host
    services as Ruby blocks, polled events, and typed helpers for agents,
    tasks, knowledge and lifecycle hooks. The library itself is not in the
    gem: install it with `make install` from the repository, and the gem
    finds it through pkg-config or the system loader path.
  TEXT
  spec.authors = ["HMS FFI contributors"]
  spec.homepage = "https://github.com/hms-ffi/hms"
  spec.license = "Apache-2.0"
  spec.required_ruby_version = ">= 3.1"
  spec.metadata = {
    "homepage_uri" => spec.homepage,
    "source_code_uri" => "#{spec.homepage}/tree/main/bindings/ruby",
    "documentation_uri" => "#{spec.homepage}/blob/main/bindings/ruby/README.md",
    "bug_tracker_uri" => "#{spec.homepage}/issues",
    "rubygems_mfa_required" => "true"
  }

  # Everything lib/ loads at run time, the generated ABI table (lib/hms/abi.rb)
  # and protobuf classes (lib/hms/gen) included; globbed from this file's
  # folder so `gem build` works from any directory. The generators (tools/,
  # generate.sh) read the repository's include/ and stay out of the gem.
  spec.files = Dir.glob("lib/**/*.rb", base: __dir__).sort + %w[README.md]
  spec.require_paths = ["lib"]

  # Used when present and declared so that `gem install` brings them:
  # protobuf messages (google-protobuf; lib/hms/gen is protoc 3.21's
  # DescriptorPool DSL, which google-protobuf 4 no longer reads) and hashes
  # as CBOR (cbor; without it they travel as JSON, where 64-bit integers are
  # strings). The ffi gem (HMS_BACKEND=ffi) stays optional: Fiddle, from
  # the standard library, is the default backend.
  spec.add_dependency "cbor", "~> 0.5", ">= 0.5.9"
  spec.add_dependency "google-protobuf", "~> 3.21"
end
