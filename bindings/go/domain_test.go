package hms_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	hms "github.com/hms-ffi/hms/bindings/go"
	lifecyclev1 "github.com/hms-ffi/hms/bindings/go/gen/hms/agent/lifecycle/v1"
	agentv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/agent/v1"
	eventsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/events/v1"
	hmsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/v1"
)

const (
	stInitialized = lifecyclev1.LifecycleState_INITIALIZED
	stActive      = lifecyclev1.LifecycleState_ACTIVE
	stPaused      = lifecyclev1.LifecycleState_PAUSED
	stTerminated  = lifecyclev1.LifecycleState_TERMINATED
	stMaintenance = lifecyclev1.LifecycleState_MAINTENANCE
)

func newAgent(t testing.TB, rt *hms.Runtime, name string, active bool) *agentv1.Agent {
	t.Helper()
	a := must(rt.Agents().Create(ctxT(t), &agentv1.Agent{
		Name: name, Kind: "worker", Version: "1.0",
		Capabilities: []string{"summarize", "translate"},
		Labels:       map[string]string{"team": "go", "name": name},
	}))(t)
	if active {
		must(rt.Lifecycle().To(ctxT(t), a.Id, stActive, "ready"))(t)
		a = must(rt.Agents().Get(ctxT(t), a.Id))(t)
	}
	return a
}

func TestAgents(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	a := newAgent(t, rt, "alpha", false)
	if len(a.Id) != 36 || a.State != stInitialized || a.Revision == 0 || a.CreatedAt == nil {
		t.Fatalf("created %v", a)
	}
	got := must(rt.Agents().Get(ctx, a.Id))(t)
	if got.Name != "alpha" || got.Labels["team"] != "go" {
		t.Fatalf("got %v", got)
	}
	b := newAgent(t, rt, "beta", true)
	for i := 0; i < 3; i++ {
		newAgent(t, rt, fmt.Sprintf("gamma%d", i), false)
	}
	// Filters: label, capability, state, kind; and pages.
	byLabel := must(rt.Agents().List(ctx, &agentv1.ListAgentsRequest{Labels: map[string]string{"name": "beta"}}))(t)
	if len(byLabel.Agents) != 1 || byLabel.Agents[0].Id != b.Id {
		t.Fatalf("by label %v", byLabel)
	}
	active := must(rt.Agents().List(ctx, &agentv1.ListAgentsRequest{States: []lifecyclev1.LifecycleState{stActive}}))(t)
	if len(active.Agents) != 1 || active.Agents[0].Id != b.Id {
		t.Fatalf("active %v", active)
	}
	none := must(rt.Agents().List(ctx, &agentv1.ListAgentsRequest{Capabilities: []string{"fly"}}))(t)
	if len(none.Agents) != 0 {
		t.Fatalf("capability fly %v", none)
	}
	var all []string
	req := &agentv1.ListAgentsRequest{PageSize: 2, Kind: "worker"}
	for pages := 0; ; pages++ {
		page := must(rt.Agents().List(ctx, req))(t)
		for _, x := range page.Agents {
			all = append(all, x.Name)
		}
		if page.NextPageToken == "" {
			if pages != 2 {
				t.Fatalf("%d pages", pages+1)
			}
			break
		}
		req.PageToken = page.NextPageToken
	}
	if strings.Join(all, ",") != "alpha,beta,gamma0,gamma1,gamma2" {
		t.Fatalf("paged %v", all)
	}
	// Update with a mask; a stale revision is ABORTED.
	upd := must(rt.Agents().Update(ctx, &agentv1.Agent{Id: a.Id, Description: "first", Revision: a.Revision}, "description"))(t)
	if upd.Description != "first" || upd.Revision <= a.Revision || upd.Name != "alpha" {
		t.Fatalf("updated %v", upd)
	}
	_, err := rt.Agents().Update(ctx, &agentv1.Agent{Id: a.Id, Description: "stale", Revision: a.Revision}, "description")
	wantCode(t, err, hms.CodeAborted)
	// Validation and missing records.
	wantCode(t, errOf(rt.Agents().Create(ctx, &agentv1.Agent{})), hms.CodeInvalidArgument)
	wantCode(t, errOf(rt.Agents().Get(ctx, "no-such-agent")), hms.CodeNotFound)
	wantCode(t, rt.Agents().Delete(ctx, a.Id, a.Revision), hms.CodeAborted)
	if err := rt.Agents().Delete(ctx, a.Id, 0); err != nil {
		t.Fatal(err)
	}
	wantCode(t, errOf(rt.Agents().Get(ctx, a.Id)), hms.CodeNotFound)
}

