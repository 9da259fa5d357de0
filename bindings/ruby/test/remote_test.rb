# frozen_string_literal: true

require "socket"
require_relative "test_helper"

# Calls through the NATS transport, against a real nats-server started here
# on a free loopback port. Ruby services run on the caller's thread
# (HMS_SERVICE_CALLER_THREAD), so Ruby calls remote services but cannot
# export its own: the tests show both.
class RemoteTest < Minitest::Test
  include HMSTest
  include HMSTest::RuntimeFixture

  AGENTS = "hms.agent.v1.AgentService"

  def setup
    super
    probe = TCPServer.new("127.0.0.1", 0)
    port = probe.addr[1]
    probe.close
    binary = File.executable?("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : "nats-server"
    @server = Process.spawn(binary, "-a", "127.0.0.1", "-p", port.to_s, %i[out err] => File::NULL)
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 10
    begin
      TCPSocket.new("127.0.0.1", port).close
    rescue SystemCallError
      flunk "nats-server did not listen on port #{port}" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      sleep 0.02
      retry
    end
    @url = "nats://127.0.0.1:#{port}"
  end

  def teardown
    super
    return unless @server

    Process.kill(:KILL, @server)
    Process.wait(@server)
  end

  def on_nats(name, exports: [], remote: [])
    open_runtime(name: name, nats: { servers: [@url], export_services: exports, remote_services: remote,
                                     request_timeout_ms: 5000 })
  end

  def test_calls_reach_a_service_another_runtime_exports
    exporter = on_nats("ruby-exporter", exports: [AGENTS])
    caller = on_nats("ruby-caller", remote: [AGENTS])
    created = caller.call("#{AGENTS}/CreateAgent", { "agent" => { "name" => "remote ruby" } })
    assert_equal "remote ruby", created["name"]
    assert_equal created, exporter.call("#{AGENTS}/GetAgent", { "id" => created["id"] })
    assert_equal created, caller.call("#{AGENTS}/GetAgent", { "id" => created["id"] })
    error = assert_hms_error(HMS::NotFoundError) { caller.call("#{AGENTS}/GetAgent", { "id" => "nobody" }) }
    assert_equal "ruby-exporter", error.origin
  end

  def test_a_ruby_service_named_for_export_is_not_served_remotely_and_says_why
    exporter = on_nats("ruby-exporter", exports: ["ruby.v1.Local"])
    exporter.register_service("ruby.v1.Local", "Ping" => ->(_req) { { "pong" => true } })
    assert_equal({ "pong" => true }, exporter.call("ruby.v1.Local/Ping", {}))
    caller = on_nats("ruby-caller")
    error = assert_hms_error(HMS::UnavailableError) { caller.call("ruby.v1.Local/Ping", {}) }
    assert_includes error.status_message, "thread"
  end
  def test_remote_events_arrive_with_their_origin
    publisher = open_runtime(name: "ruby-publisher", nats: { servers: [@url], publish_events: true })
    watcher = on_nats("ruby-watcher")
    remote = watcher.subscribe(kinds: ["agent.*"], origins: ["ruby-publisher"])
    local_only = watcher.subscribe(kinds: ["agent.*"])
    agent = publisher.agents.create(name: "far away")
    event = remote.next(10_000)
    refute_nil event
    assert_equal ["agent.created", "ruby-publisher", agent["id"]], event.values_at("kind", "origin", "agent_id")
    assert_nil local_only.next(200)
  end

  def test_remote_events_need_a_transport_and_replay_needs_a_stream
    assert_hms_error(HMS::FailedPreconditionError) { open_runtime.subscribe(include_remote: true) }
    connected = on_nats("ruby-no-stream")
    error = assert_hms_error(HMS::FailedPreconditionError) { connected.subscribe(replay_from_sequence: 1) }
    assert_includes error.status_message, "event_stream"
    assert_hms_error(HMS::FailedPreconditionError) do
      connected.subscribe(replay_from_time: Time.at(0), format: HMS::Format::PROTOBUF)
    end
  end
end
