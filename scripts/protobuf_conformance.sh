#!/usr/bin/env bash
# The official protobuf conformance suite over the core's codec.
#   scripts/protobuf_conformance.sh [--verbose]
#
# 1. Fetches Debian's protobuf source package, of the very version of the
#    installed libprotobuf-dev (3.21.12 on bookworm), into a cache that
#    survives between runs (rust_core/target/protobuf-conformance/, or
#    $HMS_PROTOBUF_CONFORMANCE_CACHE); deb-src entries for bookworm are added
#    when apt knows no source of that version.
# 2. Builds its conformance_test_runner once with g++ against the system
#    libprotobuf (the costly part, about a minute on two cores; cached).
# 3. Builds tests/protobuf_conformance/testee.cc, which answers the runner's
#    requests with hms_runtime_convert through
#    rust_core/target/release/libhms_ffi.so.
# 4. Runs the binary+JSON suite (proto2 and proto3) with
#    --enforce_recommended in both JSON naming modes of a runtime's
#    json_names: "json" (lowerCamelCase json_name, what the suite expects)
#    and "proto" (proto field names; the testee hands the runner that
#    output after the reference parser accepted it and the core renamed its
#    keys, see testee.cc). Any failure in either mode fails the run: there
#    is no list of known failures.
#
# Idempotent and non-interactive; runs as root in CI (apt-get for missing
# packages). Needs the release build of the core (scripts/setup.sh); LIBDIR
# selects another folder holding libhms_ffi.so.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
here="$root/tests/protobuf_conformance"
libdir="${LIBDIR:-$root/rust_core/target/release}"
cache="${HMS_PROTOBUF_CONFORMANCE_CACHE:-$root/rust_core/target/protobuf-conformance}"
njobs="$(nproc 2>/dev/null || echo 2)"

verbose=0
for arg in "$@"; do
    case "$arg" in
        --verbose) verbose=1 ;;
        *)
            echo "usage: $0 [--verbose]" >&2
            exit 2
            ;;
    esac
done

say() { printf '== protobuf conformance: %s\n' "$*"; }
die() {
    printf 'protobuf conformance: %s\n' "$*" >&2
    exit 1
}

# --- packages ---------------------------------------------------------------
apt_updated=0
apt_update() {
    if ((apt_updated == 0)); then
        say "apt-get update"
        apt-get update -qq
        apt_updated=1
    fi
}

