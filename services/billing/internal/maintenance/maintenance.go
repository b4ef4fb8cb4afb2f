// Package maintenance is billing's periodic River jobs: subscriptions whose grace period
// or cancelled period is over expire (tier free, billing.subscription.expired), daily
// grants that expired with credits left get their expire rows in the history, and
// idempotency keys past their 24 hours are purged.
package maintenance

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/idempotency"
	"github.com/perpetua-flow/backend/services/billing/internal/store"
)

// Cadence and batch size of the jobs. A minute bounds how long a lapsed subscription
// stays Pro; a batch bounds one run's transactions (the next run takes the rest).
const (
	Interval  = time.Minute
	BatchSize = 500
)

// ExpireSubscriptionsArgs is the periodic job that ends lapsed subscriptions.
type ExpireSubscriptionsArgs struct{}

// Kind names the job in River's table.
func (ExpireSubscriptionsArgs) Kind() string { return "billing_expire_subscriptions" }

// WriteOffCreditsArgs is the periodic job that writes expire rows for expired grants.
type WriteOffCreditsArgs struct{}

// Kind names the job in River's table.
func (WriteOffCreditsArgs) Kind() string { return "billing_write_off_credits" }

// PurgeIdempotencyKeysArgs is the periodic job that deletes expired idempotency keys.
type PurgeIdempotencyKeysArgs struct{}

// Kind names the job in River's table.
func (PurgeIdempotencyKeysArgs) Kind() string { return "billing_purge_idempotency_keys" }

// PurgeInterval is how often expired idempotency keys are deleted.
const PurgeInterval = time.Hour

// PurgeIdempotencyKeys works PurgeIdempotencyKeysArgs.
type PurgeIdempotencyKeys struct {
	river.WorkerDefaults[PurgeIdempotencyKeysArgs]
	Pool  *pgxpool.Pool
	Clock clock.Clock
}

// Work deletes the expired keys.
func (w *PurgeIdempotencyKeys) Work(ctx context.Context, _ *river.Job[PurgeIdempotencyKeysArgs]) error {
	_, err := idempotency.Purge(ctx, w.Pool, w.Clock.Now())
	return err
}

// ExpireSubscriptions works ExpireSubscriptionsArgs.
type ExpireSubscriptions struct {
	river.WorkerDefaults[ExpireSubscriptionsArgs]
	Store  *store.Store
	Clock  clock.Clock
	Logger *slog.Logger
}

// Work expires one batch.
func (w *ExpireSubscriptions) Work(ctx context.Context, _ *river.Job[ExpireSubscriptionsArgs]) error {
	n, err := w.Store.ExpireSubscriptions(ctx, w.Clock.Now(), BatchSize)
	if n > 0 {
		w.Logger.Info("subscriptions expired", "count", n)
	}
	return err
}

// WriteOffCredits works WriteOffCreditsArgs.
type WriteOffCredits struct {
	river.WorkerDefaults[WriteOffCreditsArgs]
	Store *store.Store
	Clock clock.Clock
}

// Work writes off one batch of users' expired grants.
func (w *WriteOffCredits) Work(ctx context.Context, _ *river.Job[WriteOffCreditsArgs]) error {
	_, err := w.Store.SweepExpired(ctx, w.Clock.Now(), BatchSize)
	return err
}

// Register adds the workers and returns the periodic jobs that enqueue them.
func Register(workers *river.Workers, pool *pgxpool.Pool, st *store.Store, clk clock.Clock, logger *slog.Logger) ([]*river.PeriodicJob, error) {
	if err := river.AddWorkerSafely(workers, &ExpireSubscriptions{Store: st, Clock: clk, Logger: logger}); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, &WriteOffCredits{Store: st, Clock: clk}); err != nil {
		return nil, err
	}
	if err := river.AddWorkerSafely(workers, &PurgeIdempotencyKeys{Pool: pool, Clock: clk}); err != nil {
		return nil, err
	}
	every := river.PeriodicInterval(Interval)
	opts := &river.PeriodicJobOpts{RunOnStart: true}
	return []*river.PeriodicJob{
		river.NewPeriodicJob(every, func() (river.JobArgs, *river.InsertOpts) { return ExpireSubscriptionsArgs{}, nil }, opts),
		river.NewPeriodicJob(every, func() (river.JobArgs, *river.InsertOpts) { return WriteOffCreditsArgs{}, nil }, opts),
		river.NewPeriodicJob(river.PeriodicInterval(PurgeInterval), func() (river.JobArgs, *river.InsertOpts) { return PurgeIdempotencyKeysArgs{}, nil }, opts),
	}, nil
}
