package hms

/*
#include "hms_go.h"
*/
import "C"

import (
	"sync"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Convert converts one message between formats (hms_convert). typeName is
// a full message name known to the core ("hms.sys.v1.EchoRequest"); empty
// converts any value structurally between CBOR and JSON. Default limits
// apply (4 MiB, depth 64).
func Convert(typeName string, from Format, data []byte, to Format) ([]byte, error) {
	if err := CheckABI(); err != nil {
		return nil, err
	}
	b := getBufs()
	defer putBufs(b)
	tp, tl := cString(typeName)
	dp, dl := cBytes(data)
	rc := C.hms_convert(tp, tl, C.int32_t(from), dp, dl, C.int32_t(to), b.out(), b.err())
	if rc != C.HMS_OK {
		return nil, errorFrom(rc, b.err(), FormatJSON)
	}
	return bytesOf(b.out()), nil
}

// known remembers the files this process registered or found known.
var known sync.Map // file path -> struct{}

// RegisterSchema adds the message types of files (and of the files they
// import) to the core's process-wide schema pool, so host services can name
// them and Convert can convert them. Files whose types the core knows
// already (the built-in hms schemas, google/protobuf/*) are skipped.
func RegisterSchema(files ...protoreflect.FileDescriptor) error {
	if err := CheckABI(); err != nil {
		return err
	}
	var ordered []protoreflect.FileDescriptor
	seen := map[string]bool{}
	var visit func(f protoreflect.FileDescriptor)
	visit = func(f protoreflect.FileDescriptor) {
		if seen[f.Path()] {
			return
		}
		seen[f.Path()] = true
		imports := f.Imports()
		for i := 0; i < imports.Len(); i++ {
			visit(imports.Get(i).FileDescriptor)
		}
		ordered = append(ordered, f)
	}
	for _, f := range files {
		visit(f)
	}
	set := &descriptorpb.FileDescriptorSet{}
	var added []string
	for _, f := range ordered {
		if _, ok := known.Load(f.Path()); ok || coreKnows(f) {
			known.Store(f.Path(), struct{}{})
			continue
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(f))
		added = append(added, f.Path())
	}
	if len(set.File) == 0 {
		return nil
	}
	raw, err := proto.Marshal(set)
	if err != nil {
		return bindingError(CodeInvalidArgument, err, "cannot encode the FileDescriptorSet: %v", err)
	}
	b := getBufs()
	defer putBufs(b)
	p, n := cBytes(raw)
	if rc := C.hms_schema_register(p, n, b.err()); rc != C.HMS_OK {
		return errorFrom(rc, b.err(), FormatJSON)
	}
	for _, path := range added {
		known.Store(path, struct{}{})
	}
	return nil
}

// coreKnows reports whether the core's pool has f's first message type
// (files are registered whole, so one type stands for the file).
func coreKnows(f protoreflect.FileDescriptor) bool {
	if f.Messages().Len() == 0 {
		return false
	}
	name := string(f.Messages().Get(0).FullName())
	_, err := Convert(name, FormatProtobuf, nil, FormatProtobuf)
	return err == nil
}
