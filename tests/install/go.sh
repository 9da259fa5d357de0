#!/usr/bin/env bash
# The Go binding as a user gets it, outside the checkout: a new module in a
# fresh folder takes the binding by the README's local recipe (snippet
# go-module: require + replace by this checkout's bindings/go), its program
# is the README's quickstart (snippet go-quickstart), and it links the
# installed library of PREFIX through pkg-config, the binding's default.
# Then go mod tidy (dependencies through the module proxy), go vet ./..., go
# test of some of the binding's own tests, and go run . with its output
# checked.
#   bash tests/install/go.sh PREFIX     (after `make install PREFIX=PREFIX`)
# Runs as `env -i PATH="$PATH" HOME="$HOME" bash tests/install/go.sh PREFIX`;
# Go's build and module caches are the user's usual ones (under HOME), so a
# second run is quick.
set -euo pipefail

say() { echo "install-check go: $*"; }
die() {
    echo "install-check go: FAILED: $*" >&2
    exit 1
}

[[ $# -eq 1 ]] || die "usage: tests/install/go.sh PREFIX"
[[ -d "$1" ]] || die "$1 is not a folder (run make install PREFIX=$1 first)"
prefix="$(cd "$1" && pwd)"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
for tool in go gcc pkg-config python3; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not on PATH"
done

# What a user of a prefix outside the system's sets: pkg-config's path for
# the build (cgo asks pkg-config for hms_ffi), the loader's for the program.
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
export LD_LIBRARY_PATH="$prefix/lib"
export CGO_ENABLED=1
pkg-config --exists hms_ffi || die "pkg-config finds no hms_ffi.pc in $PKG_CONFIG_PATH"
# Not for the user: Go's build cache ignores what pkg-config answers
# (golang/go#24544), so a binding compiled by an earlier run against a
# since-removed prefix would be reused, with that prefix's -L. CGO_CPPFLAGS
# is part of the cache key: a define naming this prefix (which no code
# reads) makes Go compile the binding again for each prefix, and only then.
export CGO_CPPFLAGS="-DHMS_INSTALL_CHECK_PREFIX_$(printf '%s' "$prefix" | sha256sum | cut -c1-16)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir "$work/hmsapp"
cd "$work/hmsapp"

say "go module in $PWD (README snippet go-module, replace by $root/bindings/go)"
python3 "$root/tests/install/snippet.py" "$root/bindings/go/README.md" go-module -o "$work/module.sh"
placeholder=/path/to/hms
grep -q "$placeholder/bindings/go" "$work/module.sh" ||
    die "snippet go-module no longer names $placeholder/bindings/go"
sed -i "s|$placeholder/|$root/|g" "$work/module.sh"
bash -euo pipefail "$work/module.sh" >"$work/module.log" 2>&1 ||
    die "the README's module commands failed:"$'\n'"$(cat "$work/module.sh" "$work/module.log")"
grep -q "^replace github.com/hms-ffi/hms/bindings/go => $root/bindings/go" go.mod ||
    die "go.mod has no replace by the checkout: $(cat go.mod)"

say "main.go (README snippet go-quickstart)"
python3 "$root/tests/install/snippet.py" "$root/bindings/go/README.md" go-quickstart -o main.go

say "go mod tidy (dependencies through the module proxy)"
go mod tidy || die "go mod tidy failed"

say "go vet ./..."
go vet ./... || die "go vet failed"

say "go test of the binding, from this module (ABI tests and runnable examples)"
go test -count=1 -run 'TestABI|Example' github.com/hms-ffi/hms/bindings/go ||
    die "the binding's tests failed against the installed library"

say "go run ."
out="$(go run .)" || die "go run . failed: $out"
for want in "protobuf: hello" "CBOR: hi" 'JSON: {"text":"hey"}' "libhms_ffi $(pkg-config --modversion hms_ffi)"; do
    grep -qF -- "$want" <<<"$out" || die "the program's output lacks '$want':"$'\n'"$out"
done
say "ok"
