// Package hms is the Go binding of HMS FFI: the Rust core of the HMS agent
// platform (agents, tasks, knowledge, lifecycle with hooks, a service
// registry, events) reached through its C ABI, include/hms_ffi.h, with cgo.
//
// Open a runtime, call methods with generated protobuf types, Go values
// (CBOR) or raw bytes, and close it:
//
//	rt, err := hms.Open()
//	if err != nil {
//		return err // wraps hms.ErrIncompatible when the library's ABI does not fit
//	}
//	defer rt.Close()
//	resp, err := rt.System().Echo(ctx, &sysv1.EchoRequest{Text: "hi"})
//	err = rt.CallValue(ctx, "hms.sys.v1.System/Echo", map[string]any{"text": "hi"}, &out)
//	raw, err := rt.CallRaw(ctx, "hms.sys.v1.System/Echo", hms.FormatJSON, []byte(`{"text":"hi"}`))
//
// A method called often can be resolved once (Runtime.Method, ABI 1.1): a
// MethodHandle skips the method's name on every call, and CallBatch runs
// many calls in one crossing of the boundary:
//
//	m, err := rt.Method("hms.sys.v1.System/Echo", hms.FormatProtobuf)
//	defer m.Close()
//	raw, err := m.CallRaw(ctx, reqBytes)
//	answers, err := m.CallBatch(ctx, [][]byte{a, b, c}) // *BatchError when some calls failed
//
// Calls by name without options (CallRaw, Call, CallValue, the typed
// clients) use such handles too, through a cache of the runtime's.
//
// Every call takes a context: its deadline becomes the call's deadline_ms,
// and a context that is already done never calls. A call in progress
// cannot be interrupted by cancelling its context; only its deadline stops
// it.
//
// Errors are values: every error is an *Error (Code, Message, Details,
// Origin), and errors.Is(err, hms.ErrNotFound) works for every status code.
//
// Services written in Go (Runtime.Register with ProtoMethod, ValueMethod or
// RawMethod) run on library threads through //export trampolines; a panic
// in a handler is recovered and answers HMS_HANDLER_ERROR. Lifecycle hooks
// are Go functions (Lifecycle.OnTransition). Events arrive through
// Subscription.Next, Subscription.Events (a channel) or SubscribeFunc.
//
// The typed clients System, Registry, Agents, Tasks, Knowledge and
// Lifecycle wrap the built-in services; the generated message types live
// under gen/ (sysv1, registryv1, eventsv1, agentv1, lifecyclev1, hmsv1).
//
// Linking: by default the package links the installed library through
// pkg-config (package hms_ffi, `make install` at the repository root);
// -tags hms_checkout links a checkout's rust_core/target/release build
// instead, and cgo-env.sh points that fallback at any other copy. See
// README.md, "How the library is found".
package hms