func TestTasks(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	idle := newAgent(t, rt, "idle", false)
	busy := newAgent(t, rt, "busy", true)
	tk := must(rt.Tasks().Submit(ctx, &agentv1.Task{Title: "summarize", Input: []byte("text"), InputContentType: "text/plain", Priority: 5}))(t)
	if tk.Status != agentv1.TaskStatus_PENDING || tk.Id == "" {
		t.Fatalf("submitted %v", tk)
	}
	// Only an ACTIVE agent takes tasks: the rule is in the details.
	e := wantCode(t, errOf(rt.Tasks().Assign(ctx, tk.Id, idle.Id)), hms.CodeFailedPrecondition)
	if e.Details["rule"] == "" {
		t.Fatalf("no rule in %v", e.Details)
	}
	// Status moves only forward.
	wantCode(t, errOf(rt.Tasks().Start(ctx, tk.Id)), hms.CodeFailedPrecondition)
	tk = must(rt.Tasks().Assign(ctx, tk.Id, busy.Id))(t)
	if tk.Status != agentv1.TaskStatus_ASSIGNED || tk.AgentId != busy.Id {
		t.Fatalf("assigned %v", tk)
	}
	tk = must(rt.Tasks().Start(ctx, tk.Id))(t)
	tk = must(rt.Tasks().Complete(ctx, tk.Id, []byte("summary"), "text/plain"))(t)
	if tk.Status != agentv1.TaskStatus_SUCCEEDED || string(tk.Result) != "summary" {
		t.Fatalf("completed %v", tk)
	}
	wantCode(t, errOf(rt.Tasks().Cancel(ctx, tk.Id, "too late")), hms.CodeFailedPrecondition)
	// Submitted straight to an agent, then failed.
	t2 := must(rt.Tasks().Submit(ctx, &agentv1.Task{Title: "translate", AgentId: busy.Id}))(t)
	if t2.Status != agentv1.TaskStatus_ASSIGNED {
		t.Fatalf("submitted to an agent: %v", t2)
	}
	must(rt.Tasks().Start(ctx, t2.Id))(t)
	t2 = must(rt.Tasks().Fail(ctx, t2.Id, &hmsv1.Status{Code: int32(hms.CodeInternal), Message: "model crashed"}))(t)
	if t2.Status != agentv1.TaskStatus_FAILED || t2.Error.GetMessage() != "model crashed" {
		t.Fatalf("failed %v", t2)
	}
	t3 := must(rt.Tasks().Submit(ctx, &agentv1.Task{Title: "never"}))(t)
	t3 = must(rt.Tasks().Cancel(ctx, t3.Id, "changed my mind"))(t)
	if t3.Status != agentv1.TaskStatus_CANCELLED {
		t.Fatalf("cancelled %v", t3)
	}
	list := must(rt.Tasks().List(ctx, &agentv1.ListTasksRequest{AgentId: busy.Id}))(t)
	if len(list.Tasks) != 2 {
		t.Fatalf("tasks of busy: %v", list.Tasks)
	}
	got := must(rt.Tasks().Get(ctx, t3.Id))(t)
	if got.Status != agentv1.TaskStatus_CANCELLED {
		t.Fatalf("got %v", got)
	}
	wantCode(t, errOf(rt.Tasks().Submit(ctx, &agentv1.Task{})), hms.CodeInvalidArgument)
	wantCode(t, errOf(rt.Tasks().Get(ctx, "nope")), hms.CodeNotFound)
}

