package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/riverqueue/river"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/config"
	"github.com/perpetua-flow/backend/libs/events"
	"github.com/perpetua-flow/backend/libs/jobs"
	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/svc"
	"github.com/perpetua-flow/backend/libs/telemetry"
	"github.com/perpetua-flow/backend/services/auth/internal/google"
	"github.com/perpetua-flow/backend/services/auth/internal/httpapi"
	"github.com/perpetua-flow/backend/services/auth/internal/natsapi"
	"github.com/perpetua-flow/backend/services/auth/internal/purge"
	"github.com/perpetua-flow/backend/services/auth/internal/store"
)

// Run serves auth until ctx ends. ready (may be nil) receives the bound address once the
// service accepts requests; end-to-end tests and the local stack start it in-process.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer, ready func(addr string)) error {
	return run(ctx, getenv, stdout, ready, clock.System{})
}

// Migrate applies auth's migrations (its own, the outbox/inbox and the job queue) and
// returns: the `migrate` subcommand, run as an init step before new replicas start.
func Migrate(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	// Only the common settings: an init step needs the database, not the signing keys.
	r := config.NewReader(getenv)
	base := svc.ReadBase(r, Name, DefaultHTTPAddr)
	if err := r.Err(); err != nil {
		return err
	}
	logger := logging.New(stdout, base.LogLevel, Name)
	pool, err := pg.Open(ctx, base.DB)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := store.Migrate(ctx, pool); err != nil {
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
	keys, err := authn.LoadKeys(cfg.SigningKeys...)
	if err != nil {
		return err
	}
	signer, err := authn.NewSigner(keys, cfg.Issuer, cfg.Audience)
	if err != nil {
		return err
	}

	rt, err := svc.Open(ctx, Name, cfg.Base, stdout, store.Migrate)
	if err != nil {
		return err
	}
	defer rt.Close()
	logger := rt.Logger
	googleVerifier, err := google.New(google.Config{JWKSURL: cfg.GoogleJWKSURL, ClientIDs: cfg.GoogleClientIDs, Clock: clk, Logger: logger})
	if err != nil {
		return err
	}
	if cfg.DevLogin {
		logger.Warn("AUTH_DEV_LOGIN is on: anyone can sign in as any email; never in production")
	}
	if len(cfg.GoogleClientIDs) == 0 {
		logger.Warn("GOOGLE_CLIENT_IDS is empty: Google sign-in will fail")
	}

	eventMetrics, err := events.NewMetrics(rt.Registry)
	if err != nil {
		return err
	}
	relay := events.NewRelay(rt.Pool, rt.JS, events.RelayConfig{Schema: Name, Pooler: cfg.Base.DB.Pooler, Metrics: eventMetrics}, logger)
	tiers, err := natsapi.NewTierConsumer(rt.Pool, rt.JS, clk, eventMetrics, logger)
	if err != nil {
		return fmt.Errorf("tier consumer: %w", err)
	}

	self, err := selfVerifier(signer, cfg, clk, logger)
	if err != nil {
		return err
	}
	st := store.New(rt.Pool)
	api := httpapi.New(httpapi.Config{
		Store:    st,
		Google:   googleVerifier,
		Signer:   signer,
		Verifier: self,
		Clock:    clk,
		DevLogin: cfg.DevLogin,
		Logger:   logger,
		Registry: rt.Registry,
		Checks:   rt.ReadyChecks(),
		// HTTP RED metrics and server spans, by route.
		Middleware: []func(http.Handler) http.Handler{telemetry.HTTPMetrics(rt.Registry, Name)},
	})
	purger := &purge.Purger{Pool: rt.Pool, Store: st, Clock: clk, Logger: logger}
	workers := river.NewWorkers()
	purger.Register(workers)
	jobClient, err := jobs.NewClient(rt.Pool, jobs.Config{
		Metrics:      rt.Registry,
		Schema:       Name,
		Pooler:       cfg.Base.DB.Pooler,
		Workers:      workers,
		PeriodicJobs: []*river.PeriodicJob{purge.PeriodicJob()},
	}, logger)
	if err != nil {
		return err
	}
	return rt.Serve(ctx, api, ready, relay.Worker(), tiers.Worker(), jobs.Worker(jobClient))
}

// selfVerifier checks access tokens on auth's own routes against the signer's JWKS handed
// over in-process: the same verification every service does, without a network hop to
// itself.
func selfVerifier(signer *authn.Signer, cfg Config, clk clock.Clock, logger *slog.Logger) (*authn.Verifier, error) {
	body, err := json.Marshal(signer.JWKS())
	if err != nil {
		return nil, err
	}
	return authn.NewVerifier(authn.VerifierConfig{
		JWKSURL:    "http://auth.internal/.well-known/jwks.json",
		Issuer:     cfg.Issuer,
		Audience:   cfg.Audience,
		HTTPClient: &http.Client{Transport: jwksTransport(body)},
		Clock:      clk,
		Logger:     logger,
	}), nil
}

// jwksTransport answers every request with the JWKS document it holds.
type jwksTransport []byte

func (t jwksTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{
		Status:        "200 OK",
		StatusCode:    http.StatusOK,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(t)),
		ContentLength: int64(len(t)),
		Request:       r,
	}, nil
}
