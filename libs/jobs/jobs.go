// Package jobs runs background jobs on River (riverqueue/river, pgx v5 driver) in a
// service's own schema: Migrate creates River's tables there, NewClient makes a client
// that inserts (InsertTx in the caller's transaction, so a job exists exactly when the
// write that caused it committed) and works jobs, and Worker runs it beside HTTP with a
// bounded graceful stop. Behind a transaction-mode pooler the client polls instead of
// using LISTEN/NOTIFY.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/svc"
)

const (
	// DefaultMaxWorkers is the concurrency of the default queue when Queues is empty.
	DefaultMaxWorkers = 10
	// DefaultPollInterval is how often a polling (pooler) client looks for new jobs;
	// also River's fallback poll when LISTEN/NOTIFY is used.
	DefaultPollInterval = time.Second
	// SoftStopTimeout is how long a stop waits for running jobs before cancelling their
	// contexts (River's SoftStopTimeout).
	SoftStopTimeout = 10 * time.Second
	// StopTimeout bounds the whole stop of Worker, including jobs that ignore their
	// cancelled context; it stays under the services' 25 s shutdown budget.
	StopTimeout = 15 * time.Second
)

// Config of a client. Schema is required; the rest has defaults.
type Config struct {
	// Schema is the service's schema, where Migrate put River's tables.
	Schema string
	// Pooler is true behind a transaction-mode pooler (pg.Config.Pooler): no LISTEN,
	// the client polls every PollInterval.
	Pooler bool
	// PollInterval is how often to look for jobs without a notification (default 1 s).
	PollInterval time.Duration
	// Queues to work; default {"default": 10 workers} when Workers is set. Leave both
	// Queues and Workers nil for an insert-only client (and do not run its Worker).
	Queues map[string]river.QueueConfig
	// Workers registers the job kinds this service works.
	Workers *river.Workers
	// PeriodicJobs run on the elected leader among replicas.
	PeriodicJobs []*river.PeriodicJob
	// MaxAttempts of a job before it is discarded (River's default 25 when 0).
	MaxAttempts int
	// JobTimeout bounds one run of a job (River's default 1 min when 0).
	JobTimeout time.Duration
	// RescueStuckJobsAfter is how long a job may be running before the leader's rescuer
	// retries it: a job that was running when its process was killed stays "running"
	// until then (River's default 1 h when 0). Must be more than JobTimeout.
	RescueStuckJobsAfter time.Duration
	// ErrorHandler sees job errors and panics (optional; River logs them anyway).
	ErrorHandler river.ErrorHandler
	// TestOnly makes River start and stop without its production jitter. Tests only.
	TestOnly bool
	// Metrics, when set, gets the river_queue_jobs collector (QueueDepth).
	Metrics prometheus.Registerer
}

// Migrate creates or upgrades River's tables in schema. Replicas starting together take
// turns through an advisory lock, since rivermigrate itself does not lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	if !pg.ValidSchema(schema) {
		return fmt.Errorf("jobs: invalid schema name %q", schema)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	defer conn.Release()
	lockID := migrationLockID(schema)
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
		return fmt.Errorf("jobs: migrate: lock: %w", err)
	}
	defer func() {
		// A failed unlock leaves the lock with the session; close it to be sure.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockID); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
	}()
	if _, err := conn.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema); err != nil {
		return fmt.Errorf("jobs: create schema %s: %w", schema, err)
	}
	m, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{
		Schema: schema,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		return fmt.Errorf("jobs: migrate: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("jobs: migrate %s: %w", schema, err)
	}
	return nil
}

func migrationLockID(schema string) int64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte("perpetua-jobs-migrate:" + schema))
	return int64(h.Sum64())
}

// NewClient makes a River client on pool for the tables in cfg.Schema.
func NewClient(pool *pgxpool.Pool, cfg Config, logger *slog.Logger) (*river.Client[pgx.Tx], error) {
	if !pg.ValidSchema(cfg.Schema) {
		return nil, fmt.Errorf("jobs: invalid schema name %q", cfg.Schema)
	}
	if logger == nil {
		logger = slog.Default()
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(NewQueueDepth(pool)); err != nil {
			return nil, fmt.Errorf("jobs: register metrics: %w", err)
		}
	}
	queues := cfg.Queues
	if len(queues) == 0 && cfg.Workers != nil {
		queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: DefaultMaxWorkers}}
	}
	poll := cfg.PollInterval
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	rc := &river.Config{
		Schema:               cfg.Schema,
		PollOnly:             cfg.Pooler,
		FetchPollInterval:    poll,
		FetchCooldown:        min(river.FetchCooldownDefault, poll),
		Queues:               queues,
		Workers:              cfg.Workers,
		PeriodicJobs:         cfg.PeriodicJobs,
		MaxAttempts:          cfg.MaxAttempts,
		JobTimeout:           cfg.JobTimeout,
		RescueStuckJobsAfter: cfg.RescueStuckJobsAfter,
		ErrorHandler:         cfg.ErrorHandler,
		SoftStopTimeout:      SoftStopTimeout,
		Logger:               logger.With("component", "river"),
		TestOnly:             cfg.TestOnly,
	}
	c, err := river.NewClient(riverpgxv5.New(pool), rc)
	if err != nil {
		return nil, fmt.Errorf("jobs: new client: %w", err)
	}
	return c, nil
}

// Worker works jobs until ctx ends, then stops gracefully: running jobs get
// SoftStopTimeout to finish before their contexts are cancelled, and the stop as a whole
// is bounded by StopTimeout. It returns an error if the client stops on its own.
func Worker(c *river.Client[pgx.Tx]) svc.Worker {
	return svc.Worker{Name: "jobs", Run: func(ctx context.Context) error {
		// Start's context ends the client when cancelled; stop explicitly instead, so
		// the stop is bounded and its error reported.
		if err := c.Start(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("jobs: start: %w", err)
		}
		select {
		case <-ctx.Done():
		case <-c.Stopped():
			return errors.New("jobs: client stopped unexpectedly")
		}
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), StopTimeout)
		defer cancel()
		if err := c.Stop(stopCtx); err != nil {
			return fmt.Errorf("jobs: stop: %w", err)
		}
		return nil
	}}
}