func TestKnowledge(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	put := func(key string, conf float64, tags ...string) *agentv1.KnowledgeEntry {
		return must(rt.Knowledge().Put(ctx, &agentv1.KnowledgeEntry{
			Namespace: "facts", Key: key, Text: "about " + key, Tags: tags, Confidence: conf, Source: "test",
		}))(t)
	}
	sky := put("sky.color", 0.9, "nature", "color")
	put("sky.height", 0.4, "nature")
	put("grass.color", 0.8, "nature", "color")
	byKey := must(rt.Knowledge().GetByKey(ctx, "facts", "sky.color"))(t)
	if byKey.Id != sky.Id || byKey.Text != "about sky.color" {
		t.Fatalf("by key %v", byKey)
	}
	must(rt.Knowledge().Get(ctx, sky.Id))(t)
	q := must(rt.Knowledge().Query(ctx, &agentv1.QueryKnowledgeRequest{Namespace: "facts", KeyPrefix: "sky."}))(t)
	if len(q.Entries) != 2 {
		t.Fatalf("prefix query %v", q.Entries)
	}
	q = must(rt.Knowledge().Query(ctx, &agentv1.QueryKnowledgeRequest{Namespace: "facts", Tags: []string{"color"}, MinConfidence: 0.85}))(t)
	if len(q.Entries) != 1 || q.Entries[0].Key != "sky.color" {
		t.Fatalf("tag+confidence query %v", q.Entries)
	}
	// Replace at the same key honouring the revision.
	upd := must(rt.Knowledge().Put(ctx, &agentv1.KnowledgeEntry{Namespace: "facts", Key: "sky.color", Text: "blue", Revision: sky.Revision}))(t)
	if upd.Id != sky.Id || upd.Text != "blue" || upd.Revision <= sky.Revision {
		t.Fatalf("replaced %v", upd)
	}
	wantCode(t, errOf(rt.Knowledge().Put(ctx, &agentv1.KnowledgeEntry{Namespace: "facts", Key: "sky.color", Text: "red", Revision: sky.Revision})), hms.CodeAborted)
	if err := rt.Knowledge().Delete(ctx, sky.Id, 0); err != nil {
		t.Fatal(err)
	}
	wantCode(t, errOf(rt.Knowledge().GetByKey(ctx, "facts", "sky.color")), hms.CodeNotFound)
}

func TestLifecycle(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	a := newAgent(t, rt, "life", false)
	lc := rt.Lifecycle()
	r := must(lc.To(ctx, a.Id, stActive, "start"))(t)
	if r.PreviousState != stInitialized || r.CurrentState != stActive || r.Event.TransitionType != lifecyclev1.TransitionType_TRANSITION_TYPE_NORMAL {
		t.Fatalf("transition %v", r)
	}
	// Outside the table: refused, unless forced.
	e := wantCode(t, errOf(lc.To(ctx, a.Id, stInitialized, "back")), hms.CodeFailedPrecondition)
	if e.Details["rule"] == "" {
		t.Fatalf("no rule in %v", e)
	}
	must(lc.To(ctx, a.Id, stMaintenance, "patch"))(t)
	forced := must(lc.Transition(ctx, &lifecyclev1.TransitionRequest{AgentId: a.Id, TargetState: stPaused, Force: true, Reason: "ops", InitiatedBy: "go-test"}))(t)
	if forced.Event.TransitionType != lifecyclev1.TransitionType_TRANSITION_TYPE_FORCED {
		t.Fatalf("forced %v", forced)
	}
	st := must(lc.GetState(ctx, a.Id))(t)
	if st.State != stPaused || st.PreviousState != stMaintenance {
		t.Fatalf("state %v", st)
	}
	h := must(lc.GetHistory(ctx, &lifecyclev1.GetHistoryRequest{AgentId: a.Id}))(t)
	if len(h.Events) != 3 || h.Events[0].NewState != stActive || h.Events[2].InitiatedBy != "go-test" || h.Events[2].Sequence != 3 {
		t.Fatalf("history %v", h.Events)
	}
	onlyForced := must(lc.GetHistory(ctx, &lifecyclev1.GetHistoryRequest{AgentId: a.Id, TransitionType: lifecyclev1.TransitionType_TRANSITION_TYPE_FORCED}))(t)
	if len(onlyForced.Events) != 1 {
		t.Fatalf("forced history %v", onlyForced.Events)
	}
	must(lc.To(ctx, a.Id, lifecyclev1.LifecycleState_SHUTTING_DOWN, "bye"))(t)
	must(lc.To(ctx, a.Id, stTerminated, "bye"))(t)
	wantCode(t, errOf(lc.Transition(ctx, &lifecyclev1.TransitionRequest{AgentId: a.Id, TargetState: stActive, Force: true})), hms.CodeFailedPrecondition)
	wantCode(t, errOf(lc.To(ctx, "nope", stActive, "")), hms.CodeNotFound)
	wantCode(t, errOf(lc.To(ctx, a.Id, lifecyclev1.LifecycleState_STATE_UNSPECIFIED, "")), hms.CodeInvalidArgument)
}

