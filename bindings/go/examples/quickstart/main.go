// Command quickstart tours the Go binding of HMS FFI: calls in every
// format, a service written in Go, agents, a lifecycle hook that vetoes a
// transition, and events.
//
//	cd bindings/go && go run ./examples/quickstart                     # the installed library (pkg-config)
//	cd bindings/go && eval "$(./cgo-env.sh)" && go run ./examples/quickstart   # the checkout's build
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	hms "github.com/hms-ffi/hms/bindings/go"
	lifecyclev1 "github.com/hms-ffi/hms/bindings/go/gen/hms/agent/lifecycle/v1"
	agentv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/agent/v1"
	eventsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/events/v1"
	sysv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
)

func main() {
	if err := run(); err != nil {
		log.Fatal(err)
	}
}

func run() error {
	rt, err := hms.Open(hms.WithName("quickstart"))
	if err != nil {
		return err // wraps hms.ErrIncompatible when the library is stale
	}
	defer rt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	major, minor := hms.ABIVersion()
	fmt.Printf("libhms_ffi %s, ABI %d.%d\n", hms.LibraryVersion(), major, minor)

	// 1. Generated protobuf types.
	echo, err := rt.System().Echo(ctx, &sysv1.EchoRequest{Text: "hello from Go"})
	if err != nil {
		return err
	}
	fmt.Println("echo (protobuf):", echo.Text)

	// 2. Plain Go maps and structs through CBOR.
	var m map[string]any
	if err := rt.CallValue(ctx, "hms.sys.v1.System/Echo", map[string]any{"text": "hi", "payload": []byte{1, 2}}, &m); err != nil {
		return err
	}
	fmt.Println("echo (CBOR):", m["text"], m["payload"])

	// 3. A service written in Go, callable in any format.
	type greetIn struct {
		Name string `cbor:"name"`
	}
	svc, err := rt.Register(hms.ServiceDef{Name: "demo.v1.Greeter", Methods: []hms.Method{
		hms.ValueMethod("Greet", func(_ context.Context, in greetIn) (string, error) {
			if in.Name == "" {
				return "", hms.NewError(hms.CodeInvalidArgument, "name is required")
			}
			return "hello, " + in.Name, nil
		}),
	}})
	if err != nil {
		return err
	}
	defer svc.Close()
	greeting, err := rt.CallRaw(ctx, "demo.v1.Greeter/Greet", hms.FormatJSON, []byte(`{"name":"gopher"}`))
	if err != nil {
		return err
	}
	fmt.Println("Go service (JSON caller):", string(greeting))
	err = rt.CallValue(ctx, "demo.v1.Greeter/Greet", greetIn{}, nil)
	fmt.Println("errors are values:", errors.Is(err, hms.ErrInvalidArgument), err)

	// 4. Events, agents and a hook that vetoes a transition.
	sub, err := rt.Subscribe(&eventsv1.EventFilter{Kinds: []string{"agent.*", "lifecycle.*"}})
	if err != nil {
		return err
	}
	defer sub.Close()
	agent, err := rt.Agents().Create(ctx, &agentv1.Agent{Name: "summarizer", Capabilities: []string{"summarize"}})
	if err != nil {
		return err
	}
	if _, err := rt.Lifecycle().To(ctx, agent.Id, lifecyclev1.LifecycleState_ACTIVE, "ready"); err != nil {
		return err
	}
	hook, err := rt.Lifecycle().OnTransition(ctx, &lifecyclev1.RegisterHookRequest{
		ToStates: []lifecyclev1.LifecycleState{lifecyclev1.LifecycleState_TERMINATED},
		Blocking: true,
		Name:     "keep-alive",
	}, func(_ context.Context, inv *lifecyclev1.HookInvocation) error {
		return hms.NewError(hms.CodePermissionDenied, "agents of this demo never terminate")
	})
	if err != nil {
		return err
	}
	defer hook.Close()
	_, err = rt.Lifecycle().Transition(ctx, &lifecyclev1.TransitionRequest{
		AgentId: agent.Id, TargetState: lifecyclev1.LifecycleState_TERMINATED, Force: true,
	})
	fmt.Println("hook veto:", errors.Is(err, hms.ErrPermissionDenied), err)

	for i := 0; i < 2; i++ {
		ev, err := sub.Next(ctx)
		if err != nil {
			return err
		}
		fmt.Printf("event %s (our agent: %v)\n", ev.Kind, ev.AgentId == agent.Id)
	}
	return nil
}
