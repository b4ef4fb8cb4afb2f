// Package httpapi is auth's HTTP edge (API.md §2): Google and dev sign-in, refresh,
// logout, sessions, the profile of /users/me, and the JWKS. Handlers decode, call the
// store and the signers, and encode; the rules live in package account.
//
// Idempotency keys are not applied here, on purpose. The token endpoints are
// unauthenticated, so a stored answer could only be scoped by the key itself and would
// replay live tokens to whoever sends the same key; and every authenticated mutation of
// auth is idempotent by nature (PATCH sets values, DELETE of a session or of the account
// answers the same when repeated).
package httpapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/perpetua-flow/backend/libs/authn"
	"github.com/perpetua-flow/backend/libs/clock"
	"github.com/perpetua-flow/backend/libs/httpx"
	"github.com/perpetua-flow/backend/services/auth/internal/account"
	"github.com/perpetua-flow/backend/services/auth/internal/store"
)

// JWKSMaxAge is the Cache-Control max-age of the published keys: short against the
// 7-day rotation grace, long enough that verifiers rarely ask.
const JWKSMaxAge = 5 * time.Minute

// GoogleVerifier checks a Google ID token (package google in production, the seam for
// nothing else: tests use a fake Google over HTTP).
type GoogleVerifier interface {
	Verify(ctx context.Context, raw string) (account.Identity, error)
}

// Config is what the handlers need.
type Config struct {
	Store    *store.Store
	Google   GoogleVerifier
	Signer   *authn.Signer
	Verifier *authn.Verifier
	Clock    clock.Clock
	// DevLogin mounts POST /auth/dev/login (AUTH_DEV_LOGIN); absent routes are 404.
	DevLogin bool
	Logger   *slog.Logger
	// Registry receives auth's counters and serves /metrics; Checks back /health/ready.
	Registry *prometheus.Registry
	Checks   []httpx.Check
	// Middleware wraps every route after the request id (HTTP metrics and tracing).
	Middleware []func(http.Handler) http.Handler
}

type api struct {
	cfg     Config
	metrics *metrics
}

// New is the service's whole HTTP handler: ops routes at the root, the API under /api/v1.
func New(cfg Config) http.Handler {
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	a := &api{cfg: cfg, metrics: newMetrics(cfg.Registry)}

	r := chi.NewRouter()
	// Request ids first (they set the request's logger), then the given middleware
	// (metrics and tracing count refused and panicking requests too), then the rest.
	r.Use(httpx.RequestID(cfg.Logger))
	r.Use(cfg.Middleware...)
	r.Use(httpx.SecurityHeaders, httpx.Recover, httpx.LimitBody)
	r.NotFound(httpx.NotFoundHandler)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler)
	httpx.MountOps(r, cfg.Registry, cfg.Checks...)

	jwks := cfg.Signer.JWKSHandler(JWKSMaxAge)
	r.Method(http.MethodGet, "/.well-known/jwks.json", jwks)
	r.Route("/api/v1", func(r chi.Router) {
		r.Method(http.MethodGet, "/.well-known/jwks.json", jwks)
		r.Post("/auth/google", a.signInGoogle)
		r.Post("/auth/google/callback", a.signInGoogle)
		r.Post("/auth/refresh", a.refresh)
		r.Post("/auth/logout", a.logout)
		if cfg.DevLogin {
			r.Post("/auth/dev/login", a.devLogin)
		}
		r.Group(func(r chi.Router) {
			r.Use(authn.Middleware(cfg.Verifier))
			r.Get("/auth/sessions", a.listSessions)
			r.Delete("/auth/sessions/{id}", a.revokeSession)
			r.Get("/users/me", a.getMe)
			r.Patch("/users/me", a.patchMe)
			r.Delete("/users/me", a.deleteMe)
		})
	})
	return r
}

// clientOf is what we record about the signing-in device. The address is the socket's:
// X-Forwarded-For is not trusted without a configured proxy list (STYLE.md, Traps).
func clientOf(r *http.Request) account.Client {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	return account.NewClient(r.UserAgent(), ip)
}

func claimsOf(r *http.Request) authn.Claims {
	c, _ := authn.FromContext(r.Context())
	return c
}
