// Package router assembles the gateway's HTTP surface: the edge middleware every response
// passes (panic recovery, request id, security headers, CORS, body limit), the ops and
// docs routes, and the routing table of routes.go with token verification and the rate
// limit class of each route in front of the reverse proxy.
package router

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/cors"
	"github.com/go-chi/httprate"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/services/gateway/internal/clientip"
	"github.com/perpetua-flow/backend/services/gateway/internal/proxy"
	"github.com/perpetua-flow/backend/services/gateway/internal/ratelimit"
	"github.com/perpetua-flow/backend/services/gateway/openapi"
)

// CORS lists of API.md §1.
var (
	corsMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	corsHeaders = []string{"Authorization", "Content-Type", "Idempotency-Key", httpx.RequestIDHeader, "X-Task-Id"}
	corsExposed = []string{
		httpx.RequestIDHeader,
		ratelimit.HeaderLimit, ratelimit.HeaderRemaining, ratelimit.HeaderReset,
		ratelimit.HeaderPolicy, ratelimit.HeaderRateLimit, ratelimit.HeaderRetryAfter,
		"Idempotent-Replayed", "X-Idempotent-Replayed",
	}
)

// CORSMaxAge is how long a browser may cache a preflight answer.
const CORSMaxAge = 10 * time.Minute

// Deps is what the router is built from.
type Deps struct {
	Logger   *slog.Logger
	Proxy    *proxy.Proxy
	Registry *prometheus.Registry
	// ReadyChecks run on /health/ready (one per upstream).
	ReadyChecks []httpx.Check
	CORSOrigins []string
	// Authenticate verifies the access token and puts its claims in the context, or
	// answers 401 with the envelope.
	Authenticate func(http.Handler) http.Handler
	// UserID is the verified subject of a request that passed Authenticate.
	UserID   func(r *http.Request) (string, bool)
	Resolver *clientip.Resolver
	Limits   ratelimit.Limits
	// NewCounter makes the counter of one rate-limit class (memory or Redis).
	NewCounter func(class string) ratelimit.Counter
	// Metrics records every request and starts its server span (telemetry.HTTPMetrics);
	// nil records nothing.
	Metrics func(http.Handler) http.Handler
}

// New is the gateway's handler.
func New(d Deps) (http.Handler, error) {
	if d.Authenticate == nil || d.UserID == nil || d.Proxy == nil || d.Resolver == nil {
		return nil, fmt.Errorf("router: Authenticate, UserID, Proxy and Resolver are required")
	}
	if d.NewCounter == nil {
		d.NewCounter = func(string) ratelimit.Counter { return ratelimit.NewMemoryCounter() }
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	ipKey := func(r *http.Request) string {
		return "ip:" + httprate.CanonicalizeIP(d.Resolver.ClientIP(r.RemoteAddr, r.Header.Values("X-Forwarded-For")))
	}
	userOrIPKey := func(r *http.Request) string {
		if sub, ok := d.UserID(r); ok && sub != "" {
			return "user:" + sub
		}
		return ipKey(r)
	}
	limiters := map[string]*ratelimit.Limiter{
		classAuth:    ratelimit.New(ratelimit.ClassAuth, d.Limits.Auth, ipKey, d.NewCounter(ratelimit.ClassAuth), d.Logger),
		classAI:      ratelimit.New(ratelimit.ClassAI, d.Limits.AI, userOrIPKey, d.NewCounter(ratelimit.ClassAI), d.Logger),
		classGeneral: ratelimit.New(ratelimit.ClassGeneral, d.Limits.General, userOrIPKey, d.NewCounter(ratelimit.ClassGeneral), d.Logger),
	}

	r := chi.NewRouter()
	if d.Metrics == nil {
		d.Metrics = func(h http.Handler) http.Handler { return h }
	}
	// RequestID first (the metrics middleware adds trace ids to the logger it sets), then
	// metrics, so that refused and panicking requests are counted too.
	r.Use(httpx.RequestID(d.Logger), d.Metrics, httpx.Recover, accessLog, httpx.SecurityHeaders)
	r.Use(cors.Handler(cors.Options{
		AllowedOrigins:   d.CORSOrigins,
		AllowedMethods:   corsMethods,
		AllowedHeaders:   corsHeaders,
		ExposedHeaders:   corsExposed,
		AllowCredentials: false, // bearer tokens, no cookies
		MaxAge:           int(CORSMaxAge / time.Second),
	}))
	r.Use(httpx.LimitBody, canonicalPath)
	r.NotFound(httpx.NotFoundHandler)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler)

	httpx.MountOps(r, d.Registry, d.ReadyChecks...)
	r.Get("/openapi.json", openapi.ServeSpec)
	r.Get("/asyncapi.json", openapi.ServeAsyncAPI)
	r.Get("/docs", openapi.ServeDocs)
	r.Get(openapi.AssetsPrefix+"{file}", openapi.Assets().ServeHTTP)

	for _, rt := range Routes {
		h, err := d.Proxy.Handler(rt.Upstream, rt.Stream)
		if err != nil {
			return nil, fmt.Errorf("router: %s: %w", rt.Pattern, err)
		}
		// Innermost first: the limit of a user's class needs the verified sub, so it runs
		// after Authenticate; the auth class is per IP and runs before it, so a flood of
		// bad tokens at /auth/* still spends its budget.
		switch rt.Class {
		case classAI, classGeneral:
			h = limiters[rt.Class].Handler(h)
		}
		if !rt.Public {
			h = d.Authenticate(h)
		}
		if rt.Class == classAuth {
			h = limiters[classAuth].Handler(h)
		}
		r.Handle(rt.Pattern, h)
	}
	return r, nil
}

// canonicalPath refuses paths with dot segments, empty segments or encoded slashes. No
// route of the API has them, and the path that picked a route is the path forwarded: a
// path the upstream might read differently (/public/../private) must not get that far.
func canonicalPath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, raw := r.URL.Path, r.URL.RawPath
		if strings.Contains(p, "//") || hasDotSegment(p) || strings.Contains(p, "\\") ||
			raw != "" && (containsFold(raw, "%2f") || containsFold(raw, "%5c")) {
			httpx.NotFoundHandler(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// hasDotSegment reports a "." or ".." segment anywhere in p.
func hasDotSegment(p string) bool {
	for _, seg := range []string{"/.", "/.."} {
		if strings.HasSuffix(p, seg) || strings.Contains(p, seg+"/") {
			return true
		}
	}
	return false
}

// containsFold is strings.Contains ignoring ASCII case, for short escapes such as "%2f".
func containsFold(s, substr string) bool {
	for i := 0; i+len(substr) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(substr)], substr) {
			return true
		}
	}
	return false
}

// accessLog writes one line per request (method, path, status, duration) with the request
// id, so the local stack's [gateway] lines show the traffic. Below LOG_LEVEL=info it is
// not there at all: no recorder, no clock reads.
func accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !httpx.LoggerFrom(r.Context()).Enabled(r.Context(), slog.LevelInfo) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		httpx.LoggerFrom(r.Context()).InfoContext(r.Context(), "request",
			"method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration_ms", time.Since(start).Milliseconds())
	})
}

// statusRecorder remembers the status; Unwrap keeps Flush reachable for SSE through
// http.ResponseController.
type statusRecorder struct {
	http.ResponseWriter
	status  int
	written bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.written {
		s.status, s.written = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.written = true
	return s.ResponseWriter.Write(b)
}

// Flush lets code that asserts http.Flusher directly stream too.
func (s *statusRecorder) Flush() {
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
