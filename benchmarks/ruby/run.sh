#!/usr/bin/env bash
# Runs the Ruby benchmarks (benchmarks/ruby/bench.rb) once per backend, each
# in its own process, and writes benchmarks/out/ruby-fiddle.json and
# benchmarks/out/ruby-ffi.json (benchmarks/CASES.md):
#
#   bash benchmarks/ruby/run.sh [OUT_DIR] [--only ID,ID]
#   HMS_BENCH_QUICK=1 bash benchmarks/ruby/run.sh     # 3 short rounds: a smoke test
#   HMS_BACKENDS=ffi bash benchmarks/ruby/run.sh      # one backend only
#   HMS_RUBY_YJIT=0 bash benchmarks/ruby/run.sh       # the interpreter alone (default: ruby --yjit)
#
# OUT_DIR: the first argument, else $HMS_BENCH_OUT, else benchmarks/out.
# Never builds the core: it uses rust_core/target/release/libhms_ffi.so, or
# HMS_FFI_LIBRARY=/abs/path/libhms_ffi.so. Needs ruby (Fiddle), and ruby-ffi,
# ruby-cbor, ruby-google-protobuf (Debian packages; bindings/ruby/DEBIAN_PACKAGES).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

lib="${HMS_FFI_LIBRARY:-$root/rust_core/target/release/libhms_ffi.so}"
if [[ ! -f "$lib" ]]; then
    echo "run.sh: $lib not found; build the core first:" >&2
    echo "  cargo build --release --manifest-path rust_core/Cargo.toml" >&2
    exit 2
fi
export HMS_FFI_LIBRARY="$lib"

out="${HMS_BENCH_OUT:-$root/benchmarks/out}"
if [[ $# -gt 0 && "${1#--}" == "$1" ]]; then
    out="$1"
    shift
fi
mkdir -p "$out"

backends=(fiddle ffi)
if [[ -n "${HMS_BACKENDS:-}" ]]; then
    read -r -a backends <<<"$HMS_BACKENDS"
fi
# With YJIT, Ruby's own JIT (ruby --yjit, since Ruby 3.1), as servers run
# Ruby, unless HMS_RUBY_YJIT=0 or this ruby lacks it (README.md gives both).
flags=(-w)
if [[ "${HMS_RUBY_YJIT:-1}" != 0 ]] && ruby --yjit -e 'exit(RubyVM::YJIT.enabled? ? 0 : 1)' 2>/dev/null; then
    flags+=(--yjit)
fi
for backend in "${backends[@]}"; do
    echo "== ruby benchmarks, HMS_BACKEND=$backend, ruby ${flags[*]}"
    HMS_BACKEND="$backend" ruby "${flags[@]}" "$here/bench.rb" --out "$out" "$@"
done
