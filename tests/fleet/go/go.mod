module github.com/hms-ffi/hms/tests/fleet/go

go 1.24

require (
	github.com/hms-ffi/hms/bindings/go v0.0.0
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/fxamacker/cbor/v2 v2.10.0 // indirect
	github.com/x448/float16 v0.8.4 // indirect
)

replace github.com/hms-ffi/hms/bindings/go => ../../../bindings/go