func TestHooksVetoFromGo(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	a := newAgent(t, rt, "guarded", true)
	var seen atomic.Pointer[lifecyclev1.HookInvocation]
	veto := must(rt.Lifecycle().OnTransition(ctx, &lifecyclev1.RegisterHookRequest{
		AgentIds: []string{a.Id}, ToStates: []lifecyclev1.LifecycleState{stPaused},
		Blocking: true, Name: "no-pause",
	}, func(_ context.Context, inv *lifecyclev1.HookInvocation) error {
		seen.Store(inv)
		return hms.NewError(hms.CodePermissionDenied, "pausing is not allowed")
	}))(t)
	if veto.ID == "" {
		t.Fatal("no hook id")
	}
	e := wantCode(t, errOf(rt.Lifecycle().To(ctx, a.Id, stPaused, "nap")), hms.CodePermissionDenied)
	if !strings.Contains(e.Message, "pausing is not allowed") {
		t.Fatalf("veto message %q", e.Message)
	}
	inv := seen.Load()
	if inv == nil || inv.HookName != "no-pause" || !inv.Blocking || inv.Event.GetAgentId() != a.Id ||
		inv.Event.GetPreviousState() != stActive || inv.Event.GetNewState() != stPaused || inv.HookId != veto.ID {
		t.Fatalf("invocation %v", inv)
	}
	if st := must(rt.Lifecycle().GetState(ctx, a.Id))(t); st.State != stActive {
		t.Fatalf("vetoed transition changed the state to %v", st.State)
	}
	// Other transitions do not match the hook.
	must(rt.Lifecycle().To(ctx, a.Id, stMaintenance, "patch"))(t)
	must(rt.Lifecycle().To(ctx, a.Id, stActive, "patched"))(t)
	// Once the hook is gone, the transition goes through.
	if err := veto.Close(); err != nil {
		t.Fatal(err)
	}
	if err := veto.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	must(rt.Lifecycle().To(ctx, a.Id, stPaused, "nap"))(t)
}

func TestHookPanicTimeoutAndNonBlockingFailure(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	a := newAgent(t, rt, "hooked", true)
	sub := must(rt.Subscribe(&eventsv1.EventFilter{Kinds: []string{"lifecycle.*"}, AgentIds: []string{a.Id}}))(t)
	defer sub.Close()
	// A panicking blocking hook vetoes with HANDLER_ERROR.
	p := must(rt.Lifecycle().OnTransition(ctx, &lifecyclev1.RegisterHookRequest{
		ToStates: []lifecyclev1.LifecycleState{stPaused}, Blocking: true,
	}, func(context.Context, *lifecyclev1.HookInvocation) error { panic("hook panicked") }))(t)
	e := wantCode(t, errOf(rt.Lifecycle().To(ctx, a.Id, stPaused, "")), hms.CodeHandlerError)
	if !strings.Contains(e.Message, "hook panicked") {
		t.Fatalf("message %q", e.Message)
	}
	must2(t, p.Close())
	// A blocking hook that overruns its timeout vetoes with DEADLINE_EXCEEDED.
	release := make(chan struct{})
	slow := must(rt.Lifecycle().OnTransition(ctx, &lifecyclev1.RegisterHookRequest{
		ToStates: []lifecyclev1.LifecycleState{stPaused}, Blocking: true, TimeoutMs: 100,
	}, func(hctx context.Context, _ *lifecyclev1.HookInvocation) error {
		if _, ok := hctx.Deadline(); !ok {
			return errors.New("the hook's context has no deadline")
		}
		<-release
		return nil
	}))(t)
	start := time.Now()
	wantCode(t, errOf(rt.Lifecycle().To(ctx, a.Id, stPaused, "")), hms.CodeDeadlineExceeded)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the timeout took %v", d)
	}
	close(release)
	must2(t, slow.Close())
	// A non-blocking hook runs after the change; its failure is an event.
	var ran atomic.Int32
	after := must(rt.Lifecycle().OnTransition(ctx, &lifecyclev1.RegisterHookRequest{
		ToStates: []lifecyclev1.LifecycleState{stPaused}, Name: "audit",
	}, func(_ context.Context, inv *lifecyclev1.HookInvocation) error {
		ran.Add(1)
		if inv.Blocking {
			return errors.New("called as blocking")
		}
		return errors.New("audit log unavailable")
	}))(t)
	defer after.Close()
	r := must(rt.Lifecycle().To(ctx, a.Id, stPaused, "nap"))(t)
	if r.CurrentState != stPaused {
		t.Fatalf("transition %v", r)
	}
	var failed *eventsv1.HookFailedEvent
	for failed == nil {
		ev := must(sub.Next(ctx))(t)
		switch ev.Kind {
		case "lifecycle.transition":
			if ev.GetLifecycle().GetNewState() != stPaused {
				t.Fatalf("transition event %v", ev)
			}
		case "lifecycle.hook_failed":
			failed = ev.GetHookFailed()
		default:
			t.Fatalf("unexpected event %v", ev)
		}
	}
	if failed.HookName != "audit" || !strings.Contains(failed.Error.GetMessage(), "audit log unavailable") ||
		failed.Error.GetCode() != int32(hms.CodeHandlerError) || ran.Load() != 1 {
		t.Fatalf("hook_failed %v (ran %d)", failed, ran.Load())
	}
}

