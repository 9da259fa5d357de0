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

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
install_check_begin go "$@" -- go gcc pkg-config
export CGO_ENABLED=1
pkg-config --exists hms_ffi || fail "pkg-config finds no hms_ffi.pc in $PKG_CONFIG_PATH"
# Not for the user: Go's build cache ignores what pkg-config answers
# (golang/go#24544), so a binding compiled by an earlier run against a
# since-removed prefix would be reused, with that prefix's -L. CGO_CPPFLAGS
# is part of the cache key: a define naming this prefix (which no code
# reads) makes Go compile the binding again for each prefix, and only then.
export CGO_CPPFLAGS="-DHMS_INSTALL_CHECK_PREFIX_$(printf '%s' "$prefix" | sha256sum | cut -c1-16)"

mkdir "$work/hmsapp"
cd "$work/hmsapp"

say "go module in $PWD (README snippet go-module, replace by $root/bindings/go)"
python3 "$root/tests/install/snippet.py" "$root/bindings/go/README.md" go-module -o "$work/module.sh"
placeholder=/path/to/hms
grep -q "$placeholder/bindings/go" "$work/module.sh" ||
    fail "snippet go-module no longer names $placeholder/bindings/go"
sed -i "s|$placeholder/|$root/|g" "$work/module.sh"
bash -euo pipefail "$work/module.sh" >"$work/module.log" 2>&1 ||
    fail "the README's module commands failed:"$'\n'"$(cat "$work/module.sh" "$work/module.log")"
grep -q "^replace github.com/hms-ffi/hms/bindings/go => $root/bindings/go" go.mod ||
    fail "go.mod has no replace by the checkout: $(cat go.mod)"

say "main.go (README snippet go-quickstart)"
python3 "$root/tests/install/snippet.py" "$root/bindings/go/README.md" go-quickstart -o main.go

say "go mod tidy (dependencies through the module proxy)"
go mod tidy || fail "go mod tidy failed"

say "go vet ./..."
go vet ./... || fail "go vet failed"

say "go test of the binding, from this module (ABI tests and runnable examples)"
go test -count=1 -run 'TestABI|Example' github.com/hms-ffi/hms/bindings/go ||
    fail "the binding's tests failed against the installed library"

say "go run ."
out="$(go run .)" || fail "go run . failed: $out"
for want in "protobuf: hello" "CBOR: hi" 'JSON: {"text":"hey"}' "libhms_ffi $(pkg-config --modversion hms_ffi)"; do
    grep -qF -- "$want" <<<"$out" || fail "the program's output lacks '$want':"$'\n'"$out"
done
say "ok"
