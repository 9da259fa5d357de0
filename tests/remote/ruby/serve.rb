# frozen_string_literal: true

# Exports the Greeter of the cross-process tests (tests/remote/README.md):
#   ruby serve.rb NATS_URL
# prints "ready", then serves on this thread (Ruby services run on the
# caller's thread: exported, their calls wait for serve_until) until stdin
# closes.

require_relative "../../../bindings/ruby/lib/hms"

# Whether stdin has ended, without blocking (what came is dropped).
def stdin_closed?
  loop do
    chunk = $stdin.read_nonblock(8192, exception: false)
    return true if chunk.nil?
    return false if chunk == :wait_readable
  end
end

url = ARGV.fetch(0)
echo = { "Greet" => "hms.sys.v1.EchoRequest", "Refuse" => "hms.sys.v1.EchoRequest" }
answer = { "Greet" => "hms.sys.v1.EchoResponse", "Refuse" => "hms.sys.v1.EchoResponse" }
HMS::Runtime.open(name: "ruby-server", nats: { servers: [url], request_timeout_ms: 10_000 }) do |rt|
  rt.register_service(
    "remote.v1.Greeter",
    "Greet" => ->(req) { { "text" => "hello #{req['text']}" } },
    "Refuse" => lambda { |req|
      raise HMS::PermissionDeniedError.new("#{req['text']} may not", details: { "rule" => "no-guests" })
    },
    input_types: echo,
    output_types: answer,
    export: true,
  )
  puts "ready"
  $stdout.flush
  rt.serve_until(tick_ms: 100) { stdin_closed? }
end
