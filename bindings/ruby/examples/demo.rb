# frozen_string_literal: true

# A tour of the Ruby binding. From the repository root, after
# `cargo build --release --manifest-path rust_core/Cargo.toml`:
#
#   ruby bindings/ruby/examples/demo.rb
#   HMS_BACKEND=ffi ruby bindings/ruby/examples/demo.rb

require_relative "../lib/hms"

HMS::Runtime.open(name: "demo") do |rt|
  puts "libhms_ffi #{HMS.library_version}, ABI #{HMS.abi_version.join('.')}, backend #{HMS.backend}"

  # A call with a Hash (CBOR on the wire), then with a protobuf message.
  puts rt.call("hms.sys.v1.System/Echo", { "text" => "hello from Ruby" }).inspect
  puts rt.call("hms.sys.v1.System/Echo", Hms::Sys::V1::EchoRequest.new(text: "as protobuf")).text

  # The fast paths (ABI 1.1): a method resolved once, then called by handle,
  # one at a time or many in one crossing.
  rt.method_handle("hms.sys.v1.System/Echo", format: :protobuf) do |echo|
    requests = %w[one two three].map { |t| Hms::Sys::V1::EchoRequest.encode(Hms::Sys::V1::EchoRequest.new(text: t)) }
    answers = echo.batch_raw(requests).map { |bytes| Hms::Sys::V1::EchoResponse.decode(bytes).text }
    puts "batch of #{answers.size}: #{answers.join(' ')}; one call: #{echo.call(text: 'by handle').text}"
  end

  # Follow everything the runtime publishes.
  events = rt.subscribe

  # A service implemented in Ruby; any language's caller reaches it by name.
  rt.register_service("demo.v1.Greeter", "Greet" => ->(req) { { "text" => "Hello, #{req['name']}!" } })
  puts rt.call("demo.v1.Greeter/Greet", { "name" => "Ada" })["text"]

  # Errors are exceptions with the library's code, message, details, origin.
  begin
    rt.call("demo.v1.Nope/Call", {})
  rescue HMS::NotFoundError => e
    puts "#{e.class}: #{e.status_message} (details #{e.details})"
  end

  # The domain: an agent, a hook written in Ruby that vetoes pausing, tasks.
  agent = rt.agents.create(name: "crawler", capabilities: %w[fetch], labels: { team: "search" })
  rt.lifecycle.transition(agent["id"], :ACTIVE, reason: "ready")
  hook = rt.lifecycle.on_transition(to_states: [:PAUSED], name: "never-pause") do |invocation|
    raise HMS::PermissionDeniedError, "#{invocation.dig('event', 'agent_id')} must keep running"
  end
  begin
    rt.lifecycle.transition(agent["id"], :PAUSED)
  rescue HMS::PermissionDeniedError => e
    puts "vetoed: #{e.status_message}"
  end
  hook.close

  task = rt.tasks.submit(title: "crawl example.org", agent_id: agent["id"], input: "https://example.org")
  rt.tasks.start(task["id"])
  done = rt.tasks.complete(task["id"], result: "42 pages", result_content_type: "text/plain")
  puts "task #{done['status']}: #{done['result']}"

  rt.knowledge.put(namespace: "facts", key: "example.org", text: "has 42 pages", tags: %w[web], confidence: 0.9)
  puts "knowledge: #{rt.knowledge.get(namespace: 'facts', key: 'example.org')['text']}"

  puts "events:"
  events.each_event(50) { |event| puts "  #{event['sequence']} #{event['kind']} #{event['subject']}" }
end
