package hms

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	lifecyclev1 "github.com/hms-ffi/hms/bindings/go/gen/hms/agent/lifecycle/v1"
	agentv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/agent/v1"
	registryv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/registry/v1"
	sysv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/sys/v1"
	hmsv1 "github.com/hms-ffi/hms/bindings/go/gen/hms/v1"
)

// Typed clients of the built-in services. Each is a thin value over the
// runtime: every method is one Call with the generated protobuf types.

// System is the client of hms.sys.v1.System.
type System struct{ rt *Runtime }

// System returns the client of hms.sys.v1.System.
func (r *Runtime) System() System { return System{r} }

// Echo returns the request unchanged.
func (c System) Echo(ctx context.Context, req *sysv1.EchoRequest, opts ...CallOption) (*sysv1.EchoResponse, error) {
	return callProto[sysv1.EchoResponse](ctx, c.rt, "hms.sys.v1.System/Echo", req, opts...)
}

// Health reports the runtime's name, uptime, services and storage.
func (c System) Health(ctx context.Context) (*sysv1.HealthResponse, error) {
	return callProto[sysv1.HealthResponse](ctx, c.rt, "hms.sys.v1.System/Health", &sysv1.HealthRequest{})
}

// Version reports the library's version, ABI and formats.
func (c System) Version(ctx context.Context) (*sysv1.VersionResponse, error) {
	return callProto[sysv1.VersionResponse](ctx, c.rt, "hms.sys.v1.System/Version", &sysv1.VersionRequest{})
}

// Registry is the client of hms.registry.v1.Registry.
type Registry struct{ rt *Runtime }

// Registry returns the client of hms.registry.v1.Registry.
func (r *Runtime) Registry() Registry { return Registry{r} }

// ListServices lists the services whose name starts with prefix (built-in
// and host services alike).
func (c Registry) ListServices(ctx context.Context, prefix string) ([]*hmsv1.ServiceDescriptor, error) {
	resp, err := callProto[registryv1.ListServicesResponse](ctx, c.rt, "hms.registry.v1.Registry/ListServices",
		&registryv1.ListServicesRequest{NamePrefix: prefix})
	if err != nil {
		return nil, err
	}
	return resp.Services, nil
}

// DescribeService describes one service by its full name.
func (c Registry) DescribeService(ctx context.Context, name string) (*hmsv1.ServiceDescriptor, error) {
	resp, err := callProto[registryv1.DescribeServiceResponse](ctx, c.rt, "hms.registry.v1.Registry/DescribeService",
		&registryv1.DescribeServiceRequest{Name: name})
	if err != nil {
		return nil, err
	}
	return resp.Service, nil
}

// Agents is the client of hms.agent.v1.AgentService.
type Agents struct{ rt *Runtime }

// Agents returns the client of hms.agent.v1.AgentService.
func (r *Runtime) Agents() Agents { return Agents{r} }

const agentSvc = "hms.agent.v1.AgentService/"

// Create creates an agent (Name is required; the core sets id, state,
// timestamps and revision).
func (c Agents) Create(ctx context.Context, agent *agentv1.Agent) (*agentv1.Agent, error) {
	return callProto[agentv1.Agent](ctx, c.rt, agentSvc+"CreateAgent", &agentv1.CreateAgentRequest{Agent: agent})
}

// Get returns the agent of that id.
func (c Agents) Get(ctx context.Context, id string) (*agentv1.Agent, error) {
	return callProto[agentv1.Agent](ctx, c.rt, agentSvc+"GetAgent", &agentv1.GetAgentRequest{Id: id})
}

// List returns one page of agents matching req (nil lists all).
func (c Agents) List(ctx context.Context, req *agentv1.ListAgentsRequest) (*agentv1.ListAgentsResponse, error) {
	if req == nil {
		req = &agentv1.ListAgentsRequest{}
	}
	return callProto[agentv1.ListAgentsResponse](ctx, c.rt, agentSvc+"ListAgents", req)
}

// Update replaces the fields named in paths (all updatable fields when
// none) of the agent agent.Id; a non-zero agent.Revision must be current.
func (c Agents) Update(ctx context.Context, agent *agentv1.Agent, paths ...string) (*agentv1.Agent, error) {
	req := &agentv1.UpdateAgentRequest{Agent: agent}
	if len(paths) > 0 {
		req.UpdateMask = &fieldmaskpb.FieldMask{Paths: paths}
	}
	return callProto[agentv1.Agent](ctx, c.rt, agentSvc+"UpdateAgent", req)
}

