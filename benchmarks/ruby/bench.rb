# frozen_string_literal: true

# Benchmarks of the Ruby binding: Echo through the binding beside bare
# calls of hms_abi_version() made in the same process, through Fiddle and
# through the ffi gem. Each backend runs in its own child process (a
# process loads the library through one backend):
#
#   ruby benchmarks/ruby/bench.rb              # both backends, a Markdown table
#   ruby benchmarks/ruby/bench.rb --markdown   # the same, table only
#   ruby benchmarks/ruby/bench.rb --runs=5     # best of 5 child runs per backend
#   HMS_BACKEND=ffi ruby benchmarks/ruby/bench.rb --child   # one backend, JSON lines
#
# Every figure is the best of 7 rounds of many calls, in nanoseconds per
# operation (best, not median: the machine is shared and noisy). The target of the issue: Echo of 64 B through the binding
# within 3x of the bare Fiddle call.

require "json"
require "open3"
require "rbconfig"

GEM_LIB = File.expand_path("../../bindings/ruby/lib", __dir__)
ECHO = "hms.sys.v1.System/Echo"

def measure(iterations: 100_000, rounds: 7)
  2_000.times { yield }
  samples = Array.new(rounds) do
    t0 = Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond)
    i = 0
    while i < iterations
      yield
      i += 1
    end
    (Process.clock_gettime(Process::CLOCK_MONOTONIC, :nanosecond) - t0).fdiv(iterations)
  end
  samples.min
end

def child
  $LOAD_PATH.unshift(GEM_LIB)
  require "hms"
  require "fiddle"
  require "ffi"
  HMS.load_library
  path = HMS::Native.backend.path
  results = []
  emit = ->(name, ns) { results << { "backend" => HMS.backend, "name" => name, "ns" => ns.round(1) } }

  # Bare calls of hms_abi_version(), no binding in between.
  handle = Fiddle.dlopen(path)
  bare_fiddle = Fiddle::Function.new(handle["hms_abi_version"], [], -Fiddle::TYPE_INT32_T)
  bare_ffi = Module.new { extend FFI::Library }
  bare_ffi.ffi_lib(path)
  bare_ffi.attach_function(:hms_abi_version, [], :uint32)
  emit.call("bare Fiddle hms_abi_version()", measure { bare_fiddle.call })
  emit.call("bare ffi hms_abi_version()", measure { bare_ffi.hms_abi_version })

  HMS::Runtime.open do |rt|
    payload = "x".b * 64
    hash = { "payload" => payload }
    cbor = CBOR.encode(hash)
    json = JSON.generate({ "payload" => [payload].pack("m0") })
    pb = Hms::Sys::V1::EchoRequest.encode(Hms::Sys::V1::EchoRequest.new(payload: payload))
    msg = Hms::Sys::V1::EchoRequest.new(payload: payload)
    backend = HMS::Native.backend
    h = rt.handle

    # Ruby-side codecs alone, no call: what the Hash and message rows add.
    echoed_cbor = backend.call(h, ECHO, 2, cbor, nil)
    echoed_pb = backend.call(h, ECHO, 1, pb, nil)
    emit.call("(no call) CBOR.encode + CBOR.decode, 64 B Hash", measure { CBOR.decode(CBOR.encode(hash)) && echoed_cbor })
    emit.call("(no call) protobuf encode + decode, 64 B message",
              measure { Hms::Sys::V1::EchoRequest.encode(msg) && Hms::Sys::V1::EchoResponse.decode(echoed_pb) })

    # The floor: the backend's hms_call of the same bytes (one crossing,
    # buffers reused), without the Runtime API around it.
    emit.call("backend hms_call Echo 64 B (CBOR bytes)", measure { backend.call(h, ECHO, 2, cbor, nil) })
    emit.call("backend hms_call Echo 64 B (protobuf bytes)", measure { backend.call(h, ECHO, 1, pb, nil) })
    emit.call("rt.call Echo 64 B, Hash (CBOR)", measure { rt.call(ECHO, hash) })
    emit.call("rt.call Echo 64 B, Hash (JSON)", measure { rt.call(ECHO, hash, format: :json) })
    emit.call("rt.call Echo 64 B, protobuf message", measure { rt.call(ECHO, msg) })
    emit.call("rt.call_raw Echo 64 B, CBOR bytes", measure { rt.call_raw(ECHO, cbor, 2) })
    emit.call("rt.call_raw Echo 64 B, JSON bytes", measure { rt.call_raw(ECHO, json, 3) })
    emit.call("rt.call_raw Echo 64 B, protobuf bytes", measure { rt.call_raw(ECHO, pb, 1) })

    big = { "payload" => "x".b * (1 << 20) }
    emit.call("rt.call Echo 1 MiB, Hash (CBOR)", measure(iterations: 200) { rt.call(ECHO, big) })

    rt.register_service("bench.v1.Ruby", "Echo" => ->(req) { req })
    emit.call("rt.call Ruby service Echo 64 B (CBOR)", measure(iterations: 20_000) { rt.call("bench.v1.Ruby/Echo", hash) })
  end
  results.each { |r| puts JSON.generate(r) }
end

def parent(markdown_only, runs)
  rows = []
  runs.times do
    %w[fiddle ffi].each do |backend|
      out, err, status = Open3.capture3({ "HMS_BACKEND" => backend }, RbConfig.ruby, __FILE__, "--child")
      abort "bench: #{backend} child failed:\n#{err}" unless status.success?
      rows.concat(out.lines.map { |l| JSON.parse(l) })
    end
  end
  # the best of all runs, per backend and operation
  rows = rows.group_by { |r| [r["backend"], r["name"]] }.map { |_, same| same.min_by { |r| r["ns"] } }
  by_backend = rows.group_by { |r| r["backend"] }
  names = rows.map { |r| r["name"] }.uniq
  unless markdown_only
    puts "# #{RUBY_DESCRIPTION}"
    puts "# #{File.read('/proc/cpuinfo')[/model name\s*:\s*(.*)/, 1]}" if File.exist?("/proc/cpuinfo")
    puts
  end
  puts "| operation | Fiddle backend (ns) | x bare Fiddle | ffi backend (ns) | x bare Fiddle |"
  puts "|---|---:|---:|---:|---:|"
  names.each do |name|
    cells = %w[fiddle ffi].flat_map do |backend|
      list = by_backend.fetch(backend)
      bare = list.find { |r| r["name"] == "bare Fiddle hms_abi_version()" }["ns"]
      row = list.find { |r| r["name"] == name }
      [format("%.0f", row["ns"]), format("%.2f", row["ns"] / bare)]
    end
    puts "| #{name} | #{cells.join(' | ')} |"
  end
end

if ARGV.include?("--child")
  child
else
  runs = ARGV.find { |a| a.start_with?("--runs=") }&.split("=", 2)&.last.to_i
  parent(ARGV.include?("--markdown"), runs.nil? || runs < 1 ? 1 : runs)
end
