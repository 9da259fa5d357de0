# frozen_string_literal: true

# Benchmarks of the Ruby binding, measured as benchmarks/CASES.md says, for
# the backend of this process (HMS_BACKEND=fiddle, the default, or ffi: a
# process loads the library through one backend). Writes
# <out>/ruby-<backend>.json; benchmarks/ruby/run.sh runs both backends.
#
#   ruby --yjit benchmarks/ruby/bench.rb [--out DIR] [--only id,id]
#   HMS_BACKEND=ffi ruby --yjit benchmarks/ruby/bench.rb
#   HMS_BENCH_QUICK=1 ruby benchmarks/ruby/bench.rb       # 3 short rounds: a smoke test
#   ruby benchmarks/ruby/bench.rb --loop echo_raw_64 --seconds 10   # one case, for perf
#
# <out>: --out, else $HMS_BENCH_OUT, else benchmarks/out.
#
# How (CASES.md): each case is calibrated (a loop of `iterations` calls
# lasting about 0.1 s, a few ms with HMS_BENCH_QUICK=1) and warmed up by one
# round; then 15 rounds (3 quick) of every case, interleaved (round r of
# every case before round r+1 of any, so a change of load on a shared
# machine hits a case and its baseline alike). A round is a `while` loop
# calling the case's lambda, timed with CLOCK_MONOTONIC, after a GC.start;
# the figure is ns per call (per call inside the batch for the batch case).
# The median and quartiles of the rounds are reported. Each case checks its
# answer once, outside the timed loop.

require "json"
require "rbconfig"

$LOAD_PATH.unshift(File.expand_path("../../bindings/ruby/lib", __dir__))
require "hms"

