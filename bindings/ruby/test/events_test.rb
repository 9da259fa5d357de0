# frozen_string_literal: true

require_relative "test_helper"

# Events by polling: Subscription#next and #each_event.
class EventsTest < Minitest::Test
  include HMSTest
  include HMSTest::RuntimeFixture

  def register(name)
    @rt.register_service(name, "Ping" => ->(_) { {} })
  end

  def test_next_returns_events_in_order_and_nil_on_timeout
    sub = @rt.subscribe
    register("demo.v1.A")
    register("demo.v1.B")
    first = sub.next(1000)
    second = sub.next(1000)
    assert_equal "registry.service_registered", first["kind"]
    assert_equal "demo.v1.A", first["subject"]
    assert_equal({ "name" => "demo.v1.A", "methods" => ["Ping"] }, first["service"].slice("name", "methods"))
    assert_equal first["sequence"] + 1, second["sequence"]
    assert_match(/\A\d{4}-\d\d-\d\dT/, first["time"])
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC)
    assert_nil sub.next(150)
    waited = Process.clock_gettime(Process::CLOCK_MONOTONIC) - t0
    assert_operator waited, :>=, 0.14
    assert_operator waited, :<, 2
    assert_nil sub.next(0)
  end

  def test_filters_by_kind_prefix_and_subject
    by_subject = @rt.subscribe(subjects: ["demo.v1.Wanted"])
    by_kind = @rt.subscribe(kinds: ["registry.service_unregistered"])
    by_prefix = @rt.subscribe(kinds: "registry.*")
    register("demo.v1.Other")
    register("demo.v1.Wanted").close
    assert_equal [%w[registry.service_registered demo.v1.Wanted], %w[registry.service_unregistered demo.v1.Wanted]],
                 by_subject.each_event(100).map { |e| [e["kind"], e["subject"]] }
    assert_equal ["demo.v1.Wanted"], by_kind.each_event(100).map { |e| e["subject"] }
    assert_equal 3, by_prefix.each_event(100).count
  end

  def test_each_event_is_an_enumerator
    sub = @rt.subscribe
    5.times { |i| register("demo.v1.E#{i}") }
    enum = sub.each_event(200)
    assert_kind_of Enumerator, enum
    assert_equal %w[demo.v1.E0 demo.v1.E1], enum.first(2).map { |e| e["subject"] }
    rest = []
    sub.each_event(100) { |e| rest << e["subject"] }
    assert_equal %w[demo.v1.E2 demo.v1.E3 demo.v1.E4], rest
  end

  def test_events_in_json_and_protobuf
    json = @rt.subscribe(format: :json)
    proto = @rt.subscribe(format: :protobuf, kinds: ["registry.service_registered"])
    assert_equal :json, json.format
    register("demo.v1.Fmt")
    event = json.next(1000)
    assert_kind_of String, event["sequence"], "uint64 is a string in proto3 JSON"
    message = proto.next(1000)
    assert_instance_of Hms::Events::V1::Event, message
    assert_equal "registry.service_registered", message.kind
    assert_equal "demo.v1.Fmt", message.service.name
    assert_equal event["sequence"].to_i, message.sequence
  end

  def test_lagging_subscriber_gets_one_lagged_event
    rt = open_runtime(event_queue_capacity: 4)
    sub = rt.subscribe
    10.times { |i| rt.register_service("demo.v1.Lag#{i}", "Ping" => ->(_) { {} }) }
    events = sub.each_event(100).to_a
    lagged = events.select { |e| e["kind"] == "lagged" }
    assert_equal 1, lagged.size
    dropped = lagged.first.dig("lagged", "dropped")
    assert_operator dropped, :>, 0
    others = events.reject { |e| e["kind"] == "lagged" }
    assert_equal 10, dropped + others.size
    assert_equal "demo.v1.Lag9", others.last["subject"], "the newest events are kept"
  end

  def test_closing_the_runtime_wakes_a_blocked_poller
    sub = @rt.subscribe
    started = Queue.new
    poller = Thread.new do
      started << true
      sub.each_event.to_a
    end
    started.pop
    sleep 0.05
    @rt.close
    assert_equal [], poller.value
    assert sub.closed?
    assert_raises(HMS::ClosedError) { sub.next(0) }
  end

  def test_close_is_idempotent_and_next_after_close_raises
    sub = @rt.subscribe
    handle = sub.handle
    assert_match(/#<HMS::Subscription handle=0x\h+>/, sub.inspect)
    assert_nil sub.close
    assert_nil sub.close
    assert_raises(HMS::ClosedError) { sub.next(0) }
    assert_equal [], sub.each_event(0).to_a
    assert_equal HMS::Status::INVALID_HANDLE, HMS::Native.backend.unsubscribe(handle), "freed for good"
  end

  def test_pollers_on_several_threads_share_one_subscription
    sub = @rt.subscribe
    collected = Queue.new
    pollers = Array.new(3) do
      Thread.new do
        sub.each_event(300) { |e| collected << e["sequence"] }
      end
    end
    12.times { |i| register("demo.v1.P#{i}") }
    pollers.each(&:join)
    sequences = []
    sequences << collected.pop until collected.empty?
    assert_equal 12, sequences.size
    assert_equal sequences.uniq.size, sequences.size, "each event goes to one poller"
  end

  def test_bad_filter_is_refused
    assert_hms_error(HMS::DecodeError) { @rt.subscribe(states: ["NOT_A_STATE"]) }
    assert_hms_error(HMS::DecodeError) { HMS::Native.backend.subscribe(@rt.handle, HMS::Format::JSON, "[1,2") }
  end
end

class EventFilterTest < Minitest::Test
  include HMSTest
  include HMSTest::RuntimeFixture

  # Every filter field, in every format.
  def test_filters_by_agent_state_and_transition_type_in_every_format
    agent = @rt.agents.create(name: "filtered")
    other = @rt.agents.create(name: "other")
    subs = %i[cbor json protobuf].to_h do |format|
      [format, @rt.subscribe(kinds: ["lifecycle.transition"], agent_ids: [agent["id"]], states: [:PAUSED],
                             transition_types: [:TRANSITION_TYPE_NORMAL], format: format)]
    end
    @rt.lifecycle.transition(agent["id"], :ACTIVE)
    @rt.lifecycle.transition(other["id"], :ACTIVE)
    @rt.lifecycle.transition(other["id"], :PAUSED)
    @rt.lifecycle.transition(agent["id"], :PAUSED)
    @rt.lifecycle.transition(agent["id"], :ACTIVE)
    @rt.lifecycle.transition(agent["id"], :PAUSED, force: true)
    subs.each do |format, sub|
      events = sub.each_event(100).to_a
      assert_equal 1, events.size, format
      event = events.first
      if format == :protobuf
        assert_equal agent["id"], event.agent_id
        assert_equal :PAUSED, event.lifecycle.new_state
      else
        assert_equal agent["id"], event["agent_id"], format
        assert_equal "PAUSED", event.dig("lifecycle", "new_state"), format
      end
    end
  end
end
