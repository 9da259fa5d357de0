# frozen_string_literal: true

# Conformance runner of the Ruby binding (protocol: tests/conformance/README.md).
#
# Runs every scenario of tests/conformance/scenarios.json through the gem's
# public API (HMS::Runtime#call_raw, HMS.convert, HMS::Runtime.new,
# #register_service, #close) and prints one JSON line per scenario:
#
#   {"lang":"ruby","scenario":"unknown_method","step":0,"code":"NOT_FOUND",
#    "error":"HMS::NotFoundError","message":"..."}
#
# Usage: ruby bindings/ruby/conformance/run.rb [SCENARIOS_JSON]
# (default: $HMS_CONFORMANCE_SCENARIOS, else tests/conformance/scenarios.json).
# The library is the one the gem loads by default ($HMS_FFI_LIBRARY, else
# rust_core/target/release); the backend is the default one (Fiddle) unless
# HMS_BACKEND says otherwise. Exit status 0 when every scenario ran
# (whatever its code), 2 when the runner itself failed.

require "json"
require_relative "../lib/hms"

module HMSConformance
  LANG = "ruby"
  DEFAULT_SCENARIOS = File.expand_path("../../../tests/conformance/scenarios.json", __dir__)
  FORMATS = { "protobuf" => :protobuf, "cbor" => :cbor, "json" => :json }.freeze
  # Remote mode (tests/conformance/README.md): these scenarios run in a
  # runtime with this config, their services served by another process.
  REMOTE = ENV.fetch("HMS_CONFORMANCE_REMOTE", "").split
  REMOTE_CONFIG = ENV.fetch("HMS_CONFORMANCE_REMOTE_CONFIG", "")

  module_function

  # :json / :cbor / :protobuf for a name; an Integer is sent as is.
  def fmt_of(value)
    value.is_a?(Integer) ? value : FORMATS.fetch(value)
  end

  # The bytes of a payload spec: text (with ${var} replaced), {"hex"},
  # {"concat": [...]}, {"repeat": spec, "times": n}.
  def payload(spec, env)
    case spec
    when String then spec.gsub(/\$\{(\w+)\}/) { env.fetch(Regexp.last_match(1)) }.b
    when Hash
      if spec.key?("hex") then [spec["hex"]].pack("H*")
      elsif spec.key?("concat") then spec["concat"].map { |part| payload(part, env) }.join.b
      elsif spec.key?("repeat") then payload(spec["repeat"], env) * Integer(spec["times"])
      else raise ArgumentError, "unknown payload spec #{spec.inspect}"
      end
    else raise ArgumentError, "unknown payload spec #{spec.inspect}"
    end
  end

  # A Ruby callable doing what a method of a scenario service says.
  def handler(behaviour)
    message = behaviour.fetch("message", "")
    case behaviour.fetch("behaviour")
    when "echo" then ->(request) { request }
    when "raise" then ->(_request) { raise message } # a plain RuntimeError
    when "raise_status"
      code = HMS::Status.const_get(behaviour.fetch("code"))
      ->(_request) { raise HMS::Error.from_status(code, message) }
    when "sleep"
      seconds = behaviour.fetch("ms") / 1000.0
      lambda do |_request|
        sleep(seconds)
        {}
      end
    else raise ArgumentError, "unknown behaviour #{behaviour['behaviour'].inspect}"
    end
  end

  # Registers service +name+ untyped, the gem's natural way (its default
  # flags, HMS_SERVICE_CALLER_THREAD, and the runtime's format).
  def register(runtime, name, doc)
    methods = doc.fetch("services").fetch(name).fetch("methods")
    runtime.register_service(name, methods.transform_values { |b| handler(b) })
  end

  def dig(value, path)
    path.split(".").reduce(value) { |v, part| v.fetch(part) }.to_s
  end

  def run_step(step, runtime, env, doc)
    case step.fetch("op")
    when "call"
      request = payload(step.fetch("request", ""), env)
      options = step.key?("options") ? payload(step["options"], env) : nil
      answer = runtime.call_raw(step.fetch("method"), request, fmt_of(step.fetch("format")), options)
      step.fetch("save", {}).each { |var, path| env[var] = dig(JSON.parse(answer), path) }
    when "convert"
      HMS.convert(step.fetch("type"), payload(step.fetch("data"), env),
                  from: fmt_of(step.fetch("from")), to: fmt_of(step.fetch("to")))
    when "runtime_new"
      HMS::Runtime.new(payload(step.fetch("config"), env), format: fmt_of(step.fetch("format"))).close
    when "register_service" then register(runtime, step.fetch("service"), doc)
    when "close_runtime" then runtime.close
    else raise ArgumentError, "unknown op #{step['op'].inspect}"
    end
  end

  def run(scenario, doc)
    remote = REMOTE.include?(scenario.fetch("id"))
    config = remote ? REMOTE_CONFIG : scenario["runtime_config"]
    runtime = config ? HMS::Runtime.new(config.b, format: :json) : HMS::Runtime.new
    env = {}
    line = { "lang" => LANG, "scenario" => scenario.fetch("id") }
    begin
      (remote ? [] : scenario["services"] || []).each { |name| register(runtime, name, doc) }
      scenario.fetch("steps").each_with_index do |step, index|
        line["step"] = index
        begin
          run_step(step, runtime, env, doc)
        rescue HMS::Error => e
          return line.merge("code" => e.code_name.to_s, "error" => e.class.name, "message" => e.status_message,
                            "origin" => e.origin)
        end
      end
      line.merge("code" => "OK", "error" => "", "message" => "", "origin" => "")
    ensure
      runtime.close
    end
  end

  def main(argv)
    path = argv.last || ENV.fetch("HMS_CONFORMANCE_SCENARIOS", "")
    path = DEFAULT_SCENARIOS if path.empty?
    doc = JSON.parse(File.read(path, encoding: "UTF-8"))
    $stdout.sync = true
    doc.fetch("scenarios").each { |scenario| $stdout.puts(JSON.generate(run(scenario, doc))) }
    0
  rescue StandardError, ScriptError => e
    warn "run.rb: #{e.class}: #{e.message}"
    warn e.backtrace.join("\n") if e.backtrace
    2
  end
end

exit(HMSConformance.main(ARGV)) if $PROGRAM_NAME == __FILE__
