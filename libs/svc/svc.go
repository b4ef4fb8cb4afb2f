// Package svc is the runtime every service shares: the common configuration (address,
// log level, database, NATS), the logger, pool, NATS connection and metrics registry made
// from it, the ops routes, and a Run that serves HTTP beside background workers and shuts
// both down in order on SIGTERM: drain HTTP first, then stop consumers and flush the relay.
package svc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/perpetua-flow/backend/libs/config"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/natsx"
	"github.com/perpetua-flow/backend/libs/pg"
	"github.com/perpetua-flow/backend/libs/telemetry"
)

// Base is the configuration every service reads (API.md §8).
type Base struct {
	// HTTPAddr is HTTP_ADDR; each service has its own default port.
	HTTPAddr string
	// LogLevel is LOG_LEVEL (default info).
	LogLevel slog.Level
	// DB: DATABASE_URL (required), DATABASE_MAX_CONNS (default 20), DATABASE_MIN_CONNS
	// (default 2), DATABASE_POOLER=transaction behind PgBouncer/Neon pooled endpoints.
	DB pg.Config
	// NATS: NATS_URL (required), NATS_STREAM_REPLICAS (default 1).
	NATS natsx.Config
	// OTLPEndpoint is OTEL_EXPORTER_OTLP_ENDPOINT; empty disables trace export.
	OTLPEndpoint string
	// ShutdownTimeout bounds the whole shutdown (SHUTDOWN_TIMEOUT, default 25s).
	ShutdownTimeout time.Duration
}

// ReadBase reads the common variables. name is the service name, which is also its schema.
func ReadBase(r *config.Reader, name, defaultAddr string) Base {
	level, err := logging.ParseLevel(r.String("LOG_LEVEL", "info"))
	r.Check(err == nil, "%v", err)
	pooler := r.String("DATABASE_POOLER", "")
	r.Check(pooler == "" || pooler == "transaction" || pooler == "session", "DATABASE_POOLER: %q is not transaction or session", pooler)
	b := Base{
		HTTPAddr: r.String("HTTP_ADDR", defaultAddr),
		LogLevel: level,
		DB: pg.Config{
			URL:      r.Required("DATABASE_URL"),
			Schema:   name,
			MaxConns: int32(r.Int("DATABASE_MAX_CONNS", 20)),
			MinConns: int32(r.Int("DATABASE_MIN_CONNS", 2)),
			Pooler:   pooler == "transaction",
		},
		NATS: natsx.Config{
			URL:      r.Required("NATS_URL"),
			Name:     name,
			Replicas: r.Int("NATS_STREAM_REPLICAS", 1),
		},
		OTLPEndpoint:    r.String("OTEL_EXPORTER_OTLP_ENDPOINT", ""),
		ShutdownTimeout: r.Duration("SHUTDOWN_TIMEOUT", 25*time.Second),
	}
	r.Check(b.DB.MaxConns >= 1, "DATABASE_MAX_CONNS must be ≥ 1")
	return b
}

// Runtime is what a service's run function wires its domain onto.
type Runtime struct {
	Name     string
	Logger   *slog.Logger
	Pool     *pgxpool.Pool
	NC       *nats.Conn
	JS       jetstream.JetStream
	Registry *prometheus.Registry
	Base     Base

	closers []func()
}

// Migrator applies a service's migrations to its schema on pool.
type Migrator func(ctx context.Context, pool *pgxpool.Pool) error

// TraceFlushTimeout bounds the export of the last spans at shutdown.
const TraceFlushTimeout = 5 * time.Second

