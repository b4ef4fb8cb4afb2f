package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/idempotency"
	"github.com/perpetua-flow/backend/libs/jobs"
	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/rpc"
	"github.com/perpetua-flow/backend/libs/svc"
	"github.com/perpetua-flow/backend/libs/telemetry"
	"github.com/perpetua-flow/backend/services/billing/internal/checkout"
	"github.com/perpetua-flow/backend/services/billing/internal/httpapi"
	"github.com/perpetua-flow/backend/services/billing/internal/maintenance"
	"github.com/perpetua-flow/backend/services/billing/internal/natsapi"
	"github.com/perpetua-flow/backend/services/billing/internal/store"
	"github.com/perpetua-flow/backend/services/billing/migrations"
)

// Name is the service's name (and its schema).
const Name = migrations.Schema

// Run serves billing until ctx ends. ready (may be nil) receives the bound address once
// the service accepts requests; end-to-end tests and the local stack start it in-process.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer, ready func(addr string)) error {
	return run(ctx, getenv, stdout, ready, clock.System{})
}

// Migrate applies billing's migrations (its own and the outbox/inbox) and returns: the
// `migrate` subcommand, run as an init step before new replicas start.
func Migrate(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := ReadConfig(getenv)
	if err != nil {
		return err
	}
	logger := logging.New(stdout, cfg.Base.LogLevel, Name)
	pool, err := pg.Open(ctx, cfg.Base.DB)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := migrations.Apply(ctx, pool, logger); err != nil {
		return err
	}
	logger.Info("migrated", "schema", Name)
	return nil
}

func run(ctx context.Context, getenv func(string) string, stdout io.Writer, ready func(addr string), clk clock.Clock) error {
	cfg, err := ReadConfig(getenv)
	if err != nil {
		return err
	}
	rt, err := svc.Open(ctx, Name, cfg.Base, stdout, func(ctx context.Context, pool *pgxpool.Pool) error {
		return migrations.Apply(ctx, pool, nil)
	})
	if err != nil {
		return err
	}
	defer rt.Close()
	logger := rt.Logger

	secrets := cfg.WebhookSecrets
	if cfg.SimulatePayments {
		logger.Warn("BILLING_SIMULATE_PAYMENTS is on: payments are captured without a provider; never in production")
		if len(secrets) == 0 {
			// The simulated webhook must pass the same signature check as a real one.
			secrets = []string{randomSecret()}
		}
	} else if len(secrets) == 0 {
		logger.Warn("CHECKOUT_WEBHOOK_SECRETS is empty: every webhook will be refused")
	}
	var client *checkout.Client
	if cfg.CheckoutBaseURL != "" {
		client = &checkout.Client{BaseURL: cfg.CheckoutBaseURL, SecretKey: cfg.CheckoutSecretKey, HTTP: &http.Client{Timeout: checkout.RequestTimeout}}
	} else if !cfg.SimulatePayments {
		logger.Warn("CHECKOUT_BASE_URL is unset: checkout and purchases answer 503")
	}

	st := store.New(rt.Pool)
	eventMetrics, err := events.NewMetrics(rt.Registry)
	if err != nil {
		return err
	}
	relay := events.NewRelay(rt.Pool, rt.JS, events.RelayConfig{Schema: Name, Pooler: cfg.Base.DB.Pooler, Metrics: eventMetrics}, logger)
	consumers, err := (&natsapi.Consumers{Store: st, Clock: clk, Logger: logger}).Workers(rt.Pool, rt.JS, eventMetrics)
	if err != nil {
		return err
	}
	rpcService, err := rpc.NewService(rt.NC, Name, "1.0.0", logger)
	if err != nil {
		return err
	}
	consumed, refunded, err := natsapi.NewCreditMetrics(rt.Registry)
	if err != nil {
		return err
	}
	if err := (&natsapi.Credits{Store: st, Clock: clk, Consumed: consumed, Refunded: refunded}).Register(rpcService); err != nil {
		_ = rpcService.Stop()
		return err
	}

	verifier := authn.NewVerifier(authn.VerifierConfig{JWKSURL: cfg.JWKSURL, Issuer: cfg.AuthIssuer, Audience: cfg.AuthAudience, Logger: logger})
	webhooks := &httpapi.Webhooks{Store: st, Clock: clk, Secrets: secrets, Logger: logger}
	api := &httpapi.API{
		Store:  st,
		Clock:  clk,
		Logger: logger,
		Auth:   authn.Middleware(verifier),
		Idempotency: idempotency.New(rt.Pool, idempotency.Config{Clock: clk}, func(r *http.Request) string {
			c, _ := authn.FromContext(r.Context())
			return c.UserID
		}),
		Payments: &httpapi.Payments{Store: st, Clock: clk, Client: client, Simulate: cfg.SimulatePayments,
			PublicBaseURL: cfg.PublicBaseURL, Webhooks: webhooks},
		Webhooks: webhooks,
	}
	r := chi.NewRouter()
	r.Use(httpx.RequestID(logger), telemetry.HTTPMetrics(rt.Registry, Name), httpx.SecurityHeaders, httpx.Recover, httpx.LimitBody)
	r.NotFound(httpx.NotFoundHandler)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler)
	httpx.MountOps(r, rt.Registry, rt.ReadyChecks()...)
	api.Routes(r)

	riverWorkers := river.NewWorkers()
	periodic, err := maintenance.Register(riverWorkers, rt.Pool, st, clk, logger)
	if err != nil {
		return err
	}
	jobClient, err := jobs.NewClient(rt.Pool, jobs.Config{Metrics: rt.Registry, Schema: Name, Pooler: cfg.Base.DB.Pooler, Workers: riverWorkers, PeriodicJobs: periodic}, logger)
	if err != nil {
		return err
	}

	workers := append([]svc.Worker{relay.Worker(), rpcService.Worker(), jobs.Worker(jobClient)}, consumers...)
	return rt.Serve(ctx, r, ready, workers...)
}

func randomSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
