# frozen_string_literal: true

# Calls the Greeter another process exports (tests/remote/README.md):
#   ruby call.rb NATS_URL SERVER

require_relative "../../../bindings/ruby/lib/hms"

def check(what, got, want)
  return if got == want

  warn "ruby caller: #{what}: got #{got.inspect}, want #{want.inspect}"
  exit 1
end

url, server = ARGV
HMS::Runtime.open(name: "ruby-caller", nats: { servers: [url], request_timeout_ms: 10_000 }) do |rt|
  check("Greet", rt.call("remote.v1.Greeter/Greet", { "text" => "ruby" }), { "text" => "hello ruby" })
  check("Greet (JSON)", rt.call("remote.v1.Greeter/Greet", { "text" => "ruby" }, format: :json),
        { "text" => "hello ruby" })
  begin
    rt.call("remote.v1.Greeter/Refuse", { "text" => "ruby" })
    check("Refuse", "an answer", HMS::PermissionDeniedError)
  rescue HMS::PermissionDeniedError => e
    check("Refuse message", e.status_message, "ruby may not")
    check("Refuse details", e.details, { "rule" => "no-guests" })
    check("Refuse origin", e.origin, server)
  end
  begin
    rt.call("remote.v1.Greeter/Missing", {})
    check("Missing", "an answer", HMS::NotFoundError)
  rescue HMS::NotFoundError
    nil
  end
end
puts "ruby caller: ok"