// Delete deletes an agent; a non-zero revision must be current.
func (c Agents) Delete(ctx context.Context, id string, revision uint64) error {
	return c.rt.Call(ctx, agentSvc+"DeleteAgent", &agentv1.DeleteAgentRequest{Id: id, Revision: revision}, nil)
}

// Tasks is the client of hms.agent.v1.TaskService.
type Tasks struct{ rt *Runtime }

// Tasks returns the client of hms.agent.v1.TaskService.
func (r *Runtime) Tasks() Tasks { return Tasks{r} }

const taskSvc = "hms.agent.v1.TaskService/"

// Submit submits a task (Title is required; with AgentId set it is assigned
// at once, to an ACTIVE agent).
func (c Tasks) Submit(ctx context.Context, task *agentv1.Task) (*agentv1.Task, error) {
	return callProto[agentv1.Task](ctx, c.rt, taskSvc+"SubmitTask", &agentv1.SubmitTaskRequest{Task: task})
}

// Get returns the task of that id.
func (c Tasks) Get(ctx context.Context, id string) (*agentv1.Task, error) {
	return callProto[agentv1.Task](ctx, c.rt, taskSvc+"GetTask", &agentv1.GetTaskRequest{Id: id})
}

// List returns one page of tasks matching req (nil lists all).
func (c Tasks) List(ctx context.Context, req *agentv1.ListTasksRequest) (*agentv1.ListTasksResponse, error) {
	if req == nil {
		req = &agentv1.ListTasksRequest{}
	}
	return callProto[agentv1.ListTasksResponse](ctx, c.rt, taskSvc+"ListTasks", req)
}

// Assign assigns a PENDING task to an ACTIVE agent.
func (c Tasks) Assign(ctx context.Context, id, agentID string) (*agentv1.Task, error) {
	return callProto[agentv1.Task](ctx, c.rt, taskSvc+"AssignTask", &agentv1.AssignTaskRequest{Id: id, AgentId: agentID})
}

// Start moves an ASSIGNED task to RUNNING.
func (c Tasks) Start(ctx context.Context, id string) (*agentv1.Task, error) {
	return callProto[agentv1.Task](ctx, c.rt, taskSvc+"StartTask", &agentv1.StartTaskRequest{Id: id})
}

// Complete moves a RUNNING task to SUCCEEDED with its result.
func (c Tasks) Complete(ctx context.Context, id string, result []byte, contentType string) (*agentv1.Task, error) {
	return callProto[agentv1.Task](ctx, c.rt, taskSvc+"CompleteTask",
		&agentv1.CompleteTaskRequest{Id: id, Result: result, ResultContentType: contentType})
}

// Fail moves a RUNNING task to FAILED with the reason.
func (c Tasks) Fail(ctx context.Context, id string, reason *hmsv1.Status) (*agentv1.Task, error) {
	return callProto[agentv1.Task](ctx, c.rt, taskSvc+"FailTask", &agentv1.FailTaskRequest{Id: id, Error: reason})
}

// FailRetry fails a claimed RUNNING task so that another claim can take
// it: the task is PENDING again, or DEAD_LETTER once its Attempts reach its
// MaxAttempts.
func (c Tasks) FailRetry(ctx context.Context, id string, reason *hmsv1.Status) (*agentv1.Task, error) {
	return callProto[agentv1.Task](ctx, c.rt, taskSvc+"FailTask", &agentv1.FailTaskRequest{Id: id, Error: reason, Retry: true})
}

// ClaimFilter chooses the tasks a worker claims: those whose
// RequiredCapabilities are all among Capabilities and which carry all of
// Labels. The zero value claims tasks that require no capability.
type ClaimFilter struct {
	Capabilities []string
	Labels       map[string]string
}

// Claim takes the most urgent, then oldest, PENDING task that fits filter:
// it is RUNNING, ClaimedBy workerID, until its lease ends (lease 0: the
// core's default of 30 s; at most an hour; whole milliseconds). It returns
// nil, nil when no task is ready for this worker.
func (c Tasks) Claim(ctx context.Context, workerID string, lease time.Duration, filter ClaimFilter) (*agentv1.Task, error) {
	ms, err := leaseMs(lease)
	if err != nil {
		return nil, err
	}
	req := &agentv1.ClaimTaskRequest{
		WorkerId:     workerID,
		Capabilities: filter.Capabilities,
		Labels:       filter.Labels,
		LeaseMs:      ms,
	}
	resp, err := callProto[agentv1.ClaimTaskResponse](ctx, c.rt, taskSvc+"ClaimTask", req)
	if err != nil {
		return nil, err
	}
	return resp.GetTask(), nil
}

