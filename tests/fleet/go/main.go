// A worker of the fleet test, in Go (tests/fleet/README.md).
//
//	go-worker STORE_URL PASSWORD_FILE WORKER_ID OUT_FILE LEASE_MS
//
// Claims tasks from the PostgreSQL store at STORE_URL, completes each with
// the revision of its claim and appends its id to OUT_FILE, one a line, once
// the completion is committed; exits when no task is PENDING or RUNNING.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	hms "github.com/hms-ffi/hms/bindings/go"
	agentv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/agent/v1"
	hmsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/v1"
)

// idle is how long to wait before asking again while other workers' tasks run.
const idle = 50 * time.Millisecond

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go worker: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 6 {
		fail("usage: go-worker STORE_URL PASSWORD_FILE WORKER_ID OUT_FILE LEASE_MS")
	}
	url, passwordFile, workerID, outFile := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	leaseMs, err := strconv.Atoi(os.Args[5])
	if err != nil {
		fail("LEASE_MS: %v", err)
	}
	rt, err := hms.Open(hms.WithConfig(&hmsv1.RuntimeConfig{
		Name:  workerID,
		Store: &hmsv1.StoreConfig{Postgres: &hmsv1.PostgresStoreConfig{Url: url, PasswordFile: passwordFile}},
	}))
	if err != nil {
		fail("open: %v", err)
	}
	defer rt.Close()
	out, err := os.OpenFile(outFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fail("%v", err)
	}
	defer out.Close()

	ctx := context.Background()
	lease := time.Duration(leaseMs) * time.Millisecond
	unfinished := &agentv1.ListTasksRequest{
		Statuses: []agentv1.TaskStatus{agentv1.TaskStatus_PENDING, agentv1.TaskStatus_RUNNING},
		PageSize: 1,
	}
	completed := 0
	for {
		task, err := rt.Tasks().Claim(ctx, workerID, lease, hms.ClaimFilter{})
		if err != nil {
			fail("claim: %v", err)
		}
		if task == nil {
			page, err := rt.Tasks().List(ctx, unfinished)
			if err != nil {
				fail("list: %v", err)
			}
			if len(page.GetTasks()) == 0 {
				break
			}
			time.Sleep(idle)
			continue
		}
		done := &agentv1.CompleteTaskRequest{Id: task.Id, Result: task.Input, Revision: task.Revision}
		if err := rt.Call(ctx, "hms.agent.v1.TaskService/CompleteTask", done, &agentv1.Task{}); err != nil {
			if errors.Is(err, hms.ErrAborted) {
				// The lease ran out and another worker claimed the task: it
				// is theirs to complete now.
				continue
			}
			fail("complete %s: %v", task.Id, err)
		}
		if _, err := out.WriteString(task.Id + "\n"); err != nil {
			fail("%v", err)
		}
		completed++
	}
	fmt.Fprintf(os.Stderr, "%s: completed %d\n", workerID, completed)
}
