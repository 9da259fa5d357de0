# frozen_string_literal: true

require "open3"
require_relative "errors"

module HMS
  # Finds libhms_ffi in the search order every HMS binding follows
  # (docs/install.md); the first place that has it wins:
  #
  # 1. an explicit setting: the path given to HMS.load_library (or
  #    HMS::Runtime.new(library:)), else $HMS_FFI_LIBRARY;
  # 2. $HMS_FFI_PYTHON: the copy inside that interpreter's hms_cffi package,
  #    as `$HMS_FFI_PYTHON -m hms_cffi.paths library` prints it;
  # 3. pkg-config: libhms_ffi.so in `pkg-config --variable=libdir hms_ffi`;
  # 4. the system loader path: libhms_ffi.so.1, then libhms_ffi.so, by name;
  # 5. only when this gem runs from a checkout of the repository, that
  #    checkout's rust_core/target/release/libhms_ffi.so: last, so a
  #    development build never shadows an installed library.
  #
  # Steps 1 and 2 are requests: when they name nothing loadable the search
  # stops there with HMS::LoadError instead of loading some other library.
  # A file that is found but does not load stops it the same way. When no
  # step finds anything, HMS::LoadError lists every place looked at.
  class LibrarySearch
    FILE = "libhms_ffi.so"
    LOADER_NAMES = %w[libhms_ffi.so.1 libhms_ffi.so].freeze
    # The repository root when this file is bindings/ruby/lib/hms/ of a
    # checkout; an installed gem has no rust_core/ there.
    CHECKOUT = File.expand_path("../../../..", __dir__)
    CHECKOUT_BUILD = File.join(CHECKOUT, "rust_core", "target", "release", FILE)
    FIX = "run `make install PREFIX=/usr/local` in the hms checkout (with another PREFIX, also " \
          "export PKG_CONFIG_PATH=PREFIX/lib/pkgconfig), or set HMS_FFI_LIBRARY=/path/to/libhms_ffi.so"

    # The opener could not dlopen a candidate, or not bind its functions;
    # the message is the system loader's (dlerror).
    class Unloadable < StandardError; end

    # Whether this gem runs from a checkout of the repository.
    def self.checkout?
      File.file?(File.join(CHECKOUT, "rust_core", "Cargo.toml")) &&
        File.file?(File.join(CHECKOUT, "include", "hms_ffi.h"))
    end

    # The path asked for by name (given to HMS.load_library, else
    # $HMS_FFI_LIBRARY), or nil.
    attr_reader :explicit

    # +path+: the path given to HMS.load_library, or nil. An explicit path
    # is checked at once: a relative one raises ArgumentError (dlopen would
    # look a bare name up on the loader path, and resolve a relative one
    # against the current directory), a missing one HMS::LoadError.
    def initialize(path = nil)
      @searched = []
      @explicit = path.nil? ? setting("HMS_FFI_LIBRARY") : path.to_s
      if @explicit.nil?
        @searched << "HMS_FFI_LIBRARY: not set"
        return
      end
      who = path.nil? ? "HMS_FFI_LIBRARY" : "the path given to HMS.load_library"
      unless File.absolute_path?(@explicit)
        raise ArgumentError, "#{who} must be an absolute path to libhms_ffi, not #{@explicit.inspect}"
      end

      @requested_by = path.nil? ? "HMS_FFI_LIBRARY=#{@explicit}" : "HMS.load_library(#{@explicit.inspect})"
      return if File.file?(@explicit)

      give_up(@requested_by, "no such file",
              "point #{who} at an existing libhms_ffi.so (after `make install PREFIX=/usr/local`: " \
              "/usr/local/lib/libhms_ffi.so), or leave it out to search pkg-config and the loader path")
    end

    # Opens the first library of the search order: the block takes a path
    # (or a bare name for the loader) and returns the opened backend, or
    # raises Unloadable. Any other error of the block (e.g.
    # HMS::IncompatibleError for a library of another ABI) ends the search.
    def open(&opener)
      requested(&opener) || from_python(&opener) || from_pkg_config(&opener) ||
        from_loader_path(&opener) || from_checkout(&opener) ||
        raise(HMS::LoadError.new(not_found_message, searched: @searched))
    end

    private

    def requested(&opener)
      @explicit && load_found(@explicit, @requested_by, &opener)
    end

    def from_python(&opener)
      python = setting("HMS_FFI_PYTHON")
      if python.nil?
        @searched << "HMS_FFI_PYTHON: not set"
        return nil
      end
      command = "#{python} -m hms_cffi.paths library"
      place = "HMS_FFI_PYTHON: `#{command}`"
      fix = "install the hms-cffi package into #{python} (`#{python} -m pip install .` in the checkout), " \
            "or unset HMS_FFI_PYTHON"
      begin
        out, err, status = Open3.capture3(python, "-m", "hms_cffi.paths", "library")
      rescue SystemCallError => e
        give_up(place, "cannot run #{python}: #{e.message}", fix)
      end
      ended = status.exitstatus ? "exit #{status.exitstatus}" : status.to_s
      give_up(place, "#{ended}: #{last_line(err)}", fix) unless status.success?
      path = out.strip
      unless File.absolute_path?(path) && File.file?(path)
        give_up(place, "printed #{path.inspect}, which is not a file", fix)
      end
      load_found(path, "#{place} -> #{path}", &opener)
    end

    def from_pkg_config(&opener)
      begin
        out, err, status = Open3.capture3("pkg-config", "--print-errors", "--variable=libdir", "hms_ffi")
      rescue SystemCallError
        @searched << "pkg-config: not installed (Debian: pkg-config)"
        return nil
      end
      search_path = "PKG_CONFIG_PATH=#{setting('PKG_CONFIG_PATH') || '(unset)'}"
      unless status.success?
        @searched << "pkg-config hms_ffi: #{last_line(err, first: true)} (#{search_path})"
        return nil
      end
      libdir = out.strip
      path = File.join(libdir, FILE)
      if libdir.empty? || !File.file?(path)
        @searched << "pkg-config hms_ffi: hms_ffi.pc says libdir=#{libdir.inspect}, which holds no #{FILE}"
        return nil
      end
      load_found(path, "pkg-config hms_ffi: #{path}", &opener)
    end

    def from_loader_path
      LOADER_NAMES.each do |name|
        return yield(name)
      rescue Unloadable => e
        @searched << "the system loader path (LD_LIBRARY_PATH, /etc/ld.so.cache): #{e.message}"
      end
      nil
    end

    def from_checkout(&opener)
      return nil unless self.class.checkout?

      unless File.file?(CHECKOUT_BUILD)
        @searched << "this checkout's build: #{CHECKOUT_BUILD} (not built: " \
                     "`cargo build --release --manifest-path rust_core/Cargo.toml`)"
        return nil
      end
      load_found(CHECKOUT_BUILD, "this checkout's build: #{CHECKOUT_BUILD}", &opener)
    end

    # A file that exists must load: a broken one is reported, not skipped.
    def load_found(path, place)
      yield path
    rescue Unloadable => e
      give_up(place, "found, but it does not load: #{e.message}",
              "rebuild or reinstall it (`cargo build --release --manifest-path rust_core/Cargo.toml`, " \
              "then `make install`)")
    end

    def give_up(place, problem, fix)
      @searched << "#{place} (#{problem})"
      raise HMS::LoadError.new("libhms_ffi could not be loaded from #{place}: #{problem}. Fix: #{fix}",
                               searched: @searched)
    end

    def not_found_message
      looked = @searched.map { |place| "  - #{place}" }.join("\n")
      "libhms_ffi was not found. Looked at, in this order:\n#{looked}\nFix: #{FIX}"
    end

    # An environment variable, nil when unset or empty.
    def setting(name)
      value = ENV.fetch(name, "")
      value.empty? ? nil : value
    end

    def last_line(text, first: false)
      lines = text.to_s.lines.map(&:strip).reject(&:empty?)
      (first ? lines.first : lines.last) || "no output"
    end
  end
end
