package main

import (
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/events/tasksevents"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/idempotency"
	"github.com/perpetua-flow/backend/libs/jobs"
	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/svc"
	"github.com/perpetua-flow/backend/libs/telemetry"

	"github.com/perpetua-flow/backend/services/tasks/internal/cleanup"
	"github.com/perpetua-flow/backend/services/tasks/internal/httpapi"
	"github.com/perpetua-flow/backend/services/tasks/internal/natsapi"
	"github.com/perpetua-flow/backend/services/tasks/internal/notify"
	"github.com/perpetua-flow/backend/services/tasks/internal/schedule"
	"github.com/perpetua-flow/backend/services/tasks/internal/store"
	"github.com/perpetua-flow/backend/services/tasks/migrations"
)

// version is reported by the NATS micro service.
const version = "1.0.0"

// migrate applies every migration of the tasks schema: the service's own tables and the
// outbox/inbox of libs/events.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	if err := pg.MigratePool(ctx, pool, name, migrations.FS, nil); err != nil {
		return err
	}
	if err := events.Migrate(ctx, pool, name); err != nil {
		return err
	}
	if err := idempotency.Migrate(ctx, pool, name); err != nil {
		return err
	}
	return jobs.Migrate(ctx, pool, name)
}

// Migrate is the migrate subcommand: apply the migrations and exit.
func Migrate(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := readConfig(getenv)
	if err != nil {
		return err
	}
	pool, err := pg.Open(ctx, cfg.Base.DB)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrate(ctx, pool); err != nil {
		return err
	}
	logging.New(stdout, cfg.Base.LogLevel, name).Info("migrated")
	return nil
}

// outbox is the store's Emitter: each event is a CloudEvent in the outbox of the writing
// transaction.
func outbox(ctx context.Context, tx pgx.Tx, typ, userID string, data any) error {
	ev, err := events.New(tasksevents.Source, typ, userID, data)
	if err != nil {
		return err
	}
	return events.Enqueue(ctx, tx, ev)
}

// Run serves the tasks service until ctx ends. ready, when not nil, learns the bound
// address (tests listen on :0).
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer, ready func(addr string)) error {
	cfg, err := readConfig(getenv)
	if err != nil {
		return err
	}
	rt, err := svc.Open(ctx, name, cfg.Base, stdout, migrate)
	if err != nil {
		return err
	}
	defer rt.Close()

	st := store.New(rt.Pool, clock.System{}, outbox)
	hub, err := notify.New(rt.NC, rt.Logger)
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	verifier := authn.NewVerifier(authn.VerifierConfig{JWKSURL: cfg.JWKSURL, Issuer: cfg.AuthIssuer, Audience: cfg.AuthAudience})
	api := httpapi.Routes(httpapi.Config{
		Store: st, Auth: authn.Middleware(verifier), Hub: hub, Logger: rt.Logger, Heartbeat: cfg.SSEHeartbeat,
		Idempotency: idempotency.New(rt.Pool, idempotency.Config{}, httpapi.UserID),
	})
	root := chi.NewRouter()
	root.Use(httpx.RequestID(rt.Logger), telemetry.HTTPMetrics(rt.Registry, name), httpx.SecurityHeaders, httpx.Recover, httpx.LimitBody)
	root.NotFound(httpx.NotFoundHandler)
	root.MethodNotAllowed(httpx.MethodNotAllowedHandler)
	httpx.MountOps(root, rt.Registry, rt.ReadyChecks()...)
	root.Mount("/api/v1", api)

	metrics, err := events.NewMetrics(rt.Registry)
	if err != nil {
		return err
	}
	relay := events.NewRelay(rt.Pool, rt.JS, events.RelayConfig{Schema: name, Pooler: cfg.Base.DB.Pooler, Metrics: metrics}, rt.Logger)
	consumers, err := natsapi.Consumers(rt.Pool, rt.JS, st, hub, metrics, rt.Logger)
	if err != nil {
		return err
	}
	rpcs, err := natsapi.Serve(rt.NC, st, version, rt.Logger)
	if err != nil {
		return err
	}
	jobWorkers := river.NewWorkers()
	purge := cleanup.Register(jobWorkers, st, rt.Logger)
	// Reminders and focus sessions schedule jobs in their own transactions; the scheduler
	// is bound to the client below, before anything is served.
	sched := &schedule.Scheduler{}
	st.SetScheduler(sched)
	st.SetPublisher(hub.Publish)
	observeReminders, err := schedule.Metrics(rt.Registry)
	if err != nil {
		return err
	}
	schedule.Register(jobWorkers, st, st, hub, rt.Logger, observeReminders)
	queues := schedule.Queues()
	queues[river.QueueDefault] = river.QueueConfig{MaxWorkers: jobs.DefaultMaxWorkers}
	jc, err := jobs.NewClient(rt.Pool, jobs.Config{Metrics: rt.Registry, Schema: name, Pooler: cfg.Base.DB.Pooler, Workers: jobWorkers,
		Queues: queues, PeriodicJobs: []*river.PeriodicJob{purge},
		JobTimeout: cfg.JobTimeout, RescueStuckJobsAfter: cfg.JobRescueAfter}, rt.Logger)
	if err != nil {
		return err
	}
	sched.Bind(jc)
	workers := append([]svc.Worker{relay.Worker(), hub.Worker(), rpcs.Worker(), jobs.Worker(jc)}, consumers...)
	return rt.Serve(ctx, http.Handler(root), ready, workers...)
}