func must2(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestDomainEvents(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	sub := must(rt.Subscribe(&eventsv1.EventFilter{Kinds: []string{"agent.*", "task.*", "knowledge.*", "lifecycle.*"}}))(t)
	defer sub.Close()
	a := newAgent(t, rt, "evented", true)
	tk := must(rt.Tasks().Submit(ctx, &agentv1.Task{Title: "t", AgentId: a.Id}))(t)
	must(rt.Knowledge().Put(ctx, &agentv1.KnowledgeEntry{Namespace: "n", Key: "k", Text: "v", AgentId: a.Id}))(t)
	var kinds []string
	for {
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		ev, err := sub.Next(short)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			break
		}
		must2(t, err)
		kinds = append(kinds, ev.Kind)
		switch ev.Kind {
		case "agent.created":
			if ev.GetAgent().GetId() != a.Id || ev.AgentId != a.Id {
				t.Fatalf("%v", ev)
			}
		case "task.assigned", "task.submitted":
			if ev.GetTask().GetId() != tk.Id {
				t.Fatalf("%v", ev)
			}
		case "lifecycle.transition":
			if ev.GetLifecycle().GetNewState() != stActive {
				t.Fatalf("%v", ev)
			}
		case "knowledge.put":
			if ev.GetKnowledge().GetKey() != "k" {
				t.Fatalf("%v", ev)
			}
		}
	}
	// In causal order; the core may add kinds, never drop these.
	want := []string{"agent.created", "lifecycle.transition", "task.submitted", "knowledge.put"}
	i := 0
	for _, k := range kinds {
		if i < len(want) && k == want[i] {
			i++
		}
	}
	if i != len(want) {
		t.Fatalf("events %v do not hold %v in order", kinds, want)
	}
}

func TestPersistenceAcrossRuntimes(t *testing.T) {
	dir := t.TempDir()
	rt, err := hms.Open(hms.WithDataDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	a := newAgent(t, rt, "durable", true)
	h := must(rt.System().Health(ctxT(t)))(t)
	if h.Storage != "sqlite" {
		t.Fatalf("storage %q", h.Storage)
	}
	// One data dir, one runtime.
	wantCode(t, errOf(hms.Open(hms.WithDataDir(dir))), hms.CodeFailedPrecondition)
	if err := rt.Close(); err != nil {
		t.Fatal(err)
	}
	rt2 := open(t, hms.WithDataDir(dir))
	got := must(rt2.Agents().Get(ctxT(t), a.Id))(t)
	if got.Name != "durable" || got.State != stActive {
		t.Fatalf("after restart: %v", got)
	}
	if hist := must(rt2.Lifecycle().GetHistory(ctxT(t), &lifecyclev1.GetHistoryRequest{AgentId: a.Id}))(t); len(hist.Events) != 1 {
		t.Fatalf("history after restart: %v", hist.Events)
	}
}