need=(libprotobuf-dev protobuf-compiler dpkg-dev g++ pkg-config python3)
missing=()
for pkg in "${need[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$pkg")
done
if ((${#missing[@]})); then
    apt_update
    say "installing ${missing[*]}"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The runner's sources must be those of the installed library: generated code
# refuses a libprotobuf of another version, and the suite's expectations
# follow the version.
version="$(dpkg-query -W -f='${source:Version}' libprotobuf-dev)"
upstream="${version%%-*}"
upstream="${upstream#*:}"
src="$cache/protobuf-$upstream"
build="$cache/build-$version"
runner="$build/conformance_test_runner"
fds="$build/test_messages.fds"
testee="$build/testee"
mkdir -p "$cache"

# --- 1. sources ---------------------------------------------------------------
# Whether apt knows the source package of the installed version.
have_source() {
    apt-cache showsrc protobuf 2>/dev/null | grep -qx "Version: $version"
}

fetch_sources() {
    local list=/etc/apt/sources.list.d/hms-protobuf-src.sources
    have_source || apt_update
    if ! have_source && [[ ! -f "$list" ]]; then
        # Debian images ship binary entries only. Same mirrors and keyring as
        # theirs; the security suite carries the +debNuM versions.
        say "adding deb-src entries for bookworm ($list)"
        cat >"$list" <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        apt_updated=0
        apt_update
    fi
    have_source || die "no deb-src entry offers the source of protobuf $version"
    say "apt-get source protobuf=$version (about 5 MB)"
    local tmp="$cache/download.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    # apt's sandbox user cannot write into root's cache dir; the download is
    # verified against the signed Sources index all the same.
    if ! (cd "$tmp" && apt-get source -qq "protobuf=$version") >"$cache/apt-source.log" 2>&1 ||
        [[ ! -d "$tmp/protobuf-$upstream/conformance" ]]; then
        cat "$cache/apt-source.log" >&2
        die "apt-get source protobuf=$version did not unpack protobuf-$upstream/"
    fi
    rm -rf "$src"
    mv "$tmp/protobuf-$upstream" "$src"
    rm -rf "$tmp"
}

# --- 2. the runner -------------------------------------------------------------
# Compiles in the background, at most $njobs at once; `wait_all` collects.
pids=()
compile() {
    local out="$1"
    shift
    while (($(jobs -rp | wc -l) >= njobs)); do wait -n || true; done
    echo "   g++ -c $(basename "${*: -1}")"
    g++ "$@" -c -o "$out" &
    pids+=($!)
}
wait_all() {
    local pid rc=0
    for pid in "${pids[@]}"; do wait "$pid" || rc=1; done
    pids=()
    return "$rc"
}

build_runner() {
    local c="$src/conformance"
    rm -rf "$build"
    mkdir -p "$build/gen" "$build/include/google/protobuf/stubs" "$build/obj"
    say "protoc: conformance.proto, test_messages_proto{2,3}.proto"
    protoc -I"$c" --cpp_out="$build/gen" "$c/conformance.proto"
    protoc -I"$src/src" --cpp_out="$build/gen" \
        "$src/src/google/protobuf/test_messages_proto2.proto" \
        "$src/src/google/protobuf/test_messages_proto3.proto"
    # stringprintf.h is an internal header that libprotobuf-dev does not
    # install (its functions are exported by libprotobuf.so): take it, alone,
    # from the same sources so every other header is the installed one.
    cp "$src/src/google/protobuf/stubs/stringprintf.h" "$build/include/google/protobuf/stubs/"

    # Upstream code, not ours: built with -w so its warnings (unused
    # parameters, sign compares in jsoncpp) do not drown ours.
    local flags=(-std=c++17 -O1 -w -I"$build/gen" -I"$build/include" -I"$c"
        $(pkg-config --cflags protobuf))
    say "compiling the runner ($njobs jobs; once per protobuf version)"
    compile "$build/obj/conformance.pb.o" "${flags[@]}" "$build/gen/conformance.pb.cc"
    compile "$build/obj/test_messages_proto2.pb.o" "${flags[@]}" \
        "$build/gen/google/protobuf/test_messages_proto2.pb.cc"
    compile "$build/obj/test_messages_proto3.pb.o" "${flags[@]}" \
        "$build/gen/google/protobuf/test_messages_proto3.pb.cc"
    local f
    for f in conformance_test conformance_test_runner conformance_test_main \
        binary_json_conformance_suite text_format_conformance_suite; do
        compile "$build/obj/$f.o" "${flags[@]}" "$c/$f.cc"
    done
    compile "$build/obj/jsoncpp.o" "${flags[@]}" "$c/third_party/jsoncpp/jsoncpp.cpp"
    wait_all || die "the runner did not compile (see the g++ errors above)"
    say "linking conformance_test_runner"
    g++ -o "$runner.tmp" "$build"/obj/*.o $(pkg-config --libs protobuf) -pthread
    mv "$runner.tmp" "$runner"
}

t0=$SECONDS
if [[ -x "$runner" ]]; then
    say "cached runner: $runner"
else
    [[ -d "$src/conformance" ]] || fetch_sources
    build_runner
    say "runner built in $((SECONDS - t0))s"
fi

# --- 3. schemas and the testee -----------------------------------------------
[[ -f "$libdir/libhms_ffi.so" ]] ||
    die "$libdir/libhms_ffi.so is missing; build the core first:
  cargo build --release --manifest-path rust_core/Cargo.toml"

if [[ ! -s "$fds" ]]; then
    # Every file the test messages import comes along (the well-known types),
    # so the set is self-contained, as hms_schema_register requires.
    protoc -I"$src/src" --include_imports --descriptor_set_out="$fds.tmp" \
        "$src/src/google/protobuf/test_messages_proto2.proto" \
        "$src/src/google/protobuf/test_messages_proto3.proto"
    mv "$fds.tmp" "$fds"
fi
# The testee finds the core through its rpath: rebuilt when its source, the
# header or the library folder (LIBDIR) changes.
if [[ ! -x "$testee" || "$here/testee.cc" -nt "$testee" || "$root/include/hms_ffi.h" -nt "$testee" ||
    "$(cat "$testee.libdir" 2>/dev/null)" != "$libdir" ]]; then
    say "building the testee (tests/protobuf_conformance/testee.cc)"
    g++ -std=c++17 -O1 -Wall -Wextra -Werror -I"$build/gen" -I"$root/include" \
        $(pkg-config --cflags protobuf) -o "$testee.tmp" "$here/testee.cc" \
        "$build/obj/conformance.pb.o" -L"$libdir" -lhms_ffi -Wl,-rpath,"$libdir" \
        $(pkg-config --libs protobuf) -pthread
    mv "$testee.tmp" "$testee"
    printf '%s' "$libdir" >"$testee.libdir"
fi

# --- 4. runs ------------------------------------------------------------------
# Both JSON naming modes, through the runtime's json_names: proto field names,
# and lowerCamelCase json_name (what the suite's validators look up).
modes=(proto json)

runner_args=(--enforce_recommended)
((verbose)) && runner_args+=(--verbose)
for mode in "${modes[@]}"; do
    out="$cache/run-$mode"
    rm -rf "$out"
    mkdir -p "$out"
    say "running the suite, JSON names '$mode' (log: $out/log.txt)"
    t1=$SECONDS
    rc=0
    # The text format suite (all skipped: the core has no text format) runs
    # only when the binary+JSON one passed, so one closing line is enough.
    HMS_CONFORMANCE_JSON_NAMES="$mode" HMS_CONFORMANCE_DESCRIPTOR_SET="$fds" \
        "$runner" "${runner_args[@]}" --output_dir "$out" "$testee" >"$out/log.txt" 2>&1 || rc=$?
    grep '^CONFORMANCE SUITE' "$out/log.txt" | sed 's/^/   runner: /' || true
    if ((rc != 0)) || grep -q '^CONFORMANCE SUITE FAILED' "$out/log.txt" ||
        ! grep -q '^CONFORMANCE SUITE PASSED' "$out/log.txt"; then
        # The runner lists what failed, one test per line, after its summary.
        grep -A 200 'These tests failed' "$out/log.txt" | head -n 60 >&2 || tail -n 30 "$out/log.txt" >&2
        die "mode '$mode': the suite failed (exit $rc), see $out/log.txt"
    fi
    say "mode '$mode' passed in $((SECONDS - t1))s"
done
say "done in $((SECONDS - t0))s"
