# frozen_string_literal: true

module HMS
  # Version of this gem (the library reports its own through HMS.library_version).
  VERSION = "1.1.0"
end
