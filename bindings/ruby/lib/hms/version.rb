# frozen_string_literal: true

module HMS
  # Version of this gem, the same as rust_core/Cargo.toml's: gem and core
  # are released together (test/gem_test.rb checks they agree). The
  # library reports its own through HMS.library_version.
  VERSION = "1.4.0"
end