// RenewLease extends the lease workerID holds on a claimed task to lease
// from now (0: the core's default); a non-zero revision must be current.
// Another worker's task fails with ErrFailedPrecondition.
func (c Tasks) RenewLease(ctx context.Context, id, workerID string, lease time.Duration, revision uint64) (*agentv1.Task, error) {
	ms, err := leaseMs(lease)
	if err != nil {
		return nil, err
	}
	return callProto[agentv1.Task](ctx, c.rt, taskSvc+"RenewLease",
		&agentv1.RenewLeaseRequest{Id: id, WorkerId: workerID, LeaseMs: ms, Revision: revision})
}

// leaseMs saturates a lease too long for the field, so that the core
// refuses it with its limit in the message instead of it wrapping to a
// short one.
func leaseMs(lease time.Duration) (uint32, error) {
	ms := lease.Milliseconds()
	switch {
	case ms < 0:
		return 0, bindingError(CodeInvalidArgument, nil, "lease of %v: a lease cannot be negative", lease)
	case ms > math.MaxUint32:
		return math.MaxUint32, nil
	}
	return uint32(ms), nil
}

// Cancel cancels a task that is not final.
func (c Tasks) Cancel(ctx context.Context, id, reason string) (*agentv1.Task, error) {
	return callProto[agentv1.Task](ctx, c.rt, taskSvc+"CancelTask", &agentv1.CancelTaskRequest{Id: id, Reason: reason})
}

// Knowledge is the client of hms.agent.v1.KnowledgeService.
type Knowledge struct{ rt *Runtime }

// Knowledge returns the client of hms.agent.v1.KnowledgeService.
func (r *Runtime) Knowledge() Knowledge { return Knowledge{r} }

const knowledgeSvc = "hms.agent.v1.KnowledgeService/"

// Put inserts an entry or replaces the one at its namespace and key (a
// non-zero Revision must be current).
func (c Knowledge) Put(ctx context.Context, entry *agentv1.KnowledgeEntry) (*agentv1.KnowledgeEntry, error) {
	return callProto[agentv1.KnowledgeEntry](ctx, c.rt, knowledgeSvc+"PutKnowledge", &agentv1.PutKnowledgeRequest{Entry: entry})
}

// Get returns the entry of that id.
func (c Knowledge) Get(ctx context.Context, id string) (*agentv1.KnowledgeEntry, error) {
	return callProto[agentv1.KnowledgeEntry](ctx, c.rt, knowledgeSvc+"GetKnowledge", &agentv1.GetKnowledgeRequest{Id: id})
}

// GetByKey returns the entry at namespace and key.
func (c Knowledge) GetByKey(ctx context.Context, namespace, key string) (*agentv1.KnowledgeEntry, error) {
	return callProto[agentv1.KnowledgeEntry](ctx, c.rt, knowledgeSvc+"GetKnowledge",
		&agentv1.GetKnowledgeRequest{Namespace: namespace, Key: key})
}

// Query returns one page of entries matching req.
func (c Knowledge) Query(ctx context.Context, req *agentv1.QueryKnowledgeRequest) (*agentv1.QueryKnowledgeResponse, error) {
	if req == nil {
		req = &agentv1.QueryKnowledgeRequest{}
	}
	return callProto[agentv1.QueryKnowledgeResponse](ctx, c.rt, knowledgeSvc+"QueryKnowledge", req)
}

// Delete deletes an entry; a non-zero revision must be current.
func (c Knowledge) Delete(ctx context.Context, id string, revision uint64) error {
	return c.rt.Call(ctx, knowledgeSvc+"DeleteKnowledge", &agentv1.DeleteKnowledgeRequest{Id: id, Revision: revision}, nil)
}

// Lifecycle is the client of hms.agent.lifecycle.v1.LifecycleService.
type Lifecycle struct{ rt *Runtime }

// Lifecycle returns the client of hms.agent.lifecycle.v1.LifecycleService.
func (r *Runtime) Lifecycle() Lifecycle { return Lifecycle{r} }

const lifecycleSvc = "hms.agent.lifecycle.v1.LifecycleService/"

// GetState returns an agent's state, previous state and time in state.
func (c Lifecycle) GetState(ctx context.Context, agentID string) (*lifecyclev1.GetStateResponse, error) {
	return callProto[lifecyclev1.GetStateResponse](ctx, c.rt, lifecycleSvc+"GetState", &lifecyclev1.GetStateRequest{AgentId: agentID})
}

// Transition moves an agent to req.TargetState (blocking hooks may veto).
func (c Lifecycle) Transition(ctx context.Context, req *lifecyclev1.TransitionRequest) (*lifecyclev1.TransitionResponse, error) {
	return callProto[lifecyclev1.TransitionResponse](ctx, c.rt, lifecycleSvc+"Transition", req)
}

