// Package purge removes what auth no longer needs, once a day as a River periodic job:
// expired refresh tokens, sessions that can no longer refresh (expired, or revoked longer
// than the retention), published outbox rows past their replay window and old inbox rows.
package purge

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/services/auth/internal/store"
)

// Interval is how often the purge runs.
const Interval = 24 * time.Hour

// InboxRetention outlives every possible redelivery: the streams keep events for
// events.RetentionPeriod and a replay may resend them within it (libs/events advice).
const InboxRetention = 2 * events.RetentionPeriod

// Kind is the River job kind (stored in the job table: do not rename).
const Kind = "auth.purge"

// Args are the (empty) arguments of the purge job.
type Args struct{}

// Kind names the job.
func (Args) Kind() string { return Kind }

// Purger runs one purge pass.
type Purger struct {
	Pool   *pgxpool.Pool
	Store  *store.Store
	Clock  clock.Clock
	Logger *slog.Logger
}

// Once runs every purge at the clock's now and logs what it removed.
func (p *Purger) Once(ctx context.Context) error {
	now := p.Clock.Now()
	tokens, sessions, err := p.Store.Purge(ctx, now)
	if err != nil {
		return err
	}
	outbox, err := events.PurgePublished(ctx, p.Pool, now.Add(-events.RetentionPeriod))
	if err != nil {
		return err
	}
	inbox, err := events.PurgeInbox(ctx, p.Pool, now.Add(-InboxRetention))
	if err != nil {
		return err
	}
	p.Logger.InfoContext(ctx, "purged", "refresh_tokens", tokens, "sessions", sessions, "outbox", outbox, "inbox", inbox)
	return nil
}

// worker is the River worker of the job; a failed run is retried by River.
type worker struct {
	river.WorkerDefaults[Args]
	p *Purger
}

func (w *worker) Work(ctx context.Context, _ *river.Job[Args]) error { return w.p.Once(ctx) }

// Register adds the job's worker to workers.
func (p *Purger) Register(workers *river.Workers) { river.AddWorker(workers, &worker{p: p}) }

// PeriodicJob schedules the purge every Interval, and once when the leader starts (so a
// service that restarts more often than daily still purges).
func PeriodicJob() *river.PeriodicJob {
	return river.NewPeriodicJob(
		river.PeriodicInterval(Interval),
		func() (river.JobArgs, *river.InsertOpts) { return Args{}, nil },
		&river.PeriodicJobOpts{ID: Kind, RunOnStart: true},
	)
}