// Open sets up tracing (exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set) and
// connects to Postgres (running migrate first) and NATS (making sure the streams exist).
// Close releases everything and flushes the last spans.
func Open(ctx context.Context, name string, base Base, stdout io.Writer, migrate Migrator) (*Runtime, error) {
	logger := logging.New(stdout, base.LogLevel, name)
	rt := &Runtime{Name: name, Logger: logger, Base: base}
	shutdownTraces, err := telemetry.Setup(ctx, name, base.OTLPEndpoint)
	if err != nil {
		return nil, err
	}
	rt.closers = append(rt.closers, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), TraceFlushTimeout)
		defer cancel()
		if err := shutdownTraces(sctx); err != nil {
			logger.Warn("flushing traces", "err", err)
		}
	})
	rt.Registry = prometheus.NewRegistry()
	rt.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	pool, err := pg.Open(ctx, base.DB)
	if err != nil {
		rt.Close()
		return nil, err
	}
	rt.closers = append(rt.closers, pool.Close)
	rt.Pool = pool
	if migrate != nil {
		if err := migrate(ctx, pool); err != nil {
			rt.Close()
			return nil, fmt.Errorf("%s: migrate: %w", name, err)
		}
	}
	nc, err := natsx.Connect(base.NATS, logger)
	if err != nil {
		rt.Close()
		return nil, err
	}
	rt.closers = append(rt.closers, func() { _ = nc.Drain() })
	rt.NC = nc
	js, err := jetstream.New(nc)
	if err != nil {
		rt.Close()
		return nil, err
	}
	rt.JS = js
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := natsx.EnsureStreams(sctx, js, base.NATS); err != nil {
		rt.Close()
		return nil, err
	}
	return rt, nil
}

// Close releases the connections in reverse order of opening.
func (rt *Runtime) Close() {
	for i := len(rt.closers) - 1; i >= 0; i-- {
		rt.closers[i]()
	}
	rt.closers = nil
}

// OnClose registers f to run in Close (before the connections it may use are closed).
func (rt *Runtime) OnClose(f func()) { rt.closers = append(rt.closers, f) }

// ReadyChecks are the database and NATS checks of /health/ready.
func (rt *Runtime) ReadyChecks(extra ...httpx.Check) []httpx.Check {
	return append([]httpx.Check{
		{Name: "database", Fn: func(ctx context.Context) error { return rt.Pool.Ping(ctx) }},
		{Name: "nats", Fn: func(ctx context.Context) error { return natsx.Ping(ctx, rt.NC) }},
	}, extra...)
}

// Worker is background work (outbox relay, consumers, job client) that runs until its
// context ends and then returns once it has finished cleanly.
type Worker struct {
	Name string
	Run  func(ctx context.Context) error
}

// Serve listens on the service's address, announces it through ready (when not nil), and
// serves api beside the workers until ctx ends. Shutdown order: stop accepting and drain
// HTTP, then cancel the workers and wait for them (the relay flushes on its way out).
func (rt *Runtime) Serve(ctx context.Context, api http.Handler, ready func(addr string), workers ...Worker) error {
	srv, err := httpx.Listen(rt.Base.HTTPAddr, api, rt.Logger)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", rt.Name, rt.Base.HTTPAddr, err)
	}
	rt.Logger.Info("listening", "addr", srv.Addr())
	if ready != nil {
		ready(srv.Addr())
	}
	return RunWith(ctx, rt.Logger, srv.Serve, workers...)
}

// RunWith runs serve and the workers: serve first stops when ctx ends, then the workers'
// context is cancelled. The first error of any of them stops all.
func RunWith(ctx context.Context, logger *slog.Logger, serve func(context.Context) error, workers ...Worker) error {
	httpCtx, stopHTTP := context.WithCancel(ctx)
	defer stopHTTP()
	workCtx, stopWork := context.WithCancel(context.WithoutCancel(ctx))
	defer stopWork()

	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []error
		failed = make(chan struct{})
		once   sync.Once
	)
	fail := func(name string, err error) {
		if err == nil || errors.Is(err, context.Canceled) {
			return
		}
		logger.Error("component failed", "component", name, "err", err)
		mu.Lock()
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
		mu.Unlock()
		once.Do(func() { close(failed) })
	}
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail(w.Name, w.Run(workCtx))
		}()
	}
	serveDone := make(chan struct{})
	go func() {
		defer close(serveDone)
		fail("http", serve(httpCtx))
	}()
	select {
	case <-ctx.Done():
	case <-failed:
	}
	stopHTTP()
	<-serveDone
	stopWork()
	wg.Wait()
	logger.Info("stopped")
	return errors.Join(errs...)
}