module Bench
  QUICK = ENV["HMS_BENCH_QUICK"] == "1"
  ROUNDS = QUICK ? 3 : 15
  ROUND_NS = QUICK ? 5_000_000 : 100_000_000
  ECHO = "hms.sys.v1.System/Echo"
  CREATE = "hms.agent.v1.AgentService/CreateAgent"
  TRANSITION = "hms.agent.lifecycle.v1.LifecycleService/Transition"
  BATCH = 1000
  SIZES = { "64" => 64, "1k" => 1024, "64k" => 64 * 1024 }.freeze

  def self.now
    Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
  end

  # ns for +n+ calls of +fn+.
  def self.timed(fn, n)
    GC.start
    t0 = now
    i = 0
    while i < n
      fn.call
      i += 1
    end
    now - t0
  end

  # One case: +fn+ (a lambda), or +per_round+ returning a fresh lambda for
  # each round (e.g. CreateAgent on an empty runtime).
  class Case
    attr_reader :id, :samples

    def initialize(id, label, baseline: nil, per_call: 1, per_round: nil, fn: nil)
      @id = id
      @label = label
      @baseline = baseline
      @per_call = per_call
      @per_round = per_round
      @fn = fn
      @iterations = 0
      @samples = []
    end

    def fn
      @per_round ? @per_round.call : @fn
    end

    def round
      Bench.timed(fn, @iterations).fdiv(@iterations * @per_call)
    end

    # Picks `iterations` so a round lasts about ROUND_NS, then runs the
    # warm-up round.
    def calibrate
      f = fn
      n = 1
      loop do
        t = Bench.timed(f, n)
        if t >= ROUND_NS / 20 || n >= 1 << 30
          @iterations = [1, (n * ROUND_NS / [t, 1].max.to_f).round].max
          break
        end
        n *= t < ROUND_NS / 200 ? 4 : 2
      end
      round
    end

    # Inclusive quartiles, linear between samples (Python's
    # statistics.quantiles(n=4, method="inclusive")).
    def quantile(sorted, p)
      pos = (sorted.size - 1) * p
      lo = pos.floor
      hi = [lo + 1, sorted.size - 1].min
      sorted[lo] + ((sorted[hi] - sorted[lo]) * (pos - lo))
    end

    # +ids+: the cases measured with it (a baseline left out by --only is
    # dropped, so the file stays valid).
    def result(ids)
      sorted = @samples.sort
      {
        "id" => @id, "label" => @label,
        "median_ns" => quantile(sorted, 0.5).round(2),
        "q1_ns" => quantile(sorted, 0.25).round(2),
        "q3_ns" => quantile(sorted, 0.75).round(2),
        "rounds" => @samples.size, "iterations" => @iterations,
        "baseline" => ids.include?(@baseline) ? @baseline : nil
      }
    end
  end

  class Suite
    attr_reader :cases

    def initialize
      @backend = HMS::Native.backend
      @cases = []
      @cleanup = []
      @rt = HMS::Runtime.new
      @cleanup << -> { @rt.close }
    end

    def close
      @cleanup.reverse_each(&:call)
    end

    # Adds +kase+ after checking its answer once with +check+.
    def add(kase, &check)
      if check
        answer = kase.fn.call
        raise "#{kase.id}: wrong answer #{answer.inspect[0, 200]}" unless check.call(answer)
      end
      @cases << kase
    end

    def build
      bare
      echo
      domain
      batch
      self
    end

    private

    def payload(size)
      ("x" * size).b
    end

    def echo_request(size)
      Hms::Sys::V1::EchoRequest.encode(Hms::Sys::V1::EchoRequest.new(payload: payload(size)))
    end

    # The floor and the bare calls: the FFI alone, no binding code (the
    # functions as the backend declares them, arguments prepared once, the
    # answer left in the library's buffer).
    def bare
      req = echo_request(64)
      method = @rt.method_handle(ECHO, format: :protobuf)
      if @backend.name == "fiddle"
        require "fiddle"
        abi = @backend.function(:hms_abi_version)
        call = @backend.function(:hms_call)
        method_call = @backend.function(:hms_method_call)
        mem = Fiddle::Pointer.malloc(256, Fiddle::RUBY_FREE)
        mem[0, ECHO.bytesize] = ECHO
        mem[64, req.bytesize] = req
        name = mem.to_i
        request = name + 64
        pair = Fiddle::Pointer.malloc(48, Fiddle::RUBY_FREE)
        pair[0, 48] = "\0" * 48
        out = pair.to_i
        err = out + 24
        free = @backend.function(:hms_buf_free)
        @cleanup << lambda do
          free.call(out)
          free.call(err)
          pair.free # keeps the pair alive until its buffers are freed
        end
        answer = -> { pair.ptr[0, (pair + 8).ptr.to_i] }
        h = @rt.handle
        m = method.handle
        len = ECHO.bytesize
        rl = req.bytesize
        floor = -> { abi.call }
        bare_call = -> { call.call(h, name, len, 1, request, rl, 0, 0, out, err) }
        bare_method = -> { method_call.call(m, request, rl, out, err) }
        method_call_gvl = @backend.function(:hms_method_call, need_gvl: true)
        bare_method_gvl = -> { method_call_gvl.call(m, request, rl, out, err) }
      else
        lib = @backend.functions
        bufs = @backend.new_bufs
        out = bufs.out
        err = bufs.err
        answer = -> { out.get_pointer(0).get_bytes(0, out.get_uint64(8)) }
        h = @rt.handle
        m = method.handle
        len = ECHO.bytesize
        rl = req.bytesize
        floor = -> { lib.hms_abi_version }
        bare_call = -> { lib.hms_call(h, ECHO, len, 1, req, rl, nil, 0, out, err) }
        bare_method = -> { lib.hms_method_call(m, req, rl, out, err) }
        gvl = Module.new { extend FFI::Library }
        gvl.ffi_lib(@backend.path)
        gvl.attach_function(:hms_method_call, %i[uint64 pointer size_t pointer pointer], :int32) # blocking: false
        bare_method_gvl = -> { gvl.hms_method_call(m, req, rl, out, err) }
      end
      add(Case.new("floor", "bare hms_abi_version() through #{@backend.name}", fn: floor)) do |v|
        v == (HMS::Native::ABI_MAJOR << 16 | HMS::Native::ABI_MINOR)
      end
      add(Case.new("bare_call_64", "hms_call Echo 64 B through #{@backend.name}, no binding code",
                   baseline: "floor", fn: bare_call)) { |rc| rc.zero? && answer.call == req }
      add(Case.new("bare_method_call_64", "hms_method_call Echo 64 B through #{@backend.name}, no binding code",
                   baseline: "floor", fn: bare_method)) { |rc| rc.zero? && answer.call == req }
      add(Case.new("bare_method_call_gvl_64", "bare_method_call_64 with the GVL held (the binding releases it): " \
                                              "what releasing it costs", baseline: "bare_method_call_64",
                                              fn: bare_method_gvl)) { |rc| rc.zero? && answer.call == req }
    end

    def echo
      raw = @rt.method_handle(ECHO, format: :protobuf)
      SIZES.each do |tag, size|
        req = echo_request(size)
        add(Case.new("echo_raw_#{tag}", "MethodHandle#call_raw: protobuf EchoRequest of #{size} B in, bytes out",
                     baseline: "floor", fn: -> { raw.call_raw(req) })) { |answer| answer == req }
      end
      SIZES.each do |tag, size|
        msg = Hms::Sys::V1::EchoRequest.new(payload: payload(size))
        add(Case.new("echo_typed_#{tag}", "MethodHandle#call: Hms::Sys::V1::EchoRequest of #{size} B in, " \
                                          "EchoResponse out", baseline: "floor", fn: -> { raw.call(msg) })) do |reply|
          reply.is_a?(Hms::Sys::V1::EchoResponse) && reply.payload == msg.payload
        end
      end
      # The runtime's own paths, for comparison: a name (through the
      # runtime's cached handle) and a Hash (CBOR, the cbor gem).
      req = echo_request(64)
      rt = @rt
      add(Case.new("runtime_call_raw_64", "Runtime#call_raw(name, bytes, :protobuf): Echo 64 B by name, " \
                                          "through the runtime's cached method handle",
                   baseline: "echo_raw_64", fn: -> { rt.call_raw(ECHO, req, :protobuf) })) { |answer| answer == req }
      # The same with (empty) options: hms_call, the path of every call before ABI 1.1.
      add(Case.new("runtime_hms_call_64", "Runtime#call_raw(name, bytes, :protobuf, options): Echo 64 B by name " \
                                          "through hms_call", baseline: "runtime_call_raw_64",
                                          fn: -> { rt.call_raw(ECHO, req, :protobuf, "") })) { |answer| answer == req }
      hash = { "payload" => payload(64) }
      add(Case.new("echo_hash_64", "Runtime#call(name, Hash): Echo 64 B, CBOR both ways", baseline: "echo_typed_64",
                   fn: -> { rt.call(ECHO, hash) })) { |answer| answer == hash }
    end

    def domain
      agent = { name: "bench", capabilities: ["x"], labels: { "k" => "v" } }
      fresh = lambda do
        @fresh&.close
        @fresh = HMS::Runtime.new
        create = @fresh.method_handle(CREATE, format: :protobuf)
        -> { create.call(Hms::Agent::V1::CreateAgentRequest.new(agent: agent)) }
      end
      @cleanup << -> { @fresh&.close }
      add(Case.new("create_agent_typed", "MethodHandle#call: CreateAgentRequest in, Agent out (empty runtime per round)",
                   baseline: "floor", per_round: fresh)) do |created|
        created.is_a?(Hms::Agent::V1::Agent) && created.state == :INITIALIZED && created.labels["k"] == "v"
      end

      # A runtime of its own: its history grows by one event per call.
      rt = HMS::Runtime.new
      @cleanup << -> { rt.close }
      id = rt.agents.create(name: "bench-transition")["id"]
      rt.lifecycle.transition(id, :ACTIVE)
      transition = rt.method_handle(TRANSITION, format: :protobuf)
      targets = %i[PAUSED ACTIVE].freeze
      turn = 0
      toggle = lambda do
        target = targets[turn]
        turn ^= 1
        transition.call(Hms::Agent::Lifecycle::V1::TransitionRequest.new(agent_id: id, target_state: target))
      end
      add(Case.new("transition_typed", "MethodHandle#call: TransitionRequest in, TransitionResponse out; " \
                                       "PAUSED and ACTIVE in turn", baseline: "floor", fn: toggle)) do |reply|
        reply.event.sequence > 1
      end
    end

    def batch
      req = echo_request(64)
      raw = @rt.method_handle(ECHO, format: :protobuf)
      requests = Array.new(BATCH, req)
      add(Case.new("batch_echo_raw_64", "MethodHandle#batch_raw: #{BATCH} Echo 64 B in one hms_call_batch; per call",
                   baseline: "echo_raw_64", per_call: BATCH, fn: -> { raw.batch_raw(requests) })) do |answers|
        answers.size == BATCH && answers.all? { |a| a == req }
      end
    end
  end

  module_function

  def versions
    backend = HMS.backend == "ffi" ? "ffi #{FFI::VERSION}" : "Fiddle #{Fiddle::VERSION}"
    gems = %w[cbor google-protobuf].filter_map { |name| (spec = Gem.loaded_specs[name]) && "#{name} #{spec.version}" }
    jit = yjit? && !RUBY_DESCRIPTION.include?("YJIT") ? " +YJIT" : ""
    "#{RUBY_DESCRIPTION}#{jit}; #{backend}; #{gems.join(', ')}; " \
      "libhms_ffi #{HMS.library_version} (ABI #{HMS.abi_version.join('.')})"
  end

  def yjit?
    defined?(RubyVM::YJIT) && RubyVM::YJIT.respond_to?(:enabled?) && RubyVM::YJIT.enabled? ? true : false
  end

  def notes(loop_ns)
    [
      "#{ROUNDS} rounds of about #{ROUND_NS / 1_000_000} ms per case after one warm-up round; rounds of all " \
      "cases interleaved; GC.start before each round, GC on inside it; every figure includes the loop's own " \
      "cost (a while loop calling a lambda: #{loop_ns.round(1)} ns per call here).",
      "Backend #{HMS.backend}: one process per backend (benchmarks/ruby/run.sh runs both). The floor is the " \
      "backend's own hms_abi_version() call.",
      "Ruby #{yjit? ? 'with YJIT (ruby --yjit; run.sh default)' : 'interpreter, no JIT (HMS_RUBY_YJIT=0)'}: " \
      "YJIT shortens the Ruby around each crossing, not the FFI's own cost (the floor).",
      "bare_call_64 / bare_method_call_64: hms_call / hms_method_call straight through the backend's FFI " \
      "function (GVL released, as the binding declares them), arguments prepared once, answer not copied out; " \
      "echo_raw_64 minus bare_method_call_64 is what the binding's raw path adds.",
      "Typed cases use google-protobuf message classes through a protobuf MethodHandle (#call); " \
      "echo_hash_64 and runtime_call_raw_64 are the name-based Runtime paths (cached method handle) for comparison.",
    ]
  end

  def loop_cost
    noop = -> {}
    n = QUICK ? 200_000 : 2_000_000
    Array.new(3) { Bench.timed(noop, n).fdiv(n) }.min
  end

  def run(out_dir, only)
    suite = Suite.new.build
    cases = only ? suite.cases.select { |c| only.include?(c.id) } : suite.cases
    started = now
    cases.each(&:calibrate)
    ROUNDS.times do |r|
      cases.each { |c| c.samples << c.round }
      warn format("bench.rb (%s): round %d/%d (%.0f s)", HMS.backend, r + 1, ROUNDS, (now - started) / 1e9)
    end
    result = {
      "language" => "Ruby (#{HMS.backend == 'ffi' ? 'ffi gem' : 'Fiddle'})",
      "version" => versions,
      "notes" => notes(loop_cost),
      "cases" => cases.map { |c| c.result(cases.map(&:id)) },
    }
    suite.close
    path = File.join(out_dir, "ruby-#{HMS.backend}.json")
    Dir.mkdir(out_dir) unless Dir.exist?(out_dir)
    File.write(path, "#{JSON.pretty_generate(result)}\n")
    by_id = result["cases"].to_h { |c| [c["id"], c] }
    result["cases"].each do |c|
      base = c["baseline"] && by_id[c["baseline"]]
      ratio = base ? format("%6.2fx %s", c["median_ns"] / base["median_ns"], c["baseline"]) : ""
      puts format("%-22s %12.1f ns  [%.1f - %.1f]  %s", c["id"], c["median_ns"], c["q1_ns"], c["q3_ns"], ratio)
    end
    puts "wrote #{path}"
  end

  # Runs one case for +seconds+ (for perf record -p / perf top).
  def spin(id, seconds)
    suite = Suite.new.build
    kase = suite.cases.find { |c| c.id == id } or abort "bench.rb: no case #{id}"
    fn = kase.fn
    warn "bench.rb: pid #{Process.pid} runs #{id} for #{seconds} s"
    stop = now + (seconds * 1e9)
    Bench.timed(fn, 10_000) while now < stop
    suite.close
  end
end

if $PROGRAM_NAME == __FILE__
  args = ARGV.dup
  opt = ->(name) { (i = args.index(name)) ? args[i + 1] : nil }
  out = opt.call("--out") || ENV.fetch("HMS_BENCH_OUT", "").then { |v| v.empty? ? nil : v } ||
        File.expand_path("../out", __dir__)
  only = opt.call("--only")&.split(",")
  if (id = opt.call("--loop"))
    Bench.spin(id, Float(opt.call("--seconds") || 10))
  else
    Bench.run(File.expand_path(out), only)
  end
end
