package hms_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	hms "github.com/hms-ffi/hms/bindings/go"
	eventsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/events/v1"
)

func registerNoop(t testing.TB, rt *hms.Runtime, name string) *hms.Service {
	t.Helper()
	return must(rt.Register(hms.ServiceDef{Name: name, Version: "0.1", Methods: []hms.Method{
		hms.ValueMethod("Noop", func(context.Context, any) (any, error) { return nil, nil }),
	}}))(t)
}

func TestPolledSubscription(t *testing.T) {
	rt := open(t)
	sub := must(rt.Subscribe(&eventsv1.EventFilter{Kinds: []string{"registry.*"}}))(t)
	defer sub.Close()
	svc := registerNoop(t, rt, "gotest.Events")
	if err := svc.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	first := must(sub.Next(ctx))(t)
	second := must(sub.Next(ctx))(t)
	if first.Kind != "registry.service_registered" || first.GetService().GetName() != "gotest.Events" ||
		first.GetService().GetVersion() != "0.1" || first.Subject != "gotest.Events" {
		t.Fatalf("first event %v", first)
	}
	if second.Kind != "registry.service_unregistered" || second.Sequence <= first.Sequence {
		t.Fatalf("second event %v", second)
	}
	if first.Time == nil || time.Since(first.Time.AsTime()) > time.Minute {
		t.Fatalf("event time %v", first.Time)
	}
}

func TestNextHonoursTheContext(t *testing.T) {
	rt := open(t)
	sub := must(rt.Subscribe(nil))(t)
	defer sub.Close()
	// A deadline with no event: DEADLINE_EXCEEDED wrapping the context's error.
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := sub.Next(ctx)
	wantCode(t, err, hms.CodeDeadlineExceeded)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("%v", err)
	}
	if d := time.Since(start); d < 100*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Next returned after %v", d)
	}
	// Cancelled while waiting: seen within a poll slice.
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { time.Sleep(100 * time.Millisecond); cancel2() }()
	start = time.Now()
	_, err = sub.Next(ctx2)
	wantCode(t, err, hms.CodeCancelled)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("a cancelled Next returned after %v", d)
	}
	// Already cancelled: returns at once, the event stays queued.
	registerNoop(t, rt, "gotest.Queued")
	_, err = sub.Next(ctx2)
	wantCode(t, err, hms.CodeCancelled)
	if ev := must(sub.Next(ctxT(t)))(t); ev.GetService().GetName() != "gotest.Queued" {
		t.Fatalf("event %v", ev)
	}
}

func TestCloseWakesPollers(t *testing.T) {
	rt := open(t)
	sub := must(rt.Subscribe(nil))(t)
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() { _, err := sub.Next(context.Background()); errs <- err }()
	}
	time.Sleep(80 * time.Millisecond)
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		select {
		case err := <-errs:
			wantCode(t, err, hms.CodeInvalidHandle)
			if !errors.Is(err, hms.ErrClosed) {
				t.Fatalf("%v", err)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("a poller did not wake")
		}
	}
	// Closing the runtime ends the subscriptions made through it.
	rt2, err := hms.Open()
	if err != nil {
		t.Fatal(err)
	}
	sub2 := must(rt2.Subscribe(nil))(t)
	done := make(chan error, 1)
	go func() { _, err := sub2.Next(context.Background()); done <- err }()
	time.Sleep(50 * time.Millisecond)
	if err := rt2.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if c := hms.CodeOf(err); c != hms.CodeInvalidHandle && c != hms.CodeCancelled {
			t.Fatalf("poller after runtime close: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the poller did not wake when the runtime closed")
	}
}

