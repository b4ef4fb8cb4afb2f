// Package natsapi is the ai service's side of NATS: the request-reply clients of billing
// (credits) and tasks (context, notes, confirmed actions), the consumers of
// tasks.note.voice_created and auth.user.deleted, and the job that retries refunds.
package natsapi

import (
	"context"

	"github.com/nats-io/nats.go"

	"github.com/perpetua-flow/backend/libs/apperr"
	"github.com/perpetua-flow/backend/libs/rpc"
	"github.com/perpetua-flow/backend/libs/rpc/billingrpc"
	"github.com/perpetua-flow/backend/libs/rpc/tasksrpc"

	"github.com/perpetua-flow/backend/services/ai/internal/assistant"
)

// Billing implements assistant.Credits over svc.billing.credits.*.
type Billing struct{ NC *nats.Conn }

// Consume debits amount once per operationID; INSUFFICIENT_CREDITS (402) and
// SERVICE_UNAVAILABLE (billing unreachable) come back as billing's apperr codes.
func (b Billing) Consume(ctx context.Context, userID, operationID string, amount int, reason string) (int, error) {
	resp, err := rpc.Call[billingrpc.ConsumeRequest, billingrpc.ConsumeResponse](ctx, b.NC, billingrpc.SubjectConsume,
		billingrpc.ConsumeRequest{UserID: userID, OperationID: operationID, Amount: amount, Reason: reason})
	if err != nil {
		return 0, err
	}
	return resp.Balance.Total, nil
}

// Refund gives back what operationID took. An operation billing never recorded took
// nothing, so NOT_FOUND is success.
func (b Billing) Refund(ctx context.Context, userID, operationID, reason string) error {
	_, err := rpc.Call[billingrpc.RefundRequest, billingrpc.RefundResponse](ctx, b.NC, billingrpc.SubjectRefund,
		billingrpc.RefundRequest{UserID: userID, OperationID: operationID, Reason: reason})
	if apperr.CodeOf(err) == apperr.NotFound {
		return nil
	}
	return err
}

// Tasks implements assistant.Tasks over svc.tasks.*.
type Tasks struct{ NC *nats.Conn }

// Context is the user's open tasks, or one task when taskID is set.
func (t Tasks) Context(ctx context.Context, userID, taskID string, limit int) ([]assistant.Task, error) {
	resp, err := rpc.Call[tasksrpc.ContextRequest, tasksrpc.ContextResponse](ctx, t.NC, tasksrpc.SubjectContext,
		tasksrpc.ContextRequest{UserID: userID, TaskID: taskID, Limit: limit})
	if err != nil {
		return nil, err
	}
	out := make([]assistant.Task, 0, len(resp.Tasks))
	for _, rt := range resp.Tasks {
		at := assistant.Task{
			ID: rt.ID, Title: rt.Title, Description: rt.Description, Priority: rt.Priority,
			DueDate: rt.DueDate, Completed: rt.Completed, Archived: rt.Archived,
		}
		for _, s := range rt.Subtasks {
			at.Subtasks = append(at.Subtasks, assistant.Subtask{Title: s.Title, Completed: s.Completed})
		}
		out = append(out, at)
	}
	return out, nil
}

// Note is one of the user's notes.
func (t Tasks) Note(ctx context.Context, userID, noteID string) (assistant.Note, error) {
	resp, err := rpc.Call[tasksrpc.NoteRequest, tasksrpc.NoteResponse](ctx, t.NC, tasksrpc.SubjectNote,
		tasksrpc.NoteRequest{UserID: userID, NoteID: noteID})
	if err != nil {
		return assistant.Note{}, err
	}
	return assistant.Note{ID: resp.ID, Content: resp.Content, Archived: resp.Archived}, nil
}

// Apply runs a confirmed action; the tasks service's errors pass through unchanged.
func (t Tasks) Apply(ctx context.Context, userID, tier string, a assistant.ConfirmedAction, operationID string) (assistant.ApplyResult, error) {
	resp, err := rpc.Call[tasksrpc.ApplyActionRequest, tasksrpc.ApplyActionResponse](ctx, t.NC, tasksrpc.SubjectApplyAction,
		tasksrpc.ApplyActionRequest{
			UserID: userID, Tier: tier, ActionType: a.ActionType, TaskID: a.TaskID, Data: a.Data, OperationID: operationID,
		})
	if err != nil {
		return assistant.ApplyResult{}, err
	}
	return assistant.ApplyResult{Task: resp.Task, UnlockedAchievements: resp.UnlockedAchievements}, nil
}
