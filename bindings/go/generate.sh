#!/usr/bin/env bash
# Regenerates the Go protobuf types under gen/ from include/proto/hms/**,
# deterministically: protoc (Debian's protobuf-compiler) plus protoc-gen-go
# at the version pinned in go.mod (its `tool` directive), built from the
# module cache. CI regenerates and runs `git diff --exit-code` on gen/.
#   bindings/go/generate.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
proto_root="$root/include/proto"
module="github.com/hms-ffi/hms/bindings/go"

command -v protoc >/dev/null 2>&1 || {
    echo "generate.sh: protoc is missing (Debian package protobuf-compiler)" >&2
    exit 1
}
# google/protobuf/*.proto (Timestamp, FieldMask) ship with Debian's
# libprotobuf-dev / protobuf-compiler under /usr/include.
wkt=""
for dir in /usr/include /usr/local/include; do
    if [[ -f "$dir/google/protobuf/timestamp.proto" ]]; then
        wkt="$dir"
        break
    fi
done
if [[ -z "$wkt" ]]; then
    echo "generate.sh: google/protobuf/timestamp.proto not found (Debian package libprotobuf-dev)" >&2
    exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$here" && go build -o "$tmp/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go)

mapfile -t protos < <(cd "$proto_root" && find hms -name '*.proto' | LC_ALL=C sort)
rm -rf "$here/gen"
mkdir -p "$tmp/out"
protoc --plugin=protoc-gen-go="$tmp/protoc-gen-go" \
    -I"$proto_root" -I"$wkt" \
    --go_out="$tmp/out" --go_opt=module="$module" \
    "${protos[@]}"
mv "$tmp/out/gen" "$here/gen"
# The test-only schema (internal/testpb) of the binding's own tests.
protoc --plugin=protoc-gen-go="$tmp/protoc-gen-go" \
    -I"$here/internal/testpb" -I"$wkt" \
    --go_out="$tmp/out" --go_opt=module="$module" \
    demo.proto
cp "$tmp/out/internal/testpb/demo.pb.go" "$here/internal/testpb/demo.pb.go"
echo "generate.sh: $(find "$here/gen" -name '*.pb.go' | wc -l) files under bindings/go/gen, 1 under internal/testpb"
