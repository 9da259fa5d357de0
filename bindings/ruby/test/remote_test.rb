# frozen_string_literal: true

require "socket"
require_relative "test_helper"

# Calls through the NATS transport, against a real nats-server started here
# on a free loopback port. Ruby services run on the caller's thread
# (HMS_SERVICE_CALLER_THREAD): exported, their calls from other runtimes
# wait until a Ruby thread serves them (Runtime#serve, #serve_until).
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

  # Calls +calls+ ([method, request] pairs) from a runtime of its own on
  # another Ruby thread while this one serves +exporter+ until they are
  # done; returns [answers (a Hash or the HMS::Error), calls served].
  def call_while_serving(exporter, calls)
    caller = on_nats("ruby-caller")
    remote = Thread.new do
      calls.map do |method, request|
        caller.call(method, request)
      rescue HMS::Error => e
        e
      end
    end
    deadline = Process.clock_gettime(Process::CLOCK_MONOTONIC) + 30
    served = exporter.serve_until(tick_ms: 50) do
      flunk "the remote calls did not finish" if Process.clock_gettime(Process::CLOCK_MONOTONIC) > deadline
      !remote.alive?
    end
    [remote.value, served]
  end

  def test_an_exported_ruby_service_answers_another_runtime_while_this_thread_serves
    exporter = on_nats("ruby-exporter")
    server_thread = Thread.current
    ran_on = []
    exporter.register_service(
      "ruby.v1.Greeter",
      "Greet" => lambda { |req|
        ran_on << Thread.current
        { "greeting" => "Hello, #{req['name']}!" }
      },
      "Refuse" => lambda { |req|
        raise HMS::FailedPreconditionError.new("no greeting for #{req['name']}", details: { "reason" => "testing" })
      },
      export: true,
    )
    answers, served = call_while_serving(exporter, [["ruby.v1.Greeter/Greet", { "name" => "Ada" }],
                                                    ["ruby.v1.Greeter/Refuse", { "name" => "Bob" }]])
    assert_equal 2, served
    assert_equal({ "greeting" => "Hello, Ada!" }, answers[0])
    assert_equal [server_thread], ran_on
    # The handler's status crosses unchanged, naming the runtime that answered.
    refused = answers[1]
    assert_kind_of HMS::FailedPreconditionError, refused
    assert_equal "no greeting for Bob", refused.status_message
    assert_equal({ "reason" => "testing" }, refused.details)
    assert_equal "ruby-exporter", refused.origin
  end

  def test_a_ruby_service_named_for_export_is_served_the_same_way
    exporter = on_nats("ruby-exporter", exports: ["ruby.v1.Local"])
    exporter.register_service("ruby.v1.Local", "Ping" => ->(_req) { { "pong" => true } })
    assert_equal({ "pong" => true }, exporter.call("ruby.v1.Local/Ping", {}))
    answers, served = call_while_serving(exporter, [["ruby.v1.Local/Ping", {}]])
    assert_equal 1, served
    assert_equal [{ "pong" => true }], answers
  end

  def test_serve_returns_zero_when_nothing_comes_in_time
    exporter = on_nats("ruby-exporter")
    exporter.register_service("ruby.v1.Idle", "Ping" => ->(_req) { {} }, export: true)
    assert_equal 0, exporter.serve(0)
    assert_equal 0, exporter.serve(30)
    assert_equal 0, exporter.serve_until { true }
  end

  def test_export_and_serve_without_transport_are_refused
    alone = open_runtime
    error = assert_hms_error(HMS::FailedPreconditionError) do
      alone.register_service("ruby.v1.Lonely", "Ping" => ->(_req) { {} }, export: true)
    end
    assert_includes error.status_message, "no transport"
    # Nothing stayed registered: the name is free.
    alone.register_service("ruby.v1.Lonely", "Ping" => ->(_req) { { "pong" => 1 } })
    assert_equal({ "pong" => 1 }, alone.call("ruby.v1.Lonely/Ping", {}))
    error = assert_hms_error(HMS::FailedPreconditionError) { alone.serve(0) }
    assert_includes error.status_message, "no transport"
  end

  def test_serve_until_needs_a_block_and_a_tick_of_zero_or_more
    exporter = on_nats("ruby-exporter")
    assert_raises(ArgumentError) { exporter.serve_until }
    assert_raises(ArgumentError) { exporter.serve_until(tick_ms: -1) { true } }
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