func TestEventsChannel(t *testing.T) {
	rt := open(t)
	sub := must(rt.Subscribe(&eventsv1.EventFilter{Kinds: []string{"registry.service_registered"}}))(t)
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ch := sub.Events(ctx)
	for i := 0; i < 5; i++ {
		registerNoop(t, rt, fmt.Sprintf("gotest.Chan%d", i))
	}
	for i := 0; i < 5; i++ {
		select {
		case ev := <-ch:
			if want := fmt.Sprintf("gotest.Chan%d", i); ev.GetService().GetName() != want {
				t.Fatalf("event %d: %v", i, ev)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no event on the channel")
		}
	}
	cancel()
	select {
	case _, open := <-ch:
		if open {
			t.Fatal("an event after cancel")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the channel did not close")
	}
	if !errors.Is(sub.Err(), context.Canceled) {
		t.Fatalf("Err = %v", sub.Err())
	}
	// Closing the subscription also closes a channel.
	ch2 := sub.Events(context.Background())
	_ = sub.Close()
	select {
	case _, open := <-ch2:
		if open {
			t.Fatal("an event after Close")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the channel did not close after Close")
	}
	if !errors.Is(sub.Err(), hms.ErrClosed) {
		t.Fatalf("Err = %v", sub.Err())
	}
}

func TestLaggingSubscriber(t *testing.T) {
	rt := open(t, hms.WithEventQueueCapacity(4))
	sub := must(rt.Subscribe(&eventsv1.EventFilter{Kinds: []string{"registry.service_registered"}}))(t)
	defer sub.Close()
	const n = 20
	for i := 0; i < n; i++ {
		registerNoop(t, rt, fmt.Sprintf("gotest.Lag%02d", i))
	}
	ctx := ctxT(t)
	var lagged uint64
	var names []string
	for {
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		ev, err := sub.Next(short)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == "lagged" {
			lagged += ev.GetLagged().GetDropped()
			continue
		}
		names = append(names, ev.GetService().GetName())
	}
	if lagged == 0 || len(names) > 4 || lagged+uint64(len(names)) != n {
		t.Fatalf("lagged %d, kept %v", lagged, names)
	}
	// What is left is the newest events, in order.
	if !sort.StringsAreSorted(names) || names[len(names)-1] != fmt.Sprintf("gotest.Lag%02d", n-1) {
		t.Fatalf("kept %v", names)
	}
}

func TestConcurrentPollersShareEvents(t *testing.T) {
	rt := open(t, hms.WithEventQueueCapacity(1000))
	sub := must(rt.Subscribe(&eventsv1.EventFilter{Kinds: []string{"registry.service_registered"}}))(t)
	defer sub.Close()
	const n = 60
	var mu sync.Mutex
	seen := map[uint64]int{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ev, err := sub.Next(ctx)
				if err != nil {
					return
				}
				mu.Lock()
				seen[ev.Sequence]++
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n; i++ {
		registerNoop(t, rt, fmt.Sprintf("gotest.Share%d", i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		if got == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("%d distinct events of %d", len(seen), n)
	}
	for seq, c := range seen {
		if c != 1 {
			t.Fatalf("event %d delivered %d times", seq, c)
		}
	}
}

func TestPushSubscription(t *testing.T) {
	rt := open(t)
	var mu sync.Mutex
	var got []string
	calls := 0
	sub := must(rt.SubscribeFunc(&eventsv1.EventFilter{Kinds: []string{"registry.service_registered"}}, func(ev *eventsv1.Event) {
		mu.Lock()
		calls++
		c := calls
		got = append(got, ev.GetService().GetName())
		mu.Unlock()
		if c%2 == 0 {
			panic("a push callback that panics")
		}
	}))(t)
	const n = 6
	for i := 0; i < n; i++ {
		registerNoop(t, rt, fmt.Sprintf("gotest.Push%d", i))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		c := calls
		mu.Unlock()
		if c == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := sub.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, name := range got {
		if want := fmt.Sprintf("gotest.Push%d", i); name != want {
			t.Fatalf("push %d: %q, want %q (all: %v)", i, name, want, got)
		}
	}
	if len(got) != n || sub.CallbackPanics() != n/2 {
		t.Fatalf("%d events, %d panics", len(got), sub.CallbackPanics())
	}
	// A closed push subscription is closed for Next too; a live one refuses polling.
	wantCode(t, errOf(sub.Next(context.Background())), hms.CodeInvalidHandle)
	push2 := must(rt.SubscribeFunc(nil, func(*eventsv1.Event) {}))(t)
	defer push2.Close()
	wantCode(t, errOf(push2.Next(ctxT(t))), hms.CodeFailedPrecondition)
	wantCode(t, errOf(rt.SubscribeFunc(nil, nil)), hms.CodeInvalidArgument)
}
