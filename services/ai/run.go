package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/idempotency"
	"github.com/perpetua-flow/backend/libs/jobs"
	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/svc"
	"github.com/perpetua-flow/backend/libs/telemetry"

	"github.com/perpetua-flow/backend/services/ai/internal/assistant"
	"github.com/perpetua-flow/backend/services/ai/internal/deepgram"
	"github.com/perpetua-flow/backend/services/ai/internal/httpapi"
	"github.com/perpetua-flow/backend/services/ai/internal/natsapi"
	"github.com/perpetua-flow/backend/services/ai/internal/openai"
	"github.com/perpetua-flow/backend/services/ai/internal/store"
)

// Housekeeping: idempotency keys are kept 24 h (API.md §1); expired keys and request
// counters are purged on this period.
const (
	IdempotencyTTL = 24 * time.Hour
	purgeEvery     = time.Hour
)

// Run serves the ai service until ctx ends. ready (may be nil) receives the bound address
// once it accepts requests; end-to-end tests and the local stack start it in-process.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer, ready func(addr string)) error {
	return run(ctx, getenv, stdout, ready, clock.System{})
}

// Migrate applies the ai schema's migrations and returns: the `migrate` subcommand, run
// as an init step before new replicas start.
func Migrate(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := ReadConfig(getenv)
	if err != nil {
		return err
	}
	logger := logging.New(stdout, cfg.Base.LogLevel, ServiceName)
	pool, err := pg.Open(ctx, cfg.Base.DB)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrateSchema(ctx, pool); err != nil {
		return err
	}
	logger.Info("migrated", "schema", ServiceName)
	return nil
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer, ready func(addr string), clk clock.Clock) error {
	cfg, err := ReadConfig(getenv)
	if err != nil {
		return err
	}
	rt, err := svc.Open(ctx, ServiceName, cfg.Base, stdout, migrateSchema)
	if err != nil {
		return err
	}
	defer rt.Close()
	logger := rt.Logger

	model, transcriber, err := providers(cfg, logger)
	if err != nil {
		return err
	}

	eventMetrics, err := events.NewMetrics(rt.Registry)
	if err != nil {
		return err
	}
	relay := events.NewRelay(rt.Pool, rt.JS, events.RelayConfig{Schema: ServiceName, Pooler: cfg.Base.DB.Pooler, Metrics: eventMetrics}, logger)

	st := store.New(rt.Pool)
	billing := natsapi.Billing{NC: rt.NC}
	jobClient, err := jobClient(rt.Pool, rt.Registry, cfg, st, billing, clk, logger)
	if err != nil {
		return err
	}

	observed, err := newObservedStore(st, rt.Registry)
	if err != nil {
		return err
	}
	service, err := assistant.New(assistant.Config{
		Model:           model,
		ModelName:       cfg.OpenAIModel,
		Transcriber:     transcriber,
		TranscriberName: cfg.DeepgramModel,
		Credits:         billing,
		Tasks:           natsapi.Tasks{NC: rt.NC},
		Store:           observed,
		Refunds:         natsapi.Refunder{Client: jobClient},
		Clock:           clk,
		ProviderTimeout: cfg.ProviderTimeout,
		Logger:          logger,
	})
	if err != nil {
		return err
	}

	voiceNotes, err := natsapi.VoiceNotes(rt.Pool, rt.JS, service, cfg.ProviderTimeout, eventMetrics, logger)
	if err != nil {
		return fmt.Errorf("voice note consumer: %w", err)
	}
	userDeleted, err := natsapi.UserDeleted(rt.Pool, rt.JS, eventMetrics, logger)
	if err != nil {
		return fmt.Errorf("user deleted consumer: %w", err)
	}

	verifier := authn.NewVerifier(authn.VerifierConfig{
		JWKSURL: cfg.JWKSURL, Issuer: cfg.Issuer, Audience: cfg.Audience, Clock: clk, Logger: logger,
	})
	handler := httpapi.Handler(httpapi.Deps{
		Logger:       logger,
		Registry:     rt.Registry,
		Checks:       rt.ReadyChecks(),
		Authenticate: authn.Middleware(verifier),
		Idempotency: idempotency.New(rt.Pool, idempotency.Config{TTL: IdempotencyTTL, Required: true}, func(r *http.Request) string {
			c, _ := authn.FromContext(r.Context())
			return c.UserID
		}),
		Metrics: telemetry.HTTPMetrics(rt.Registry, ServiceName),
		Service: service,
	})
	return rt.Serve(ctx, handler, ready,
		relay.Worker(), jobs.Worker(jobClient), voiceNotes.Worker(), userDeleted.Worker())
}

// providers makes the model and the transcriber whose keys are configured. A missing key
// is not fatal: those endpoints answer 503 naming the variable to set.
func providers(cfg Config, logger *slog.Logger) (assistant.Model, assistant.Transcriber, error) {
	var model assistant.Model
	if cfg.OpenAIKey == "" {
		logger.Warn("OPENAI_API_KEY is not set: the AI endpoints answer 503 AI_SERVICE_UNAVAILABLE")
	} else {
		c, err := openai.New(openai.Config{APIKey: cfg.OpenAIKey, BaseURL: cfg.OpenAIBaseURL, Model: cfg.OpenAIModel})
		if err != nil {
			return nil, nil, err
		}
		model = c
	}
	var transcriber assistant.Transcriber
	if cfg.DeepgramKey == "" {
		logger.Warn("DEEPGRAM_API_KEY is not set: transcription answers 503 TRANSCRIPTION_SERVICE_UNAVAILABLE")
	} else {
		c, err := deepgram.New(deepgram.Config{APIKey: cfg.DeepgramKey, BaseURL: cfg.DeepgramBaseURL, Model: cfg.DeepgramModel})
		if err != nil {
			return nil, nil, err
		}
		transcriber = c
	}
	return model, transcriber, nil
}

// jobClient is River in the ai schema: refunds that billing did not take at once, and the
// hourly purge of expired idempotency keys and request counters.
func jobClient(pool *pgxpool.Pool, reg prometheus.Registerer, cfg Config, st *store.Store, billing natsapi.Billing, clk clock.Clock, logger *slog.Logger) (*river.Client[pgx.Tx], error) {
	workers := river.NewWorkers()
	river.AddWorker(workers, &natsapi.RefundWorker{Credits: billing})
	river.AddWorker(workers, &natsapi.PurgeWorker{Store: st, Now: clk.Now, PurgeKeys: func(ctx context.Context, now time.Time) (int64, error) {
		return idempotency.Purge(ctx, pool, now)
	}})
	periodic := []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(purgeEvery), func() (river.JobArgs, *river.InsertOpts) {
			return natsapi.PurgeArgs{}, nil
		}, &river.PeriodicJobOpts{RunOnStart: true}),
	}
	return jobs.NewClient(pool, jobs.Config{
		Schema:       ServiceName,
		Pooler:       cfg.Base.DB.Pooler,
		Queues:       map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 5}},
		Workers:      workers,
		PeriodicJobs: periodic,
		Metrics:      reg,
	}, logger)
}
