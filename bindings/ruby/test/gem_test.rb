# frozen_string_literal: true

require_relative "test_helper"
require "open3"
require "tmpdir"

# The gem as `gem build` packs it: the version of the core it belongs to,
# every file lib/ loads at run time, nothing from outside the gem, and a
# build that prints no warning. tests/install/ruby.sh installs the built gem
# and runs the README's quickstart from outside the checkout.
class GemTest < Minitest::Test
  include HMSTest

  def spec
    @spec ||= Gem::Specification.load(File.join(GEM_ROOT, "hms.gemspec"))
  end

  def test_version_is_the_core_version
    cargo = File.read(File.join(ROOT, "rust_core", "Cargo.toml"))
    assert_equal cargo[/^version = "([^"]+)"/, 1], HMS::VERSION
    assert_equal Gem::Version.new(HMS::VERSION), spec.version
  end

  def test_files_hold_everything_lib_loads
    lib_files = Dir.glob("lib/**/*.rb", base: GEM_ROOT).sort
    assert_includes lib_files, "lib/hms/abi.rb"
    assert_includes lib_files, "lib/hms/gen/hms/sys/v1/system_pb.rb"
    assert_equal (lib_files + ["README.md"]).sort, spec.files.sort
    spec.files.each { |file| assert File.file?(File.join(GEM_ROOT, file)), "#{file} is listed but missing" }
  end

  # A require_relative reaching outside lib/ would break once installed.
  def test_lib_requires_nothing_outside_the_gem
    Dir.glob(File.join(GEM_ROOT, "lib", "**", "*.rb")).each do |file|
      File.read(file).scan(/^\s*require_relative\s+["']([^"']+)["']/).flatten.each do |target|
        resolved = File.expand_path("#{target}.rb", File.dirname(file))
        assert File.file?(resolved), "#{file}: require_relative #{target.inspect} names no file"
        assert resolved.start_with?(File.join(GEM_ROOT, "lib", "")), "#{file} loads #{resolved}, outside lib/"
      end
    end
  end

  def test_metadata_is_complete
    assert_equal ["Apache-2.0"], spec.licenses
    assert_equal Gem::Requirement.new(">= 3.1"), spec.required_ruby_version
    assert spec.homepage.start_with?("https://")
    %w[source_code_uri documentation_uri bug_tracker_uri].each do |key|
      assert spec.metadata.fetch(key).start_with?(spec.homepage), key
    end
    assert_equal "true", spec.metadata["rubygems_mfa_required"]
    assert_equal %w[cbor google-protobuf], spec.runtime_dependencies.map(&:name).sort
  end

  # The declared dependencies are met by the gems installed here (Debian:
  # ruby-cbor, ruby-google-protobuf), which is what `gem install --local`
  # resolves against when rubygems.org is out of reach.
  def test_dependencies_are_met_by_the_installed_gems
    spec.runtime_dependencies.each do |dependency|
      refute_empty dependency.matching_specs, "no installed gem satisfies #{dependency}"
    end
  end

  def test_gem_build_prints_no_warning
    Dir.mktmpdir do |dir|
      gem_file = File.join(dir, "hms.gem")
      out, err, status = Open3.capture3(ruby_binary, "-S", "gem", "build", "hms.gemspec", "-o", gem_file,
                                        chdir: GEM_ROOT)
      assert status.success?, "#{out}#{err}"
      refute_match(/warning/i, out + err)
      assert File.file?(gem_file)
    end
  end
end
