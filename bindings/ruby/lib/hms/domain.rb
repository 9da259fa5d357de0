# frozen_string_literal: true

require "base64"
require "time"
require_relative "errors"
require_relative "format"

module HMS
  # Typed helpers over the domain services of include/proto/hms/agent:
  # rt.agents, rt.tasks, rt.knowledge, rt.lifecycle. Each method is one
  # hms_call; records come back as hashes with proto field names (enums as
  # names, timestamps as RFC 3339 strings, bytes as binary strings with CBOR
  # or base64 with JSON). Keyword arguments left nil are omitted.
  module Domain
    # A point in time as the JSON mapping writes it: a Time, or an RFC 3339
    # string as it is.
    def self.timestamp(value)
      case value
      when nil, String then value
      when Time then value.utc.iso8601(9)
      else raise TypeError, "a timestamp is a Time or an RFC 3339 string, not #{value.inspect}"
      end
    end

    # Shared plumbing of the helpers.
    class Helper
      def initialize(runtime)
        @rt = runtime
      end

      private

      def rpc(method, request)
        @rt.call("#{self.class::SERVICE}/#{method}", compact(request))
      end

      def compact(hash)
        hash.each_with_object({}) do |(key, value), out|
          next if value.nil?

          out[key.to_s] = value.is_a?(Hash) ? compact(value) : value
        end
      end

      # Bytes as the runtime's format carries them.
      def bytes(value)
        return nil if value.nil?

        @rt.format == Format::JSON ? Base64.strict_encode64(value.to_s) : value.to_s.b
      end

      def names(values)
        values.nil? ? nil : Array(values).map(&:to_s)
      end

      def enum(value)
        value.nil? ? nil : value.to_s
      end

      def strings(hash)
        hash&.to_h { |k, v| [k.to_s, v.to_s] }
      end

      def timestamp(value)
        Domain.timestamp(value)
      end

      # Yields every item of a paged listing (+key+: the repeated field).
      def each_page(method, request, key)
        token = nil
        loop do
          page = rpc(method, request.merge(page_token: token))
          page.fetch(key, []).each { |item| yield item }
          token = page["next_page_token"]
          break if token.nil? || token.empty?
        end
      end
    end

    # hms.agent.v1.AgentService.
    class Agents < Helper
      SERVICE = "hms.agent.v1.AgentService"

      def create(name:, kind: nil, version: nil, description: nil, capabilities: nil, labels: nil, metadata: nil)
        rpc("CreateAgent", agent: {
              name: name, kind: kind, version: version, description: description,
              capabilities: names(capabilities), labels: strings(labels), metadata: strings(metadata),
            })
      end

      def get(id)
        rpc("GetAgent", id: id)
      end

      # One page: {"agents" => [...], "next_page_token" => "..."}.
      def list(labels: nil, capabilities: nil, states: nil, kind: nil, page_size: nil, page_token: nil)
        rpc("ListAgents", labels: strings(labels), capabilities: names(capabilities), states: names(states),
                          kind: kind, page_size: page_size, page_token: page_token)
      end

      # Every matching agent, page after page (an Enumerator without a block).
      def each(labels: nil, capabilities: nil, states: nil, kind: nil, page_size: nil, &block)
        filters = { labels: labels, capabilities: capabilities, states: states, kind: kind, page_size: page_size }
        return enum_for(:each, **filters) unless block

        each_page("ListAgents", { labels: strings(labels), capabilities: names(capabilities),
                                  states: names(states), kind: kind, page_size: page_size }, "agents", &block)
      end

      # Replaces the given fields (all of +fields+' keys, or +update_mask+).
      # +revision+, when given, must be the current one (AbortedError).
      def update(id, revision: nil, update_mask: nil, **fields)
        agent = { id: id, revision: revision }
        fields.each do |key, value|
          agent[key] = case key
                       when :labels, :metadata then strings(value)
                       when :capabilities then names(value)
                       else value
                       end
        end
        mask = update_mask.nil? ? fields.keys : Array(update_mask)
        rpc("UpdateAgent", agent: agent, update_mask: mask.empty? ? nil : mask.join(","))
      end

      def delete(id, revision: nil)
        rpc("DeleteAgent", id: id, revision: revision)
      end
    end

    # hms.agent.v1.TaskService. Workers share the PENDING tasks through
    # #claim: each claim takes one task (RUNNING, claimed_by the worker) under
    # a lease the worker keeps with #renew_lease; once the lease ends another
    # claim can take it. A claimed task failed with +retry: true+ is PENDING
    # again, or DEAD_LETTER once its attempts reach its max_attempts.
    class Tasks < Helper
      SERVICE = "hms.agent.v1.TaskService"

      # Only workers with all +required_capabilities+ claim the task, at most
      # +max_attempts+ times (nil: the core's default, 3).
      def submit(title:, agent_id: nil, input: nil, input_content_type: nil, priority: nil, labels: nil,
                 deadline: nil, required_capabilities: nil, max_attempts: nil)
        rpc("SubmitTask", task: {
              title: title, agent_id: agent_id, input: bytes(input), input_content_type: input_content_type,
              priority: priority, labels: strings(labels), deadline: timestamp(deadline),
              required_capabilities: names(required_capabilities), max_attempts: max_attempts,
            })
      end

      def get(id)
        rpc("GetTask", id: id)
      end

      def list(agent_id: nil, statuses: nil, page_size: nil, page_token: nil)
        rpc("ListTasks", agent_id: agent_id, statuses: names(statuses), page_size: page_size, page_token: page_token)
      end

      def each(agent_id: nil, statuses: nil, page_size: nil, &block)
        return enum_for(:each, agent_id: agent_id, statuses: statuses, page_size: page_size) unless block

        each_page("ListTasks", { agent_id: agent_id, statuses: names(statuses), page_size: page_size }, "tasks", &block)
      end

      def assign(id, agent_id, revision: nil)
        rpc("AssignTask", id: id, agent_id: agent_id, revision: revision)
      end

      def start(id, revision: nil)
        rpc("StartTask", id: id, revision: revision)
      end

      # Claims the most urgent, then oldest, PENDING task whose
      # required_capabilities are all among +capabilities+ and which carries
      # all of +labels+: it is RUNNING for +worker_id+ until its lease of
      # +lease_ms+ (nil: the core's default, 30 s) ends. nil when no task is
      # ready for this worker.
      def claim(worker_id, capabilities: nil, labels: nil, lease_ms: nil)
        rpc("ClaimTask", worker_id: worker_id, capabilities: names(capabilities), labels: strings(labels),
                         lease_ms: lease_ms)["task"]
      end

      # Extends the lease +worker_id+ holds on a claimed task to +lease_ms+
      # from now; HMS::FailedPreconditionError when another worker holds it.
      def renew_lease(id, worker_id, lease_ms: nil, revision: nil)
        rpc("RenewLease", id: id, worker_id: worker_id, lease_ms: lease_ms, revision: revision)
      end

      def complete(id, result: nil, result_content_type: nil, revision: nil)
        rpc("CompleteTask", id: id, result: bytes(result), result_content_type: result_content_type,
                            revision: revision)
      end

      # +error+: an HMS::Error, a String (UNKNOWN with that text) or an
      # hms.v1.Status Hash. +retry: true+ gives a claimed task back to the
      # queue (see the class comment) instead of FAILED.
      def fail(id, error: nil, revision: nil, retry: false)
        status = case error
                 when nil, Hash then error
                 when Error then { code: error.code, message: error.status_message, details: error.details,
                                   origin: error.origin }
                 else { code: Status::UNKNOWN, message: error.to_s }
                 end
        # +retry+ is a keyword of Ruby: the argument is read through the binding.
        rpc("FailTask", id: id, error: status, revision: revision, retry: binding.local_variable_get(:retry))
      end

      def cancel(id, reason: nil, revision: nil)
        rpc("CancelTask", id: id, reason: reason, revision: revision)
      end
    end

    # hms.agent.v1.KnowledgeService.
    class Knowledge < Helper
      SERVICE = "hms.agent.v1.KnowledgeService"

      # Inserts, or replaces the entry at (namespace, key).
      def put(namespace:, key:, text: nil, content: nil, content_type: nil, tags: nil, confidence: nil,
              source: nil, agent_id: nil, revision: nil)
        rpc("PutKnowledge", entry: {
              namespace: namespace, key: key, text: text, content: bytes(content), content_type: content_type,
              tags: names(tags), confidence: confidence&.to_f, source: source, agent_id: agent_id,
              revision: revision,
            })
      end

      # By id, or by namespace: and key:.
      def get(id = nil, namespace: nil, key: nil)
        rpc("GetKnowledge", id: id, namespace: namespace, key: key)
      end

      def query(namespace: nil, key_prefix: nil, tags: nil, min_confidence: nil, agent_id: nil, page_size: nil,
                page_token: nil)
        rpc("QueryKnowledge", namespace: namespace, key_prefix: key_prefix, tags: names(tags),
                              min_confidence: min_confidence&.to_f, agent_id: agent_id, page_size: page_size,
                              page_token: page_token)
      end

      def delete(id, revision: nil)
        rpc("DeleteKnowledge", id: id, revision: revision)
      end
    end

    # hms.agent.lifecycle.v1.LifecycleService, and hooks as Ruby blocks.
    class Lifecycle < Helper
      SERVICE = "hms.agent.lifecycle.v1.LifecycleService"
      HOOK_METHOD = "Invoke"

      @hook_serial = 0
      @hook_lock = Mutex.new

      def self.next_hook_service
        n = @hook_lock.synchronize { @hook_serial += 1 }
        "hms.ruby.hooks.Hook#{Process.pid}x#{n}"
      end

      # GetStateResponse: state, previous_state, since, time_in_state_ms, error.
      def state(agent_id)
        rpc("GetState", agent_id: agent_id)
      end

      # Moves +agent_id+ to +to+ (a state name: :ACTIVE, "PAUSED", ...).
      # Blocking hooks run first, on this thread, and may veto (the error of
      # the vetoing hook is raised here).
      def transition(agent_id, to, force: nil, reason: nil, initiated_by: nil, timeout_ms: nil, metadata: nil,
                     transition_type: nil)
        rpc("Transition", agent_id: agent_id, target_state: enum(to), force: force, reason: reason,
                          initiated_by: initiated_by, timeout_ms: timeout_ms, metadata: strings(metadata),
                          transition_type: enum(transition_type))
      end

      def history(agent_id, transition_type: nil, start_time: nil, end_time: nil, page_size: nil, page_token: nil)
        rpc("GetHistory", agent_id: agent_id, transition_type: enum(transition_type),
                          start_time: timestamp(start_time), end_time: timestamp(end_time), page_size: page_size,
                          page_token: page_token)
      end

      # Registers any service method as a hook; returns the hook id.
      def register_hook(method, agent_ids: nil, from_states: nil, to_states: nil, blocking: nil, timeout_ms: nil,
                        name: nil)
        rpc("RegisterHook", method: method, agent_ids: names(agent_ids), from_states: names(from_states),
                            to_states: names(to_states), blocking: blocking, timeout_ms: timeout_ms,
                            name: name)["hook_id"]
      end

      def unregister_hook(hook_id)
        rpc("UnregisterHook", hook_id: hook_id)
      end

      # A Ruby block as a hook: registered as a service method, then with
      # RegisterHook. The block gets the hms.agent.lifecycle.v1.HookInvocation
      # (a Hash); raising vetoes a blocking transition (an HMS::Error keeps
      # its code, anything else is HMS_HANDLER_ERROR). Hooks fire during
      # transitions started from Ruby, on the thread that started them.
      # Returns an HMS::Hook; #close unregisters both.
      def on_transition(blocking: true, agent_ids: nil, from_states: nil, to_states: nil, timeout_ms: nil,
                        name: nil, &block)
        raise ArgumentError, "on_transition needs a block" if block.nil?

        handler = lambda do |invocation|
          block.call(invocation)
          nil # a hook's answer carries nothing
        end
        service = @rt.register_service(self.class.next_hook_service, { HOOK_METHOD => handler },
                                       description: "Ruby lifecycle hook #{name}".strip)
        begin
          id = register_hook("#{service.name}/#{HOOK_METHOD}", agent_ids: agent_ids, from_states: from_states,
                                                                to_states: to_states, blocking: blocking,
                                                                timeout_ms: timeout_ms, name: name)
        rescue StandardError
          service.close
          raise
        end
        Hook.new(self, id, name.to_s, service)
      end
    end
  end

  # A Ruby lifecycle hook (Lifecycle#on_transition).
  class Hook
    attr_reader :id, :name, :service

    def initialize(lifecycle, id, name, service)
      @lifecycle = lifecycle
      @id = id
      @name = name
      @service = service
    end

    def closed?
      @service.closed?
    end

    # Unregisters the hook, then its service. Idempotent.
    def close
      return nil if closed?

      begin
        @lifecycle.unregister_hook(@id)
      rescue NotFoundError, ClosedError
        nil # gone with its runtime already
      ensure
        @service.close
      end
      nil
    end
  end
end