// To is Transition with just the agent, the target and a reason.
func (c Lifecycle) To(ctx context.Context, agentID string, target lifecyclev1.LifecycleState, reason string) (*lifecyclev1.TransitionResponse, error) {
	return c.Transition(ctx, &lifecyclev1.TransitionRequest{AgentId: agentID, TargetState: target, Reason: reason})
}

// GetHistory returns one page of an agent's transitions, oldest first.
func (c Lifecycle) GetHistory(ctx context.Context, req *lifecyclev1.GetHistoryRequest) (*lifecyclev1.GetHistoryResponse, error) {
	return callProto[lifecyclev1.GetHistoryResponse](ctx, c.rt, lifecycleSvc+"GetHistory", req)
}

// RegisterHook registers a hook naming any registered method; it returns
// the hook id. See OnTransition for hooks written in Go.
func (c Lifecycle) RegisterHook(ctx context.Context, req *lifecyclev1.RegisterHookRequest) (string, error) {
	resp, err := callProto[lifecyclev1.RegisterHookResponse](ctx, c.rt, lifecycleSvc+"RegisterHook", req)
	if err != nil {
		return "", err
	}
	return resp.HookId, nil
}

// UnregisterHook removes a hook.
func (c Lifecycle) UnregisterHook(ctx context.Context, hookID string) error {
	return c.rt.Call(ctx, lifecycleSvc+"UnregisterHook", &lifecyclev1.UnregisterHookRequest{HookId: hookID}, nil)
}

// HookFunc is a lifecycle hook written in Go. For a blocking hook,
// returning an error vetoes the transition (an *Error keeps its code, any
// other error becomes HMS_HANDLER_ERROR; a panic too); the transition then
// fails with that error. ctx carries the hook's timeout.
type HookFunc func(ctx context.Context, inv *lifecyclev1.HookInvocation) error

// Hook is a Go hook registered with OnTransition.
type Hook struct {
	// ID is the hook id the core assigned.
	ID      string
	rt      *Runtime
	service *Service
	once    sync.Once
	err     error
}

var hookSeq atomic.Uint64

// OnTransition registers fn as a lifecycle hook: a host service
// "hms.go.hooks.H<n>" with one method "Invoke" (HookInvocation in,
// google.protobuf.Empty out), then RegisterHook naming it with spec's
// filters (spec.Method is filled in). Close removes both.
func (c Lifecycle) OnTransition(ctx context.Context, spec *lifecyclev1.RegisterHookRequest, fn HookFunc) (*Hook, error) {
	if fn == nil {
		return nil, bindingError(CodeInvalidArgument, nil, "OnTransition needs a function")
	}
	name := fmt.Sprintf("hms.go.hooks.H%d", hookSeq.Add(1))
	svc, err := c.rt.Register(ServiceDef{
		Name:        name,
		Description: "a lifecycle hook written in Go",
		Methods: []Method{ProtoMethod("Invoke", func(ctx context.Context, inv *lifecyclev1.HookInvocation) (*emptypb.Empty, error) {
			return nil, fn(ctx, inv)
		})},
	})
	if err != nil {
		return nil, err
	}
	req := &lifecyclev1.RegisterHookRequest{}
	if spec != nil {
		req = cloneHookSpec(spec)
	}
	req.Method = name + "/Invoke"
	id, err := c.RegisterHook(ctx, req)
	if err != nil {
		_ = svc.Close()
		return nil, err
	}
	return &Hook{ID: id, rt: c.rt, service: svc}, nil
}

func cloneHookSpec(s *lifecyclev1.RegisterHookRequest) *lifecyclev1.RegisterHookRequest {
	return &lifecyclev1.RegisterHookRequest{
		AgentIds:   append([]string(nil), s.AgentIds...),
		FromStates: append([]lifecyclev1.LifecycleState(nil), s.FromStates...),
		ToStates:   append([]lifecyclev1.LifecycleState(nil), s.ToStates...),
		Blocking:   s.Blocking,
		TimeoutMs:  s.TimeoutMs,
		Name:       s.Name,
	}
}

// Close unregisters the hook, then its service. Idempotent.
func (h *Hook) Close() error {
	h.once.Do(func() {
		var err error
		if !h.rt.Closed() {
			err = h.rt.Lifecycle().UnregisterHook(context.Background(), h.ID)
		}
		if cerr := h.service.Close(); err == nil {
			err = cerr
		}
		h.err = err
	})
	return h.err
}
