package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/libs/logging"
	"github.com/perpetua-flow/backend/libs/svc"
	"github.com/perpetua-flow/backend/libs/telemetry"
	"github.com/perpetua-flow/backend/services/gateway/internal/clientip"
	"github.com/perpetua-flow/backend/services/gateway/internal/proxy"
	"github.com/perpetua-flow/backend/services/gateway/internal/ratelimit"
	"github.com/perpetua-flow/backend/services/gateway/internal/router"
)

// Name is the service name on every log line.
const Name = "gateway"

// Run reads the configuration, serves until ctx ends and then drains in-flight requests.
// ready (when not nil) receives the bound address once the listener is up, which is how
// tests and the local stack learn a ":0" port. The gateway has no database and no NATS,
// so it does not use svc.Open; its readiness is that of its upstreams.
func Run(ctx context.Context, getenv func(string) string, stdout io.Writer, ready func(addr string)) error {
	cfg, err := ReadConfig(getenv)
	if err != nil {
		return err
	}
	logger := logging.New(stdout, cfg.LogLevel, Name)
	shutdownTraces, err := telemetry.Setup(ctx, Name, cfg.OTLPEndpoint)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := shutdownTraces(sctx); err != nil {
			logger.Warn("flushing traces", "err", err)
		}
	}()

	h, closeGateway, err := newHandler(cfg, logger)
	if err != nil {
		return err
	}
	defer closeGateway()

	srv, err := httpx.Listen(cfg.HTTPAddr, h, logger)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", Name, cfg.HTTPAddr, err)
	}
	logger.Info("listening", "addr", srv.Addr(), "upstreams", fmt.Sprint(cfg.Upstreams),
		"limits", fmt.Sprintf("auth=%s ai=%s general=%s", cfg.Limits.Auth, cfg.Limits.AI, cfg.Limits.General))
	if ready != nil {
		ready(srv.Addr())
	}
	return svc.RunWith(ctx, logger, srv.Serve)
}

// newHandler wires the gateway's handler from cfg: the shared upstream transport, the
// proxies, the rate-limit counters (in memory or Redis), the token verifier and the
// router. The func it returns releases what the handler holds open (idle upstream
// connections, Redis). Run serves the handler; the in-package benchmark calls it directly.
func newHandler(cfg Config, logger *slog.Logger) (http.Handler, func(), error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	transport := proxy.NewTransport(max(cfg.UpstreamTimeout, cfg.AIUpstreamTimeout))
	closers := []func(){transport.CloseIdleConnections}
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	resolver := clientip.New(cfg.TrustedProxies)
	px, err := proxy.New(proxy.Config{
		Upstreams: cfg.Upstreams, Timeout: cfg.UpstreamTimeout, Resolver: resolver,
		Timeouts:  map[string]time.Duration{UpstreamAI: cfg.AIUpstreamTimeout},
		Transport: transport, Logger: logger,
	})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	checkClient := &http.Client{Transport: transport, Timeout: httpx.ReadyTimeout}
	var checks []httpx.Check
	for _, name := range []string{UpstreamAuth, UpstreamTasks, UpstreamAI, UpstreamBilling} {
		checks = append(checks, proxy.ReadyCheck(checkClient, name, cfg.Upstreams[name]))
	}

	newCounter := func(string) ratelimit.Counter { return ratelimit.NewMemoryCounter() }
	if cfg.RedisURL != "" {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("RATE_LIMIT_REDIS_URL: %w", err)
		}
		rdb := redis.NewClient(opts)
		closers = append(closers, func() { _ = rdb.Close() })
		newCounter = func(class string) ratelimit.Counter {
			return ratelimit.NewRedisCounter(rdb, "perpetua:ratelimit:"+class, logger)
		}
		logger.Info("rate limits shared through redis", "addr", opts.Addr)
	}

	verifier := authn.NewVerifier(authn.VerifierConfig{
		JWKSURL: cfg.JWKSURL, Issuer: cfg.Issuer, Audience: cfg.Audience,
		HTTPClient: &http.Client{Transport: transport, Timeout: cfg.UpstreamTimeout},
		Logger:     logger,
	})
	h, err := router.New(router.Deps{
		Logger: logger, Proxy: px, Registry: reg, ReadyChecks: checks,
		Metrics:      telemetry.HTTPMetrics(reg, Name),
		CORSOrigins:  cfg.CORSOrigins,
		Authenticate: authn.Middleware(verifier),
		UserID: func(r *http.Request) (string, bool) {
			c, ok := authn.FromContext(r.Context())
			return c.UserID, ok
		},
		Resolver: resolver, Limits: cfg.Limits, NewCounter: newCounter,
	})
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return h, closeAll, nil
}
