package aitest

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/rpc"
	"github.com/perpetua-flow/backend/libs/rpc/billingrpc"
	"github.com/perpetua-flow/backend/libs/rpc/tasksrpc"
)

// Billing stands in for the billing service: an in-memory credit balance per user that
// honours the contract of billingrpc (one debit per operation id, a refund restores
// exactly what that operation took, never a negative balance, 402 with the balance).
type Billing struct {
	mu        sync.Mutex
	balance   map[string]int
	ops       map[string]billingOp
	consumes  int
	refunds   int
	failRefud bool
	svc       *rpc.Service
}

type billingOp struct {
	userID   string
	amount   int
	reason   string
	refunded bool
}

// StartBilling registers the stand-in on nc (svc.billing.credits.*) until the test ends.
func StartBilling(t testing.TB, nc *nats.Conn) *Billing {
	t.Helper()
	b := &Billing{balance: map[string]int{}, ops: map[string]billingOp{}}
	s, err := rpc.NewService(nc, "billing", "0.0.1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	b.svc = s
	t.Cleanup(func() { _ = s.Stop() })
	must(t, rpc.Handle(s, billingrpc.SubjectConsume, b.consume))
	must(t, rpc.Handle(s, billingrpc.SubjectRefund, b.refund))
	must(t, rpc.Handle(s, billingrpc.SubjectBalance, func(_ context.Context, req billingrpc.BalanceRequest) (billingrpc.Balance, error) {
		return b.bal(req.UserID), nil
	}))
	return b
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Stop takes billing off the bus (nobody answers its subjects any more).
func (b *Billing) Stop() error { return b.svc.Stop() }

// Grant sets a user's balance.
func (b *Billing) Grant(userID string, credits int) {
	b.mu.Lock()
	b.balance[userID] += credits
	b.mu.Unlock()
}

// Balance is a user's total.
func (b *Billing) Balance(userID string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.balance[userID]
}

// Consumes and Refunds count calls that changed something.
func (b *Billing) Consumes() int { b.mu.Lock(); defer b.mu.Unlock(); return b.consumes }

// Refunds counts refunds that gave credits back.
func (b *Billing) Refunds() int { b.mu.Lock(); defer b.mu.Unlock(); return b.refunds }

// Reasons are the reasons of the operations recorded for userID (in no order).
func (b *Billing) Reasons(userID string) map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int{}
	for _, op := range b.ops {
		if op.userID == userID && !op.refunded {
			out[op.reason] += op.amount
		}
	}
	return out
}

// FailRefunds makes refunds answer SERVICE_UNAVAILABLE (billing in trouble).
func (b *Billing) FailRefunds(fail bool) { b.mu.Lock(); b.failRefud = fail; b.mu.Unlock() }

func (b *Billing) bal(userID string) billingrpc.Balance {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.balance[userID]
	return billingrpc.Balance{Kickstart: n, Total: n, DailyResetsAt: time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour).Format(time.RFC3339)}
}

func (b *Billing) consume(_ context.Context, req billingrpc.ConsumeRequest) (billingrpc.ConsumeResponse, error) {
	if req.UserID == "" || req.OperationID == "" || req.Amount < 1 {
		return billingrpc.ConsumeResponse{}, apperr.Invalid(apperr.Field("amount", "must be positive"))
	}
	b.mu.Lock()
	if op, ok := b.ops[req.OperationID]; ok {
		b.mu.Unlock()
		if op.userID != req.UserID {
			return billingrpc.ConsumeResponse{}, apperr.New(apperr.Conflict, "operation id belongs to another user")
		}
		return billingrpc.ConsumeResponse{OperationID: req.OperationID, Charged: op.amount, Balance: b.bal(req.UserID)}, nil
	}
	if b.balance[req.UserID] < req.Amount {
		have := b.balance[req.UserID]
		b.mu.Unlock()
		return billingrpc.ConsumeResponse{}, apperr.New(apperr.InsufficientCredits, "not enough credits",
			apperr.Field("balance", strconv.Itoa(have)), apperr.Field("required", strconv.Itoa(req.Amount)))
	}
	b.balance[req.UserID] -= req.Amount
	b.ops[req.OperationID] = billingOp{userID: req.UserID, amount: req.Amount, reason: req.Reason}
	b.consumes++
	b.mu.Unlock()
	return billingrpc.ConsumeResponse{OperationID: req.OperationID, Charged: req.Amount, Balance: b.bal(req.UserID)}, nil
}

func (b *Billing) refund(_ context.Context, req billingrpc.RefundRequest) (billingrpc.RefundResponse, error) {
	b.mu.Lock()
	if b.failRefud {
		b.mu.Unlock()
		return billingrpc.RefundResponse{}, apperr.New(apperr.ServiceUnavailable, "billing is failing (test)")
	}
	op, ok := b.ops[req.OperationID]
	if !ok || op.userID != req.UserID {
		b.mu.Unlock()
		return billingrpc.RefundResponse{}, apperr.New(apperr.NotFound, "unknown operation")
	}
	refunded := 0
	if !op.refunded {
		op.refunded = true
		b.ops[req.OperationID] = op
		b.balance[req.UserID] += op.amount
		b.refunds++
		refunded = op.amount
	}
	b.mu.Unlock()
	return billingrpc.RefundResponse{OperationID: req.OperationID, Refunded: refunded, Balance: b.bal(req.UserID)}, nil
}

