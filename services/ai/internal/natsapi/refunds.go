package natsapi

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/perpetua-flow/backend/services/ai/internal/assistant"
	"github.com/perpetua-flow/backend/services/ai/internal/store"
)

// RefundArgs is a refund that billing did not take when the provider call failed. River
// retries it with backoff until billing answers, so credits are never silently lost.
type RefundArgs struct {
	UserID      string `json:"user_id"`
	OperationID string `json:"operation_id"`
	Reason      string `json:"reason"`
}

// Kind is the River job kind (stable: stored in the job table).
func (RefundArgs) Kind() string { return "ai_refund_credits" }

// refundMaxAttempts with River's backoff spans several days of billing outage.
const refundMaxAttempts = 25

// InsertOpts makes one job per operation: a second failed refund of it is not queued twice.
func (RefundArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: refundMaxAttempts, UniqueOpts: river.UniqueOpts{ByArgs: true}}
}

// RefundWorker retries refunds through billing (idempotent per operation id).
type RefundWorker struct {
	river.WorkerDefaults[RefundArgs]
	Credits assistant.Credits
}

// Work refunds once more.
func (w *RefundWorker) Work(ctx context.Context, job *river.Job[RefundArgs]) error {
	if err := w.Credits.Refund(ctx, job.Args.UserID, job.Args.OperationID, job.Args.Reason); err != nil {
		return fmt.Errorf("refund %s: %w", job.Args.OperationID, err)
	}
	return nil
}

// Timeout bounds one attempt.
func (w *RefundWorker) Timeout(*river.Job[RefundArgs]) time.Duration { return 15 * time.Second }

// Refunder implements assistant.Compensator by queueing a RefundArgs job.
type Refunder struct {
	Client *river.Client[pgx.Tx]
}

// RefundLater queues the refund.
func (r Refunder) RefundLater(ctx context.Context, userID, operationID, reason string) error {
	_, err := r.Client.Insert(ctx, RefundArgs{UserID: userID, OperationID: operationID, Reason: reason}, nil)
	return err
}

// PurgeArgs is the periodic clean-up of expired request counters.
type PurgeArgs struct{}

// Kind is the River job kind.
func (PurgeArgs) Kind() string { return "ai_purge_counters" }

// PurgeWorker deletes (session, task) counters whose 24 h window has ended and expired
// idempotency keys.
type PurgeWorker struct {
	river.WorkerDefaults[PurgeArgs]
	Store     *store.Store
	Now       func() time.Time
	PurgeKeys func(ctx context.Context, now time.Time) (int64, error)
}

// Work purges.
func (w *PurgeWorker) Work(ctx context.Context, _ *river.Job[PurgeArgs]) error {
	now := w.Now()
	if _, err := w.Store.PurgeExpired(ctx, now); err != nil {
		return err
	}
	if w.PurgeKeys != nil {
		if _, err := w.PurgeKeys(ctx, now); err != nil {
			return fmt.Errorf("purge idempotency keys: %w", err)
		}
	}
	return nil
}
