# frozen_string_literal: true

require_relative "test_helper"
require "open3"
require "fileutils"
require "tmpdir"

# The gem needs nothing beyond Ruby's standard library: with cbor, ffi and
# google-protobuf all unloadable, the Fiddle backend still does everything
# with hashes in JSON.
class StdlibOnlyTest < Minitest::Test
  include HMSTest

  SCRIPT = <<~'RUBY'
    require "hms"
    raise "cbor loaded" if HMS::Format.cbor?
    raise "protobuf loaded" if HMS::Proto.available?
    HMS::Runtime.open(name: "plain") do |rt|
      puts rt.format == HMS::Format::JSON
      puts rt.call("hms.sys.v1.System/Echo", { "text" => "plain" })["text"]
      puts rt.health["runtime_name"]
      rt.register_service("demo.v1.Plain", "Twice" => ->(req) { { "n" => req["n"] * 2 } })
      puts rt.call("demo.v1.Plain/Twice", { "n" => 21 })["n"]
      agent = rt.agents.create(name: "plain-agent")
      rt.lifecycle.transition(agent["id"], :ACTIVE)
      puts rt.tasks.submit(title: "t", input: "\x00".b, agent_id: agent["id"])["input"]
      sub = rt.subscribe(kinds: ["agent.*"])
      rt.agents.update(agent["id"], description: "x")
      puts sub.next(1000)["kind"]
      begin
        rt.call("demo.v1.Nope/X", "", format: :protobuf)
      rescue HMS::NotFoundError => e
        puts e.details["service"]
      end
      begin
        rt.call("hms.sys.v1.System/Echo", Object.new)
      rescue TypeError => e
        puts e.class
      end
    end
    begin
      HMS.load_library(HMS::Native.backend.path, backend: "ffi")
    rescue ArgumentError => e
      puts e.message.include?("cannot switch")
    end
  RUBY

  def test_everything_works_without_optional_gems
    Dir.mktmpdir do |dir|
      FileUtils.mkdir_p(File.join(dir, "google"))
      %w[cbor.rb ffi.rb google/protobuf.rb].each do |name|
        File.write(File.join(dir, name), "raise LoadError, 'hidden for this test: #{name}'\n")
      end
      env = { "HMS_BACKEND" => "fiddle" }
      out, err, status = Open3.capture3(env, ruby_binary, "-w", "-I", dir, "-I", File.join(GEM_ROOT, "lib"),
                                        "-e", SCRIPT)
      assert status.success?, err
      assert_empty err
      assert_equal ["true", "plain", "plain", "42", "AA==", "agent.updated", "demo.v1.Nope", "TypeError", "true"],
                   out.lines.map(&:chomp)
    end
  end

  def test_ffi_backend_without_the_gem_says_what_to_install
    Dir.mktmpdir do |dir|
      File.write(File.join(dir, "ffi.rb"), "raise LoadError, 'cannot load such file -- ffi'\n")
      script = "require 'hms'; begin; HMS.load_library; rescue StandardError => e; puts e.class, e.message; end"
      out, err, status = Open3.capture3({ "HMS_BACKEND" => "ffi" }, ruby_binary, "-I", dir, "-I",
                                        File.join(GEM_ROOT, "lib"), "-e", script)
      assert status.success?, err
      assert_equal "HMS::LoadError", out.lines.first.chomp
      assert_includes out, "HMS_BACKEND=ffi needs the ffi gem (Debian: ruby-ffi"
    end
  end
end
