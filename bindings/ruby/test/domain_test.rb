# frozen_string_literal: true

require_relative "test_helper"

# The domain helpers: agents, tasks, knowledge, lifecycle and hooks as Ruby
# blocks, run for real against the core's services.
class DomainTest < Minitest::Test
  include HMSTest
  include HMSTest::RuntimeFixture

  def active_agent(name = "worker")
    agent = @rt.agents.create(name: name)
    @rt.lifecycle.transition(agent["id"], :ACTIVE)
    @rt.agents.get(agent["id"])
  end

  def test_domain_services_are_registered
    names = @rt.list_services("hms.agent.").map { |s| s["name"] }
    assert_equal %w[hms.agent.lifecycle.v1.LifecycleService hms.agent.v1.AgentService
                    hms.agent.v1.KnowledgeService hms.agent.v1.TaskService], names.sort
  end

  def test_agent_crud_with_revisions
    agent = @rt.agents.create(name: "scout", kind: "crawler", version: "1.0", capabilities: %w[fetch parse],
                              labels: { team: "red" }, metadata: { "owner" => "ann" }, description: "finds")
    assert_match(/\A\h{8}-\h{4}-\h{4}-\h{4}-\h{12}\z/, agent["id"])
    assert_equal "INITIALIZED", agent["state"]
    assert_equal 1, agent["revision"]
    assert_equal({ "team" => "red" }, agent["labels"])
    assert_equal %w[fetch parse], agent["capabilities"]
    assert_equal agent, @rt.agents.get(agent["id"])

    updated = @rt.agents.update(agent["id"], revision: 1, description: "finds more", labels: { team: "blue" })
    assert_equal 2, updated["revision"]
    assert_equal "finds more", updated["description"]
    assert_equal({ "team" => "blue" }, updated["labels"])
    assert_equal "crawler", updated["kind"], "fields outside the mask stay"
    stale = assert_hms_error(HMS::AbortedError) { @rt.agents.update(agent["id"], revision: 1, name: "x") }
    assert_includes stale.status_message, "revision 2"

    assert_hms_error(HMS::AbortedError) { @rt.agents.delete(agent["id"], revision: 1) }
    assert_equal({}, @rt.agents.delete(agent["id"], revision: 2))
    assert_hms_error(HMS::NotFoundError) { @rt.agents.get(agent["id"]) }
    assert_hms_error(HMS::InvalidArgumentError) { @rt.agents.create(name: "") }
  end

  def test_list_agents_filters_and_pages
    5.times { |i| @rt.agents.create(name: "a#{i}", kind: i.even? ? "even" : "odd", labels: { "n" => i.to_s }) }
    page = @rt.agents.list(page_size: 2)
    assert_equal 2, page["agents"].size
    refute_empty page["next_page_token"]
    assert_equal %w[a0 a1 a2 a3 a4], @rt.agents.each(page_size: 2).map { |a| a["name"] }
    assert_equal %w[a0 a2 a4], @rt.agents.each(kind: "even").map { |a| a["name"] }
    assert_equal %w[a3], @rt.agents.each(labels: { n: 3 }).map { |a| a["name"] }
    assert_equal [], @rt.agents.list(states: [:ACTIVE]).fetch("agents", [])
    @rt.lifecycle.transition(@rt.agents.each.first["id"], "ACTIVE")
    assert_equal %w[a0], @rt.agents.each(states: %w[ACTIVE]).map { |a| a["name"] }
  end

  def test_task_flow_forward_only
    agent = active_agent
    task = @rt.tasks.submit(title: "crawl", input: "\x00\x01".b, input_content_type: "application/octet-stream",
                            priority: 3, labels: { queue: "fast" }, deadline: Time.now + 3600)
    assert_equal "PENDING", task["status"]
    assert_equal "\x00\x01".b, task["input"]
    assert_equal({ "queue" => "fast" }, task["labels"])
    assert_equal "ASSIGNED", @rt.tasks.assign(task["id"], agent["id"])["status"]
    assert_equal "RUNNING", @rt.tasks.start(task["id"])["status"]
    done = @rt.tasks.complete(task["id"], result: "ok", result_content_type: "text/plain")
    assert_equal "SUCCEEDED", done["status"]
    assert_equal "ok", done["result"]
    error = assert_hms_error(HMS::FailedPreconditionError) { @rt.tasks.start(task["id"]) }
    refute_empty error.details["rule"].to_s
    assert_hms_error(HMS::FailedPreconditionError) { @rt.tasks.cancel(task["id"]) }

    failing = @rt.tasks.submit(title: "doomed", agent_id: agent["id"])
    assert_equal "ASSIGNED", failing["status"], "submitted with an agent: assigned at once"
    @rt.tasks.start(failing["id"])
    failed = @rt.tasks.fail(failing["id"], error: HMS::DataLossError.new("disk gone", details: { "disk" => "sda" }))
    assert_equal "FAILED", failed["status"]
    assert_equal "disk gone", failed.dig("error", "message")
    assert_equal({ "disk" => "sda" }, failed.dig("error", "details"))

    cancelled = @rt.tasks.cancel(@rt.tasks.submit(title: "never")["id"], reason: "changed my mind")
    assert_equal "CANCELLED", cancelled["status"]
    assert_equal 3, @rt.tasks.each.count
    assert_equal ["crawl"], @rt.tasks.each(statuses: [:SUCCEEDED]).map { |t| t["title"] }
    assert_equal 2, @rt.tasks.list(agent_id: agent["id"])["tasks"].size
  end

  def test_only_active_agents_take_tasks
    idle = @rt.agents.create(name: "idle")
    task = @rt.tasks.submit(title: "t")
    error = assert_hms_error(HMS::FailedPreconditionError) { @rt.tasks.assign(task["id"], idle["id"]) }
    assert_equal "only an ACTIVE agent takes new tasks", error.details["rule"]
    assert_equal "INITIALIZED", error.details["agent_state"]
    assert_hms_error(HMS::NotFoundError) { @rt.tasks.assign(task["id"], "no-such-agent") }
  end

  def test_knowledge_put_get_query_delete
    owner = @rt.agents.create(name: "owner")
    first = @rt.knowledge.put(namespace: "facts", key: "sky", text: "blue", tags: %w[color nature], confidence: 0.9,
                              source: "eyes", agent_id: owner["id"])
    @rt.knowledge.put(namespace: "facts", key: "grass", content: "\x89PNG".b, content_type: "image/png",
                      tags: %w[nature], confidence: 0.4)
    @rt.knowledge.put(namespace: "other", key: "sky", text: "grey")
    assert_equal first, @rt.knowledge.get(first["id"])
    assert_equal "blue", @rt.knowledge.get(namespace: "facts", key: "sky")["text"]
    assert_equal "\x89PNG".b, @rt.knowledge.get(namespace: "facts", key: "grass")["content"]
    assert_equal %w[grass sky], @rt.knowledge.query(namespace: "facts")["entries"].map { |e| e["key"] }
    assert_equal %w[sky], @rt.knowledge.query(namespace: "facts", tags: %w[color])["entries"].map { |e| e["key"] }
    assert_equal %w[sky], @rt.knowledge.query(namespace: "facts", min_confidence: 0.5)["entries"].map { |e| e["key"] }
    assert_equal %w[sky], @rt.knowledge.query(agent_id: owner["id"])["entries"].map { |e| e["key"] }
    assert_equal %w[grass], @rt.knowledge.query(key_prefix: "gr")["entries"].map { |e| e["key"] }

    replaced = @rt.knowledge.put(namespace: "facts", key: "sky", text: "dark blue", revision: first["revision"])
    assert_equal first["id"], replaced["id"], "(namespace, key) is unique: replaced in place"
    assert_hms_error(HMS::AbortedError) do
      @rt.knowledge.put(namespace: "facts", key: "sky", text: "x", revision: first["revision"])
    end
    @rt.knowledge.delete(first["id"])
    assert_hms_error(HMS::NotFoundError) { @rt.knowledge.get(first["id"]) }
  end

  def test_lifecycle_table_force_history_and_state
    agent = @rt.agents.create(name: "cycler")
    id = agent["id"]
    reply = @rt.lifecycle.transition(id, :ACTIVE, reason: "boot", initiated_by: "test", metadata: { "k" => "v" })
    assert_equal %w[INITIALIZED ACTIVE], reply.values_at("previous_state", "current_state")
    assert_equal "TRANSITION_TYPE_NORMAL", reply.dig("event", "transition_type")
    error = assert_hms_error(HMS::FailedPreconditionError) { @rt.lifecycle.transition(id, :RECOVERING) }
    assert_equal "lifecycle transition table", error.details["rule"]
    assert_includes error.details["allowed"], "PAUSED"
    forced = @rt.lifecycle.transition(id, :RECOVERING, force: true, reason: "drill")
    assert_equal "TRANSITION_TYPE_FORCED", forced.dig("event", "transition_type")
    @rt.lifecycle.transition(id, :TERMINATED)
    assert_hms_error(HMS::FailedPreconditionError) { @rt.lifecycle.transition(id, :ACTIVE, force: true) }

    state = @rt.lifecycle.state(id)
    assert_equal "TERMINATED", state["state"]
    assert_equal "RECOVERING", state["previous_state"]
    history = @rt.lifecycle.history(id)["events"]
    assert_equal %w[ACTIVE RECOVERING TERMINATED], history.map { |e| e["new_state"] }
    assert_equal [1, 2, 3], history.map { |e| e["sequence"] }
    assert_equal({ "k" => "v" }, history.first["metadata"])
    forced_only = @rt.lifecycle.history(id, transition_type: :TRANSITION_TYPE_FORCED)["events"]
    assert_equal ["drill"], forced_only.map { |e| e["reason"] }
    assert_equal 3, @rt.lifecycle.history(id, start_time: Time.now - 60)["events"].size
    assert_equal 0, @rt.lifecycle.history(id, end_time: Time.now - 60).fetch("events", []).size
    assert_hms_error(HMS::DecodeError) { @rt.lifecycle.transition(id, :NOT_A_STATE) }
    assert_hms_error(HMS::InvalidArgumentError) { @rt.lifecycle.transition(id, :STATE_UNSPECIFIED) }
    assert_hms_error(HMS::NotFoundError) { @rt.lifecycle.transition("missing", :ACTIVE) }
  end

  def test_blocking_hook_vetoes_from_ruby
    agent = active_agent
    invocations = []
    hook = @rt.lifecycle.on_transition(to_states: [:PAUSED], name: "no-pause") do |invocation|
      invocations << [invocation, Thread.current]
      raise HMS::PermissionDeniedError, "pausing is forbidden"
    end
    error = assert_hms_error(HMS::PermissionDeniedError) { @rt.lifecycle.transition(agent["id"], :PAUSED) }
    assert_includes error.status_message, "vetoed by hook `no-pause`"
    assert_includes error.status_message, "pausing is forbidden"
    assert_equal "no-pause", error.details["hook_name"]
    assert_equal hook.id, error.details["hook_id"]
    assert_equal "ACTIVE", @rt.lifecycle.state(agent["id"])["state"], "nothing changed"
    assert_equal 1, @rt.lifecycle.history(agent["id"])["events"].size

    invocation, thread = invocations.first
    assert_equal Thread.current, thread, "the hook ran on the thread that made the transition"
    assert_equal true, invocation["blocking"]
    assert_equal "no-pause", invocation["hook_name"]
    assert_equal %w[ACTIVE PAUSED], invocation["event"].values_at("previous_state", "new_state")

    # other transitions pass the hook's filter untouched
    assert_equal "MAINTENANCE", @rt.lifecycle.transition(agent["id"], :MAINTENANCE)["current_state"]
    assert_equal 1, invocations.size
    hook.close
    assert hook.closed?
    hook.close
    @rt.lifecycle.transition(agent["id"], :ACTIVE)
    assert_equal "PAUSED", @rt.lifecycle.transition(agent["id"], :PAUSED)["current_state"]
  end

  def test_hook_that_raises_plain_ruby_error_vetoes_with_handler_error
    agent = @rt.agents.create(name: "h")
    @rt.lifecycle.on_transition(agent_ids: [agent["id"]]) { |_| raise "nope" }
    error = assert_hms_error(HMS::HandlerError) { @rt.lifecycle.transition(agent["id"], :ACTIVE) }
    assert_includes error.status_message, "RuntimeError: nope"
  end

  def test_hook_may_read_the_runtime_but_not_transition_its_own_agent
    agent = @rt.agents.create(name: "reader")
    seen = []
    inner = []
    @rt.lifecycle.on_transition(agent_ids: [agent["id"]]) do |invocation|
      seen << @rt.agents.get(invocation.dig("event", "agent_id"))["state"]
      begin
        @rt.lifecycle.transition(agent["id"], :ERROR)
      rescue HMS::FailedPreconditionError => e
        inner << e
      end
    end
    @rt.lifecycle.transition(agent["id"], :ACTIVE)
    assert_equal ["INITIALIZED"], seen, "a blocking hook runs before the change"
    assert_equal 1, inner.size
    assert_equal "transitions of one agent never interleave", inner.first.details["rule"]
    assert_match(/cannot transition the agent it guards/, inner.first.status_message)
  end

  def test_non_blocking_hook_failure_is_an_event
    agent = @rt.agents.create(name: "nb")
    events = @rt.subscribe(kinds: ["lifecycle.*"], agent_ids: [agent["id"]])
    ran = []
    @rt.lifecycle.on_transition(blocking: false, name: "after") do |invocation|
      ran << invocation["event"]["new_state"]
      raise HMS::UnavailableError, "audit log down"
    end
    assert_equal "ACTIVE", @rt.lifecycle.transition(agent["id"], :ACTIVE)["current_state"]
    assert_equal ["ACTIVE"], ran, "a non-blocking hook runs after the change"
    kinds = events.each_event(200).to_a
    assert_equal %w[lifecycle.transition lifecycle.hook_failed], kinds.map { |e| e["kind"] }
    failure = kinds.last["hook_failed"]
    assert_equal "after", failure["hook_name"]
    assert_equal HMS::Status::UNAVAILABLE, failure.dig("error", "code")
    assert_equal "ACTIVE", @rt.lifecycle.state(agent["id"])["state"]
  end

  def test_slow_blocking_hook_vetoes_with_deadline_exceeded
    agent = @rt.agents.create(name: "slow")
    @rt.lifecycle.on_transition(agent_ids: [agent["id"]], timeout_ms: 50, name: "sleepy") { |_| sleep 0.2 }
    error = assert_hms_error(HMS::DeadlineExceededError) { @rt.lifecycle.transition(agent["id"], :ACTIVE) }
    assert_equal "sleepy", error.details["hook_name"]
    assert_equal "INITIALIZED", @rt.lifecycle.state(agent["id"])["state"]
    # the transition's own timeout_ms overrides the hook's
    assert_equal "ACTIVE", @rt.lifecycle.transition(agent["id"], :ACTIVE, timeout_ms: 5000)["current_state"]
  end

  def test_non_blocking_hook_timeout_is_reported_not_undone
    agent = @rt.agents.create(name: "nb-slow")
    events = @rt.subscribe(kinds: ["lifecycle.hook_failed"])
    @rt.lifecycle.on_transition(blocking: false, timeout_ms: 20, name: "late") { |_| sleep 0.1 }
    assert_equal "ACTIVE", @rt.lifecycle.transition(agent["id"], :ACTIVE)["current_state"]
    failure = events.next(1000)
    assert_equal HMS::Status::DEADLINE_EXCEEDED, failure.dig("hook_failed", "error", "code")
    assert_equal "late", failure.dig("hook_failed", "hook_name")
  end

  def test_runtime_close_with_hooks
    rt = HMS::Runtime.new
    agent = rt.agents.create(name: "closing")
    hook = rt.lifecycle.on_transition { |_| nil }
    rt.lifecycle.transition(agent["id"], :ACTIVE)
    rt.close
    assert hook.closed?, "the hook's service closed with its runtime"
    assert_nil hook.close
  end

  def test_hooks_on_several_threads
    agents = Array.new(4) { |i| @rt.agents.create(name: "mt#{i}") }
    counts = Hash.new(0)
    lock = Mutex.new
    @rt.lifecycle.on_transition do |invocation|
      lock.synchronize { counts[invocation.dig("event", "agent_id")] += 1 }
      sleep 0.001
    end
    threads = agents.map do |agent|
      Thread.new do
        @rt.lifecycle.transition(agent["id"], :ACTIVE)
        5.times do
          @rt.lifecycle.transition(agent["id"], :PAUSED)
          @rt.lifecycle.transition(agent["id"], :ACTIVE)
        end
      end
    end
    threads.each(&:join)
    assert_equal agents.to_h { |a| [a["id"], 11] }, counts
    agents.each { |a| assert_equal 11, @rt.lifecycle.history(a["id"])["events"].size }
  end

  def test_register_hook_with_any_method
    agent = @rt.agents.create(name: "raw")
    calls = []
    service = @rt.register_service("demo.v1.Audit", "OnChange" => ->(inv) { calls << inv["hook_name"]; {} })
    hook_id = @rt.lifecycle.register_hook("demo.v1.Audit/OnChange", agent_ids: [agent["id"]], blocking: true,
                                                                     name: "audit", timeout_ms: 1000)
    @rt.lifecycle.transition(agent["id"], :ACTIVE)
    assert_equal ["audit"], calls
    @rt.lifecycle.unregister_hook(hook_id)
    assert_hms_error(HMS::NotFoundError) { @rt.lifecycle.unregister_hook(hook_id) }
    @rt.lifecycle.transition(agent["id"], :PAUSED)
    assert_equal ["audit"], calls
    service.close
  end

  def test_domain_events
    sub = @rt.subscribe(kinds: %w[agent.* task.* knowledge.*])
    agent = active_agent("evented")
    @rt.tasks.submit(title: "t", agent_id: agent["id"])
    @rt.knowledge.put(namespace: "n", key: "k", text: "v")
    kinds = sub.each_event(200).map { |e| e["kind"] }
    assert_equal "agent.created", kinds.first
    assert_includes kinds, "task.submitted"
    assert_includes kinds, "knowledge.put"
  end

  def test_domain_helpers_in_json
    rt = open_runtime(format: :json)
    agent = rt.agents.create(name: "json-agent")
    assert_equal "1", agent["revision"], "uint64 is a string in proto3 JSON"
    rt.lifecycle.transition(agent["id"], :ACTIVE)
    task = rt.tasks.submit(title: "j", input: "\x00\xff".b, agent_id: agent["id"])
    assert_equal "AP8=", task["input"], "bytes are base64 in JSON"
    entry = rt.knowledge.put(namespace: "j", key: "k", content: "\x01".b)
    assert_equal "AQ==", entry["content"]
  end
end
