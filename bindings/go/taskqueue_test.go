package hms_test

import (
	"strings"
	"testing"
	"time"

	hms "github.com/hms-ffi/hms/bindings/go"
	agentv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/agent/v1"
	hmsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/v1"
)

func TestClaimTakesTheMostUrgentThenTheOldest(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	low := must(rt.Tasks().Submit(ctx, &agentv1.Task{Title: "low"}))(t)
	high := must(rt.Tasks().Submit(ctx, &agentv1.Task{Title: "high", Priority: 5}))(t)
	lowToo := must(rt.Tasks().Submit(ctx, &agentv1.Task{Title: "low too"}))(t)
	for i, want := range []string{high.Id, low.Id, lowToo.Id} {
		got := must(rt.Tasks().Claim(ctx, "w", 0, hms.ClaimFilter{}))(t)
		if got == nil || got.Id != want {
			t.Fatalf("claim %d: want %s, got %v", i, want, got)
		}
		if got.Status != agentv1.TaskStatus_RUNNING || got.ClaimedBy != "w" || got.Attempts != 1 {
			t.Fatalf("claimed %v", got)
		}
	}
	if none := must(rt.Tasks().Claim(ctx, "w", 0, hms.ClaimFilter{}))(t); none != nil {
		t.Fatalf("nothing is ready, yet claimed %v", none)
	}
}

func TestClaimFilterAndLease(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	gpu := must(rt.Tasks().Submit(ctx, &agentv1.Task{
		Title: "render", RequiredCapabilities: []string{"gpu"}, Labels: map[string]string{"region": "eu"},
	}))(t)
	if got := must(rt.Tasks().Claim(ctx, "cpu", 0, hms.ClaimFilter{Capabilities: []string{"cpu"}}))(t); got != nil {
		t.Fatalf("a CPU worker claimed %v", got)
	}
	usGPU := hms.ClaimFilter{Capabilities: []string{"gpu"}, Labels: map[string]string{"region": "us"}}
	if got := must(rt.Tasks().Claim(ctx, "us", 0, usGPU))(t); got != nil {
		t.Fatalf("a US worker claimed %v", got)
	}
	euGPU := hms.ClaimFilter{Capabilities: []string{"gpu"}, Labels: map[string]string{"region": "eu"}}
	got := must(rt.Tasks().Claim(ctx, "eu", 1500*time.Millisecond, euGPU))(t)
	if got == nil || got.Id != gpu.Id {
		t.Fatalf("want %s, got %v", gpu.Id, got)
	}
	lease := got.LeaseExpiresAt.AsTime().Sub(got.UpdatedAt.AsTime())
	if lease != 1500*time.Millisecond {
		t.Fatalf("lease of %v", lease)
	}
	wantCode(t, errOf(rt.Tasks().Claim(ctx, "", 0, hms.ClaimFilter{})), hms.CodeInvalidArgument)
}

func TestOnlyTheHolderRenewsALease(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	must(rt.Tasks().Submit(ctx, &agentv1.Task{Title: "work"}))(t)
	held := must(rt.Tasks().Claim(ctx, "holder", time.Second, hms.ClaimFilter{}))(t)
	renewed := must(rt.Tasks().RenewLease(ctx, held.Id, "holder", time.Minute, held.Revision))(t)
	if !renewed.LeaseExpiresAt.AsTime().After(held.LeaseExpiresAt.AsTime()) {
		t.Fatalf("lease not extended: %v then %v", held.LeaseExpiresAt, renewed.LeaseExpiresAt)
	}
	wantCode(t, errOf(rt.Tasks().RenewLease(ctx, held.Id, "intruder", time.Minute, 0)), hms.CodeFailedPrecondition)
	wantCode(t, errOf(rt.Tasks().RenewLease(ctx, held.Id, "holder", time.Minute, held.Revision)), hms.CodeAborted)
	e := wantCode(t, errOf(rt.Tasks().RenewLease(ctx, held.Id, "holder", -time.Second, 0)), hms.CodeInvalidArgument)
	if !strings.Contains(e.Message, "negative") {
		t.Fatalf("unclear message: %v", e)
	}
}

func TestRetriedFailuresEndInDeadLetter(t *testing.T) {
	rt := open(t)
	ctx := ctxT(t)
	submitted := must(rt.Tasks().Submit(ctx, &agentv1.Task{Title: "flaky", MaxAttempts: 2}))(t)
	reason := &hmsv1.Status{Code: int32(hms.CodeUnavailable), Message: "try again"}
	first := must(rt.Tasks().Claim(ctx, "w", 0, hms.ClaimFilter{}))(t)
	again := must(rt.Tasks().FailRetry(ctx, first.Id, reason))(t)
	if again.Status != agentv1.TaskStatus_PENDING || again.Attempts != 1 || again.ClaimedBy != "" {
		t.Fatalf("after one retried failure: %v", again)
	}
	second := must(rt.Tasks().Claim(ctx, "w", 0, hms.ClaimFilter{}))(t)
	if second == nil || second.Id != submitted.Id {
		t.Fatalf("want %s again, got %v", submitted.Id, second)
	}
	dead := must(rt.Tasks().FailRetry(ctx, second.Id, reason))(t)
	if dead.Status != agentv1.TaskStatus_DEAD_LETTER || dead.Attempts != 2 || dead.Error.GetMessage() != "try again" {
		t.Fatalf("after the last attempt: %v", dead)
	}
	if none := must(rt.Tasks().Claim(ctx, "w", 0, hms.ClaimFilter{}))(t); none != nil {
		t.Fatalf("a dead letter was claimed: %v", none)
	}
	for _, tooLong := range []time.Duration{2 * time.Hour, 5000 * time.Hour} {
		e := wantCode(t, errOf(rt.Tasks().Claim(ctx, "w", tooLong, hms.ClaimFilter{})), hms.CodeInvalidArgument)
		if !strings.Contains(e.Message, "3600000") {
			t.Fatalf("the limit is not in %q", e.Message)
		}
	}
	wantCode(t, errOf(rt.Tasks().Claim(ctx, "w", -time.Millisecond, hms.ClaimFilter{})), hms.CodeInvalidArgument)
}