// Tasks stands in for the tasks service: per-user tasks and notes, and the actions applied
// to them (once per operation id), with NOT_FOUND for anything that is not the user's.
type Tasks struct {
	mu       sync.Mutex
	tasks    map[string][]tasksrpc.Task // by user, newest first
	notes    map[string]tasksrpc.NoteResponse
	owners   map[string]string // note id → user
	applied  map[string]tasksrpc.ApplyActionRequest
	conflict map[string]bool // task ids whose apply answers CONFLICT
}

// StartTasks registers the stand-in on nc (svc.tasks.*) until the test ends.
func StartTasks(t testing.TB, nc *nats.Conn) *Tasks {
	t.Helper()
	ts := &Tasks{
		tasks: map[string][]tasksrpc.Task{}, notes: map[string]tasksrpc.NoteResponse{}, owners: map[string]string{},
		applied: map[string]tasksrpc.ApplyActionRequest{}, conflict: map[string]bool{},
	}
	s, err := rpc.NewService(nc, "tasks", "0.0.1", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	must(t, rpc.Handle(s, tasksrpc.SubjectContext, ts.context))
	must(t, rpc.Handle(s, tasksrpc.SubjectNote, ts.note))
	must(t, rpc.Handle(s, tasksrpc.SubjectApplyAction, ts.apply))
	return ts
}

// AddTask gives userID a task (newest first).
func (ts *Tasks) AddTask(userID string, t tasksrpc.Task) {
	ts.mu.Lock()
	if t.Version == 0 {
		t.Version = 1
	}
	ts.tasks[userID] = append([]tasksrpc.Task{t}, ts.tasks[userID]...)
	ts.mu.Unlock()
}

// AddNote gives userID a note.
func (ts *Tasks) AddNote(userID string, n tasksrpc.NoteResponse) {
	ts.mu.Lock()
	ts.notes[n.ID] = n
	ts.owners[n.ID] = userID
	ts.mu.Unlock()
}

// Conflict makes applying an action on taskID answer 409.
func (ts *Tasks) Conflict(taskID string) { ts.mu.Lock(); ts.conflict[taskID] = true; ts.mu.Unlock() }

// Applied is the actions applied so far, by operation id.
func (ts *Tasks) Applied() map[string]tasksrpc.ApplyActionRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := map[string]tasksrpc.ApplyActionRequest{}
	for k, v := range ts.applied {
		out[k] = v
	}
	return out
}

func (ts *Tasks) find(userID, taskID string) (tasksrpc.Task, int, bool) {
	for i, t := range ts.tasks[userID] {
		if t.ID == taskID {
			return t, i, true
		}
	}
	return tasksrpc.Task{}, 0, false
}

func (ts *Tasks) context(_ context.Context, req tasksrpc.ContextRequest) (tasksrpc.ContextResponse, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if req.TaskID != "" {
		t, _, ok := ts.find(req.UserID, req.TaskID)
		if !ok {
			return tasksrpc.ContextResponse{}, apperr.New(apperr.NotFound, "task not found")
		}
		return tasksrpc.ContextResponse{Tasks: []tasksrpc.Task{t}}, nil
	}
	if req.Limit < 1 || req.Limit > 50 {
		return tasksrpc.ContextResponse{}, apperr.Invalid(apperr.Field("limit", "must be 1–50"))
	}
	out := []tasksrpc.Task{}
	for _, t := range ts.tasks[req.UserID] {
		if len(out) == req.Limit {
			break
		}
		if !t.Completed && !t.Archived {
			out = append(out, t)
		}
	}
	return tasksrpc.ContextResponse{Tasks: out}, nil
}

func (ts *Tasks) note(_ context.Context, req tasksrpc.NoteRequest) (tasksrpc.NoteResponse, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	n, ok := ts.notes[req.NoteID]
	if !ok || ts.owners[req.NoteID] != req.UserID {
		return tasksrpc.NoteResponse{}, apperr.New(apperr.NotFound, "note not found")
	}
	return n, nil
}

func (ts *Tasks) apply(_ context.Context, req tasksrpc.ApplyActionRequest) (tasksrpc.ApplyActionResponse, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t, i, ok := ts.find(req.UserID, req.TaskID)
	if !ok {
		return tasksrpc.ApplyActionResponse{}, apperr.New(apperr.NotFound, "task not found")
	}
	if ts.conflict[req.TaskID] {
		return tasksrpc.ApplyActionResponse{}, apperr.New(apperr.Conflict, "the task changed",
			apperr.Field("version", fmt.Sprintf("current version is %d", t.Version)))
	}
	if _, done := ts.applied[req.OperationID]; !done {
		ts.applied[req.OperationID] = req
		switch req.ActionType {
		case tasksrpc.ActionCompleteTask:
			t.Completed = true
		case tasksrpc.ActionCreateSubtasks:
			titles, _ := req.Data["titles"].([]any)
			for _, v := range titles {
				s, _ := v.(string)
				t.Subtasks = append(t.Subtasks, tasksrpc.Subtask{ID: fmt.Sprintf("s%d", len(t.Subtasks)), Title: s})
			}
		case tasksrpc.ActionUpdateTask:
			if s, ok := req.Data["title"].(string); ok {
				t.Title = s
			}
			if s, ok := req.Data["priority"].(string); ok {
				t.Priority = s
			}
		}
		t.Version++
		ts.tasks[req.UserID][i] = t
	}
	return tasksrpc.ApplyActionResponse{
		Task: map[string]any{
			"id": t.ID, "title": t.Title, "priority": t.Priority, "completed": t.Completed,
			"version": t.Version, "subtask_count": len(t.Subtasks),
		},
		UnlockedAchievements: []map[string]any{},
	}, nil
}
