# frozen_string_literal: true

require_relative "test_helper"
require "fileutils"
require "open3"
require "tmpdir"

# The search order of HMS::LibrarySearch (docs/install.md), each step in a
# fresh process: its environment holds PATH, HOME and HMS_BACKEND only, and
# pkg-config sees one folder (empty unless a test puts hms_ffi.pc there), so
# neither the suite's HMS_FFI_LIBRARY nor a library installed on this
# machine answers in its place. The gem is loaded from a copy of lib/
# outside the checkout, as when installed, unless a test needs the checkout.
class LibrarySearchTest < Minitest::Test
  include HMSTest

  # Prints where the library came from, or the class and message of the
  # error that said why not.
  PROBE = <<~RUBY
    require "hms"
    begin
      HMS::Runtime.open { |rt| rt.call("hms.sys.v1.System/Echo", { "text" => "found" }) }
      puts "loaded \#{HMS::Native.backend.path}"
    rescue StandardError => e
      puts e.class, e.message
    end
  RUBY

  def setup
    super
    @dir = Dir.mktmpdir("hms-search")
    @library = HMS::Native.backend.path
    @pc_dir = File.join(@dir, "pkgconfig")
    FileUtils.mkdir_p(@pc_dir)
  end

  def teardown
    FileUtils.rm_rf(@dir)
    super
  end

  def test_explicit_path_to_nothing_raises_load_error_naming_it
    missing = File.join(@dir, "nowhere", "libhms_ffi.so")
    error = assert_raises(HMS::LoadError) { HMS::Native.load_library(missing) }
    assert_includes error.message, "HMS.load_library(#{missing.inspect}): no such file"
    assert_kind_of StandardError, error

    out = probe({ "HMS_FFI_LIBRARY" => missing })
    assert_equal "HMS::LoadError", out.lines.first.chomp
    assert_includes out, "HMS_FFI_LIBRARY=#{missing}: no such file"
  end

  def test_explicit_setting_is_never_passed_over
    install_prefix(broken: true)
    assert_equal "loaded #{@library}\n", probe({ "HMS_FFI_LIBRARY" => @library })
  end

  def test_nothing_found_lists_every_place_looked_at
    out = probe
    skip "libhms_ffi is on this machine's loader path: #{out}" if out.start_with?("loaded libhms_ffi")
    lines = out.lines.map(&:chomp)
    assert_equal "HMS::LoadError", lines[0]
    assert_equal "libhms_ffi was not found. Looked at, in this order:", lines[1]
    assert_equal "  - HMS_FFI_LIBRARY: not set", lines[2]
    assert_equal "  - HMS_FFI_PYTHON: not set", lines[3]
    assert_match(/\A  - pkg-config hms_ffi: Package hms_ffi was not found/, lines[4])
    assert lines[4].end_with?("(PKG_CONFIG_PATH=#{@pc_dir})"), lines[4]
    assert_match(/\A  - the system loader path .*libhms_ffi\.so\.1: cannot open/, lines[5])
    assert_match(/\A  - the system loader path .*libhms_ffi\.so: cannot open/, lines[6])
    assert_match(/\AFix: run `make install PREFIX=\/usr\/local`.*HMS_FFI_LIBRARY=/, lines[7])
    assert_equal 8, lines.size, "an installed gem never looks into a checkout: #{out}"
  end

  def test_pkg_config_finds_the_installed_library_before_the_checkout_build
    prefix = install_prefix
    out = probe({ "PKG_CONFIG_PATH" => File.join(prefix, "lib", "pkgconfig") }, lib: File.join(GEM_ROOT, "lib"))
    assert_equal "loaded #{File.join(prefix, 'lib', 'libhms_ffi.so')}\n", out
  end

  def test_a_found_file_that_does_not_load_is_reported
    prefix = install_prefix(broken: true)
    out = probe({ "PKG_CONFIG_PATH" => File.join(prefix, "lib", "pkgconfig") })
    assert_equal "HMS::LoadError", out.lines.first.chomp
    assert_includes out, "pkg-config hms_ffi: #{File.join(prefix, 'lib', 'libhms_ffi.so')}: found, but it does not load"
  end

  def test_loader_path_finds_the_versioned_name
    FileUtils.ln_s(@library, File.join(@dir, "libhms_ffi.so.1"))
    assert_equal "loaded libhms_ffi.so.1\n", probe({ "LD_LIBRARY_PATH" => @dir })
  end

  def test_checkout_build_is_the_last_resort
    build = HMS::LibrarySearch::CHECKOUT_BUILD
    skip "#{build} is not built" unless File.file?(build)
    out = probe({}, lib: File.join(GEM_ROOT, "lib"))
    skip "libhms_ffi is on this machine's loader path: #{out}" if out.start_with?("loaded libhms_ffi")
    assert_equal "loaded #{build}\n", out
  end

  def test_python_package_copy_when_asked
    python = fake_python("echo #{@library.inspect}")
    assert_equal "loaded #{@library}\n", probe({ "HMS_FFI_PYTHON" => python })

    # A request that fails stops the search: a pkg-config library is not
    # loaded in its place.
    prefix = install_prefix
    python = fake_python("echo \"No module named 'hms_cffi'\" >&2; exit 1")
    out = probe({ "HMS_FFI_PYTHON" => python, "PKG_CONFIG_PATH" => File.join(prefix, "lib", "pkgconfig") })
    assert_equal "HMS::LoadError", out.lines.first.chomp
    assert_includes out, "HMS_FFI_PYTHON: `#{python} -m hms_cffi.paths library`: exit 1: No module named 'hms_cffi'"
  end

  private

  # Runs PROBE in a fresh Ruby (see the class comment); +lib+: the folder
  # the gem is loaded from. Returns its output; fails on any warning.
  def probe(env = {}, lib: installed_copy)
    base = { "PATH" => ENV.fetch("PATH"), "HOME" => ENV.fetch("HOME", @dir),
             "HMS_BACKEND" => ENV.fetch("HMS_BACKEND", "fiddle"),
             "PKG_CONFIG_PATH" => @pc_dir, "PKG_CONFIG_LIBDIR" => @pc_dir }
    out, err, status = Open3.capture3(base.merge(env), ruby_binary, "-w", "-I", lib, "-e", PROBE,
                                      unsetenv_others: true, chdir: @dir)
    assert status.success?, "#{out}#{err}"
    assert_empty err
    out
  end

  def installed_copy
    copy = File.join(@dir, "gem")
    FileUtils.cp_r(File.join(GEM_ROOT, "lib"), copy) unless File.directory?(copy)
    copy
  end

  # An installed layout under @dir/prefix, as `make install` leaves it:
  # lib/libhms_ffi.so (the library under test, or a file that is no
  # library) and lib/pkgconfig/hms_ffi.pc written by tools/gen_pkgconfig.py.
  def install_prefix(broken: false)
    prefix = File.join(@dir, "prefix")
    libdir = File.join(prefix, "lib")
    FileUtils.mkdir_p(File.join(libdir, "pkgconfig"))
    target = File.join(libdir, "libhms_ffi.so")
    broken ? File.write(target, "not a library\n") : FileUtils.ln_s(@library, target)
    _out, err, status = Open3.capture3("python3", File.join(ROOT, "tools", "gen_pkgconfig.py"), "--prefix", prefix,
                                       "--native-static-libs=-lm",
                                       "-o", File.join(libdir, "pkgconfig", "hms_ffi.pc"))
    assert status.success?, "gen_pkgconfig.py: #{err}"
    prefix
  end

  # An executable that answers `-m hms_cffi.paths library` with +body+,
  # standing in for a Python with hms_cffi installed.
  def fake_python(body)
    path = File.join(@dir, "python-#{body.hash.abs}")
    File.write(path, <<~SH)
      #!/bin/sh
      [ "$*" = "-m hms_cffi.paths library" ] || { echo "unexpected arguments: $*" >&2; exit 2; }
      #{body}
    SH
    File.chmod(0o755, path)
    path
  end
end
