// Package cleanup is the tasks service's housekeeping on River: periodic jobs that purge
// expired tombstones, activity past its 30-day retention, and published outbox rows and
// inbox rows past the events retention, expired idempotency keys and old AI operation ids.
package cleanup

import (
	"context"
	"log/slog"
	"time"

	"github.com/riverqueue/river"

	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/idempotency"

	"github.com/perpetua-flow/backend/services/tasks/internal/store"
)

// Interval is how often each purge runs. Expiry itself is a read-time filter (an expired
// tombstone is already a 404), so the purges only reclaim space.
const Interval = time.Hour

// PurgeArgs is the one periodic job: it purges everything that has expired.
type PurgeArgs struct{}

// Kind is River's job kind.
func (PurgeArgs) Kind() string { return "tasks.purge" }

// InsertOpts keeps at most one purge queued at a time.
func (PurgeArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{UniqueOpts: river.UniqueOpts{ByPeriod: Interval / 2}}
}

// PurgeWorker deletes expired rows.
type PurgeWorker struct {
	river.WorkerDefaults[PurgeArgs]
	Store  *store.Store
	Logger *slog.Logger
}

// Work runs every purge and reports the first failure (River retries the job).
func (w *PurgeWorker) Work(ctx context.Context, _ *river.Job[PurgeArgs]) error {
	tombs, err := w.Store.PurgeTombstones(ctx)
	if err != nil {
		return err
	}
	acts, err := w.Store.PurgeActivity(ctx)
	if err != nil {
		return err
	}
	cutoff := w.Store.Now().Add(-events.RetentionPeriod)
	outbox, err := events.PurgePublished(ctx, w.Store.Pool(), cutoff)
	if err != nil {
		return err
	}
	inbox, err := events.PurgeInbox(ctx, w.Store.Pool(), cutoff)
	if err != nil {
		return err
	}
	keys, err := idempotency.Purge(ctx, w.Store.Pool(), w.Store.Now())
	if err != nil {
		return err
	}
	ops, err := w.Store.PurgeOperations(ctx)
	if err != nil {
		return err
	}
	w.Logger.InfoContext(ctx, "purged", "tombstones", tombs, "activity", acts, "outbox", outbox, "inbox", inbox,
		"idempotency_keys", keys, "operations", ops)
	return nil
}

// Register adds the worker to workers and returns the periodic job that schedules it.
func Register(workers *river.Workers, st *store.Store, logger *slog.Logger) *river.PeriodicJob {
	river.AddWorker(workers, &PurgeWorker{Store: st, Logger: logger})
	return river.NewPeriodicJob(river.PeriodicInterval(Interval), func() (river.JobArgs, *river.InsertOpts) {
		return PurgeArgs{}, nil
	}, &river.PeriodicJobOpts{RunOnStart: true})
}
